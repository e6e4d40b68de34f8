"""core.seeding: per-seed keys and the keys of a numbered random stream."""

import jax
import numpy as np

from selftaught.core import seeding


def test_stream_keys_fold_the_stream_then_each_draw_into_each_seed():
    seeds = [0, 7, 3]
    for stream, draws in ((4, ()), (3, (2,)), (5, (1, 9))):
        got = np.asarray(seeding.stream_keys(seeds, stream, *draws))
        for j, s in enumerate(seeds):
            k = jax.random.fold_in(jax.random.PRNGKey(s), stream)
            for d in draws:
                k = jax.random.fold_in(k, d)
            np.testing.assert_array_equal(got[j], k)


def test_streams_and_draws_give_different_keys():
    keys = [np.asarray(seeding.stream_keys([0, 1], *sd)) for sd in ((3, 0), (4, 0), (3, 1), (3,))]
    rows = {tuple(k.ravel()) for ks in keys for k in ks}
    assert len(rows) == 2 * len(keys)  # no two (seed, stream, draws) share a key
