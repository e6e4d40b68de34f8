"""dopant-control: each phase's work (collect beam experiments, learn the rate map, run the
controllers' episodes, the data-budget sweep) and the compiled simulator programs."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from selftaught.core import programs, progress
from selftaught.core.rundir import RunDir
from selftaught.core.seeding import np_rng
from selftaught.recipes.dopant_control.config import (
    CONTROLLERS,
    DopantControlConfig,
    _settings,
)
from selftaught.sim.dopant import control, data, learn, metrics, rates, sim


def collect(log, cfg: DopantControlConfig, run_dir: RunDir, seed: int, world: str, key,
            data_path) -> None:
    """Exploratory exposures, recorded to a JSONL file (sealed: its checksum is verified
    before each read)."""
    explore, _ = _compiled(cfg, world)
    obs = explore(jax.random.fold_in(key, 1))
    data.write_experiments(data_path, obs)
    run_dir.seal(data_path)
    log("collect", seed=seed, world=world, records=int(obs.moved.size),
        moved_fraction=float(np.mean(obs.moved)))


def learn_rates(log, cfg: DopantControlConfig, run_dir: RunDir, seed: int, world: str, key,
                data_path) -> dict:
    """A bootstrap ensemble fitted with the KMC likelihood (+ its distilled network),
    scored against the ground truth; the checkpoint is {"ensemble", "distilled"?}."""
    volts, amps = _settings(cfg)
    run_dir.verify(data_path)
    obs = data.read_experiments(data_path)
    with progress.bar(f"seed {seed}: ensemble", total=cfg.learn.steps) as bar:
        ensemble, losses = learn.train_ensemble(
            jax.random.fold_in(key, 2), obs, cfg.learn,
            use_settings=cfg.vary_settings, on_chunk=bar.advance)
    ckpt = {"ensemble": ensemble.params_M}
    if cfg.learn.distill_steps:
        student, _ = learn.distill(
            jax.random.fold_in(key, 3), ensemble, cfg.learn, radius=cfg.explore_radius,
            voltage_range=volts, current_range=amps, use_settings=cfg.vary_settings)
        ckpt["distilled"] = student.params
    _log_rate_maps(cfg, log, seed, world, ckpt, losses)
    return ckpt


def control_episodes(log, cfg: DopantControlConfig, seed: int, world: str, key,
                     ckpt: dict) -> None:
    """Greedy control with each rate model, and the random baseline."""
    truth = rates.ground_truth(world)
    _, episodes = _compiled(cfg, world)
    learned = _learned_model(cfg, ckpt)
    goals = control.sample_goals(np_rng(seed, 4), cfg.distances, cfg.goals_per_distance)
    models = {"learned": learned, "human-prior": rates.human_prior(),
              "oracle": truth, "random": truth}
    for name in CONTROLLERS:
        table = control.beam_table(models[name], n=cfg.grid_n)
        radius = cfg.random_radius if name == "random" else 0.0
        # the same key for every controller: common random numbers
        res = episodes(table, goals[:, :3], jax.random.fold_in(key, 5), radius)
        log("episodes", seed=seed, world=world, controller=name, beam=table[0],
            hops=goals[:, 3], success=res.success, steps=res.steps,
            beam_time=res.beam_time, jumps=res.jumps)


def data_budgets(log, cfg: DopantControlConfig, run_dir: RunDir, seed: int, world: str, key,
                 data_path) -> None:
    """The learned controller when only the first N exposures exist: `budget_members`
    members per budget, all budgets in one vmapped ensemble."""
    truth = rates.ground_truth(world)
    _, episodes = _compiled(cfg, world)
    run_dir.verify(data_path)
    obs = data.read_experiments(data_path)
    goals = control.sample_goals(np_rng(seed, 4), cfg.distances, cfg.goals_per_distance)
    sweep = dataclasses.replace(cfg.learn, members=cfg.budget_members * len(cfg.data_budgets))
    ensemble, _ = learn.train_ensemble(
        jax.random.fold_in(key, 6), obs, sweep, use_settings=cfg.vary_settings,
        num_records=np.repeat(cfg.data_budgets, cfg.budget_members))
    parts = learn.split_members(ensemble, [cfg.budget_members] * len(cfg.data_budgets))
    for budget, part in zip(cfg.data_budgets, parts):
        model = rates.symmetrize(part) if cfg.symmetrize else part
        table = control.beam_table(model, n=cfg.grid_n)
        res = episodes(table, goals[:, :3], jax.random.fold_in(key, 5), 0.0)
        log("budget", seed=seed, world=world, records=budget,
            map_error=metrics.rate_map_error(model, truth),
            success=res.success, beam_time=res.beam_time)


@programs.cached(vmap=(programs.JIT, programs.JIT), maxsize=4)
def _compiled(cfg: DopantControlConfig, world: str):
    """The jitted exploration and control loops of a config in a world (ground truth),
    compiled once per process."""
    truth = rates.ground_truth(world)
    volts, amps = _settings(cfg)
    explore = (lambda k: sim.explore(
        truth, k, num_sessions=cfg.sessions, steps=cfg.steps_per_session,
        radius=cfg.explore_radius, dwell_range=cfg.dwell_range,
        voltage_range=volts, current_range=amps))
    episodes = (lambda table, goals, k, radius: control.run_episodes(
        truth, table, goals, k, max_steps=cfg.max_steps, dwell_s=cfg.dwell_s,
        random_radius=radius))
    return explore, episodes


def _models(cfg: DopantControlConfig, ckpt: dict) -> dict:
    """Pytree rate functions of a checkpoint: the ensemble (and the distilled network)."""
    shape = dict(width=cfg.learn.width, depth=cfg.learn.depth, use_settings=cfg.vary_settings)
    out = {"ensemble": learn.EnsembleRates(ckpt["ensemble"], **shape)}
    if "distilled" in ckpt:
        out["distilled"] = learn.NetRates(ckpt["distilled"], **shape)
    return out


def _learned_model(cfg: DopantControlConfig, ckpt: dict):
    """The rate model that drives the 'learned' controller."""
    model = _models(cfg, ckpt)[cfg.learned_model]
    return rates.symmetrize(model) if cfg.symmetrize else model


def _log_rate_maps(cfg, log, seed, world, ckpt, losses) -> None:
    """Rate-map errors of every model and the maps themselves (Σₖ λₖ on a grid)."""
    truth = rates.ground_truth(world)
    models = _models(cfg, ckpt)
    candidates = {
        "learned": _learned_model(cfg, ckpt),
        "ensemble": models["ensemble"],
        "ensemble-symmetrized": rates.symmetrize(models["ensemble"]),
        **({"distilled": models["distilled"]} if "distilled" in models else {}),
        "human-prior (best scale)": rates.human_prior(
            metrics.fitted_scale(rates.human_prior(), truth)),
    }
    errors = {k: metrics.rate_map_error(f, truth) for k, f in candidates.items()}
    peaks = {k: metrics.peak_offset(f, truth) for k, f in candidates.items()}
    # Maps of Σₖ λₖ on every second point of the metrics grid (41 x 41 over ±2 Å).
    _, pts = rates.canonical_grid(metrics.GRID_EXTENT, metrics.GRID_N)
    members = np.asarray(learn.member_rates(models["ensemble"], rates.with_settings(pts)))
    n = metrics.GRID_N
    grid = lambda a: np.round(np.asarray(a).reshape(n, n)[::2, ::2], 4)
    stride = max(1, len(losses) // 100)
    log.headline(map_error=errors["learned"])
    log("learn", seed=seed, world=world, map_error=errors, peak_offset=peaks,
        loss_steps=np.arange(0, len(losses), stride), loss=losses[::stride])
    log("rate_maps", seed=seed, world=world, extent=metrics.GRID_EXTENT,
        truth=grid(metrics.grid_rates(truth)[1].sum(-1)),
        learned=grid(metrics.grid_rates(candidates["learned"])[1].sum(-1)),
        ensemble_std=grid(members.sum(-1).std(axis=0)))
