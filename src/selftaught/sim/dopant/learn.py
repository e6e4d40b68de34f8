"""Learning jump rates from recorded experiments (Poisson / kinetic Monte Carlo likelihood).

An MLP maps the context to 3 neighbour logits and a log total rate log Λ; the rate toward
neighbour k is softmax(logits)ₖ · Λ. For one exposure of Δt seconds with outcome y (1 if
the Si moved, then to neighbour `next`):

    L_rate  = −[ y · log(1 − e^{−ΛΔt}) + (1 − y) · (−ΛΔt) ]
    L_class = −y · log softmax(logits)_next

A bootstrap ensemble (each member trains on its own resample of the records) is trained
with `jax.vmap` over members; every minibatch record is moved by a random element of the
D3 symmetry group (rotation by 120°·m, optional reflection) with its neighbour label
permuted to match. The ensemble can be distilled into one network.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from selftaught.core.errors import ConfigError
from selftaught.sim.dopant.lattice import BOND
from selftaught.sim.dopant.rates import (
    I_REF,
    V_REF,
    V_SCALE,
    transform_context,
    transform_neighbour,
)
from selftaught.sim.dopant.sim import Observation, uniform_disk


@dataclasses.dataclass(frozen=True)
class LearnConfig:
    members: int = 10
    """bootstrap ensemble size (the paper used 50)"""
    width: int = 64
    """hidden units per MLP layer"""
    depth: int = 3
    """hidden layers"""
    steps: int = 1500
    """Adam steps per member"""
    batch: int = 512
    """records per minibatch"""
    lr: float = 1e-2
    """peak learning rate (cosine decay)"""
    bootstrap: bool = True
    """resample the records per member (False: every member sees all records)"""
    augment: bool = True
    """rotation/reflection augmentation of every minibatch"""
    distill_steps: int = 0
    """if > 0, distil the ensemble into one network for this many steps"""

    def validate(self) -> None:
        for name in ("members", "width", "depth", "steps", "batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"learn.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"learn.lr must be > 0, got {self.lr}")
        if self.distill_steps < 0:
            raise ConfigError(f"learn.distill_steps must be >= 0, got {self.distill_steps}")


class RateNet(nn.Module):
    """features (…, F) → (logits (…, 3), log total rate (…,))."""

    width: int = 64
    depth: int = 3

    @nn.compact
    def __call__(self, feats_NxF):
        h_NxW = feats_NxF
        for _ in range(self.depth):
            h_NxW = nn.gelu(nn.Dense(self.width)(h_NxW))
        out_Nx4 = nn.Dense(4)(h_NxW)
        return out_Nx4[..., :3], out_Nx4[..., 3]


def features(ctx_Nx4, use_settings: bool):
    """Network inputs: position in bond lengths, and (optionally) log-dose features."""
    ctx_Nx4 = jnp.asarray(ctx_Nx4, jnp.float32)
    xy = ctx_Nx4[..., :2] / BOND
    if not use_settings:
        return xy
    volt = (ctx_Nx4[..., 2:3] - V_REF) / V_SCALE
    curr = jnp.log(jnp.maximum(ctx_Nx4[..., 3:4], 1e-3) / I_REF)
    return jnp.concatenate([xy, volt, curr], axis=-1)


def kmc_loss(logits_Nx3, log_rate_N, dwell_N, moved_N, neighbour_N):
    """Per-record negative log-likelihood L_rate + L_class (see module docstring)."""
    lam_dt = jnp.exp(jnp.clip(log_rate_N, -30.0, 20.0)) * dwell_N
    log_p_move = jnp.log(-jnp.expm1(-jnp.maximum(lam_dt, 1e-20)))
    y = moved_N.astype(jnp.float32)
    l_rate = -(y * log_p_move + (1.0 - y) * (-lam_dt))
    logp_Nx3 = jax.nn.log_softmax(logits_Nx3, axis=-1)
    picked = jnp.take_along_axis(logp_Nx3, jnp.maximum(neighbour_N, 0)[..., None], axis=-1)[..., 0]
    l_class = -y * picked
    return l_rate + l_class


def net_rates(net: RateNet, params, ctx_Nx4, use_settings: bool):
    """Per-neighbour rates (…, 3) = softmax(logits) · Λ."""
    logits, log_rate = net.apply(params, features(ctx_Nx4, use_settings))
    return jax.nn.softmax(logits, axis=-1) * jnp.exp(jnp.clip(log_rate, -30.0, 20.0))[..., None]


@struct.dataclass
class TrainState:
    params: dict  # stacked over members
    opt_state: optax.OptState
    boot_idx_MxN: jax.Array
    key_M: jax.Array
    step: jax.Array
    used_M: jax.Array  # records each member trains on (its budget)


def as_arrays(obs: Observation) -> dict:
    return {
        "context": jnp.asarray(obs.context, jnp.float32),
        "dwell": jnp.asarray(obs.dwell, jnp.float32),
        "moved": jnp.asarray(obs.moved, bool),
        "neighbour": jnp.asarray(obs.neighbour, jnp.int32),
    }


def batch_records(key, boot_N, used, batch: int) -> jax.Array:
    """`batch` record indices drawn uniformly from a member's records: `boot_N` holds its
    first `used` entries tiled to N. When `used` divides N the tiled entries are drawn (the
    draws of before); otherwise the first `used` entries, since the tiling would weight
    the first N % used records once more than the others."""
    n_data = boot_N.shape[0]
    pos = jnp.where(n_data % used == 0,
                    jax.random.randint(key, (batch,), 0, n_data),
                    jax.random.randint(key, (batch,), 0, used))
    return boot_N[pos]


@functools.lru_cache(maxsize=8)
def make_train(cfg: LearnConfig, use_settings: bool = False):
    """Returns (net, init(key, data, used_M) -> TrainState, run(state, data, n) -> (state,
    loss_n)), vmapped over ensemble members; `data` is `as_arrays(observations)` of which
    member m trains on the first `used_M[m]` records (traced: no recompilation). With
    `use_settings` the network also sees voltage and current (needed when they vary)."""
    net = RateNet(cfg.width, cfg.depth)
    sched = optax.cosine_decay_schedule(cfg.lr, cfg.steps, alpha=0.05)
    tx = optax.adam(sched)
    n_feat = 4 if use_settings else 2

    def init_member(key, n_data, used):
        # The member's records as n_data indices into the first `used` records: a bootstrap
        # resample of size `used` (or those records themselves), tiled to n_data entries so
        # that the shapes — and the compiled code — do not depend on `used`. Batches draw
        # from the first `used` entries only when `used` does not divide n_data (a tiling
        # would weight the first n_data % used records once more than the others).
        k_init, k_boot, k_loop = jax.random.split(key, 3)
        params = net.init(k_init, jnp.zeros((1, n_feat)))
        tile = jnp.arange(n_data) % used
        if cfg.bootstrap:
            boot = jax.random.randint(k_boot, (n_data,), 0, used)[tile]
        else:
            boot = tile
        return params, tx.init(params), boot, k_loop

    def init(key, data, used_M) -> TrainState:
        n_data = data["dwell"].shape[0]
        keys = jax.random.split(key, cfg.members)
        params, opt_state, boot, k_loop = jax.vmap(
            lambda k, used: init_member(k, n_data, used))(keys, used_M)
        return TrainState(params, opt_state, boot, k_loop, jnp.zeros((), jnp.int32),
                          jnp.asarray(used_M, jnp.int32))

    def member_steps(params, opt_state, boot, used, key, data, n):
        def loss_fn(p, batch):
            logits, log_rate = net.apply(p, features(batch["context"], use_settings))
            return jnp.mean(
                kmc_loss(logits, log_rate, batch["dwell"], batch["moved"], batch["neighbour"])
            )

        def body(carry, key):
            params, opt_state = carry
            kb, kg = jax.random.split(key)
            idx = batch_records(kb, boot, used, cfg.batch)
            batch = jax.tree.map(lambda x: x[idx], data)
            if cfg.augment:
                g = jax.random.randint(kg, (cfg.batch,), 0, 6)
                batch["context"] = transform_context(batch["context"], g)
                batch["neighbour"] = transform_neighbour(batch["neighbour"], g)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        key, sub = jax.random.split(key)
        (params, opt_state), losses = jax.lax.scan(
            body, (params, opt_state), jax.random.split(sub, n)
        )
        return params, opt_state, key, losses

    def run(state: TrainState, data, n: int):
        params, opt_state, key, losses = jax.vmap(
            member_steps, in_axes=(0, 0, 0, 0, 0, None, None)
        )(state.params, state.opt_state, state.boot_idx_MxN, state.used_M, state.key_M, data, n)
        new = TrainState(params, opt_state, state.boot_idx_MxN, key, state.step + n,
                         state.used_M)
        return new, jnp.mean(losses, axis=0)

    return net, jax.jit(init), jax.jit(run, static_argnums=2)


def train_ensemble(key, obs: Observation, cfg: LearnConfig, *, use_settings: bool = False,
                   num_records=None, chunk: int = 500,
                   on_chunk=None) -> tuple[EnsembleRates, np.ndarray]:
    """Train the bootstrap ensemble on the first `num_records` records (default all; an int,
    or one int per member to train ensembles for several data budgets in one vmapped run);
    returns (the ensemble, loss curve per step). The steps run in compiled chunks of
    `chunk`; `on_chunk(n)` is called after each."""
    net, init, run = make_train(cfg, use_settings)
    data = as_arrays(obs)
    n_data = int(data["dwell"].shape[0])
    used = np.broadcast_to(np.asarray(n_data if num_records is None else num_records),
                           (cfg.members,)).astype(np.int32)
    if not np.all((used >= 1) & (used <= n_data)):
        raise ConfigError(f"num_records must be in 1..{n_data}, got {num_records}")
    state = init(key, data, jnp.asarray(used))
    losses = []
    done = 0
    # Chunks of one size where possible (each distinct size compiles once).
    divisors = [d for d in range(1, min(chunk, cfg.steps) + 1) if cfg.steps % d == 0]
    if divisors[-1] * 4 >= min(chunk, cfg.steps):
        chunk = divisors[-1]
    while done < cfg.steps:
        n = min(chunk, cfg.steps - done)
        state, loss_n = run(state, data, n)
        losses.append(np.asarray(loss_n))
        done += n
        if on_chunk is not None:
            on_chunk(n)
    model = EnsembleRates(state.params, cfg.width, cfg.depth, use_settings)
    return model, np.concatenate(losses)


def ensemble_rates(net: RateNet, params_M, ctx_Nx4, use_settings: bool):
    """Rates of every member: (M, …, 3)."""
    return jax.vmap(lambda p: net_rates(net, p, ctx_Nx4, use_settings))(params_M)


@struct.dataclass
class NetRates:
    """One network as a pytree rate function (e.g. the distilled model)."""

    params: dict
    width: int = struct.field(pytree_node=False, default=64)
    depth: int = struct.field(pytree_node=False, default=3)
    use_settings: bool = struct.field(pytree_node=False, default=False)

    def __call__(self, ctx_Nx4):
        return net_rates(RateNet(self.width, self.depth), self.params, ctx_Nx4, self.use_settings)


@struct.dataclass
class EnsembleRates:
    """The ensemble's point estimate (mean of the members' rates) as a pytree rate function;
    `members(ctx)` gives every member's rates for the uncertainty."""

    params_M: dict
    width: int = struct.field(pytree_node=False, default=64)
    depth: int = struct.field(pytree_node=False, default=3)
    use_settings: bool = struct.field(pytree_node=False, default=False)

    def members(self, ctx_Nx4):
        net = RateNet(self.width, self.depth)
        return ensemble_rates(net, self.params_M, ctx_Nx4, self.use_settings)

    def __call__(self, ctx_Nx4):
        return jnp.mean(self.members(ctx_Nx4), axis=0)


