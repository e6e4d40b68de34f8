"""Losses and one PureJaxRL-style trainer for any loss (pure, jitted, vmappable over seeds).

Mask convention (see `lm.tokenizer`): masks are aligned with input positions and position t
is scored on predicting token t+1; `next_token_targets` builds those targets.

    sft = make_sft(model_cfg, train_cfg)
    state = sft.init(rng)                      # or sft.init(rng, params=base_params)
    state, losses = sft.run(state, data, 100)  # 100 steps in one lax.scan
    check_losses(losses, start_step=0, lr=train_cfg.lr)   # DivergedError on NaN
    state, losses = fit(sft, state, data, 1000)   # the same in chunks, with a progress bar

Any loss: `make_trainer(loss_fn, train_cfg)` with `loss_fn(params, batch, rng) -> (loss, aux)`;
the losses here are `make_sft_loss` (= `make_sft`), `make_dpo_loss` (pairs, frozen reference
log-probs), `make_orm_loss` (BCE of a linear head on the last hidden state, `orm_init`) and
`make_evaluator_loss` (the LM's own yes/no verdict token, cross-entropy or margin form).

    dpo = make_trainer(make_dpo_loss(cfg, beta=0.1), train_cfg)
    state, losses, aux = fit(dpo, dpo.init(rng, params=g_sft), pairs, 500, aux=True)

Each `Trainer` owns its jitted functions: build it once per (loss, config) and reuse it
(e.g. behind `functools.lru_cache`), or every new trainer compiles again. Data for any loss
is a dict of row arrays plus a "weight" column (`lm.data`); the loss sees the sampled rows.

Seeds: `sft.run_seeds(states, datas, 100)` = `jax.jit(jax.vmap(...))` of `run` over a leading
seed axis of both states (`jax.vmap(sft.init)(keys)`) and data; `fit(..., seeds=True)`.
Rows with weight 0 are never sampled, so datasets of different sizes per seed can be padded
to one shape.

Grids: `make_trainer(loss_fn, cfg, traced=True)` reads lr, warmup, weight decay, eps and the
z-loss weight from each state (`init_from(params, rng, hp={...})`), so `run_cells` trains a
whole hyper-parameter grid in one compiled program and freezes a diverged cell instead of
crashing (`lm.sweep` is this over a table of cells).
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
    """global gradient-norm clip (0 disables clipping)"""
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
        check(self.clip_norm >= 0, f"clip_norm={self.clip_norm} must be >= 0 (0 disables it)")
        check(self.z_loss >= 0, f"z_loss={self.z_loss} must be >= 0")
        check(0 <= self.b1 < 1 and 0 <= self.b2 < 1, "b1 and b2 must be in [0, 1)")
        check(0 <= self.final_lr_ratio <= 1, "final_lr_ratio must be in [0, 1]")
        return self



@dataclasses.dataclass(frozen=True)
class EvalSchedule:
    """Training in phases of `every` steps with a validation measurement after each, then a
    test of `test_rounds` x `batch` fresh sequences: the resumable phase plan of a recipe
    that trains on a generator (`phases`, `steps`)."""

    every: int = 250
    """training steps per phase; the validation curve gets one point per phase"""
    batch: int = 512
    """sequences per cell of one measurement (each validation point, each test round)"""
    test_rounds: int = 2
    """the test measures test_rounds x batch fresh sequences per cell"""

    def validate(self) -> EvalSchedule:
        check(self.every >= 1, f"evals.every={self.every} must be >= 1")
        check(self.batch >= 1 and self.test_rounds >= 1,
              f"evals.batch={self.batch} and evals.test_rounds={self.test_rounds} must be "
              ">= 1")
        return self

    def check_fits(self, train: TrainConfig) -> None:
        """One-line error unless the phases tile `train.total_steps` exactly."""
        check(train.total_steps % self.every == 0,
              f"train.total_steps={train.total_steps} must be a multiple of "
              f"evals.every={self.every}")

    def phases(self, train: TrainConfig) -> int:
        """Training phases: total_steps // every."""
        return train.total_steps // self.every

    def steps(self, train: TrainConfig) -> list[int]:
        """The training step at the end of each phase (the validation curve's x axis)."""
        return [(i + 1) * self.every for i in range(self.phases(train))]

