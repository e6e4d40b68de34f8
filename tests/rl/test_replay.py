"""Replay ring buffer: the in-place (dynamic-update-slice) insert path against a NumPy ring
buffer, also under vmap over seeds, and the index distribution of uniform sampling."""

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.rl import replay


def _items(start, n):
    v = jnp.arange(start, start + n, dtype=jnp.float32)
    return {"x": jnp.stack([v, -v], axis=1), "a": v.astype(jnp.int32)}


def _numpy_ring(capacity, batches):
    x, a, pos, size = np.zeros((capacity, 2), np.float32), np.zeros(capacity, np.int32), 0, 0
    for b in batches:
        for i in range(len(b["a"])):
            x[pos], a[pos] = np.asarray(b["x"][i]), int(b["a"][i])
            pos, size = (pos + 1) % capacity, min(size + 1, capacity)
    return x, a, pos, size


def test_contiguous_insert_matches_numpy_ring_across_wraps():
    cap, n = 6, 2  # cap % n == 0: the dynamic-update-slice path
    batches = [_items(10 * k, n) for k in range(5)]  # 10 items: wraps once
    buf = replay.init({"x": jnp.zeros(2), "a": jnp.int32(0)}, cap)
    add = jax.jit(replay.add)
    for b in batches:
        buf = add(buf, b)
    x, a, pos, size = _numpy_ring(cap, batches)
    np.testing.assert_array_equal(np.asarray(buf.data["x"]), x)
    np.testing.assert_array_equal(np.asarray(buf.data["a"]), a)
    assert int(buf.pos) == pos == 4 and int(buf.size) == size == cap


def test_insert_under_vmap_over_seeds():
    cap, seeds = 4, 3

    def fill(offset):
        buf = replay.init({"x": jnp.zeros(2), "a": jnp.int32(0)}, cap)

        def body(b, t):
            v = offset + t.astype(jnp.float32)
            item = {"x": jnp.stack([v, -v])[None], "a": v.astype(jnp.int32)[None]}
            return replay.add(b, item), None

        buf, _ = jax.lax.scan(body, buf, jnp.arange(6))  # 6 items into 4 slots
        return buf.data["a"], buf.pos

    a, pos = jax.jit(jax.vmap(fill))(100.0 * jnp.arange(seeds))
    for s in range(seeds):
        # slots hold items 4, 5, 2, 3 (items 0, 1 overwritten) of this seed
        np.testing.assert_array_equal(np.asarray(a[s]), 100 * s + np.array([4, 5, 2, 3]))
    assert (np.asarray(pos) == 6 % cap).all()


def test_uniform_sample_covers_filled_slots_evenly():
    buf = replay.init({"x": jnp.zeros(2), "a": jnp.int32(0)}, 16)
    buf = replay.add(buf, _items(0, 8))  # 8 of 16 slots filled
    _, idx = replay.sample(buf, jax.random.PRNGKey(3), 40_000)
    freq = np.bincount(np.asarray(idx), minlength=16) / 40_000
    np.testing.assert_allclose(freq[:8], 1 / 8, atol=0.01)
    assert freq[8:].sum() == 0