def split_members(model: EnsembleRates, sizes) -> list[EnsembleRates]:
    """Consecutive groups of members as separate ensembles."""
    out, start = [], 0
    for size in sizes:
        part = jax.tree.map(lambda x, a=start, b=start + size: x[a:b], model.params_M)
        out.append(EnsembleRates(part, model.width, model.depth, model.use_settings))
        start += size
    return out


@jax.jit
def member_rates(model: EnsembleRates, ctx_Nx4):
    """Compiled `model.members(ctx)`: (M, N, 3)."""
    return model.members(ctx_Nx4)


def distill(key, teacher, cfg: LearnConfig, *, radius: float, voltage_range, current_range,
            use_settings: bool = False) -> tuple[NetRates, np.ndarray]:
    """Fit one network to the teacher (a pytree rate function) on contexts drawn like the
    exploration policy: cross-entropy to the teacher's neighbour probabilities plus squared
    error of log Λ. Returns (the student as NetRates, loss curve)."""
    run = _distiller(cfg, use_settings, float(radius), tuple(voltage_range),
                     tuple(current_range))
    params, losses = run(teacher, key)
    student = NetRates(params, cfg.width, cfg.depth, use_settings)
    return student, np.asarray(losses)


@functools.lru_cache(maxsize=8)
def _distiller(cfg: LearnConfig, use_settings, radius, voltage_range, current_range):
    net = RateNet(cfg.width, cfg.depth)
    n_feat = 4 if use_settings else 2
    tx = optax.adam(optax.cosine_decay_schedule(cfg.lr, cfg.distill_steps, alpha=0.05))

    def loss_fn(p, teacher, ctx):
        target = teacher(ctx)
        total = jnp.sum(target, axis=-1)
        probs = target / total[..., None]
        logits, log_rate = net.apply(p, features(ctx, use_settings))
        ce = -jnp.sum(probs * jax.nn.log_softmax(logits, axis=-1), axis=-1)
        return jnp.mean(ce + (log_rate - jnp.log(total)) ** 2)

    @jax.jit
    def run(teacher, key):
        k_init, k_loop = jax.random.split(key)
        params = net.init(k_init, jnp.zeros((1, n_feat)))

        def body(carry, key):
            params, opt_state = carry
            kx, kv, ki = jax.random.split(key, 3)
            xy = uniform_disk(kx, radius, (cfg.batch,))
            volt = jax.random.uniform(kv, (cfg.batch, 1), minval=voltage_range[0],
                                      maxval=voltage_range[1])
            curr = jax.random.uniform(ki, (cfg.batch, 1), minval=current_range[0],
                                      maxval=current_range[1])
            ctx = jnp.concatenate([xy, volt, curr], axis=-1)
            loss, grads = jax.value_and_grad(loss_fn)(params, teacher, ctx)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, _), losses = jax.lax.scan(
            body, (params, tx.init(params)), jax.random.split(k_loop, cfg.distill_steps)
        )
        return params, losses

    return run