def lr_schedule(cfg: TrainConfig) -> optax.Schedule:
    return optax.warmup_cosine_decay_schedule(
        0.0, cfg.lr, cfg.warmup_steps, cfg.total_steps, end_value=cfg.lr * cfg.final_lr_ratio
    )


def _decay_mask(params):
    return jax.tree_util.tree_map(lambda p: p.ndim >= 2, params)


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping then AdamW; weight decay only on matrices (not biases/norms)."""
    clip = [optax.clip_by_global_norm(cfg.clip_norm)] if cfg.clip_norm > 0 else []
    return optax.chain(
        *clip,
        optax.adamw(lr_schedule(cfg), cfg.b1, cfg.b2, cfg.eps, weight_decay=cfg.weight_decay,
                    mask=_decay_mask),
    )


#: the numeric hyper-parameters a trainer made with `traced=True` reads from each state
#: (`CellState.hp`), so one compiled program trains a grid of them (`Trainer.run_cells`)
TRACED_HPARAMS = ("lr", "weight_decay", "warmup_steps", "eps", "z_loss")


def traced_schedule(step, lr, warmup, total: int, final_ratio: float):
    """Linear warmup from 0 then cosine to final_ratio * lr, with a traced lr and warmup.
    Equals `optax.warmup_cosine_decay_schedule(0, lr, warmup, total, final_ratio * lr)`."""
    step = jnp.asarray(step, jnp.float32)
    warm = jnp.where(warmup > 0, step / jnp.maximum(warmup, 1.0), 1.0)
    frac = jnp.clip((step - warmup) / jnp.maximum(total - warmup, 1.0), 0.0, 1.0)
    cos = final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    return lr * jnp.where(step < warmup, warm, cos)


def make_traced_optimizer(cfg: TrainConfig, hp, *,
                          independent_wd: bool = False) -> optax.GradientTransformation:
    """`make_optimizer` with lr, warmup_steps, weight_decay and eps read from the traced
    `hp` (`optax.inject_hyperparams`); b1, b2, clip_norm and the schedule's shape stay static.
    `independent_wd` decays each step by weight_decay * lr_t / lr (AdamW's coupled decay
    with weight_decay / lr), so the decay does not scale with the lr."""
    lr_fn = lambda step: traced_schedule(step, hp["lr"], hp["warmup_steps"], cfg.total_steps,
                                         cfg.final_lr_ratio)
    wd = hp["weight_decay"] / hp["lr"] if independent_wd else hp["weight_decay"]
    clip = [optax.clip_by_global_norm(cfg.clip_norm)] if cfg.clip_norm > 0 else []
    return optax.chain(*clip, optax.inject_hyperparams(optax.adamw, static_args=("mask",))(
        learning_rate=lr_fn, b1=cfg.b1, b2=cfg.b2, eps=hp["eps"], weight_decay=wd,
        mask=_decay_mask))


def next_token_targets(tokens_BxT):
    """targets[t] = tokens[t + 1]; the last position's target is PAD."""
    pad_Bx1 = jnp.full_like(tokens_BxT[:, :1], PAD)
    return jnp.concatenate([tokens_BxT[:, 1:], pad_Bx1], axis=1)


def label_xent(logits_BxC, labels_B):
    """Per-example cross-entropy of integer labels (optax's numerically stable form): the
    loss of classification heads (in-context labels, yes/no verdicts)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, labels_B)


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


def row_index(weight_N):
    """(rows_N, count): the indices of the rows with weight > 0, packed first (the rest of
    `rows_N` repeats row 0 and is never read), and how many there are. O(N), once per
    compiled chunk; `sample_rows` then draws a batch in O(B)."""
    valid_N = weight_N > 0
    rows_N = jnp.nonzero(valid_N, size=valid_N.shape[0], fill_value=0)[0].astype(jnp.int32)
    return rows_N, jnp.sum(valid_N, dtype=jnp.int32)


def sample_rows(rng, weight_N, batch_size: int, index=None):
    """batch_size row indices drawn uniformly (with replacement) among rows with weight > 0.

    O(B) given `index = row_index(weight_N)` (computed once outside a step loop); without it
    the index is built here, O(N). With no positive weight every draw is row 0.
    """
    rows_N, count = row_index(weight_N) if index is None else index
    pick_B = jax.random.randint(rng, (batch_size,), 0, jnp.maximum(count, 1))
    return rows_N[pick_B]


@flax.struct.dataclass
class TrainState:
    """Parameters, optimizer state, step count and the trainer's own PRNG key."""

    params: Any
    opt_state: Any
    step: jax.Array
    rng: jax.Array


