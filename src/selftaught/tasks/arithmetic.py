"""Multi-digit addition and multiplication with a digit-by-digit scratchpad.

Formats (character-level friendly: fixed-width steps, one separator per level):

Addition ``AdditionTask(digits=(1, 4))`` — prompt ``"1234+5678="``; reference solution, one step
per column, least significant first, each step ``a+b+carry=SS`` (sum always two digits), then
the final line ``=ANSWER``::

    4+8+0=12 3+7+1=11 2+6+1=09 1+5+0=06
    =6912

Multiplication ``MultiplicationTask(digits_a=(1, 4), digits_b=1)`` — prompt ``"1234*6="``;
one step per digit of ``a`` (least significant first) ``a*b+carry=SS``::

    4*6+0=24 3*6+2=20 2*6+2=14 1*6+1=07
    =7404

With a multi-digit ``b`` there is one row per digit of ``b`` ending in its place-shifted partial
product ``=P``, then one line of column sums of the partials, then the answer::

    4*6+0=24 3*6+2=20 2*6+2=14 1*6+1=07 =7404
    4*5+0=20 3*5+2=17 2*5+1=11 1*5+1=06 =61700
    4+0+0=04 0+0+0=00 4+7+0=11 7+1+1=09 0+6+0=06
    =69104

"Human" solutions (``human_solution``) always end in the right ``=ANSWER`` line but are uneven:
with probability ``human_skip_prob`` they skip steps (answer only; a random subset of the steps;
for multi-digit ``b`` the partial products only, as ``1234*50=61700``), and with probability
``human_loose_prob`` they use a looser notation (``+0`` carries omitted, sums not padded:
``2+6+1=9``, ``4+8=12``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from selftaught.core.errors import ConfigError, check
from selftaught.tasks.base import (
    SPLITS,
    Problem,
    Task,
    check_count,
    check_split,
    distinct_problems,
    split_of,
    split_rng,
)

#: Problem spaces at most this large are enumerated (exact split sizes, sampling without
#: replacement); larger ones are rejection-sampled.
ENUMERATE_LIMIT = 200_000


def digit_range(value: Any, what: str, max_digits: int) -> tuple[int, int]:
    """Parse a digits knob: an int ``d`` or a ``(min, max)`` pair, 1 <= min <= max <= max_digits."""
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        lo = hi = int(value)
    elif (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in value)
    ):
        lo, hi = int(value[0]), int(value[1])
    else:
        raise ConfigError(f"{what} must be an int or a (min, max) pair of ints; got {value!r}")
    check(
        1 <= lo <= hi <= max_digits,
        f"{what} must satisfy 1 <= min <= max <= {max_digits}; got {value!r}",
    )
    return lo, hi


def _probability(value: Any, what: str) -> float:
    check(
        isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0,
        f"{what} must be a probability in [0, 1]; got {value!r}",
    )
    return float(value)


def _count(d: int) -> int:
    """How many non-negative integers have exactly d digits (0 counts as one digit)."""
    return 10 if d == 1 else 9 * 10 ** (d - 1)


def _values(lo: int, hi: int) -> range:
    return range(0 if lo == 1 else 10 ** (lo - 1), 10**hi)


def _weight(value: int, lo: int, hi: int) -> float:
    """Sampling probability of ``value``: digit count uniform in [lo, hi], then uniform."""
    return 1.0 / ((hi - lo + 1) * _count(len(str(value))))


def _sample_operands(rng: np.random.Generator, lo: int, hi: int, size: int) -> list[int]:
    """``size`` draws: digit count uniform in [lo, hi], then a uniform number of that length."""
    d = rng.integers(lo, hi + 1, size=size)
    if hi <= 18:  # fits int64: vectorised
        low = np.where(d == 1, 0, 10 ** np.maximum(d - 1, 0))
        return [int(v) for v in rng.integers(low, 10**d)]
    out = []
    for di in d:
        digits = rng.integers(0, 10, size=int(di))
        if di > 1:
            digits[0] = rng.integers(1, 10)
        out.append(int("".join(map(str, digits))))
    return out


def _lsb_digits(value: int) -> list[int]:
    return [int(c) for c in reversed(str(value))]


def _step(terms: Sequence[int], op: str, carry: int, total: int, loose: bool) -> str:
    """One scratchpad step: ``4+8+0=12`` (canonical) or ``4+8=12`` / ``2+6+1=9`` (loose)."""
    expr = op.join(map(str, terms))
    if not loose or carry:
        expr += f"+{carry}"
    return f"{expr}={total}" if loose else f"{expr}={total:02d}"


def _column_steps(numbers: Sequence[int], loose: bool) -> list[str]:
    """Column-by-column addition of ``numbers``, least significant column first."""
    digits = [_lsb_digits(v) for v in numbers]
    steps, carry = [], 0
    for i in range(max(map(len, digits))):
        terms = [d[i] if i < len(d) else 0 for d in digits]
        total = sum(terms) + carry
        steps.append(_step(terms, "+", carry, total, loose))
        carry = total // 10
    return steps


def _commutative_split(name: str, operands: tuple[int, ...]) -> str:
    return split_of(name, "|".join(map(str, sorted(operands))))


@functools.lru_cache(maxsize=8)
def _enumerate_splits(
    name: str, operand_digits: tuple[tuple[int, int], ...]
) -> dict[str, tuple[list[tuple[int, ...]], np.ndarray]]:
    """Every operand tuple of a small space, by split, with its sampling weight (cached: the
    split of a problem depends only on the task name and its operands)."""
    members: dict[str, list[tuple[int, ...]]] = {s: [] for s in SPLITS}
    for ops in itertools.product(*(_values(lo, hi) for lo, hi in operand_digits)):
        members[_commutative_split(name, ops)].append(ops)
    out = {}
    for s, ops_list in members.items():
        weights = [
            math.prod(_weight(v, lo, hi) for v, (lo, hi) in zip(ops, operand_digits))
            for ops in ops_list
        ]
        out[s] = (ops_list, np.array(weights, dtype=np.float64))
    return out


# A rendered solution before joining: lines of (steps, suffix); the final answer line is added
# at the end. Keeping steps separate lets the human style drop some of them.
_Lines = list[tuple[list[str], str]]


def _join(lines: _Lines, answer: str) -> str:
    out = [" ".join(steps + ([suffix] if suffix else [])) for steps, suffix in lines]
    out = [line for line in out if line]
    return "\n".join([*out, f"={answer}"])


class ArithmeticTask(Task):
    """Shared machinery: hashing splits, sampling, max lengths, human styles."""

    symbol: str = "?"

    def __init__(
        self,
        operand_digits: Sequence[tuple[int, int]],
        human_skip_prob: float,
        human_loose_prob: float,
    ):
        self.operand_digits = tuple(operand_digits)
        self.human_skip_prob = _probability(human_skip_prob, "human_skip_prob")
        self.human_loose_prob = _probability(human_loose_prob, "human_loose_prob")
        widest = self.make_problem(tuple(10**hi - 1 for _, hi in self.operand_digits))
        self.max_prompt_len = len(self.prompt(widest))
        self.max_solution_len = max(
            len(_join(lines, widest.answer)) for lines in self._styles(widest.operands)
        )

    # -- subclass hooks ---------------------------------------------------------------------
    def compute(self, operands: tuple[int, ...]) -> int:
        raise NotImplementedError

    def _lines(self, operands: tuple[int, ...], loose: bool) -> _Lines:
        raise NotImplementedError

    def _shortcut_lines(self, operands: tuple[int, ...]) -> _Lines | None:
        """A task-specific skipped-step style (or None)."""
        return None

    # -- problems ---------------------------------------------------------------------------
    def make_problem(self, operands: tuple[int, ...]) -> Problem:
        operands = tuple(int(v) for v in operands)
        text = self.symbol.join(map(str, operands))
        return Problem(
            id=f"{self.name}:{text}",
            operands=operands,
            answer=str(self.compute(operands)),
            task=self.name,
        )

    def split_of(self, operands: tuple[int, ...]) -> str:
        """The split of a problem; commutative, so ``a+b`` and ``b+a`` share a split."""
        return _commutative_split(self.name, operands)

    @property
    def space_size(self) -> int:
        """Number of distinct operand tuples at this difficulty setting."""
        return math.prod(
            sum(_count(d) for d in range(lo, hi + 1)) for lo, hi in self.operand_digits
        )

    def _enumerated(self, split: str) -> tuple[list[tuple[int, ...]], np.ndarray]:
        """All problems of ``split`` with their sampling weights (small spaces only)."""
        return _enumerate_splits(self.name, self.operand_digits)[split]

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        """``n`` distinct problems of ``split``, deterministic in ``seed`` (prefix-stable: the
        first k of ``n`` problems are the ``k`` problems asked with the same seed)."""
        split, n = check_split(split), check_count(n)
        small = self.space_size <= ENUMERATE_LIMIT
        return distinct_problems(
            self, split, n, split_rng(self.name, split, seed),
            enumerated=(lambda: self._enumerated(split)) if small else None,
            draw=lambda rng: zip(*[_sample_operands(rng, lo, hi, 1024)  # 1,024 a batch
                                   for lo, hi in self.operand_digits]),
            hint="widen the digit range")

    def describe(self) -> str:
        return f"task {self.name!r} ({self.knobs()})"

    def knobs(self) -> str:
        raise NotImplementedError

    # -- rendering --------------------------------------------------------------------------
    def prompt(self, problem: Problem) -> str:
        return self.symbol.join(map(str, problem.operands)) + "="

    def reference_solution(self, problem: Problem) -> str:
        return _join(self._lines(problem.operands, loose=False), problem.answer)

    def _styles(self, operands: tuple[int, ...]) -> list[_Lines]:
        """All full-length renderings (for max_solution_len); skipped ones are shorter."""
        styles = [self._lines(operands, loose=False), self._lines(operands, loose=True)]
        shortcut = self._shortcut_lines(operands)
        return styles + ([shortcut] if shortcut is not None else [])

    def human_solution(self, problem: Problem, rng: np.random.Generator) -> str:
        """Right final answer, uneven style (see the module docstring)."""
        loose = bool(rng.random() < self.human_loose_prob)
        lines = self._lines(problem.operands, loose=loose)
        if rng.random() >= self.human_skip_prob:
            return _join(lines, problem.answer)
        shortcut = self._shortcut_lines(problem.operands)
        modes = ["answer", "some_steps"] + (["shortcut"] if shortcut is not None else [])
        mode = modes[int(rng.integers(len(modes)))]
        if mode == "answer":
            return _join([], problem.answer)
        if mode == "shortcut":
            return _join(shortcut, problem.answer)
        num_steps = sum(len(steps) for steps, _ in lines)
        keep = rng.random(num_steps) < 0.5
        if keep.all():
            keep[int(rng.integers(num_steps))] = False
        kept: _Lines = []
        i = 0
        for steps, suffix in lines:
            kept.append(([s for j, s in enumerate(steps) if keep[i + j]], suffix))
            i += len(steps)
        return _join(kept, problem.answer)


class AdditionTask(ArithmeticTask):
    """``a+b`` with a column-by-column carry scratchpad; ``digits``: int or (min, max)."""

    name = "addition"
    symbol = "+"
    alphabet = "0123456789+= \n"

    def __init__(
        self,
        digits: int | tuple[int, int] = (1, 4),
        human_skip_prob: float = 0.5,
        human_loose_prob: float = 0.5,
    ):
        self.digits = digit_range(digits, "digits", max_digits=100)
        super().__init__((self.digits, self.digits), human_skip_prob, human_loose_prob)

    def knobs(self) -> str:
        return f"digits={self.digits}"

    def compute(self, operands: tuple[int, ...]) -> int:
        return sum(operands)

    def _lines(self, operands: tuple[int, ...], loose: bool) -> _Lines:
        return [(_column_steps(operands, loose), "")]


class MultiplicationTask(ArithmeticTask):
    """``a*b`` with per-digit products and carries; for multi-digit ``b`` shifted partial
    products and their column sums. ``digits_a``/``digits_b``: int or (min, max)."""

    name = "multiplication"
    symbol = "*"
    alphabet = "0123456789*+= \n"

    def __init__(
        self,
        digits_a: int | tuple[int, int] = (1, 4),
        digits_b: int | tuple[int, int] = 1,
        human_skip_prob: float = 0.5,
        human_loose_prob: float = 0.5,
    ):
        self.digits_a = digit_range(digits_a, "digits_a", max_digits=20)
        self.digits_b = digit_range(digits_b, "digits_b", max_digits=4)
        super().__init__((self.digits_a, self.digits_b), human_skip_prob, human_loose_prob)

    def knobs(self) -> str:
        return f"digits_a={self.digits_a}, digits_b={self.digits_b}"

    def compute(self, operands: tuple[int, ...]) -> int:
        return math.prod(operands)

    def _lines(self, operands: tuple[int, ...], loose: bool) -> _Lines:
        a, b = operands
        rows: _Lines = []
        partials = []
        for j, bj in enumerate(_lsb_digits(b)):
            steps, carry = [], 0
            for ai in _lsb_digits(a):
                total = ai * bj + carry
                steps.append(_step((ai, bj), "*", carry, total, loose))
                carry = total // 10
            partials.append(a * bj * 10**j)
            rows.append((steps, f"={partials[-1]}"))
        if len(rows) == 1:
            return [(rows[0][0], "")]
        return [*rows, (_column_steps(partials, loose), "")]

    def _shortcut_lines(self, operands: tuple[int, ...]) -> _Lines | None:
        a, b = operands
        if b < 10:
            return None
        return [([], f"{a}*{bj * 10**j}={a * bj * 10**j}") for j, bj in enumerate(_lsb_digits(b))]
