"""PPO (Schulman et al., 2017): the clipped-surrogate actor-critic learner, with the reward
supplied by the caller (an intrinsic reward, a verifier, an environment's return).

    ppo = make_ppo(PPOConfig(lr=3e-4), apply_fn)   # apply_fn(params, obs) -> (logits, value)
    state = ppo.init(params)                       # PPOState(params, opt_state)
    action_B, logp_B, value_B = sample_action(apply_fn, state.params, obs_BxF, key)
    ... the caller rolls out T steps, keeping obs, action, logp, value, and last_value ...
    state, metrics = ppo.update(state, batch, rewards_TxB)   # jittable, vmappable over seeds

Algorithm box (one `update`; everything is jnp, loops are lax.scan with static trip counts):
    r = rewards / (std(rewards) + 1e-6)                    (`scale_rewards`)
    A, R = GAE(r, V_old, last_value, gamma, lambda, dones) (`rl.returns.gae`; R = A + V_old)
    A = (A - mean A) / (std A + 1e-6)                      (`normalize_advantages`)
    repeat `epochs` times: split the T x B samples into `num_minibatches` random minibatches
        (one minibatch = the whole batch, unshuffled) and, per minibatch, one Adam step
        (gradient clipped to global norm `max_grad_norm`) on
            L = -mean min(rho A, clip(rho, 1 - clip, 1 + clip) A)
                + value_coef * 0.5 mean (V - R)^2 - entropy_coef * mean H(pi)
        with rho = pi(a | s) / pi_old(a | s)
The batch is time-major: obs [T, B, ...], action [T, B] (int), logp [T, B] (log pi_old of
the action), value [T, B] (V_old), last_value [B] (V_old of the state after step T - 1),
optionally dones [T, B] (1 = the episode ended at that step).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from selftaught.core.errors import check, check_at_least_one
from selftaught.rl.returns import gae

ApplyFn = Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """PPO learner hyper-parameters (one seed; vmap runs many)."""

    lr: float = 3e-4
    """Adam learning rate of the policy and value function"""
    epochs: int = 4
    """passes over each batch of rollouts per update"""
    num_minibatches: int = 1
    """minibatches per epoch (random split of the T x B samples; 1 = the whole batch, in
    order, needing no key)"""
    clip: float = 0.2
    """PPO ratio clip: rho is clipped to [1 - clip, 1 + clip] in the surrogate"""
    gamma: float = 0.99
    """discount of the return"""
    gae_lambda: float = 0.95
    """GAE lambda (1: Monte-Carlo returns with a bootstrapped tail, 0: one-step TD)"""
    entropy_coef: float = 0.01
    """policy entropy bonus"""
    value_coef: float = 0.5
    """weight of the value loss 0.5 mean (V - R)^2"""
    max_grad_norm: float = 0.5
    """gradients are clipped to this global norm before Adam"""
    scale_rewards: bool = False
    """divide the batch's rewards by their standard deviation before GAE"""
    normalize_advantages: bool = True
    """standardise the advantages over the batch"""

    def validate(self) -> None:
        check_at_least_one(self, "epochs", "num_minibatches")
        for name in ("lr", "clip", "max_grad_norm"):
            check(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        check(0 <= self.gamma < 1, f"gamma must be in [0, 1), got {self.gamma}")
        check(0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        for name in ("entropy_coef", "value_coef"):
            check(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs (two tanh layers each): x -> (logits_xA, value_x)."""

    num_actions: int
    hidden: int = 64

    @nn.compact
    def __call__(self, x):
        a = nn.tanh(nn.Dense(self.hidden)(x))
        a = nn.tanh(nn.Dense(self.hidden)(a))
        v = nn.tanh(nn.Dense(self.hidden)(x))
        v = nn.tanh(nn.Dense(self.hidden)(v))
        return nn.Dense(self.num_actions)(a), nn.Dense(1)(v)[..., 0]


@struct.dataclass
class PPOState:
    params: Any
    opt_state: Any


def sample_action(apply_fn: ApplyFn, params, obs, key):
    """(action, log pi(action), value) of one categorical draw per row of `obs`."""
    logits, value = apply_fn(params, obs)
    a = jax.random.categorical(key, logits)
    logp = jnp.take_along_axis(jax.nn.log_softmax(logits), a[..., None], -1)[..., 0]
    return a, logp, value


def clipped_surrogate(logp, old_logp, adv, clip: float) -> jax.Array:
    """-mean min(rho A, clip(rho, 1 - clip, 1 + clip) A), rho = exp(logp - old_logp)."""
    ratio = jnp.exp(logp - old_logp)
    return -jnp.mean(jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - clip, 1 + clip) * adv))


def ppo_loss(cfg: PPOConfig, apply_fn: ApplyFn, params, batch: dict, adv, ret):
    """(loss, metrics) of one (mini)batch: the clipped surrogate, the value loss and the
    entropy bonus (see the module docstring); metrics: entropy, pg_loss, value_loss."""
    logits, v = apply_fn(params, batch["obs"])
    logp_all = jax.nn.log_softmax(logits)
    logp = jnp.take_along_axis(logp_all, batch["action"][..., None], -1)[..., 0]
    pg = clipped_surrogate(logp, batch["logp"], adv, cfg.clip)
    ent = -jnp.mean(jnp.sum(jnp.exp(logp_all) * logp_all, -1))
    vl = 0.5 * jnp.mean((v - ret) ** 2)
    loss = pg + cfg.value_coef * vl - cfg.entropy_coef * ent
    return loss, {"entropy": ent, "pg_loss": pg, "value_loss": vl}


class PPO(NamedTuple):
    """`init(params) -> PPOState`; `update(state, batch, rewards, key=None) -> (state,
    metrics)` (metrics: entropy, pg_loss, value_loss of the last epoch, averaged over its
    minibatches); `tx` the optax optimizer."""

    init: Callable
    update: Callable
    tx: optax.GradientTransformation


def make_ppo(cfg: PPOConfig, apply_fn: ApplyFn) -> PPO:
    """The PPO learner of `apply_fn(params, obs) -> (logits, value)`. `apply_fn` may close
    over traced values (e.g. a per-agent mask), so build it inside the traced function."""
    cfg.validate()
    tx = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(cfg.lr))
    M = cfg.num_minibatches

    def init(params) -> PPOState:
        return PPOState(params, tx.init(params))

    def step(state: PPOState, mb):
        batch, adv, ret = mb
        g, m = jax.grad(lambda p: ppo_loss(cfg, apply_fn, p, batch, adv, ret),
                        has_aux=True)(state.params)
        upd, opt = tx.update(g, state.opt_state, state.params)
        return PPOState(optax.apply_updates(state.params, upd), opt), m

    def update(state: PPOState, batch: dict, rewards_TxB, key=None):
        r = rewards_TxB
        if cfg.scale_rewards:
            r = r / (jnp.std(r) + 1e-6)
        adv, ret = gae(r, batch["value"], batch["last_value"], cfg.gamma, cfg.gae_lambda,
                       batch.get("dones"))
        if cfg.normalize_advantages:
            adv = (adv - adv.mean()) / (adv.std() + 1e-6)
        data = ({k: batch[k] for k in ("obs", "action", "logp")}, adv, ret)
        if M == 1:
            state, m = jax.lax.scan(lambda s, _: step(s, data), state, None, cfg.epochs)
            return state, jax.tree.map(lambda x: x[-1], m)
        if key is None:
            raise ValueError("PPO with num_minibatches > 1 needs a key to shuffle the samples")
        n = rewards_TxB.size
        check(n % M == 0, f"num_minibatches ({M}) must divide the {n} samples of a batch")
        flat = jax.tree.map(lambda x: x.reshape(n, *x.shape[2:]), data)

        def epoch(s, k):
            perm = jax.random.permutation(k, n)
            mbs = jax.tree.map(lambda x: x[perm].reshape(M, n // M, *x.shape[1:]), flat)
            return jax.lax.scan(step, s, mbs)

        state, m = jax.lax.scan(epoch, state, jax.random.split(key, cfg.epochs))
        return state, jax.tree.map(lambda x: x[-1].mean(), m)

    return PPO(init, update, tx)
