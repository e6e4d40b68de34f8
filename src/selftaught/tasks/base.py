"""The task contract: problems, prompts, solutions and a verifier that never raises.

A *task* is a family of verifiable problems with a difficulty knob. It gives

- ``problems(split, n, seed)``: seeded, deterministic problem lists; the ``train``, ``valid``
  and ``test`` splits are disjoint *by construction* (a hash of the operands decides a
  problem's split, whatever the difficulty setting or seed);
- ``prompt(problem)`` and ``answer(problem)``;
- ``reference_solution(problem)``: the complete, clean step-by-step solution;
- ``human_solution(problem, rng)``: "human" data, always with the right final answer but of
  uneven style (some complete, some skipping steps, mixed notation);
- ``extract_answer(text)`` and ``verify(problem, text)``: the binary reward; they never raise,
  whatever the text.

Built-in tasks subclass :class:`Task`; a plug-in may subclass it or only provide the same
attributes and methods (checked by :func:`check_task`).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from selftaught.core.errors import ConfigError, check

SPLITS: tuple[str, ...] = ("train", "valid", "test")
#: Fraction of the problem space that falls into each split (by hash of the operands).
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "valid": 0.1, "test": 0.1}

#: Attributes every task must have (plug-ins are checked for them).
REQUIRED_ATTRIBUTES: tuple[str, ...] = ("name", "alphabet", "max_prompt_len", "max_solution_len")
#: Methods every task must have.
REQUIRED_METHODS: tuple[str, ...] = (
    "problems",
    "prompt",
    "answer",
    "reference_solution",
    "human_solution",
    "extract_answer",
    "verify",
)


@dataclass(frozen=True)
class Problem:
    """One problem. ``answer`` is the canonical final answer (digits, no leading zeros)."""

    id: str
    operands: tuple
    answer: str
    task: str = ""


# The final line of a solution: "=12345" (spaces around "=" tolerated). ASCII digits only.
_FINAL_LINE = re.compile(r"[ \t\r\f\v]*=[ \t\r\f\v]*([0-9]+)[ \t\r\f\v]*", re.ASCII)


def normalize_answer(answer: Any) -> str | None:
    """Canonical form of a non-negative integer answer: strip spaces and leading zeros.

    Returns None for anything that is not a string of ASCII digits (after stripping).
    """
    if not isinstance(answer, str):
        return None
    answer = answer.strip()
    if not answer or not answer.isascii() or not answer.isdigit():
        return None
    return answer.lstrip("0") or "0"


def extract_final_answer(text: Any) -> str | None:
    """The answer on the last non-blank line of ``text`` if that line is ``=DIGITS``, else None.

    Linear time, never raises (non-strings give None).
    """
    if not isinstance(text, str):
        return None
    body = text.rstrip()
    line = body[body.rfind("\n") + 1 :]
    match = _FINAL_LINE.fullmatch(line)
    if match is None:
        return None
    return match.group(1).lstrip("0") or "0"


def split_of(task_name: str, key: str) -> str:
    """The split ("train", "valid" or "test") a problem belongs to, from a hash of its key.

    Deterministic across processes and Python versions (blake2b, not ``hash``).
    """
    digest = hashlib.blake2b(f"{task_name}|{key}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "little") / 2.0**64
    if u < SPLIT_FRACTIONS["test"]:
        return "test"
    if u < SPLIT_FRACTIONS["test"] + SPLIT_FRACTIONS["valid"]:
        return "valid"
    return "train"


def check_split(split: Any) -> str:
    check(
        isinstance(split, str) and split in SPLITS,
        f"split must be one of {', '.join(SPLITS)}; got {split!r}",
    )
    return split


def split_rng(salt_name: str, split: str, seed: Any) -> np.random.Generator:
    """The generator of a split's problem stream: seeded by (seed, split, crc32(salt_name))."""
    check(
        isinstance(seed, int | np.integer) and not isinstance(seed, bool),
        f"seed must be an int; got {seed!r}",
    )
    salt = zlib.crc32(salt_name.encode())
    return np.random.default_rng([int(seed) % 2**63, SPLITS.index(split), salt])


def sample_enumerated(members: list, weights: np.ndarray, n: int, rng: np.random.Generator,
                      what: str, hint: str) -> list:
    """``n`` of ``members`` drawn without replacement with probability proportional to
    ``weights`` (Efraimidis-Spirakis: the top n of log(u)/w); ConfigError naming ``what`` and
    ``hint`` if there are fewer than n."""
    if n > len(members):
        raise ConfigError(f"{what} has only {len(members)} problems, {n} asked; {hint}")
    with np.errstate(divide="ignore"):
        keys = np.log(rng.random(len(members))) / weights
    return [members[i] for i in np.argsort(-keys, kind="stable")[:n]]


