"""Functional hashing: programs with equal outputs on fixed random inputs share a fitness.

The outputs are rounded to ~14 significant bits before hashing, so algebraically equal
programs (x*x + x and x + x*x) hash equal despite float rounding differences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from selftaught.evolve.program import BatchInterpreter, Program, Space, random_inputs


def quantize(values: np.ndarray, bits: int = 14) -> np.ndarray:
    values = np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=1e30, neginf=-1e30)
    mant, expo = np.frexp(values)
    return np.ldexp(np.round(mant * 2.0**bits), expo) + 0.0


class FunctionalHasher:
    """hash_many(programs) -> list of hex digests of the programs' outputs on fixed inputs."""

    def __init__(self, space: Space, seed: int = 1234, inputs: dict | None = None, **kw):
        self.space = space
        self.inputs = inputs if inputs is not None else random_inputs(space, seed, **kw)
        self._run = BatchInterpreter(space)

    def outputs(self, programs: list[Program]) -> np.ndarray:
        return self._run(programs, self.inputs)

    def hash_many(self, programs: list[Program]) -> list[str]:
        if not programs:
            return []
        outs = quantize(self.outputs(programs))
        return [hashlib.sha1(o.tobytes()).hexdigest()[:16] for o in outs]


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
