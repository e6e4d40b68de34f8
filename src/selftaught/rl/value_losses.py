"""Value losses for Q-learning: MSE regression and classification (HL-Gauss, two-hot, C51).

"Stop regressing" (Farebrother et al., 2024): the Q network outputs logits over m bins on
[v_min, v_max]; Q = sum(softmax(logits) * support) and the loss is the cross-entropy to a
target distribution built from the TD target.

Supports (documented because they differ between methods):
  * HL-Gauss: m bins with edges linspace(v_min, v_max, m + 1); support = bin centres
    (midpoints of the edges); sigma = sigma_ratio * bin width (0.75 by default);
    p_i = [Phi((b_{i+1} - y)/sigma) - Phi((b_i - y)/sigma)] / [Phi((b_m - y)/sigma) -
    Phi((b_0 - y)/sigma)], with y clipped into [v_min, v_max].
  * two-hot and C51: m atoms linspace(v_min, v_max, m) (the atoms include the range ends);
    two-hot splits mass linearly between the two atoms around y (clipped), so the mean is y;
    C51 projects the bootstrapped distribution r + discount * z onto the atoms.
  * MSE: one output per action, 0.5 * (Q(s, a) - y)^2.

`make_value_head(...)` returns a `ValueHead` that tells the network how many outputs per
action it needs, turns outputs into Q values, and computes the per-sample loss.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import ndtr

from selftaught.core.errors import UnknownNameError, check

LOSSES = ("mse", "hl_gauss", "two_hot", "c51")


# ----------------------------------------------------------------------------- supports
def hl_gauss_edges(v_min: float, v_max: float, num_bins: int) -> jax.Array:
    return jnp.linspace(v_min, v_max, num_bins + 1, dtype=jnp.float32)


def hl_gauss_support(v_min: float, v_max: float, num_bins: int) -> jax.Array:
    edges = hl_gauss_edges(v_min, v_max, num_bins)
    return 0.5 * (edges[:-1] + edges[1:])


def atom_support(v_min: float, v_max: float, num_bins: int) -> jax.Array:
    return jnp.linspace(v_min, v_max, num_bins, dtype=jnp.float32)


# ----------------------------------------------------------------------------- targets
def hl_gauss_target(
    y: jax.Array, v_min: float, v_max: float, num_bins: int, sigma_ratio: float = 0.75
) -> jax.Array:
    """Histogram of a Gaussian N(y, sigma^2) over the bins, renormalised to the range.

    y: [...] -> probs [..., num_bins]."""
    edges_E = hl_gauss_edges(v_min, v_max, num_bins)
    sigma = sigma_ratio * (v_max - v_min) / num_bins
    y = jnp.clip(y, v_min, v_max)[..., None]
    cdf = ndtr((edges_E - y) / sigma)
    z = cdf[..., -1:] - cdf[..., :1]
    return (cdf[..., 1:] - cdf[..., :-1]) / z


def two_hot_target(y: jax.Array, v_min: float, v_max: float, num_bins: int) -> jax.Array:
    """Mass on the two atoms around y (clipped into range), split so that the mean is y.

    y: [...] -> probs [..., num_bins]."""
    y = jnp.clip(y, v_min, v_max)
    pos = (y - v_min) / (v_max - v_min) * (num_bins - 1)  # fractional atom index
    lo = jnp.clip(jnp.floor(pos), 0, num_bins - 2)
    frac = pos - lo  # in [0, 1]; 1 exactly at v_max
    idx = jnp.arange(num_bins)
    lo_i = lo.astype(jnp.int32)[..., None]
    return jnp.where(idx == lo_i, 1.0 - frac[..., None], 0.0) + jnp.where(
        idx == lo_i + 1, frac[..., None], 0.0
    )


def c51_project(
    next_probs: jax.Array, reward: jax.Array, discount: jax.Array, v_min: float, v_max: float
) -> jax.Array:
    """Categorical projection (Bellemare et al., 2017) of r + discount * z onto the atoms.

    next_probs: [B, m] distribution at s' (chosen action); reward, discount: [B]."""
    m = next_probs.shape[-1]
    z_M = atom_support(v_min, v_max, m)
    dz = (v_max - v_min) / (m - 1)
    tz_BxM = jnp.clip(reward[:, None] + discount[:, None] * z_M[None], v_min, v_max)
    # weight of source atom j on target atom i: max(0, 1 - |tz_j - z_i| / dz)
    w_BxMxM = jnp.clip(1.0 - jnp.abs(tz_BxM[:, None, :] - z_M[None, :, None]) / dz, 0.0, 1.0)
    return jnp.einsum("bij,bj->bi", w_BxMxM, next_probs)


def cross_entropy(logits: jax.Array, target_probs: jax.Array) -> jax.Array:
    return -jnp.sum(target_probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)