def distinct_problems(task, split: str, n: int, rng: np.random.Generator, *, enumerated,
                      draw, hint: str) -> list[Problem]:
    """``n`` distinct problems of ``split`` from the split's stream ``rng``, made by
    ``task.make_problem``. A small space (``enumerated`` given: a callable returning every
    member of the split and its weight) is sampled without replacement by weight; a large
    one by rejection: ``draw(rng)`` yields candidate operand tuples (a fixed-size batch per
    call keeps the stream, and its prefixes, determined by the seed), each kept unless seen
    or of another split. ConfigError ending in "or ``hint``" when fewer problems exist (or,
    for rejection, more than half the split's expected size is asked: it would crawl)."""
    what = f"the {split} split of {task.describe()}"
    if enumerated is not None:
        members, weights = enumerated()
        return [task.make_problem(m) for m in sample_enumerated(
            members, weights, n, rng, what, f"ask for fewer or {hint}")]
    capacity = int(task.space_size * SPLIT_FRACTIONS[split])
    if n > capacity // 2:
        raise ConfigError(f"{what} has about {capacity} problems, {n} asked; ask for at most "
                          f"{capacity // 2} or {hint}")
    seen: set[tuple] = set()
    out: list[Problem] = []
    while len(out) < n:
        for ops in draw(rng):
            if len(out) == n:
                break
            if ops in seen or task.split_of(ops) != split:
                continue
            seen.add(ops)
            out.append(task.make_problem(ops))
    return out


def check_count(n: Any) -> int:
    check(
        isinstance(n, int | np.integer) and not isinstance(n, bool) and n >= 0,
        f"number of problems n must be a non-negative int; got {n!r}",
    )
    return int(n)


class Task:
    """Base class of the built-in tasks (plug-ins may subclass it or duck-type it).

    Subclasses set ``name``, ``alphabet`` (every character of any prompt, reference or human
    solution, in a fixed order, for a character tokenizer), ``max_prompt_len`` and
    ``max_solution_len`` (upper bounds in characters over the difficulty setting), and
    implement ``problems``, ``prompt``, ``reference_solution`` and ``human_solution``.
    """

    name: str = "task"
    alphabet: str = ""
    max_prompt_len: int = 0
    max_solution_len: int = 0

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        raise NotImplementedError

    def prompt(self, problem: Problem) -> str:
        raise NotImplementedError

    def answer(self, problem: Problem) -> str:
        return problem.answer

    def reference_solution(self, problem: Problem) -> str:
        raise NotImplementedError

    def human_solution(self, problem: Problem, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def extract_answer(self, text: str) -> str | None:
        """The final answer in ``text`` (last line ``=DIGITS``), or None. Never raises."""
        return extract_final_answer(text)

    def verify(self, problem: Problem, text: str) -> bool:
        """True iff the final answer in ``text`` equals the problem's answer. Never raises."""
        got = self.extract_answer(text)
        return got is not None and got == normalize_answer(problem.answer)


def check_task(task: Any, spec: str) -> Any:
    """Raise ConfigError naming ``spec`` unless ``task`` satisfies the task contract."""
    missing = [a for a in REQUIRED_ATTRIBUTES if not hasattr(task, a)]
    missing += [m for m in REQUIRED_METHODS if not callable(getattr(task, m, None))]
    if missing:
        raise ConfigError(
            f"task {spec!r} returned a {type(task).__name__} object that lacks "
            f"{', '.join(missing)}; "
            f"a task needs attributes {', '.join(REQUIRED_ATTRIBUTES)} and methods "
            f"{', '.join(REQUIRED_METHODS)} (subclass selftaught.tasks.base.Task)"
        )
    problems = []
    if not (isinstance(task.name, str) and task.name):
        problems.append(f"name must be a non-empty str (got {task.name!r})")
    if not (isinstance(task.alphabet, str) and task.alphabet):
        problems.append(f"alphabet must be a non-empty str (got {task.alphabet!r})")
    elif len(set(task.alphabet)) != len(task.alphabet):
        problems.append(f"alphabet must not repeat characters (got {task.alphabet!r})")
    for attr in ("max_prompt_len", "max_solution_len"):
        value = getattr(task, attr)
        if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
            problems.append(f"{attr} must be a positive int (got {value!r})")
    if problems:
        raise ConfigError(f"task {spec!r} is invalid: {'; '.join(problems)}")
    return task
