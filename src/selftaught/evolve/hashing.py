"""Functional hashing: programs with equal outputs on fixed random inputs share a fitness.

The outputs are rounded to ~14 significant bits before hashing, so algebraically equal
programs (x*x + x and x + x*x) hash equal despite float rounding differences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from selftaught.evolve.program import BatchInterpreter, Program, Space, random_inputs


class ProgramMemo:
    """`memo(programs, compute)` -> compute's rows for `programs`, each distinct program
    (a frozen, hashable `Program`: equal structure, equal key) computed once and then
    remembered. `compute(list of programs) -> array [n, ...]` runs only on the ones not
    seen yet, in one call. Exact for a `compute` whose row depends on its program alone
    (the batched interpreter's does: its output for a program does not depend on the other
    programs of the batch or on the batch size), so a memoised search is the same search.
    At most `max_items` rows are kept (then the memo starts afresh), bounding memory."""

    def __init__(self, max_items: int = 1_000_000):
        self.max_items = max_items
        self.table: dict[Program, np.ndarray] = {}
        self.hits = self.misses = 0

    def __call__(self, programs: list[Program],
                 compute: Callable[[list[Program]], np.ndarray]) -> list:
        todo = list(dict.fromkeys(p for p in programs if p not in self.table))
        if todo:
            if len(self.table) + len(todo) > self.max_items:
                self.table.clear()
            self.table.update(zip(todo, list(np.asarray(compute(todo)))))
        self.misses += len(todo)
        self.hits += len(programs) - len(todo)
        return [self.table[p] for p in programs]


def memoized(evaluate: Callable[[list[Program]], np.ndarray], max_items: int = 1_000_000
             ) -> Callable[[list[Program]], np.ndarray]:
    """`evaluate` (programs -> fitness array) with a `ProgramMemo`: a program evaluated
    before is not evaluated again (a repeated parent, a mutation drawn twice); the result
    is identical (see `ProgramMemo`). The memo is `fn.memo`."""
    memo = ProgramMemo(max_items)

    def fn(programs: list[Program]) -> np.ndarray:
        programs = list(programs)
        if not programs:
            return np.asarray(evaluate(programs))
        return np.stack(memo(programs, evaluate))

    fn.memo = memo  # type: ignore[attr-defined]
    return fn


def quantize(values: np.ndarray, bits: int = 14) -> np.ndarray:
    values = np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=1e30, neginf=-1e30)
    mant, expo = np.frexp(values)
    return np.ldexp(np.round(mant * 2.0**bits), expo) + 0.0


class FunctionalHasher:
    """hash_many(programs) -> list of hex digests of the programs' outputs on fixed inputs.
    `memo` > 0 remembers the digests of up to that many distinct programs (`ProgramMemo`:
    the same digests, each program run once; a search re-hashes its proposals often)."""

    def __init__(self, space: Space, seed: int = 1234, inputs: dict | None = None,
                 memo: int = 0, **kw):
        self.space = space
        self.inputs = inputs if inputs is not None else random_inputs(space, seed, **kw)
        self._run = BatchInterpreter(space)
        self.memo = ProgramMemo(memo) if memo > 0 else None

    def outputs(self, programs: list[Program]) -> np.ndarray:
        return self._run(programs, self.inputs)

    def _digests(self, programs: list[Program]) -> list[str]:
        outs = quantize(self.outputs(programs))
        return [hashlib.sha1(o.tobytes()).hexdigest()[:16] for o in outs]

    def hash_many(self, programs: list[Program]) -> list[str]:
        if not programs:
            return []
        if self.memo is None:
            return self._digests(programs)
        return [str(h) for h in self.memo(programs, self._digests)]


class FitnessCache:
    """Memoises fitness by functional hash; only cache misses cost a real evaluation."""

    def __init__(self, hasher: FunctionalHasher):
        self.hasher = hasher
        self.table: dict[str, np.ndarray] = {}
        self.real_evaluations = 0
        self.hits = 0

    def known(self, programs: list[Program]) -> np.ndarray:
        """Whether each program's function already has a cached fitness."""
        return np.array([h in self.table for h in self.hasher.hash_many(programs)], bool)

    def evaluate(self, programs: list[Program],
                 evaluate: Callable[[list[Program]], np.ndarray]) -> tuple[np.ndarray, list[bool]]:
        """(fitness [n, ...], is_new [n]) for `programs`; evaluates each new hash once."""
        hashes = self.hasher.hash_many(programs)
        todo: dict[str, int] = {}
        for i, h in enumerate(hashes):
            if h not in self.table and h not in todo:
                todo[h] = i
        if todo:
            fit = np.asarray(evaluate([programs[i] for i in todo.values()]))
            for h, f in zip(todo, fit):
                self.table[h] = f
            self.real_evaluations += len(todo)
        self.hits += len(programs) - len(todo)
        is_new = [False] * len(programs)
        for i in todo.values():
            is_new[i] = True
        return np.stack([np.asarray(self.table[h]) for h in hashes]), is_new
