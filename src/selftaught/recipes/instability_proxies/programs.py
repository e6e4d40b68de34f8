"""instability-proxies: the interventions grouped into structural programs, each one vmapped
`lm.sweep` grid over (intervention, lr, seed) cells, trained and measured."""

from __future__ import annotations

import dataclasses
import functools

import jax.numpy as jnp
import numpy as np

from selftaught.lm import sweep as sw
from selftaught.recipes.instability_proxies.config import (
    InstabilityConfig,
)
from selftaught.recipes.instability_proxies.data import (
    make_batch_fn,
    make_eval_fn,
    model_config,
)


@dataclasses.dataclass(frozen=True)
class Program:
    """One compiled sweep program: a width and the structural switches; its cells vary
    lr, z-loss, warmup, eps and the seed."""

    name: str
    width: int
    qk_ln: bool
    independent_wd: bool = False
    mup: bool = False


INTERVENTIONS = {  # name -> (program switches, traced overrides)
    "baseline": (dict(qk_ln=False), dict(z_loss=0.0)),
    "z_loss": (dict(qk_ln=False), dict(z_loss=1.0)),  # 1.0 = the config's z_loss
    "qk_ln": (dict(qk_ln=True), dict(z_loss=0.0)),
    "qk_ln+z_loss": (dict(qk_ln=True), dict(z_loss=1.0)),
    "+warmup_long": (dict(qk_ln=True), dict(z_loss=1.0, warmup="long")),
    "+eps_1e-15": (dict(qk_ln=True), dict(z_loss=1.0, eps=1e-15)),
    "+indep_wd": (dict(qk_ln=True, independent_wd=True), dict(z_loss=1.0)),
    "+mup": (dict(qk_ln=True, mup=True), dict(z_loss=1.0)),
}


MAIN = ("baseline", "z_loss", "qk_ln", "qk_ln+z_loss")


EXTRA = ("+warmup_long", "+eps_1e-15", "+indep_wd", "+mup")


def plan(cfg: InstabilityConfig) -> dict[str, tuple[Program, list[tuple[str, dict]]]]:
    """{program name: (Program, [(intervention, traced hp of one lr/seed-free cell)])}."""
    out: dict[str, tuple[Program, list]] = {}
    todo = [(w, iv) for w in cfg.widths for iv in MAIN]
    if cfg.extra_width:
        todo += [(cfg.extra_width, iv) for iv in EXTRA]
    for width, iv in todo:
        sw_flags, traced = INTERVENTIONS[iv]
        prog = Program("", width, **sw_flags)
        tags = [t for t, on in (("qkln", prog.qk_ln), ("indepwd", prog.independent_wd),
                                ("mup", prog.mup)) if on]
        prog = dataclasses.replace(prog, name=f"w{width}/" + ("+".join(tags) or "plain"))
        hp = dict(z_loss=cfg.z_loss * traced.get("z_loss", 0.0), eps=traced.get("eps", cfg.eps),
                  warmup_steps=cfg.warmup_long if traced.get("warmup") else cfg.warmup_steps,
                  weight_decay=cfg.weight_decay)
        out.setdefault(prog.name, (prog, []))[1].append((iv, hp))
    return out


def cells_of(cfg: InstabilityConfig, variants, seeds):
    """Per-cell hp dicts of a program: variants x lrs x seeds, with their labels."""
    cells, labels = [], []
    for iv, hp in variants:
        for lr in cfg.lrs:
            for s in seeds:
                cells.append(dict(hp, lr=lr, init_seed=s, data_seed=s))
                labels.append((iv, lr, s))
    return cells, labels


@functools.lru_cache(maxsize=32)
def _sweep(cfg: InstabilityConfig, prog: Program) -> sw.Sweep:
    mcfg = model_config(cfg, prog.width, prog.qk_ln)
    scfg = sw.SweepConfig(total_steps=cfg.steps, batch_size=cfg.batch_size, chunk=cfg.chunk,
                          independent_wd=prog.independent_wd,
                          mup_base_width=cfg.mup_base_width if prog.mup else 0)
    return sw.make_sweep(mcfg, scfg, make_batch_fn(cfg), make_eval_fn(mcfg))


def _decimate(x: np.ndarray, points: int = 30) -> np.ndarray:
    """Means over `points` equal blocks of steps (NaN stays NaN)."""
    n = len(x) // points * points
    return x[:n].reshape(points, -1).mean(axis=1) if n else x


def train_program(log, cfg: InstabilityConfig, run_dir, name: str, prog: Program, variants,
                  seeds: list[int], data) -> None:
    """Every (intervention, lr, seed) cell of one structural program trained together (one
    `lm.sweep` grid), one `cell` event each: final validation loss and log Z, divergence
    step, attention-logit / entropy / log Z over the last 10% of steps and their curves."""
    sweep = _sweep(cfg, prog)
    cells, labels = cells_of(cfg, variants, seeds)
    hp = sw.table(cells)
    init_loss = _init_loss(sweep, hp, data)
    # the grid's mid-phase checkpoints under their own name: the phase returns no result,
    # so a resumed run does not load them once the phase is done
    res = sw.run_grid(sweep, hp, data, run_dir=run_dir, name=f"{name}/grid",
                      description=f"{name} ({len(cells)} cells)")
    tail = max(1, cfg.steps // 10)
    c = res.curves
    for i, (iv, lr, s) in enumerate(labels):
        log("cell", program=name, intervention=iv, width=prog.width, lr=lr, seed=s,
            init_loss=float(init_loss[i]),
            val_loss=float(res.evals["val_loss"][i]),
            val_log_z=float(res.evals["val_log_z"][i]),
            diverged_at=int(res.diverged_at[i]),
            attn_logit_max=float(np.mean(c["attn_logit_max"][i, -tail:])),
            attn_entropy=float(np.mean(c["attn_entropy"][i, -tail:])),
            log_z=float(np.mean(c["log_z"][i, -tail:])),
            curve_attn_logit_max=_decimate(c["attn_logit_max"][i]),
            curve_log_z=_decimate(c["log_z"][i]),
            curve_loss=_decimate(c["loss"][i]))
    log.headline(cells=len(cells))


def _init_loss(sweep: sw.Sweep, hp, data) -> np.ndarray:
    """Validation loss of each cell's initial parameters (the 'loss at init')."""
    states = sweep.init({k: jnp.asarray(v) for k, v in hp.items()})
    return np.asarray(sweep.evaluate(states, data)["val_loss"])
