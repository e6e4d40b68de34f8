"""Guided evolution with a binary discriminator (rl.md §5) on symbolic regression.

    selftaught run guided-evolution --preset default     # ~10-20 min on a 2-core CPU

Algorithm box, per Nguyen equation and seed, for arm in {unguided, guided}:
    population <- random programs (typed DAGs over + - * / sin cos exp log), evaluated
    repeat until `max_evaluations` real evaluations or a program reaches the target:
        parents <- tournament selection (size `tournament_size`) from the population
        unguided: child <- mutate(parent), re-drawn (up to `proposals` times) while its
                  function is already in the fitness cache
        guided:   `proposals` single mutations of the parent; keep the new function the
                  discriminator rates most likely to beat the parent (guide_mode=filter)
        fitness(child) = -NRMSE (cached by functional hash: repeats cost nothing)
        population: children in, oldest out (regularized evolution)
        guided: the GNN pair discriminator trains on pairs from all evaluated programs
Claim: real evaluations to reach the target fitness, unguided / guided (paper: 3.7-4x).
Runs that never reach the target count as `max_evaluations` (censored: the ratio is then
a lower bound of the true one when guided wins).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from selftaught import stats
from selftaught.core import progress
from selftaught.core.errors import ConfigError, check
from selftaught.core.recipe import Claim, Recipe, Report
from selftaught.core.rundir import RunDir, Timer
from selftaught.evolve.backends import BACKENDS, make_backend
from selftaught.evolve.discriminator import Discriminator, guided_mutation
from selftaught.evolve.hashing import FitnessCache, FunctionalHasher
from selftaught.evolve.program import to_formula, to_json
from selftaught.evolve.search import (
    evaluations_to_reach,
    novel_mutation,
    regularized_evolution,
)
from selftaught.evolve.symreg import NGUYEN, SymRegTask, equation

ARMS = ("unguided", "guided")


@dataclasses.dataclass(frozen=True)
class GuidedEvolutionConfig:
    """Regularized evolution with vs without a GNN pair discriminator on Nguyen equations."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i"""
    num_seeds: int = 10
    """seeds when --seeds is not given (each runs both arms)"""
    equations: tuple[str, ...] = ("nguyen1", "nguyen2", "nguyen3")
    """Nguyen benchmark equations (nguyen1 .. nguyen8)"""
    num_nodes: int = 8
    """op nodes per program"""
    population_size: int = 64
    """population of the regularized evolution"""
    tournament_size: int = 8
    """tournament size (parents are the best of this many random members)"""
    batch_size: int = 16
    """children per generation (evaluated together)"""
    max_evaluations: int = 1500
    """real (cache-miss) evaluations per run"""
    target_fitness: float = -0.01
    """a run succeeds when -NRMSE reaches this (NRMSE <= 1%)"""
    p_fresh: float = 0.05
    """probability that a mutation returns a fresh random program"""
    proposals: int = 8
    """guided: mutations proposed per child and screened by the discriminator"""
    guide_mode: str = "filter"
    """guided mutation: filter (best of `proposals` single mutations of the parent) |
    chain (accumulate mutations the discriminator prefers)"""
    disc_dim: int = 32
    """hidden width of the GNN discriminator"""
    disc_layers: int = 2
    """message-passing layers of the GNN discriminator"""
    disc_lr: float = 1e-3
    """discriminator learning rate"""
    disc_train_steps: int = 10
    """discriminator updates after each evaluated batch"""
    disc_min_programs: int = 64
    """evaluated programs before the discriminator starts guiding"""
    curve_points: int = 30
    """points of the success-vs-evaluations curves"""
    backend: str = "inprocess"
    """evaluation backend: inprocess | pool | ray"""
    workers: int = 2
    """worker processes of the pool/ray backends"""
    ray_address: str = ""
    """Ray cluster address (empty: start a local Ray)"""

    def validate(self) -> None:
        check(len(self.equations) >= 1, "give at least one equation (--equations nguyen1)")
        for e in self.equations:
            equation(e)
        if self.backend not in BACKENDS:
            from selftaught.core.errors import UnknownNameError

            raise UnknownNameError("evaluation backend", self.backend, list(BACKENDS))
        check(self.population_size >= 2, f"population_size must be >= 2, got "
              f"{self.population_size}")
        check(1 <= self.tournament_size <= self.population_size,
              f"tournament_size must be in [1, population_size={self.population_size}], got "
              f"{self.tournament_size}")
        check(self.max_evaluations > self.population_size,
              f"max_evaluations ({self.max_evaluations}) must exceed population_size "
              f"({self.population_size})")
        check(self.batch_size >= 1 and self.num_nodes >= 1 and self.proposals >= 0,
              "batch_size and num_nodes must be >= 1 and proposals >= 0")
        if self.guide_mode not in ("filter", "chain"):
            from selftaught.core.errors import UnknownNameError

            raise UnknownNameError("guided mutation mode", self.guide_mode, ["filter", "chain"])
        check(0.0 <= self.p_fresh <= 1.0, f"p_fresh must be in [0, 1], got {self.p_fresh}")
        check(self.target_fitness <= 0.0, "target_fitness is a -NRMSE, so it must be <= 0")


