"""Return and advantage targets from a batch of transitions: generalized advantage
estimates (GAE, Schulman et al., 2016) over a time-major segment, and n-step targets over a
replay window (BBF's). Pure jnp functions: jit, vmap and grad pass through them.

    adv_TxB, ret_TxB = gae(rewards_TxB, values_TxB, last_value_B, gamma, lam, dones_TxB)
    ret_B, last_B, disc_B = n_step_targets(rewards_BxW, terminated_BxW, done_BxW, n, gamma)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def gae(rewards_TxB, values_TxB, last_value_B, gamma: float, lam: float, dones_TxB=None):
    """Generalized advantage estimates and returns (adv + V) of a segment of T steps.

    delta_t = r_t + gamma (1 - d_t) V_{t+1} - V_t,   A_t = delta_t + gamma lam (1 - d_t) A_{t+1}
    with V_T = `last_value_B` (the value of the state after the last step). d_t = 1 marks a
    terminal transition (the episode ended at step t: nothing after it is bootstrapped or
    accumulated); `dones_TxB=None` is a segment with no episode end inside (the same as all
    zeros, computed without the masks). lam = 1 gives the discounted return to go plus the
    bootstrapped tail; lam = 0 the one-step TD error."""
    next_values = jnp.concatenate([values_TxB[1:], last_value_B[None]], 0)
    if dones_TxB is None:
        deltas = rewards_TxB + gamma * next_values - values_TxB
        decay = None
    else:
        live = 1.0 - dones_TxB.astype(values_TxB.dtype)
        deltas = rewards_TxB + gamma * live * next_values - values_TxB
        decay = gamma * lam * live

    def body(acc, x):
        d, k = x
        acc = d + (gamma * lam * acc if k is None else k * acc)
        return acc, acc

    _, adv = jax.lax.scan(body, jnp.zeros_like(last_value_B), (deltas, decay), reverse=True)
    return adv, adv + values_TxB


def n_step_targets(rewards_BxW, terminated_BxW, done_BxW, n, gamma):
    """n-step return, the index of the bootstrap step and its discount, per sample.

    The window stops at the first episode end (done); bootstrapping from that step's
    stored next observation with discount gamma^k * (1 - terminated)."""
    w = rewards_BxW.shape[1]
    j = jnp.arange(w)
    ended_before = jnp.cumsum(done_BxW, axis=1) - done_BxW  # dones strictly before j
    use = (j[None] < n) & (ended_before == 0)
    ret = jnp.sum(jnp.where(use, rewards_BxW * gamma ** j[None], 0.0), axis=1)
    k = jnp.sum(use, axis=1)  # steps used, >= 1
    last = k - 1
    term = jnp.take_along_axis(terminated_BxW, last[:, None], axis=1)[:, 0]
    return ret, last, gamma**k * (1.0 - term)