SFTState = TrainState  # the historical name


@flax.struct.dataclass
class CellState(TrainState):
    """The state of a trainer made with `traced=True`: one cell of a hyper-parameter grid."""

    hp: Any  # {name: float32 scalar} for every name of TRACED_HPARAMS
    diverged_at: jax.Array  # int32: the first step with a non-finite loss or gradient, -1


def params_of(state: TrainState):
    return state.params


#: `loss_fn(params, batch, rng) -> (loss, aux)`: `batch` holds the rows of `data` picked
#: for one step (every key of `data` except "weight"), `rng` is a fresh key per step,
#: `aux` a dict of scalar diagnostics ({} if none).
LossFn = Callable[[Any, dict, jax.Array], tuple[jax.Array, dict]]

#: `batch_fn(key, step, data) -> batch`: one step's batch drawn on device (see make_trainer).
BatchFn = Callable[[jax.Array, jax.Array, Any], Any]


@dataclasses.dataclass(frozen=True)
class Trainer:
    """One optimiser loop for any loss (SFT, DPO, ORM, evaluators, distillation).

    - `init(rng, params=None) -> TrainState` (fresh params from `init_params_fn` if None);
    - `run(state, data, num_steps) -> (state, losses[num_steps])`: one jitted `lax.scan`;
    - `run_aux(...) -> (state, losses, aux)`: the same, also returning `aux` per step;
    - `run_seeds` / `run_seeds_aux`: `jax.vmap` of the above over a leading seed axis of
      both the states and the data.

    `data` is a dict of arrays with one row per example and a "weight" [N] column: each step
    draws `batch_size` rows uniformly (with replacement) among rows with weight > 0, so
    datasets padded to one capacity (weight 0) never recompile. A trainer made with a
    `batch_fn` instead draws each step's batch on device from `data` (any pytree: a class
    bank, or `{}` for a generator that needs nothing). Use `fit` for the chunked loop with a
    progress bar and the divergence check.

    - `init_from(params, rng) -> TrainState`: a state for given params whose trainer key is
      `rng` itself (not split), for callers that derive their keys themselves;
    - `run_cells` / `run_cells_aux`: `jax.vmap` over a leading axis of the states only, the
      data shared by every cell (a hyper-parameter grid, see `traced`).
    """

    train_cfg: TrainConfig
    init: Callable
    run: Callable
    run_seeds: Callable
    loss_fn: LossFn
    run_aux: Callable
    run_seeds_aux: Callable
    model_cfg: TransformerConfig | None = None
    init_from: Callable | None = None
    run_cells: Callable | None = None
    run_cells_aux: Callable | None = None


SFT = Trainer  # `make_sft` returns a Trainer with the SFT loss


