"""Multi-step arithmetic chains modulo m: many small steps, each easy, so one slip anywhere
ruins the answer and a tiny model's pass@1 stays far below its pass@N.

``ChainTask(steps=(3, 6), modulus=10)`` — prompt ``"7+8*6-9+4="``: the operations are applied
LEFT TO RIGHT (no precedence) and every intermediate result is reduced modulo ``modulus``
(Python's ``%``: always in [0, modulus)). Operands are in [0, modulus). The reference solution
has one step per operation, then the final line::

    7+8=5 5*6=0 0-9=1 1+4=5
    =5

Every step can be checked on its own (``a op b = (a op b) mod m``), which is what a verifier
trained on correct and incorrect chains can learn. "Human" solutions always end in the right
``=ANSWER`` but are uneven: with probability ``human_skip_prob`` they skip steps (answer
only, or a random subset of the steps), and with probability ``human_loose_prob`` they show
the unreduced value first (``7+8=15=5``, ``0-9=-9=1``).

Splits are decided by a hash of the prompt (operands and operators), like the other tasks.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Sequence

import numpy as np

from selftaught.core.errors import check
from selftaught.tasks.arithmetic import ENUMERATE_LIMIT, _probability, digit_range
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

OPS = "+-*"
#: tokens of one reference step ``a op b=r`` and its separator, for single-digit values
STEP_TOKENS = 6


def apply_op(a: int, op: str, b: int, modulus: int) -> int:
    """``(a op b) mod modulus`` for op in ``+-*``."""
    if op == "+":
        return (a + b) % modulus
    if op == "-":
        return (a - b) % modulus
    return (a * b) % modulus


#: one written step: ``a op b=r`` or loose ``a op b=RAW=r`` (groups a, op, b, RAW, r)
_STEP = re.compile(r"(\d+)([-+*])(\d+)=(?:(-?\d+)=)?(\d+)")
#: the final line ``=ANSWER``
_FINAL = re.compile(r"=(\d+)")


def _raw(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


class ChainTask(Task):
    """Left-to-right chains of ``steps`` operations (int or (min, max)) modulo ``modulus``.

    Operands: ``steps + 1`` numbers in [0, modulus); operators from ``ops`` (a subset of
    ``+-*``). Problem tuples are ``(v0, op1, v1, op2, v2, ...)``.
    """

    name = "chain"
    alphabet = "0123456789+-*= \n"

    def __init__(
        self,
        steps: int | tuple[int, int] = (3, 6),
        modulus: int = 10,
        ops: str = OPS,
        human_skip_prob: float = 0.5,
        human_loose_prob: float = 0.5,
    ):
        self.steps = digit_range(steps, "steps", max_digits=32)
        check(
            isinstance(modulus, int) and not isinstance(modulus, bool) and 2 <= modulus <= 1000,
            f"modulus must be an int in [2, 1000]; got {modulus!r}",
        )
        self.modulus = int(modulus)
        check(
            isinstance(ops, str) and ops and set(ops) <= set(OPS) and len(set(ops)) == len(ops),
            f"ops must be a non-empty string of distinct characters from {OPS!r}; got {ops!r}",
        )
        self.ops = ops
        self.human_skip_prob = _probability(human_skip_prob, "human_skip_prob")
        self.human_loose_prob = _probability(human_loose_prob, "human_loose_prob")
        top = self.modulus - 1
        widest_digits = len(str(top))
        n = self.steps[1]
        self.max_prompt_len = (n + 1) * widest_digits + n + 1
        # longest step: loose "a*b=RAW=R" or "a-b=-RAW=R" (only if human solutions can be
        # loose: with human_loose_prob=0 every solution is reduced, "a*b=R")
        raw_len = max(len(str(top * top)), len(str(-top)))
        step_len = 2 * widest_digits + 1 + 1 + widest_digits
        if self.human_loose_prob > 0:
            step_len += raw_len + 1
        self.max_solution_len = n * step_len + (n - 1) + 1 + 1 + widest_digits

    def knobs(self) -> str:
        return f"steps={self.steps}, modulus={self.modulus}, ops={self.ops!r}"

    def describe(self) -> str:
        return f"task {self.name!r} ({self.knobs()})"

    @property
    def space_size(self) -> int:
        m, k = self.modulus, len(self.ops)
        return sum(m ** (s + 1) * k**s for s in range(self.steps[0], self.steps[1] + 1))

    # -- problems ---------------------------------------------------------------------------
    def make_problem(self, operands: Sequence) -> Problem:
        operands = tuple(operands)
        value = int(operands[0])
        for i in range(1, len(operands), 2):
            value = apply_op(value, operands[i], int(operands[i + 1]), self.modulus)
        text = "".join(map(str, operands))
        return Problem(id=f"{self.name}%{self.modulus}:{text}", operands=operands,
                       answer=str(value), task=self.name)

    def split_of(self, operands: Sequence) -> str:
        return split_of(f"{self.name}%{self.modulus}", "".join(map(str, operands)))

    def _draw(self, rng: np.random.Generator) -> tuple:
        s = int(rng.integers(self.steps[0], self.steps[1] + 1))
        values = rng.integers(0, self.modulus, size=s + 1)
        ops = rng.integers(0, len(self.ops), size=s)
        out: list = [int(values[0])]
        for o, v in zip(ops, values[1:]):
            out += [self.ops[int(o)], int(v)]
        return tuple(out)

    def _enumerated(self, split: str) -> tuple[list[tuple], np.ndarray]:
        """Every problem of ``split`` and its sampling weight (step count uniform)."""
        return _enumerate(self.name, self.steps, self.modulus, self.ops)[split]

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        """``n`` distinct problems of ``split``, deterministic and prefix-stable in ``seed``."""
        split, n = check_split(split), check_count(n)
        small = self.space_size <= ENUMERATE_LIMIT
        return distinct_problems(
            self, split, n, split_rng(f"{self.name}%{self.modulus}", split, seed),
            enumerated=(lambda: self._enumerated(split)) if small else None,
            draw=lambda rng: (self._draw(rng),), hint="raise steps/modulus")

    # -- rendering --------------------------------------------------------------------------
    def prompt(self, problem: Problem) -> str:
        return "".join(map(str, problem.operands)) + "="

    def _steps(self, operands: tuple, loose: bool) -> list[str]:
        value, out = int(operands[0]), []
        for i in range(1, len(operands), 2):
            op, b = operands[i], int(operands[i + 1])
            new = apply_op(value, op, b, self.modulus)
            raw = _raw(value, op, b)
            shown = f"={raw}={new}" if loose and raw != new else f"={new}"
            out.append(f"{value}{op}{b}{shown}")
            value = new
        return out

    def reference_solution(self, problem: Problem) -> str:
        return " ".join(self._steps(problem.operands, loose=False)) + f"\n={problem.answer}"

    def human_solution(self, problem: Problem, rng: np.random.Generator) -> str:
        """Right final answer, uneven style (see the module docstring)."""
        steps = self._steps(problem.operands, loose=bool(rng.random() < self.human_loose_prob))
        if rng.random() < self.human_skip_prob:
            if rng.random() < 0.5:
                return f"={problem.answer}"
            keep = rng.random(len(steps)) < 0.5
            if keep.all():
                keep[int(rng.integers(len(steps)))] = False
            steps = [s for s, k in zip(steps, keep) if k]
        body = " ".join(steps)
        return f"{body}\n={problem.answer}" if body else f"={problem.answer}"

    # -- process supervision ------------------------------------------------------------------
    def step_labels(self, problem: Problem, text: str) -> list[tuple[int, bool]]:
        """True step-correctness labels of a written solution: ``[(offset, correct), ...]``,
        one per written step (``offset`` = index in ``text`` of the step's last character)
        and a last one for the final line at ``offset = len(text)`` (where EOS follows).

        Each step is judged given the PREVIOUS WRITTEN STATE (the result the text wrote last,
        ``v0`` before the first step), so an error is charged to the step that makes it, and
        a later step that computes right from a wrong value is itself correct. A step
        ``a op b=r`` (or loose ``a op b=RAW=r``) is correct iff ``op b`` is the prompt's next
        operation not yet written, or a later one when the text skips steps (as the human
        style does), ``a`` is the written state carried through the skipped operations, ``r``
        is ``(a op b) mod m`` (and ``RAW`` is ``a op b`` unreduced). The final line ``=ANS``
        is correct iff ANS is the written state carried through every operation not yet
        written. A missing or malformed final line, or a step that does not parse, is wrong.
        So every label is True iff the text is well formed and verifies; a wrong answer
        always has a False label. Never raises."""
        ops = [(problem.operands[i], int(problem.operands[i + 1]))
               for i in range(1, len(problem.operands), 2)]
        m = self.modulus

        def carry(value: int, start: int, stop: int) -> int:
            for op, b in ops[start:stop]:
                value = apply_op(value, op, b, m)
            return value

        lines = text.split("\n")
        final = lines[-1] if len(lines) > 1 or text.startswith("=") else None
        body = lines[:-1] if final is not None else lines
        out: list[tuple[int, bool]] = []
        value, nxt, offset = int(problem.operands[0]), 0, 0
        for line in body:
            for word in line.split(" "):
                end, offset = offset + len(word) - 1, offset + len(word) + 1
                if not word:
                    continue
                got = _STEP.fullmatch(word)
                if got is None:
                    out.append((end, False))
                    continue
                a, op, b, raw, r = got.groups()
                a, b, r = int(a), int(b), int(r)
                match = [j for j in range(nxt, len(ops)) if ops[j] == (op, b)]
                right = [j for j in match if carry(value, nxt, j) == a]
                ok = bool(right) and r == apply_op(a, op, b, m) and (
                    raw is None or int(raw) == _raw(a, op, b))
                out.append((end, ok))
                nxt = (right or match)[0] + 1 if (right or match) else nxt + 1
                value = r
        answer = _FINAL.fullmatch(final) if final is not None else None
        out.append((len(text), answer is not None
                    and int(answer.group(1)) == carry(value, nxt, len(ops))))
        return out


@functools.lru_cache(maxsize=8)
def _enumerate(name: str, steps: tuple[int, int], modulus: int, ops: str) -> dict:
    members: dict[str, list[tuple]] = {s: [] for s in SPLITS}
    weights: dict[str, list[float]] = {s: [] for s in SPLITS}
    n_counts = steps[1] - steps[0] + 1
    for s in range(steps[0], steps[1] + 1):
        w = 1.0 / (n_counts * modulus ** (s + 1) * len(ops) ** s)
        for values in itertools.product(range(modulus), repeat=s + 1):
            for chosen in itertools.product(ops, repeat=s):
                t = (values[0], *itertools.chain.from_iterable(zip(chosen, values[1:])))
                split = split_of(f"{name}%{modulus}", "".join(map(str, t)))
                members[split].append(t)
                weights[split].append(w)
    return {s: (members[s], np.array(weights[s])) for s in SPLITS}


# ---------------------------------------------------------------------------- the DAgger teacher
def algorithmic_teacher(task: ChainTask, char_ids: dict[str, int], eos_id: int,
                        vocab_size: int, prompt_len: int, eps: float = 0.1):
    """An exact teacher for GKD on reference-format chains: `fn(tokens_BxT) -> logits_BxTxV`.

    Rows are the distillation layout (`lm.distill`): the prompt `BOS v0 o1 v1 ... = SEP`
    left-padded to end at column `prompt_len - 1`, then the completion. Position t predicts
    token t+1, like a model's logits. On completion positions the teacher puts mass
    1 − ε + ε/V on the correct next token *given what the row has written so far* and ε/V on
    every other token (so KL in either direction stays finite): step k's line is
    ``a op b=r``, where the teacher expects a = the result the row wrote at step k−1 (v0 at
    k = 0), op and b the prompt's k-th operator and operand, and r = (a op b) mod m computed
    from the a, op and b *as written* (it corrects from where the student is, not from the
    reference solution); after the last step ``\\n=`` and the last written result, then EOS.
    A non-digit (non-operator) token where a value (operator) belongs counts as the value the
    teacher expected there. On prompt positions it predicts the row's own next token.
    Needs single-digit values (modulus <= 10); jittable, no parameters.
    """
    check(task.modulus <= 10, f"the algorithmic chain teacher needs single-digit values "
          f"(modulus <= 10); got modulus={task.modulus}: pass modulus=10 or less")
    m, K = task.modulus, task.steps[1]
    digit_of = np.full(vocab_size, -1, np.int32)
    op_of = np.full(vocab_size, -1, np.int32)
    for d in range(m):
        digit_of[char_ids[str(d)]] = d
    for i, op in enumerate(OPS):
        if op in task.alphabet:
            op_of[char_ids[op]] = i
    digit_id = np.array([char_ids[str(d)] for d in range(m)], np.int32)
    op_id = np.array([char_ids[o] for o in OPS], np.int32)
    eq, space, newline = char_ids["="], char_ids[" "], char_ids["\n"]
    big = float(np.log1p(-eps + eps / vocab_size) - np.log(eps / vocab_size)) if eps > 0 \
        else float("inf")

    def fn(tokens_BxT):
        import jax
        import jax.numpy as jnp

        tokens_BxT = jnp.asarray(tokens_BxT, jnp.int32)
        B, T = tokens_BxT.shape
        P = prompt_len
        dig, opi = jnp.asarray(digit_of)[tokens_BxT], jnp.asarray(op_of)[tokens_BxT]
        n_B = jnp.sum(opi[:, :P] >= 0, axis=1)  # operators in the prompt
        v0_at = P - 3 - 2 * n_B  # prompt: ... v0 o1 v1 ... on vn = SEP (SEP at P - 1)
        take = lambda arr, idx: jnp.take_along_axis(arr, jnp.clip(idx, 0, T - 1), axis=1)
        ks = jnp.arange(K)
        op_BxK = take(opi, v0_at[:, None] + 1 + 2 * ks[None])
        b_BxK = take(dig, v0_at[:, None] + 2 + 2 * ks[None])
        v0_B = take(dig, v0_at[:, None])[:, 0]
        base = P + STEP_TOKENS * ks[None]  # completion column of step k's first token
        aw, ow, bw, rw = (take(x, base + j) for x, j in ((dig, 0), (opi, 1), (dig, 2), (dig, 4)))

        def step(value_B, k):  # value = the result the row wrote at step k-1
            a = jnp.where(aw[:, k] >= 0, aw[:, k], value_B)
            o = jnp.where(ow[:, k] >= 0, ow[:, k], op_BxK[:, k])
            b = jnp.where(bw[:, k] >= 0, bw[:, k], b_BxK[:, k])
            r = jnp.where(o == 0, a + b, jnp.where(o == 1, a - b, a * b)) % m
            new = jnp.where(rw[:, k] >= 0, rw[:, k], r)
            return new, (value_B, r, new)

        _, (prev_KxB, res_KxB, new_KxB) = jax.lax.scan(step, v0_B, ks)
        ids = lambda table, i: jnp.asarray(table)[jnp.clip(i, 0, len(table) - 1)]
        last = jnp.arange(K)[None] == (n_B[:, None] - 1)
        expect_BxKx6 = jnp.stack([
            ids(digit_id, prev_KxB.T), ids(op_id, op_BxK), ids(digit_id, b_BxK),
            jnp.full((B, K), eq), ids(digit_id, res_KxB.T),
            jnp.where(last, newline, space)], axis=-1)
        final_B = jnp.take_along_axis(new_KxB.T, jnp.clip(n_B - 1, 0, K - 1)[:, None], 1)[:, 0]
        o_T = jnp.arange(T) + 1 - P  # completion offset of the token each position predicts
        o_BxT = jnp.broadcast_to(o_T[None], (B, T))
        in_steps = o_BxT < 6 * n_B[:, None]
        step_tok = jnp.take_along_axis(expect_BxKx6.reshape(B, 6 * K),
                                       jnp.clip(o_BxT, 0, 6 * K - 1), axis=1)
        tail = o_BxT - 6 * n_B[:, None]
        tail_tok = jnp.where(tail == 0, eq, jnp.where(tail == 1, ids(digit_id, final_B)[:, None],
                                                      eos_id))
        nxt = jnp.concatenate([tokens_BxT[:, 1:], jnp.full((B, 1), eos_id, jnp.int32)], 1)
        target = jnp.where(o_BxT < 0, nxt, jnp.where(in_steps, step_tok, tail_tok))
        hot = jax.nn.one_hot(target, vocab_size, dtype=jnp.float32)
        return jnp.where(hot > 0, big, 0.0) if eps > 0 else jnp.where(hot > 0, 0.0, -jnp.inf)

    return fn
