"""Seeds: one integer per run seed, one PRNG key per seed."""

from __future__ import annotations

import jax
import numpy as np


def seed_list(base_seed: int, n: int) -> list[int]:
    """The integer seeds of an n-seed run: base_seed, base_seed + 1, ..."""
    return [base_seed + i for i in range(n)]


def keys(seeds: list[int]) -> jax.Array:
    """A stacked [n, 2] array of PRNG keys, one per seed, ready for `jax.vmap`."""
    return jax.vmap(jax.random.PRNGKey)(np.asarray(seeds, dtype=np.uint32))


def np_rng(seed: int, *salt: int) -> np.random.Generator:
    """A NumPy generator determined by seed and optional salt integers."""
    return np.random.default_rng([seed, *salt])
