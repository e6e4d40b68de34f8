"""Jittable replay buffers: ring buffers of pytrees (uniform and prioritized).

    buf = replay.init(example_item, capacity)        # every leaf gets a [capacity] axis
    buf = replay.add(buf, items)                      # items have a leading [N] axis
    batch, idx = replay.sample(buf, key, batch_size)  # uniform over the filled slots

    pbuf = replay.init_prioritized(example_item, capacity)
    batch, idx, weights = replay.sample_prioritized(pbuf, key, batch_size, alpha, beta)
    pbuf = replay.update_priorities(pbuf, idx, new_priorities)

Writes are contiguous in-place updates when capacity % N == 0 (give a buffer batches of
one size N; the general path is a wrapping scatter). Uniform indices are random bits
modulo the filled size.

New items enter a prioritized buffer with the current maximum priority. Sampling uses
P(i) = p_i^alpha / sum_j p_j^alpha over filled slots and importance weights
(N * P(i))^-beta / max_j (N * P(j))^-beta (Schaul et al., 2016). Sampling is O(capacity)
(a cumulative sum), fine for the small buffers used on a CPU.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Buffer:
    data: Any  # pytree, each leaf [capacity, ...]
    pos: jax.Array  # next write slot
    size: jax.Array  # number of filled slots
    priorities: jax.Array  # [capacity] (ones for a uniform buffer)
    max_priority: jax.Array

    @property
    def capacity(self) -> int:
        return jax.tree.leaves(self.data)[0].shape[0]


def init(example: Any, capacity: int) -> Buffer:
    """An empty buffer holding `capacity` items shaped like `example` (no leading axis)."""
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example
    )
    return Buffer(data, jnp.int32(0), jnp.int32(0), jnp.zeros(capacity, jnp.float32),
                  jnp.float32(1.0))


init_prioritized = init


def add(buf: Buffer, items: Any) -> Buffer:
    """Write a batch of items (leading axis N <= capacity) at the ring position."""
    n = jax.tree.leaves(items)[0].shape[0]
    cap = buf.capacity
    if cap % n == 0:
        # pos stays a multiple of n, so the n slots are contiguous: a dynamic-update-slice
        # is written in place, where XLA CPU lowers the general (wrapping) scatter below to
        # a select over the whole buffer (a full copy per insert under vmap)
        def put(d, x):
            start = (buf.pos,) + (0,) * (d.ndim - 1)
            return jax.lax.dynamic_update_slice(d, x.astype(d.dtype), start)

        data = jax.tree.map(put, buf.data, items)
        prios = jax.lax.dynamic_update_slice(
            buf.priorities, jnp.full((n,), buf.max_priority, jnp.float32), (buf.pos,))
    else:
        idx = (buf.pos + jnp.arange(n)) % cap
        data = jax.tree.map(lambda d, x: d.at[idx].set(x.astype(d.dtype)), buf.data, items)
        prios = buf.priorities.at[idx].set(buf.max_priority)
    return buf.replace(
        data=data, pos=(buf.pos + n) % cap, size=jnp.minimum(buf.size + n, cap), priorities=prios
    )


def gather(buf: Buffer, idx: jax.Array) -> Any:
    return jax.tree.map(lambda d: d[idx], buf.data)


def sample(buf: Buffer, key: jax.Array, batch_size: int) -> tuple[Any, jax.Array]:
    """Uniform sample (with replacement) over the filled slots."""
    # bits mod size: one threefry call (randint makes two plus a split; threefry is a
    # rolled loop on CPU); the modulo bias is below size / 2^32 < 1e-5 for our capacities
    bits = jax.random.bits(key, (batch_size,), jnp.uint32)
    idx = (bits % jnp.maximum(buf.size, 1).astype(jnp.uint32)).astype(jnp.int32)
    return gather(buf, idx), idx


def sample_prioritized(
    buf: Buffer, key: jax.Array, batch_size: int, alpha: float = 0.5, beta: float = 0.4,
    valid: jax.Array | None = None,
) -> tuple[Any, jax.Array, jax.Array]:
    """Proportional prioritized sample; returns (batch, idx, importance weights [B]).
    `valid` ([capacity] bool) further restricts the slots that may be drawn (e.g. starts
    of sequences that have enough successors); alpha = 0 gives uniform sampling."""
    filled = jnp.arange(buf.capacity) < buf.size
    if valid is not None:
        filled = jnp.logical_and(filled, valid)
    p = jnp.where(filled, buf.priorities ** alpha, 0.0)
    probs = p / jnp.maximum(p.sum(), 1e-12)
    cdf = jnp.cumsum(probs)
    u = jax.random.uniform(key, (batch_size,)) * cdf[-1]
    idx = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, jnp.maximum(buf.size - 1, 0))
    n = jnp.maximum(filled.sum(), 1).astype(jnp.float32)
    w = (n * probs[idx]) ** (-beta)
    w_max = jnp.max(jnp.where(filled, (n * jnp.maximum(probs, 1e-12)) ** (-beta), 0.0))
    return gather(buf, idx), idx, w / w_max


def update_priorities(buf: Buffer, idx: jax.Array, priorities: jax.Array,
                      eps: float = 1e-6) -> Buffer:
    pr = jnp.abs(priorities) + eps
    return buf.replace(
        priorities=buf.priorities.at[idx].set(pr),
        max_priority=jnp.maximum(buf.max_priority, pr.max()),
    )