def make_trainer(loss_fn: LossFn, train_cfg: TrainConfig,
                 init_params_fn: Callable | None = None,
                 model_cfg: TransformerConfig | None = None,
                 batch_fn: BatchFn | None = None, *, traced: bool = False,
                 independent_wd: bool = False, update_scale: Any = None) -> Trainer:
    """A `Trainer` minimising `loss_fn` with `make_optimizer(train_cfg)`.

    `init_params_fn(rng) -> params` makes fresh parameters when `init` gets none. The per-step
    key handed to `loss_fn` is derived without consuming the trainer's key stream, so adding
    randomness to a loss does not change which rows are drawn.

    `batch_fn(key, step, data) -> batch` replaces row sampling: each step's batch is drawn
    on device with `key = fold_in(state.rng, state.step)` (`loss_fn` gets `fold_in(key, 1)`)
    and the trainer key is not advanced, so the batch stream is a function of the step alone
    (a resumed run draws the same batches). `step` lets a curriculum depend on progress.

    `traced=True` makes a grid trainer: each state is a `CellState` carrying its own numbers
    `hp` ({name: value} over TRACED_HPARAMS; `init(rng, params, hp=...)` /
    `init_from(params, rng, hp=...)`, names left out take `train_cfg`'s values), read by
    `make_traced_optimizer` and handed to the loss as `loss_fn(params, batch, rng, hp)` (e.g.
    its z-loss weight), so `run_cells` trains a whole grid in one compiled program. A cell
    whose loss or gradient turns non-finite is frozen at its last finite parameters with
    `diverged_at` = that step, and its losses and aux read NaN from then on: a diverged cell
    is a result, not a crash. aux gains "grad_norm" (the global norm before clipping).
    `independent_wd` (see `make_traced_optimizer`) and `update_scale` (a pytree of per-leaf
    factors multiplying every update, e.g. muParam's hidden-matrix lr scale) need `traced`.
    """
    train_cfg.validate()
    check(traced or not (independent_wd or update_scale is not None),
          "independent_wd and update_scale need a traced trainer (traced=True)")
    tx = make_optimizer(train_cfg)
    defaults = dict(lr=train_cfg.lr, weight_decay=train_cfg.weight_decay,
                    warmup_steps=float(train_cfg.warmup_steps), eps=train_cfg.eps,
                    z_loss=train_cfg.z_loss)

    def cell_hp(hp) -> dict:
        unknown = sorted(set(hp or {}) - set(TRACED_HPARAMS))
        check(not unknown, f"unknown traced hyper-parameter(s) {unknown}; known: "
              f"{list(TRACED_HPARAMS)}")
        hp = {**defaults, **(hp or {})}
        return {k: jnp.asarray(hp[k], jnp.float32) for k in TRACED_HPARAMS}

    def fresh(params, rng, hp):
        if not traced:
            check(hp is None, "hp is given to a trainer made without traced=True")
            return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32), rng)
        hp = cell_hp(hp)
        opt_state = make_traced_optimizer(train_cfg, hp, independent_wd=independent_wd).init(
            params)
        return CellState(params, opt_state, jnp.zeros((), jnp.int32), rng, hp,
                         jnp.full((), -1, jnp.int32))

    def init(rng, params=None, hp=None) -> TrainState:
        init_rng, rng = jax.random.split(rng)
        if params is None:
            if init_params_fn is None:
                raise ValueError("this trainer has no init_params_fn: pass params to init")
            params = init_params_fn(init_rng)
        return fresh(params, rng, hp)

    def init_from(params, rng, hp=None) -> TrainState:
        return fresh(params, rng, hp)

    def step(state: TrainState, data, index):
        if batch_fn is None:
            rng, sub = jax.random.split(state.rng)
            idx_B = sample_rows(sub, data["weight"], train_cfg.batch_size, index)
            batch = {k: v[idx_B] for k, v in data.items() if k != "weight"}
        else:
            rng, sub = state.rng, jax.random.fold_in(state.rng, state.step)
            batch = batch_fn(sub, state.step, data)
        if traced:
            return cell_step(state, batch, rng, sub)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, batch, jax.random.fold_in(sub, 1))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1, rng), (loss, aux)

    def cell_step(state: CellState, batch, rng, sub):
        hp = state.hp
        (loss, aux), grads = jax.value_and_grad(
            lambda p, b, r: loss_fn(p, b, r, hp), has_aux=True)(
            state.params, batch, jax.random.fold_in(sub, 1))
        aux = dict(aux, grad_norm=optax.global_norm(grads))
        updates, opt_state = make_traced_optimizer(
            train_cfg, hp, independent_wd=independent_wd).update(grads, state.opt_state,
                                                                 state.params)
        if update_scale is not None:
            updates = jax.tree_util.tree_map(lambda u, k: u * k, updates, update_scale)
        params = optax.apply_updates(state.params, updates)
        ok = jnp.isfinite(loss) & jnp.isfinite(aux["grad_norm"]) & (state.diverged_at < 0)
        keep = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new,
                                                       old)
        diverged_at = jnp.where((state.diverged_at < 0) & ~ok, state.step, state.diverged_at)
        new = CellState(keep(params, state.params), keep(opt_state, state.opt_state),
                        state.step + 1, rng, hp, diverged_at)
        nan_after = lambda v: jnp.where(diverged_at >= 0, jnp.nan, v)
        return new, (nan_after(loss), jax.tree_util.tree_map(nan_after, aux))

    def run_aux(state: TrainState, data, num_steps: int):
        # once per chunk: each step then draws its rows in O(B)
        index = None if batch_fn is not None else row_index(data["weight"])
        state, (losses, aux) = jax.lax.scan(lambda s, _: step(s, data, index), state, None,
                                            length=num_steps)
        return state, losses, aux

    def run(state: TrainState, data, num_steps: int):
        state, losses, _ = run_aux(state, data, num_steps)
        return state, losses

    def seeds(fn):
        return lambda states, data, num_steps: jax.vmap(
            lambda s, d: fn(s, d, num_steps))(states, data)

    def cells(fn):
        return lambda states, data, num_steps: jax.vmap(
            lambda s: fn(s, data, num_steps))(states)

    jit = lambda fn: jax.jit(fn, static_argnums=2)
    return Trainer(train_cfg, init, jit(run), jit(seeds(run)), loss_fn, jit(run_aux),
                   jit(seeds(run_aux)), model_cfg, init_from, jit(cells(run)),
                   jit(cells(run_aux)))


