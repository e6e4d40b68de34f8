"""Losses and a PureJaxRL-style SFT trainer (pure, jitted, vmappable over seeds).

Mask convention (see `lm.tokenizer`): masks are aligned with input positions and position t
is scored on predicting token t+1; `next_token_targets` builds those targets.

    sft = make_sft(model_cfg, train_cfg)
    state = sft.init(rng)                      # or sft.init(rng, params=base_params)
    state, losses = sft.run(state, data, 100)  # 100 steps in one lax.scan
    check_losses(losses, start_step=0, lr=train_cfg.lr)   # DivergedError on NaN
    state, losses = fit(sft, state, data, 1000)   # the same in chunks, with a progress bar

Seeds: `sft.run_seeds(states, datas, 100)` = `jax.jit(jax.vmap(...))` of `run` over a leading
seed axis of both states (`jax.vmap(sft.init)(keys)`) and data; `fit(..., seeds=True)`.
Rows with weight 0 are never sampled, so datasets of different sizes per seed can be padded
to one shape.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from selftaught.core import progress
from selftaught.core.errors import check, check_finite
from selftaught.lm.model import Transformer, TransformerConfig, init_params
from selftaught.lm.tokenizer import PAD


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """AdamW with linear warmup then cosine decay to `final_lr_ratio * lr`."""

    lr: float = 1e-3
    """peak learning rate (AdamW)"""
    warmup_steps: int = 100
    """linear warm-up steps from 0 to lr"""
    total_steps: int = 1000
    """optimiser steps, warm-up included"""
    batch_size: int = 32
    """sequences per step"""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay"""
    clip_norm: float = 1.0
    """global gradient-norm clip"""
    z_loss: float = 0.0
    """weight of the z-loss (log^2 of the softmax normaliser); 0 disables"""
    b1: float = 0.9
    """AdamW beta1"""
    b2: float = 0.98
    """AdamW beta2"""
    eps: float = 1e-9
    """AdamW epsilon"""
    final_lr_ratio: float = 0.0
    """the cosine decay ends at final_lr_ratio * lr"""

    def validate(self) -> TrainConfig:
        check(self.lr > 0, f"lr={self.lr} must be > 0")
        check(self.total_steps >= 1, f"total_steps={self.total_steps} must be >= 1")
        check(
            0 <= self.warmup_steps <= self.total_steps,
            f"warmup_steps={self.warmup_steps} must be in [0, total_steps={self.total_steps}]",
        )
        check(self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1")
        check(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")
        check(self.clip_norm > 0, f"clip_norm={self.clip_norm} must be > 0")
        check(self.z_loss >= 0, f"z_loss={self.z_loss} must be >= 0")
        check(0 <= self.b1 < 1 and 0 <= self.b2 < 1, "b1 and b2 must be in [0, 1)")
        check(0 <= self.final_lr_ratio <= 1, "final_lr_ratio must be in [0, 1]")
        return self


def lr_schedule(cfg: TrainConfig) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, cfg.warmup_steps, cfg.total_steps, end_value=cfg.lr * cfg.final_lr_ratio
    )


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping then AdamW; weight decay only on matrices (not biases/norms)."""
    decay_mask = lambda params: jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.adamw(lr_schedule(cfg), cfg.b1, cfg.b2, cfg.eps, weight_decay=cfg.weight_decay,
                    mask=decay_mask),
    )


def next_token_targets(tokens_BxT):
    """targets[t] = tokens[t + 1]; the last position's target is PAD."""
    pad_Bx1 = jnp.full_like(tokens_BxT[:, :1], PAD)
    return jnp.concatenate([tokens_BxT[:, 1:], pad_Bx1], axis=1)


def masked_xent(logits_BxTxV, targets_BxT, mask_BxT, z_loss: float = 0.0):
    """Mean cross-entropy over masked positions (+ z_loss * mean(logZ^2) over them)."""
    logz_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    tgt_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    mask_BxT = mask_BxT.astype(jnp.float32)
    denom = jnp.maximum(mask_BxT.sum(), 1.0)
    loss = jnp.sum((logz_BxT - tgt_BxT) * mask_BxT) / denom
    if z_loss:
        loss = loss + z_loss * jnp.sum(jnp.square(logz_BxT) * mask_BxT) / denom
    return loss


def _forward(params, model_cfg, tokens_BxT):
    # PAD marks padding anywhere (left or right); positions count from the first real token.
    return Transformer(model_cfg).apply(params, tokens_BxT, None, tokens_BxT != PAD)


def token_logprobs(params, cfg: TransformerConfig, tokens_BxT, mask_BxT):
    """lp[b, t] = log p(tokens[b, t+1] | tokens[b, :t+1]) where mask[b, t], else 0.

    Padding (PAD tokens, left or right) is masked out of attention. Sum over t for the
    log-probability of a completion under the loss-mask convention. Jitted per cfg; also
    callable inside a jitted function (e.g. a DPO loss).
    """
    return _token_logprobs_jit(params, cfg, tokens_BxT, mask_BxT)


@functools.partial(jax.jit, static_argnums=1)
def _token_logprobs_jit(params, cfg, tokens_BxT, mask_BxT):
    logits_BxTxV = _forward(params, cfg, tokens_BxT)
    lp_BxTxV = jax.nn.log_softmax(logits_BxTxV, axis=-1)
    tgt_BxT = next_token_targets(tokens_BxT)
    lp_BxT = jnp.take_along_axis(lp_BxTxV, tgt_BxT[..., None], axis=-1)[..., 0]
    return jnp.where(mask_BxT.astype(bool), lp_BxT, 0.0)


def dpo_loss(policy_chosen_lp, policy_rejected_lp, ref_chosen_lp, ref_rejected_lp, beta: float):
    """Mean over pairs of -log sigmoid(beta * [(pi_c - ref_c) - (pi_r - ref_r)]).

    Arguments are sequence log-probs (sum of `token_logprobs`), one per pair.
    """
    margin = (policy_chosen_lp - ref_chosen_lp) - (policy_rejected_lp - ref_rejected_lp)
    return jnp.mean(-jax.nn.log_sigmoid(beta * margin))


def sample_rows(rng, weight_N, batch_size: int):
    """batch_size row indices drawn uniformly (with replacement) among rows with weight > 0."""
    logits_N = jnp.where(weight_N > 0, 0.0, -jnp.inf)
    return jax.random.categorical(rng, logits_N, shape=(batch_size,))


@flax.struct.dataclass
class SFTState:
    params: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array


def params_of(state: SFTState):
    return state.params


@dataclasses.dataclass(frozen=True)
class SFT:
    """`init(rng, params=None) -> state`; `run(state, data, num_steps) -> (state, losses)`."""

    model_cfg: TransformerConfig
    train_cfg: TrainConfig
    init: Callable
    run: Callable
    run_seeds: Callable
    loss_fn: Callable


def make_sft(model_cfg: TransformerConfig, train_cfg: TrainConfig) -> SFT:
    model_cfg.validate()
    train_cfg.validate()
    tx = make_optimizer(train_cfg)

    def init(rng, params=None) -> SFTState:
        init_rng, rng = jax.random.split(rng)
        if params is None:
            params = init_params(model_cfg, init_rng)
        return SFTState(params, tx.init(params), jnp.zeros((), jnp.int32), rng)

    def loss_fn(params, tokens_BxT, mask_BxT):
        logits_BxTxV = _forward(params, model_cfg, tokens_BxT)
        return masked_xent(logits_BxTxV, next_token_targets(tokens_BxT), mask_BxT,
                           train_cfg.z_loss)

    def step(state: SFTState, data):
        rng, sub = jax.random.split(state.rng)
        idx_B = sample_rows(sub, data["weight"], train_cfg.batch_size)
        loss, grads = jax.value_and_grad(loss_fn)(
            state.params, data["tokens"][idx_B], data["loss_mask"][idx_B]
        )
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return SFTState(params, opt_state, state.step + 1, rng), loss

    def run(state: SFTState, data, num_steps: int):
        return jax.lax.scan(lambda s, _: step(s, data), state, None, length=num_steps)

    def run_seeds(states: SFTState, data, num_steps: int):
        return jax.vmap(lambda s, d: run(s, d, num_steps))(states, data)

    return SFT(model_cfg, train_cfg, init, jax.jit(run, static_argnums=2),
               jax.jit(run_seeds, static_argnums=2), loss_fn)


def fit(sft: SFT, state: SFTState, data, num_steps: int, *, chunk: int = 100,
        seeds: bool = False, description: str = "SFT"):
    """Run `num_steps` steps in compiled chunks of `chunk`, advancing a progress bar and
    raising DivergedError at the first non-finite loss. -> (state, losses [(seeds,) steps])."""
    run = sft.run_seeds if seeds else sft.run
    out, done = [], 0
    with progress.bar(description, total=num_steps) as bar:
        while done < num_steps:
            k = min(chunk, num_steps - done)
            state, losses = run(state, data, k)
            losses = np.asarray(losses)
            check_losses(losses, start_step=done, lr=sft.train_cfg.lr, where=description)
            out.append(losses)
            done += k
            bar.advance(k)
    return state, np.concatenate(out, axis=-1)


def check_losses(losses, *, start_step: int, lr: float | None = None, where: str = "SFT"):
    """Raise DivergedError naming the first step whose loss is not finite.

    `losses` is [num_steps] or [seeds, num_steps] as returned by (vmapped) `SFT.run`.
    """
    arr = np.asarray(losses).reshape(-1, np.shape(losses)[-1])
    bad = ~np.isfinite(arr)
    if bad.any():
        seed_i, step_i = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
        where_s = where if arr.shape[0] == 1 else f"{where} (seed index {seed_i})"
        check_finite(arr[seed_i, step_i], where=where_s, step=start_step + int(step_i), lr=lr)