def _run_one(config: GuidedEvolutionConfig, task: SymRegTask, evaluate, seed: int, arm: str):
    space = task.space
    cache = FitnessCache(FunctionalHasher(space))
    rng = np.random.default_rng([seed, 17])
    kw: dict = {}
    online_acc: list[float] = []
    if arm == "guided":
        disc = Discriminator(space, seed=seed, dim=config.disc_dim, layers=config.disc_layers,
                             lr=config.disc_lr, min_programs=config.disc_min_programs,
                             capacity=max(1024, config.max_evaluations + 64))

        def on_batch(inds, is_new):
            progs = [i.program for i in inds]
            fit = [i.fitness for i in inds]
            if disc.ready and len(inds) >= 2:  # accuracy on unseen programs, before training
                online_acc.append(disc.pairwise_accuracy(progs, fit, pairs=64, seed=len(fit)))
            disc.add(progs, fit)
            disc.train(config.disc_train_steps)

        kw = {"mutate_batch": guided_mutation(space, disc, proposals=config.proposals,
                                              p_fresh=config.p_fresh, mode=config.guide_mode,
                                              known=cache.known),
              "on_batch": on_batch}
    else:  # same number of proposals, screened for novelty only
        kw = {"mutate_batch": novel_mutation(space, cache, config.proposals, config.p_fresh)}
    res = regularized_evolution(
        space, evaluate, cache, rng=rng, population_size=config.population_size,
        tournament_size=config.tournament_size, max_evaluations=config.max_evaluations,
        batch_size=config.batch_size, stop_fitness=config.target_fitness, **kw)
    grid = np.linspace(config.max_evaluations / config.curve_points, config.max_evaluations,
                       config.curve_points).astype(int)
    curve = res.best_curve(config.max_evaluations)[grid - 1]
    reached = evaluations_to_reach(res, config.target_fitness)
    return {
        "evals_to_target": float(reached if reached is not None else config.max_evaluations),
        "reached": reached is not None,
        "best_fitness": res.best.fitness,
        "best_formula": to_formula(res.best.program),
        "best_program": to_json(res.best.program),
        "real_evaluations": cache.real_evaluations,
        "candidates": len(res.history),
        "cache_hits": cache.hits,
        "curve_x": grid.tolist(),
        "curve": np.maximum(curve, -10.0).tolist(),
        "disc_online_accuracy": (float(np.nanmean(online_acc))
                                 if np.isfinite(online_acc).any() else float("nan")),
        "stopped_by": ("target" if reached is not None else
                       "budget" if cache.real_evaluations >= config.max_evaluations
                       else "candidate cap"),
    }


def run(config: GuidedEvolutionConfig, run_dir: RunDir, seeds: list[int]) -> None:
    total = len(config.equations) * len(seeds) * len(ARMS)
    with progress.bar("guided-evolution runs", total=total) as bar:
        for eq in config.equations:
            task = SymRegTask(eq, config.num_nodes, seed=config.seed)
            backend = None
            try:
                for seed in seeds:
                    for arm in ARMS:
                        phase = f"{eq}/seed{seed}/{arm}"
                        if run_dir.phase_done(phase):
                            bar.advance()
                            continue
                        if backend is None:
                            backend = make_backend(config.backend, task, workers=config.workers,
                                                   address=config.ray_address or None)
                        timer = Timer()
                        out = _run_one(config, task, backend, seed, arm)
                        run_dir.log("run", phase=phase, equation=eq, seed=seed, arm=arm, **out)
                        run_dir.mark_phase_done(phase, timer())
                        bar.advance()
            finally:
                if backend is not None:
                    backend.close()


def _ratio(s: np.ndarray) -> float:
    return float(np.mean(s[:, 0]) / max(np.mean(s[:, 1]), 1e-9))