# ---------------------------------------------------------------------------- losses
def make_sft_loss(model_cfg: TransformerConfig, z_loss: float = 0.0) -> LossFn:
    """SFT: masked next-token cross-entropy on batch["tokens"] / batch["loss_mask"]
    (`lm.data.pack_sft` rows)."""

    def loss_fn(params, batch, rng):
        del rng
        logits_BxTxV = _forward(params, model_cfg, batch["tokens"])
        loss = masked_xent(logits_BxTxV, next_token_targets(batch["tokens"]),
                           batch["loss_mask"], z_loss)
        return loss, {}

    return loss_fn


def make_sft(model_cfg: TransformerConfig, train_cfg: TrainConfig) -> Trainer:
    """The SFT trainer (data: `lm.data.pack_sft`); fresh params from `init_params`."""
    model_cfg.validate()
    return make_trainer(make_sft_loss(model_cfg, train_cfg.z_loss), train_cfg,
                        functools.partial(init_params, model_cfg), model_cfg)


@functools.lru_cache(maxsize=16)
def cached_trainer(make_loss: Callable[..., LossFn], model_cfg: TransformerConfig,
                   train_cfg: TrainConfig, *loss_args: Any) -> Trainer:
    """`make_trainer(make_loss(model_cfg, *loss_args), train_cfg)` with fresh parameters from
    `init_params`, built once per process for each (loss factory, model config, train config,
    loss arguments): a recipe that trains a model per seed, round or iteration reuses one
    compiled trainer (`cached_trainer(make_sft_loss, m, t, t.z_loss)` is `make_sft(m, t)`).
    Every argument must be hashable (frozen configs, numbers, strings)."""
    model_cfg.validate()
    return make_trainer(make_loss(model_cfg, *loss_args), train_cfg,
                        functools.partial(init_params, model_cfg), model_cfg)


def make_dpo_loss(model_cfg: TransformerConfig, beta: float) -> LossFn:
    """DPO on pair rows (`lm.data.pack_pairs`): chosen_tokens/chosen_mask,
    rejected_tokens/rejected_mask, and the reference model's sequence log-probs
    ref_chosen_lp / ref_rejected_lp (precomputed once with `sequence_logprobs`: the
    reference is frozen). aux: reward accuracy and mean margin beta*(Δchosen - Δrejected)."""
    check(beta > 0, f"DPO beta={beta} must be > 0")

    def loss_fn(params, batch, rng):
        del rng
        pc = token_logprobs(params, model_cfg, batch["chosen_tokens"],
                            batch["chosen_mask"]).sum(-1)
        pr = token_logprobs(params, model_cfg, batch["rejected_tokens"],
                            batch["rejected_mask"]).sum(-1)
        loss = dpo_loss(pc, pr, batch["ref_chosen_lp"], batch["ref_rejected_lp"], beta)
        margin = beta * ((pc - batch["ref_chosen_lp"]) - (pr - batch["ref_rejected_lp"]))
        return loss, {"reward_accuracy": jnp.mean(margin > 0), "margin": jnp.mean(margin)}

    return loss_fn


