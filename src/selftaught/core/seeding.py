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


def stream_keys(seeds: list[int], stream: int, *draws: int) -> jax.Array:
    """Stacked per-seed keys of a random stream: fold_in(PRNGKey(seed), stream), then each of
    `draws` folded in turn (e.g. stream 4 = a recipe's test stream, draw r = its r-th round).
    Streams and draws give independent keys of the same seed; a recipe numbers its own."""
    def key(k):
        for i in (stream, *draws):
            k = jax.random.fold_in(k, i)
        return k

    return jax.vmap(key)(keys(seeds))


def np_rng(seed: int, *salt: int) -> np.random.Generator:
    """A NumPy generator determined by seed and optional salt integers."""
    return np.random.default_rng([seed, *salt])