def report(config: GuidedEvolutionConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    runs = run_dir.events("run")
    if not runs:
        raise ConfigError(f"{run_dir.path} has no finished runs to report; run it (--resume)")
    by = {(r["equation"], r["seed"], r["arm"]): r for r in runs}
    eqs = [e for e in config.equations if any(k[0] == e for k in by)]
    done_seeds = [s for s in seeds if all((e, s, a) in by for e in eqs for a in ARMS)]
    # per seed: evaluations to target averaged over equations, per arm
    evals = np.array([[np.mean([by[(e, s, a)]["evals_to_target"] for e in eqs]) for a in ARMS]
                      for s in done_seeds])
    if len(evals) == 0:
        raise ConfigError("no seed finished both arms yet; resume the run")
    ratio = stats.bootstrap_ci(evals, _ratio)
    claims = [Claim("evals_ratio_unguided_over_guided",
                    "real evaluations to reach the target fitness, unguided / guided, mean over "
                    "seeds (paper: 3.7-4x fewer with the discriminator); holds if CI > 1",
                    *ratio, holds=ratio[1] > 1.0)]
    success = {a: np.array([[by[(e, s, a)]["reached"] for e in eqs] for s in done_seeds],
                           float) for a in ARMS}
    acc = [by[(e, s, "guided")]["disc_online_accuracy"] for e in eqs for s in done_seeds]
    acc = np.array([a for a in acc if np.isfinite(a)])
    if acc.size:
        pt = stats.bootstrap_ci(acc)
        claims.append(Claim("discriminator_online_accuracy",
                            "pairwise accuracy of the discriminator on freshly evaluated "
                            "programs before training on them; holds if CI > 0.5",
                            *pt, holds=pt[1] > 0.5))
    md = ["## Evaluations to target", "",
          f"Target: -NRMSE >= {config.target_fitness} within {config.max_evaluations} real "
          f"evaluations (failures counted as {config.max_evaluations}).", "",
          "| equation | arm | mean evals to target | success rate | best formula (seed 0) |",
          "|---|---|---|---|---|"]
    for e in eqs:
        for a in ARMS:
            ev = [by[(e, s, a)]["evals_to_target"] for s in done_seeds]
            sr = np.mean([by[(e, s, a)]["reached"] for s in done_seeds])
            f0 = by[(e, done_seeds[0], a)]["best_formula"]
            md.append(f"| {e} ({NGUYEN[e][0]}) | {a} | {np.mean(ev):.0f} | {sr:.0%} | `{f0}` |")
        x = np.asarray(by[(e, done_seeds[0], ARMS[0])]["curve_x"])
        curves = {a: np.array([by[(e, s, a)]["curve"] for s in done_seeds]) for a in ARMS}
        stats.plot_curves(run_dir.plots / f"{e}_best_fitness.png", x, curves,
                          xlabel="real evaluations", ylabel="best -NRMSE",
                          hlines={"target": np.full(len(done_seeds), config.target_fitness)})
        md.append("")
        md.append(f"![{e}](plots/{e}_best_fitness.png)")
    md += ["", f"Success rate over all equations: unguided "
           f"{success['unguided'].mean():.0%}, guided {success['guided'].mean():.0%}; "
           f"seeds {len(done_seeds)}."]
    stats.plot_bars(run_dir.plots / "evals_to_target.png",
                    {a: stats.bootstrap_ci(evals[:, i]) for i, a in enumerate(ARMS)},
                    ylabel="real evaluations to target")
    md += ["", "![evaluations to target](plots/evals_to_target.png)"]
    return Report(claims, "\n".join(md))


PRESETS = {
    "smoke": GuidedEvolutionConfig(num_seeds=2, equations=("nguyen1",), num_nodes=6,
                                   population_size=16, tournament_size=4, batch_size=8,
                                   max_evaluations=120, proposals=2, disc_dim=16,
                                   disc_layers=1, disc_train_steps=4, disc_min_programs=16,
                                   curve_points=10),
    "default": GuidedEvolutionConfig(),
    "paper": GuidedEvolutionConfig(num_seeds=20, equations=tuple(NGUYEN), num_nodes=10,
                                   population_size=300, tournament_size=25,
                                   max_evaluations=20_000, batch_size=64, disc_dim=64,
                                   disc_layers=3, disc_train_steps=20),
}

RECIPE = Recipe(
    name="guided-evolution",
    description="Guided evolution with a GNN binary discriminator: symbolic regression "
                "(Nguyen), evaluations to target with vs without the discriminator",
    config_cls=GuidedEvolutionConfig,
    presets=PRESETS,
    run=run,
    report=report,
)