def final_hidden(params, cfg: TransformerConfig, tokens_BxT, mask_BxT):
    """The final-layer-norm hidden state at each row's last real token (PAD excluded)
    -> h_BxD: the features of an outcome-reward-model head."""
    real_BxT = tokens_BxT != PAD
    _, h_BxTxD = Transformer(cfg).apply(params, tokens_BxT, None, real_BxT,
                                        return_hidden=True)
    last_B = jnp.maximum(jnp.sum(real_BxT, axis=-1) - 1, 0)  # right-padded rows
    del mask_BxT
    return jnp.take_along_axis(h_BxTxD, last_B[:, None, None], axis=1)[:, 0]


def orm_init(lm_params, cfg: TransformerConfig):
    """ORM parameters: a language model (e.g. G_sft's) plus a zero-initialised linear head."""
    return {"lm": lm_params, "head": {"w": jnp.zeros((cfg.d_model,), jnp.float32),
                                      "b": jnp.zeros((), jnp.float32)}}


def orm_logits(orm_params, cfg: TransformerConfig, tokens_BxT, mask_BxT):
    """ORM score (a logit of p(correct)) of each right-padded `prompt SEP completion EOS` row."""
    h_BxD = final_hidden(orm_params["lm"], cfg, tokens_BxT, mask_BxT)
    return h_BxD.astype(jnp.float32) @ orm_params["head"]["w"] + orm_params["head"]["b"]


def make_orm_loss(model_cfg: TransformerConfig) -> LossFn:
    """Outcome reward model: binary cross-entropy of `orm_logits` against batch["label"]
    (1 correct, 0 incorrect) on `lm.data.pack_sft` rows. aux: accuracy."""

    def loss_fn(params, batch, rng):
        del rng
        z_B = orm_logits(params, model_cfg, batch["tokens"], batch["loss_mask"])
        y_B = batch["label"].astype(jnp.float32)
        loss = jnp.mean(optax.sigmoid_binary_cross_entropy(z_B, y_B))
        return loss, {"accuracy": jnp.mean((z_B > 0) == (y_B > 0.5))}

    return loss_fn


def prm_logits(prm_params, cfg: TransformerConfig, tokens_BxT):
    """Process reward model: a logit of p(this step is correct) at EVERY position ->
    z_BxT, from the same parameters as an ORM (`orm_init`: an LM plus a linear head) applied
    to each position's final hidden state instead of the last one's."""
    real_BxT = tokens_BxT != PAD
    _, h_BxTxD = Transformer(cfg).apply(prm_params["lm"], tokens_BxT, None, real_BxT,
                                        return_hidden=True)
    return h_BxTxD.astype(jnp.float32) @ prm_params["head"]["w"] + prm_params["head"]["b"]


def make_prm_loss(model_cfg: TransformerConfig) -> LossFn:
    """Process-supervised verifier: binary cross-entropy of `prm_logits` against
    batch["step_label"] (float [B, T]: 1 the step ending at this token is correct, 0 wrong)
    at the positions where batch["step_mask"] is 1, averaged over labelled steps.
    aux: step accuracy, and solution accuracy (every step's verdict right)."""

    def loss_fn(params, batch, rng):
        del rng
        z_BxT = prm_logits(params, model_cfg, batch["tokens"])
        y_BxT, m_BxT = batch["step_label"].astype(jnp.float32), batch["step_mask"]
        xent_BxT = optax.sigmoid_binary_cross_entropy(z_BxT, y_BxT)
        loss = jnp.sum(xent_BxT * m_BxT) / jnp.maximum(jnp.sum(m_BxT), 1.0)
        right_BxT = ((z_BxT > 0) == (y_BxT > 0.5)) | (m_BxT == 0)
        return loss, {"step_accuracy": jnp.sum(((z_BxT > 0) == (y_BxT > 0.5)) * m_BxT)
                      / jnp.maximum(jnp.sum(m_BxT), 1.0),
                      "solution_accuracy": jnp.mean(jnp.all(right_BxT, axis=-1))}

    return loss_fn


