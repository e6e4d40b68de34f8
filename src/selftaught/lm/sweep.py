"""Hyper-parameter sweeps as one compiled program (traced numbers, vmapped grid cells).

Numbers (learning rate, weight decay, warmup length, z-loss coefficient, AdamW eps and the
weight-init / data-order seeds) are *traced inputs*: each grid cell is one row of a table of
hyper-parameters, and `lm.train`'s one trainer, made with `traced=True`, trains every cell at
once (`Trainer.run_cells_aux`: `jax.jit(jax.vmap(...))` over the cells' states), so a whole
grid costs one compilation. Structural options (width, qk-layernorm, position encoding,
sequence layout, muParam) change shapes or code and make separate programs (one `Sweep` each).

    sweep = make_sweep(model_cfg, SweepConfig(total_steps=300, batch_size=16), batch_fn)
    hp = grid(lr=[1e-3, 1e-2, 1e-1], init_seed=[0, 1, 2])    # 9 cells, cartesian product
    result = run_grid(sweep, hp, data)                        # or with run_dir= for resume
    result.curves["loss"]                                     # [cells, steps]
    result.diverged_at                                        # [cells], -1 = finite all along

`batch_fn(data, rng) -> {"tokens", "targets", "mask"[, "positions"]}` draws one training
batch (B x T) inside the compiled program; `eval_fn(params, data) -> {name: scalar}` scores
the final parameters of each cell. A cell whose loss turns NaN/inf is *frozen* at its last
finite parameters and reported with `diverged_at` = that step (its evaluation is NaN), so a
diverged cell is a result, never a crash of the sweep. Cells are split over devices when
several are visible and the cell count divides evenly.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core import progress
from selftaught.core.errors import check
from selftaught.lm.model import Transformer, TransformerConfig, attention_stats, init_params
from selftaught.lm.train import (
    TRACED_HPARAMS,
    CellState,
    TrainConfig,
    Trainer,
    make_trainer,
    traced_schedule,
)

HPARAMS = {  # name -> default value of a cell that leaves it out
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_steps": 0.0,
    "z_loss": 0.0,
    "eps": 1e-8,
    "init_seed": 0,
    "data_seed": 0,
}
CURVES = ("loss", "log_z", "attn_logit_max", "attn_entropy", "grad_norm")


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    """Static training options shared by every cell of one compiled sweep program."""

    total_steps: int = 300
    """optimizer steps per cell"""
    batch_size: int = 16
    """sequences per step"""
    clip_norm: float = 1.0
    """global-norm gradient clipping (0 = off)"""
    b1: float = 0.9
    """AdamW beta1"""
    b2: float = 0.95
    """AdamW beta2"""
    final_lr_ratio: float = 0.1
    """cosine decay ends at final_lr_ratio * lr"""
    independent_wd: bool = False
    """decay each step by weight_decay * lr_t / lr (decoupled from the lr's size)"""
    mup_base_width: int = 0
    """simple muParam: hidden-matrix lr scaled by mup_base_width / d_model (0 = off)"""
    chunk: int = 100
    """steps per compiled chunk (a checkpoint is written after each chunk)"""

    def validate(self) -> SweepConfig:
        check(self.total_steps >= 1, f"total_steps={self.total_steps} must be >= 1")
        check(self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1")
        check(self.chunk >= 1, f"chunk={self.chunk} must be >= 1")
        check(self.clip_norm >= 0, f"clip_norm={self.clip_norm} must be >= 0")
        check(0 <= self.b1 < 1 and 0 <= self.b2 < 1, "b1 and b2 must be in [0, 1)")
        check(0 <= self.final_lr_ratio <= 1, "final_lr_ratio must be in [0, 1]")
        check(self.mup_base_width >= 0, "mup_base_width must be >= 0")
        return self


def grid(**axes) -> dict[str, np.ndarray]:
    """Cartesian product of the given hyper-parameter lists -> {name: [cells]} (row-major:
    the last axis varies fastest). Names not given take `HPARAMS` defaults."""
    for name, values in axes.items():
        if name not in HPARAMS:
            raise KeyError(f"unknown sweep hyper-parameter {name!r}; known: {sorted(HPARAMS)}")
        check(len(values) >= 1, f"the {name} grid is empty; give at least one value")
    names = list(axes)
    rows = list(itertools.product(*(list(axes[n]) for n in names)))
    return table([dict(zip(names, r, strict=True)) for r in rows])


def table(cells: list[Mapping[str, float]]) -> dict[str, np.ndarray]:
    """{name: [cells]} from a list of per-cell dicts (missing names take defaults)."""
    check(len(cells) >= 1, "a sweep needs at least one cell")
    out = {}
    for name, default in HPARAMS.items():
        vals = [c.get(name, default) for c in cells]
        dt = np.int32 if name.endswith("seed") else np.float32
        out[name] = np.asarray(vals, dtype=dt)
    return out


schedule = traced_schedule  # the lr schedule of every cell (tested against optax)


def xent_and_logz(logits_BxTxV, targets_BxT, mask_BxT):
    """(mean cross-entropy, mean log Z, mean log Z^2) over masked positions."""
    logz_BxT = jax.nn.logsumexp(logits_BxTxV, axis=-1)
    tgt_BxT = jnp.take_along_axis(logits_BxTxV, targets_BxT[..., None], axis=-1)[..., 0]
    m = mask_BxT.astype(jnp.float32)
    denom = jnp.maximum(m.sum(), 1.0)
    mean = lambda x: jnp.sum(x * m) / denom
    return mean(logz_BxT - tgt_BxT), mean(logz_BxT), mean(jnp.square(logz_BxT))


@dataclasses.dataclass(frozen=True)
class Sweep:
    """One compiled program: `init(hp) -> states` (`CellState`s of `lm.train`, stacked over
    the leading cell axis of `hp`), `chunk(states, data, n) -> (states, metrics)` and
    `evaluate(states, data)`; `init_one` / `chunk_one` are the same for one cell alone.
    `trainer` is the `lm.train` grid trainer (`traced=True`) that trains every cell."""

    model_cfg: TransformerConfig
    cfg: SweepConfig
    trainer: Trainer
    init: Callable
    chunk: Callable
    evaluate: Callable
    init_one: Callable
    chunk_one: Callable


def _lr_multipliers(params, model_cfg: TransformerConfig, base_width: int):
    """Per-leaf lr factor of simple muParam: base/d_model on hidden matrices, 1 elsewhere
    (embeddings, position tables, vectors)."""
    ratio = base_width / model_cfg.d_model

    def mult(path, p):
        names = [getattr(k, "key", str(k)) for k in path]
        hidden = p.ndim >= 2 and not any(n in ("embed", "pos_embed", "fire") for n in names)
        return ratio if hidden else 1.0

    return jax.tree_util.tree_map_with_path(mult, params)


def make_sweep(model_cfg: TransformerConfig, cfg: SweepConfig, batch_fn: Callable,
               eval_fn: Callable | None = None) -> Sweep:
    """Build the compiled program of one structural configuration: `lm.train.make_trainer`
    with traced hyper-parameters, the language-model loss with its z-loss weight traced, the
    attention statistics as aux, cells vmapped with `Trainer.run_cells_aux`."""
    model_cfg.validate()
    cfg.validate()
    check(model_cfg.attention == "plain",
          f"lm.sweep records attention statistics, which blocked attention does not expose; "
          f"use attention='plain' (got {model_cfg.attention!r})")
    model = Transformer(model_cfg)

    def loss_fn(params, batch, rng, hp):
        del rng
        logits, inter = model.apply(params, batch["tokens"], batch.get("positions"),
                                    batch.get("attn_mask"), mutable=["intermediates"])
        xent, logz, logz2 = xent_and_logz(logits, batch["targets"], batch["mask"])
        amax, ent = attention_stats(inter["intermediates"])
        return xent + hp["z_loss"] * logz2, dict(loss=xent, log_z=logz, attn_logit_max=amax,
                                                  attn_entropy=ent)

    mults = None
    if cfg.mup_base_width:
        mults = _lr_multipliers(init_params(model_cfg, jax.random.PRNGKey(0)), model_cfg,
                                cfg.mup_base_width)
    # the numbers come from each cell's hp; these static fields shape the program
    train_cfg = TrainConfig(
        lr=HPARAMS["lr"], warmup_steps=0, total_steps=cfg.total_steps,
        batch_size=cfg.batch_size, weight_decay=HPARAMS["weight_decay"],
        clip_norm=cfg.clip_norm, z_loss=HPARAMS["z_loss"], b1=cfg.b1, b2=cfg.b2,
        eps=HPARAMS["eps"], final_lr_ratio=cfg.final_lr_ratio)
    trainer = make_trainer(loss_fn, train_cfg, model_cfg=model_cfg,
                           batch_fn=lambda key, step, data: batch_fn(data, key), traced=True,
                           independent_wd=cfg.independent_wd, update_scale=mults)

    def init_one(hp) -> CellState:
        params = init_params(model_cfg, jax.random.PRNGKey(hp["init_seed"]))
        return trainer.init_from(params, jax.random.PRNGKey(hp["data_seed"]),
                                 {k: hp[k] for k in TRACED_HPARAMS})

    def metrics(out):
        state, _, aux = out
        return state, aux

    def eval_one(state, data):
        out = eval_fn(state.params, data) if eval_fn is not None else {}
        return {k: jnp.where(state.diverged_at >= 0, jnp.nan, v) for k, v in out.items()}

    return Sweep(
        model_cfg, cfg, trainer,
        init=jax.jit(jax.vmap(init_one)),
        chunk=lambda states, data, n: metrics(trainer.run_cells_aux(states, data, n)),
        evaluate=jax.jit(jax.vmap(eval_one, in_axes=(0, None))),
        init_one=jax.jit(init_one),
        chunk_one=lambda state, data, n: metrics(trainer.run_aux(state, data, n)),
    )


@dataclasses.dataclass
class GridResult:
    hp: dict[str, np.ndarray]  # {name: [cells]}
    curves: dict[str, np.ndarray]  # {name: [cells, steps]} (NaN after divergence)
    diverged_at: np.ndarray  # [cells] int, -1 = never diverged
    evals: dict[str, np.ndarray]  # {name: [cells]} from eval_fn on the final params
    states: Any = None  # stacked CellState of the final parameters

    def cell(self, i: int) -> dict:
        """One cell's hyper-parameters, divergence step and evaluations as plain numbers."""
        return dict({k: v[i].item() for k, v in self.hp.items()},
                    diverged_at=int(self.diverged_at[i]),
                    **{k: float(v[i]) for k, v in self.evals.items()})


def _shard(tree, n_cells: int):
    """Split the cell axis over the devices when there are several and it divides evenly."""
    devices = jax.devices()
    if len(devices) < 2 or n_cells % len(devices):
        return tree
    mesh = jax.sharding.Mesh(np.array(devices), ("cells",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("cells"))
    return jax.device_put(tree, spec)


def run_grid(sweep: Sweep, hp: dict[str, np.ndarray], data, *, run_dir=None,
             name: str = "sweep", description: str = "sweep") -> GridResult:
    """Train every cell of `hp` with one compiled program, in chunks.

    With `run_dir` (a core RunDir), the stacked states and curves are checkpointed as
    `name` after every chunk and a rerun continues from the last one (bit-identical to an
    uninterrupted run, since each chunk is the same program on the same state)."""
    n_cells = len(next(iter(hp.values())))
    total, k = sweep.cfg.total_steps, min(sweep.cfg.chunk, sweep.cfg.total_steps)
    hp_dev = _shard({n: jnp.asarray(v) for n, v in hp.items()}, n_cells)
    states = sweep.init(hp_dev)
    curves: dict[str, list[np.ndarray]] = {c: [] for c in CURVES}
    done = 0
    if run_dir is not None and run_dir.has_checkpoint(name):
        target = {"states": jax.device_get(states), "done": 0,
                  "curves": {c: np.zeros((n_cells, 0), np.float32) for c in CURVES}}
        ck = run_dir.load_checkpoint(name, target)
        states, done = _shard(ck["states"], n_cells), int(ck["done"])
        curves = {c: [np.asarray(ck["curves"][c]).reshape(n_cells, -1)] for c in CURVES}
    with progress.bar(description, total=total) as bar:
        bar.advance(done)
        while done < total:
            n = min(k, total - done)
            states, m = sweep.chunk(states, data, n)
            m = jax.device_get(m)
            for c in CURVES:
                curves[c].append(np.asarray(m[c], np.float32))
            done += n
            bar.advance(n)
            if run_dir is not None and done < total:
                run_dir.save_checkpoint(name, {
                    "states": jax.device_get(states), "done": done,
                    "curves": {c: np.concatenate(curves[c], axis=1) for c in CURVES}})
    evals = {k2: np.asarray(v) for k2, v in jax.device_get(sweep.evaluate(states, data)).items()}
    return GridResult(
        hp={n: np.asarray(v) for n, v in hp.items()},
        curves={c: np.concatenate(curves[c], axis=1) for c in CURVES},
        diverged_at=np.asarray(jax.device_get(states.diverged_at)),
        evals=evals,
        states=states,
    )


def run_cell(sweep: Sweep, hp: dict[str, np.ndarray], i: int, data):
    """Train grid cell `i` alone (un-vmapped program) -> (final CellState, curves, evals).
    The reference a vmapped cell must equal."""
    one = {n: jnp.asarray(v[i]) for n, v in hp.items()}
    state = sweep.init_one(one)
    total, k = sweep.cfg.total_steps, min(sweep.cfg.chunk, sweep.cfg.total_steps)
    parts, done = [], 0
    while done < total:
        n = min(k, total - done)
        state, m = sweep.chunk_one(state, data, n)
        parts.append(jax.device_get(m))
        done += n
    curves = {c: np.concatenate([np.asarray(p[c]) for p in parts]) for c in CURVES}
    ev = sweep.evaluate(jax.tree_util.tree_map(lambda x: x[None], state), data)
    return state, curves, {k2: float(v[0]) for k2, v in ev.items()}