# ----------------------------------------------------------------------------- heads
@dataclasses.dataclass(frozen=True)
class ValueHead:
    """How a Q network's outputs [B, A, n] (n = num_outputs) are read and trained.

    `loss(out, action, reward, discount, next_out_target, next_action)` returns the
    per-sample loss [B] (HL-Gauss's also takes `sigma_ratio=`, which may be traced, to
    override the head's sigma / bin width), where next_action is the bootstrap action a* at
    s' (chosen by the caller: max over target Q, or double DQN) and all target-side inputs
    are treated as constants."""

    name: str
    num_outputs: int
    support: jax.Array | None
    q_values: Callable[[jax.Array], jax.Array]
    loss: Callable[..., jax.Array]


def _check_range(v_min: float, v_max: float, num_bins: int) -> None:
    check(
        v_min < v_max,
        f"value range needs v_min < v_max, got v_min={v_min}, v_max={v_max}; "
        "set --v-min below --v-max (e.g. the lowest and highest discounted return)",
    )
    check(num_bins >= 2, f"classification losses need num_bins >= 2, got {num_bins}")


def make_value_head(
    name: str,
    *,
    v_min: float = -10.0,
    v_max: float = 10.0,
    num_bins: int = 51,
    sigma_ratio: float = 0.75,
) -> ValueHead:
    """The value head for loss `name` in LOSSES; raises UnknownNameError / ConfigError."""
    if name not in LOSSES:
        raise UnknownNameError("value loss", name, LOSSES)
    if name == "mse":
        def q_mse(out):
            return out[..., 0]

        def loss_mse(out, action, reward, discount, next_out_target, next_action):
            q_sa = jnp.take_along_axis(q_mse(out), action[:, None], axis=1)[:, 0]
            q_next = jnp.take_along_axis(q_mse(next_out_target), next_action[:, None], 1)[:, 0]
            y = jax.lax.stop_gradient(reward + discount * q_next)
            return 0.5 * (q_sa - y) ** 2

        return ValueHead("mse", 1, None, q_mse, loss_mse)

    _check_range(v_min, v_max, num_bins)
    if name == "hl_gauss":
        check(sigma_ratio > 0, f"sigma_ratio must be > 0, got {sigma_ratio}")
        support = hl_gauss_support(v_min, v_max, num_bins)
    else:
        support = atom_support(v_min, v_max, num_bins)

    def q_cls(out):
        return jnp.sum(jax.nn.softmax(out, axis=-1) * support, axis=-1)

    def _sa(out, action):
        return jnp.take_along_axis(out, action[:, None, None], axis=1)[:, 0]

    def loss_cls(out, action, reward, discount, next_out_target, next_action,
                 sigma_ratio=sigma_ratio):
        logits_BxM = _sa(out, action)
        next_logits_BxM = _sa(next_out_target, next_action)
        if name == "c51":
            target = c51_project(jax.nn.softmax(next_logits_BxM), reward, discount, v_min, v_max)
        else:
            y = reward + discount * jnp.sum(jax.nn.softmax(next_logits_BxM) * support, -1)
            if name == "hl_gauss":
                target = hl_gauss_target(y, v_min, v_max, num_bins, sigma_ratio)
            else:
                target = two_hot_target(y, v_min, v_max, num_bins)
        return cross_entropy(logits_BxM, jax.lax.stop_gradient(target))

    return ValueHead(name, num_bins, support, q_cls, loss_cls)


__all__ = [
    "LOSSES",
    "ValueHead",
    "atom_support",
    "c51_project",
    "cross_entropy",
    "hl_gauss_edges",
    "hl_gauss_support",
    "hl_gauss_target",
    "make_value_head",
    "two_hot_target",
]


# ----------------------------------------------------------------------------- learner
def make_value_learner(net, head: ValueHead):
    """The fitted policy-evaluation learner of a state-value network (one output "action")
    trained with `head`'s loss by Adam: (init(params, lr) -> opt_state,
    step(params, opt_state, lr, x, reward, discount, next_out, **extra) -> (params,
    opt_state)). `step` is one Adam step on the batch mean of `head.loss` against
    reward + discount * V_target(x') — `next_out` is the target network's output at x', a
    constant — and `extra` goes to the loss (HL-Gauss: `sigma_ratio`). `lr` may be traced,
    so one compiled program serves a learning-rate grid."""

    def init(params, lr):
        return optax.adam(lr).init(params)

    def step(params, opt_state, lr, x, reward, discount, next_out, **extra):
        zeros = jnp.zeros((x.shape[0],), jnp.int32)

        def loss_fn(p):
            return jnp.mean(head.loss(net.apply(p, x), zeros, reward, discount, next_out,
                                      zeros, **extra))

        g = jax.grad(loss_fn)(params)
        upd, opt_state = optax.adam(lr).update(g, opt_state, params)
        return optax.apply_updates(params, upd), opt_state

    return init, step