def verdict_logits(params, cfg: TransformerConfig, tokens_BxT, yes_id: int, no_id: int):
    """Evaluator logit z = log S - log(1 - S), S = p(yes) / (p(yes) + p(no)), of the LM's
    next-token distribution after each right-padded row's last real token (the EOS of a
    `prompt SEP candidate EOS` row): "the candidate is" -> yes / no (Liu et al. 2023)."""
    logits_BxTxV = _forward(params, cfg, tokens_BxT)
    last_B = jnp.maximum(jnp.sum(tokens_BxT != PAD, axis=-1) - 1, 0)
    logits_BxV = jnp.take_along_axis(logits_BxTxV, last_B[:, None, None], axis=1)[:, 0]
    logits_BxV = logits_BxV.astype(jnp.float32)
    return logits_BxV[:, yes_id] - logits_BxV[:, no_id]


def make_evaluator_loss(model_cfg: TransformerConfig, yes_id: int, no_id: int,
                        kind: str = "ce", margin: float = 1.0) -> LossFn:
    """Evaluator on pair rows (`lm.data.pack_pairs`: chosen = a correct candidate, rejected =
    an incorrect one of the same problem), with z = `verdict_logits`, log S = log sigmoid(z):
    - "ce": cross-entropy of S on both candidates, -(log S(X+) + log(1 - S(X-))) / 2;
    - "margin": max(0, log S(X-) - log S(X+) + margin).
    aux: pair accuracy (z+ > z-) and the mean of S over the correct / incorrect candidates."""
    check(kind in ("ce", "margin"), f"evaluator loss must be 'ce' or 'margin', got {kind!r}")
    check(margin >= 0, f"evaluator margin={margin} must be >= 0")

    def loss_fn(params, batch, rng):
        del rng
        z_pos = verdict_logits(params, model_cfg, batch["chosen_tokens"], yes_id, no_id)
        z_neg = verdict_logits(params, model_cfg, batch["rejected_tokens"], yes_id, no_id)
        if kind == "ce":
            loss = -jnp.mean(jax.nn.log_sigmoid(z_pos) + jax.nn.log_sigmoid(-z_neg)) / 2
        else:
            loss = jnp.mean(jax.nn.relu(jax.nn.log_sigmoid(z_neg) - jax.nn.log_sigmoid(z_pos)
                                        + margin))
        return loss, {"pair_accuracy": jnp.mean(z_pos > z_neg),
                      "s_correct": jnp.mean(jax.nn.sigmoid(z_pos)),
                      "s_incorrect": jnp.mean(jax.nn.sigmoid(z_neg))}

    return loss_fn


def batched_rows(fn: Callable, *arrays, batch_size: int = 512) -> np.ndarray:
    """`fn(*batch) -> [b, ...]` over the rows of `arrays` in fixed-size batches (the last one
    padded by repeating rows, so a jitted `fn` compiles once for any row count)."""
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    out = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size) % n
        out.append(np.asarray(fn(*(a[idx] for a in arrays)))[: min(batch_size, n - start)])
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def sequence_logprobs(params, cfg: TransformerConfig, tokens_NxT, mask_NxT,
                      batch_size: int = 512) -> np.ndarray:
    """Sum over masked positions of `token_logprobs` (the log-probability of each row's
    completion) for N rows in fixed-size batches -> float32[N]."""
    return batched_rows(lambda t, m: token_logprobs(params, cfg, t, m).sum(-1), tokens_NxT,
                        mask_NxT, batch_size=batch_size)


def orm_scores(orm_params, cfg: TransformerConfig, tokens_NxT, batch_size: int = 512):
    """`orm_logits` of N rows in fixed-size batches -> float32[N]."""
    return batched_rows(lambda t: _orm_logits_jit(orm_params, cfg, t), tokens_NxT,
                        batch_size=batch_size)


@functools.partial(jax.jit, static_argnums=1)
def _orm_logits_jit(orm_params, cfg, tokens_BxT):
    return orm_logits(orm_params, cfg, tokens_BxT, None)


#: how `prm_aggregate` turns a solution's step logits into one score
PRM_AGGREGATES = ("min", "mean_logp", "final")


def prm_scores(prm_params, cfg: TransformerConfig, tokens_NxT,
               batch_size: int = 512) -> np.ndarray:
    """`prm_logits` of N rows in fixed-size batches -> z float32[N, T]."""
    return batched_rows(lambda t: _prm_logits_jit(prm_params, cfg, t), tokens_NxT,
                        batch_size=batch_size)


def prm_aggregate(z_NxT, step_mask_NxT, how: str = "min") -> np.ndarray:
    """One score per solution from its step logits z at the labelled positions (step_mask 1):
    "min": the least likely step's logit; "mean_logp": the mean over steps of log p(step
    right) (no penalty for writing more steps); "final": the last labelled step's logit (the
    final line). A row with no labelled step scores +inf ("min") / 0 / +inf."""
    check(how in PRM_AGGREGATES, f"PRM aggregate must be one of {PRM_AGGREGATES}, got {how!r}")
    z, m = np.asarray(z_NxT, np.float64), np.asarray(step_mask_NxT) > 0
    if how == "min":
        return np.where(m, z, np.inf).min(-1)
    if how == "mean_logp":
        return np.where(m, -np.logaddexp(0.0, -z), 0.0).sum(-1) / np.maximum(m.sum(-1), 1)
    last = m.shape[1] - 1 - np.argmax(m[:, ::-1], axis=-1)
    return np.where(m.any(-1), z[np.arange(len(z)), last], np.inf)


@functools.partial(jax.jit, static_argnums=1)
def _prm_logits_jit(prm_params, cfg, tokens_BxT):
    return prm_logits(prm_params, cfg, tokens_BxT)


def evaluator_scores(params, cfg: TransformerConfig, tokens_NxT, yes_id: int, no_id: int,
                     batch_size: int = 512) -> np.ndarray:
    """S = sigmoid(`verdict_logits`) of N rows in fixed-size batches -> float32[N]."""
    return batched_rows(lambda t: _verdict_s_jit(params, cfg, t, yes_id, no_id), tokens_NxT,
                        batch_size=batch_size)


@functools.partial(jax.jit, static_argnums=(1, 3, 4))
def _verdict_s_jit(params, cfg, tokens_BxT, yes_id, no_id):
    return jax.nn.sigmoid(verdict_logits(params, cfg, tokens_BxT, yes_id, no_id))


def fit(trainer: Trainer, state: TrainState, data, num_steps: int, *, chunk: int = 100,
        seeds: bool = False, description: str = "SFT", aux: bool = False):
    """Run `num_steps` steps in compiled chunks of `chunk`, advancing a progress bar and
    raising DivergedError at the first non-finite loss. -> (state, losses [(seeds,) steps]),
    or with `aux=True` (state, losses, {name: [(seeds,) steps]})."""
    if aux:
        run = trainer.run_seeds_aux if seeds else trainer.run_aux
    else:
        run = trainer.run_seeds if seeds else trainer.run
    out, auxes, done = [], [], 0
    with progress.bar(description, total=num_steps) as bar:
        while done < num_steps:
            k = min(chunk, num_steps - done)
            if aux:
                state, losses, a = run(state, data, k)
                auxes.append(jax.tree_util.tree_map(np.asarray, a))
            else:
                state, losses = run(state, data, k)
            losses = np.asarray(losses)
            check_losses(losses, start_step=done, lr=trainer.train_cfg.lr, where=description)
            out.append(losses)
            done += k
            bar.advance(k)
    losses = np.concatenate(out, axis=-1)
    if not aux:
        return state, losses
    return state, losses, {k: np.concatenate([a[k] for a in auxes], axis=-1)
                           for k in (auxes[0] if auxes else {})}


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
