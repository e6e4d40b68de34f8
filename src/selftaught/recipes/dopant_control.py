"""dopant-control — learning and controlling Si dopant transitions in graphene (sim.md §2).

    selftaught run dopant-control --preset default
    # measured for issue 30 (both worlds): 4 min 20 s wall, 240 CPU-seconds, peak RSS
    # 0.70 GiB, on the shared 2-core machine at load average 9-11 (not measured idle; the
    # off-axis world alone took 1 min 11 s idle, and the control world adds a collect,
    # learn and control phase per seed but no budget sweep)

Expected (default preset, 5 seeds, 4096 exploratory exposures per seed; measured, all three
claims hold): in the off-axis world the learned ensemble recovers the rate map to 0.180
[0.159, 0.201] normalised error (tolerance 0.221) and finds the off-axis optimum (within
~0.03 Å), so greedy control with it needs 6.36 beam seconds per goal — the oracle's 6.33 s —
against 14.3 s for the human prior (putting-dune's: a Gaussian 0.85 bond lengths ≈ 1.21 Å
out, variance 0.1 bond lengths²): prior − learned = 7.99 [7.76, 8.20] s; a random beam
reaches only ~16% of goals within 100 exposures. In the prior-like control world the
learned controller needs 6.51 s vs the prior's 6.34 s (= the oracle's): +2.65 [1.04, 4.51] %
— slightly but consistently slower, inside the 10% non-inferiority margin. With only
256-1024 exposures the learned controller is not reliably better than the prior (see the
data-efficiency table).

Per seed, in each of two worlds — the main ground truth (--truth, `offaxis`: lobes beside
the bond axis, so the human prior is plausible but wrong) and the control world
(--control-truth, `prior-like`: one lobe exactly where the human prior puts it) — with the
same keys and goals in both:
  1. collect  the exploratory beam policy (uniform beam in a disk, log-uniform dwell) runs on
              the simulator; the exposures are written to data/[WORLD/]seedS.jsonl (see
              selftaught.sim.dopant.data for the format).
  2. learn    read the file back, fit a bootstrap ensemble of MLPs (3 neighbour logits + total
              rate) with the Poisson/KMC likelihood and D3 augmentation, vmapped over
              members; optionally distil it into one network; score the rate map.
  3. control  greedy control from the origin to goals at several jump distances, with the
              learned, human-prior and oracle rate models (same goals and random numbers for
              all), and the random-beam baseline.
  4. budget   (main world only) the learned controller from the first N exposures only.
Report: rate-map error, success rate, steps and beam seconds to goal with bootstrap CIs over
seeds, for both worlds.

Claims (unit: training seeds — each seed is an independent data set, ensemble and goal set;
n = seeds; per-seed means over the goals, 95% bootstrap CI over seeds):
  learned_fewer_beam_seconds  main world: human prior − learned beam seconds per goal > 0.
  rate_map_recovered          main world: the learned map's normalised error Σ|λ̂−λ|/Σλ is
              below the error of the true map with its weakest lobe removed
              (`metrics.missing_lobe_error`; 0.221 for `offaxis`, whose weakest lobe is the
              weight-0.4 lobe near the Si). A map under it cannot have missed a lobe of the
              truth while being exact elsewhere, so "recovered" means every lobe was found;
              the tolerance follows from the truth's own structure, not from a measured map
              (it replaces a stated 0.3). For scale: the best-amplitude human prior scores
              0.66, and a 10% amplitude error or a 0.05 Å shift of every lobe scores 0.10 and
              0.14.
  learned_not_worse_where_prior_is_right  control world: (learned − prior) / prior beam
              seconds per goal, in %, has its CI's upper end below --prior-world-margin
              (10%): non-inferiority, since where the prior is right the learned model can at
              best tie it (the prior's best beam positions are the oracle's there). 10% is
              small beside the effect claimed in the main world (the prior needs ~2.2x the
              learned model's beam time) and, at the prior's ~6.3 s per goal there, is
              under one 1-s exposure per goal.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from selftaught import stats
from selftaught.core import progress
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.recipe import Claim, Recipe, Report
from selftaught.core.rundir import RunDir
from selftaught.core.seeding import np_rng
from selftaught.sim.dopant import control, data, lattice, learn, metrics, rates, sim
from selftaught.sim.dopant.learn import LearnConfig
from selftaught.sim.dopant.plots import plot_rate_maps

CONTROLLERS = ("learned", "human-prior", "oracle", "random")
LEARNED_MODELS = ("ensemble", "distilled")


@dataclasses.dataclass(frozen=True)
class DopantControlConfig:
    seed: int = 0
    """first seed; seeds are seed, seed+1, ..."""
    num_seeds: int = 5
    """seeds (independent data sets, ensembles and goal sets) for the CIs"""
    truth: str = "offaxis"
    """ground-truth rate function: offaxis (multi-modal) | prior-like (the prior is right)"""
    control_truth: str = "prior-like"
    """control world run beside --truth on the same seeds (collect, learn, control; no
    data-budget sweep): prior-like, the ground truth where the human prior is right, in
    which the learned controller must not lose to it ('' or the same as --truth skips it)"""
    prior_world_margin: float = 0.1
    """non-inferiority margin in the control world, as a fraction of the human prior's beam
    seconds per goal: the learned controller may need at most this much more there"""
    sessions: int = 64
    """exploration sessions (vmapped)"""
    steps_per_session: int = 64
    """exposures per exploration session"""
    explore_radius: float = 2.2
    """exploratory beam: uniform in a disk of this radius (Å) around the Si"""
    dwell_range: tuple[float, float] = (0.3, 3.0)
    """exploratory dwell times, log-uniform in this range (s)"""
    vary_settings: bool = False
    """vary voltage and current during exploration and feed them to the network"""
    voltage_range: tuple[float, float] = (55.0, 65.0)
    """exploration voltage range (kV) when vary_settings"""
    current_range: tuple[float, float] = (30.0, 70.0)
    """exploration current range (pA) when vary_settings"""
    learn: LearnConfig = LearnConfig()
    """how the rate model is learned (bootstrap ensemble, its training and distillation)"""
    learned_model: str = "ensemble"
    """which learned model drives the controller: ensemble | distilled"""
    symmetrize: bool = True
    """average the learned model's predictions over the D3 group (exactly equivariant)"""
    distances: tuple[int, ...] = (2, 4, 6)
    """goal distances in jumps from the start site"""
    goals_per_distance: int = 20
    """goals drawn per distance and seed"""
    max_steps: int = 100
    """exposure budget per episode (a failure costs max_steps * dwell_s beam seconds)"""
    dwell_s: float = 1.0
    """dwell per control exposure (s) at 60 kV, 50 pA"""
    random_radius: float = 2.0
    """random-beam baseline: uniform in a disk of this radius (Å)"""
    grid_n: int = 81
    """grid search resolution per axis over [-2, 2]² Å for the best beam position"""
    data_budgets: tuple[int, ...] = (256, 1024)
    """data-efficiency sweep: also learn from only the first N exposures (() skips it)"""
    budget_members: int = 5
    """ensemble size per budget in the data-efficiency sweep (all budgets train in one
    vmapped run; members x budgets = learn.members reuses the compiled trainer)"""

    def validate(self) -> None:
        if self.truth not in rates.TRUTHS:
            raise UnknownNameError("dopant ground truth (--truth)", self.truth, list(rates.TRUTHS))
        if self.control_truth not in ("", "prior-like"):
            raise ConfigError(f"--control-truth must be prior-like (the world where the human "
                              f"prior is right) or '' (none), got {self.control_truth!r}")
        if not 0 < self.prior_world_margin < 1:
            raise ConfigError(f"--prior-world-margin must be a fraction in (0, 1), "
                              f"got {self.prior_world_margin}")
        if self.learned_model not in LEARNED_MODELS:
            raise UnknownNameError("learned model (--learned-model)", self.learned_model,
                                   LEARNED_MODELS)
        if self.learned_model == "distilled" and self.learn.distill_steps < 1:
            raise ConfigError("--learned-model distilled needs --learn.distill-steps >= 1")
        for name in ("num_seeds", "sessions", "steps_per_session", "goals_per_distance",
                     "max_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, "
                                  f"got {getattr(self, name)}")
        for name in ("explore_radius", "dwell_s", "random_radius"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, "
                                  f"got {getattr(self, name)}")
        lo, hi = self.dwell_range
        if not 0 < lo <= hi:
            raise ConfigError(f"--dwell-range needs 0 < low <= high, got {self.dwell_range}")
        if not 0 < self.voltage_range[0] <= self.voltage_range[1]:
            raise ConfigError(f"--voltage-range needs 0 < low <= high, got {self.voltage_range}")
        if not 0 <= self.current_range[0] <= self.current_range[1]:
            raise ConfigError(f"--current-range needs 0 <= low <= high, got {self.current_range}")
        if not self.distances or not all(1 <= d <= 20 for d in self.distances):
            raise ConfigError(f"--distances must be jump counts in 1..20, got {self.distances}")
        total = self.sessions * self.steps_per_session
        if not all(1 <= b <= total for b in self.data_budgets):
            raise ConfigError(f"--data-budgets must be exposure counts in 1..{total} "
                              f"(sessions x steps-per-session), got {self.data_budgets}")
        if self.budget_members < 1:
            raise ConfigError(f"--budget-members must be >= 1, got {self.budget_members}")
        if self.grid_n < 3:
            raise ConfigError(f"--grid-n must be >= 3, got {self.grid_n}")


SMOKE = DopantControlConfig(
    num_seeds=2, learn=LearnConfig(members=2, steps=600, distill_steps=200),
    distances=(2, 3), goals_per_distance=6, max_steps=40,
    data_budgets=(512,), budget_members=2,
)
DEFAULT = DopantControlConfig(learn=LearnConfig(members=10, steps=1500, distill_steps=1000))
PAPER = DopantControlConfig(
    num_seeds=10, sessions=256, vary_settings=True,
    learn=LearnConfig(members=50, width=128, steps=10000, distill_steps=5000),
    distances=(2, 4, 6, 8, 10), goals_per_distance=50, max_steps=200, grid_n=161,
    data_budgets=(1024, 4096), budget_members=25,
)


def _settings(cfg):
    if cfg.vary_settings:
        return cfg.voltage_range, cfg.current_range
    return (rates.V_REF, rates.V_REF), (rates.I_REF, rates.I_REF)


def worlds(cfg: DopantControlConfig) -> list[tuple[str, str]]:
    """(ground truth, phase/checkpoint prefix) of each world a run covers: the main world
    (--truth, no prefix) and the control world (--control-truth) unless skipped."""
    out = [(cfg.truth, "")]
    if cfg.control_truth and cfg.control_truth != cfg.truth:
        out.append((cfg.control_truth, f"{cfg.control_truth}/"))
    return out


def phases(cfg: DopantControlConfig, seeds: list[int]) -> list[str]:
    """The phases of a complete run, in order."""
    out = []
    for s in seeds:
        for i, (_, prefix) in enumerate(worlds(cfg)):
            names = ("collect", "learn", "control")
            names += ("budget",) if cfg.data_budgets and i == 0 else ()
            out += [f"seed{s}/{prefix}{n}" for n in names]
    return out


def run(cfg: DopantControlConfig, run_dir: RunDir, seeds: list[int]) -> None:
    for seed, (world, prefix) in [(s, w) for s in seeds for w in worlds(cfg)]:
        key = jax.random.PRNGKey(seed)  # the same keys in both worlds
        data_path = run_dir.path / "data" / f"{prefix}seed{seed}.jsonl"
        at = f"seed{seed}/{prefix}"
        run_dir.phase(f"{at}collect", collect, cfg, run_dir, seed, world, key, data_path)
        ckpt = run_dir.phase(f"{at}learn", learn_rates, cfg, run_dir, seed, world, key,
                             data_path)
        run_dir.phase(f"{at}control", control_episodes, cfg, seed, world, key, ckpt)
        if cfg.data_budgets and not prefix:  # data efficiency: main world only
            run_dir.phase(f"seed{seed}/budget", data_budgets, cfg, run_dir, seed, world, key,
                          data_path)


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


@functools.lru_cache(maxsize=4)
def _compiled(cfg: DopantControlConfig, world: str):
    """The jitted exploration and control loops of a config in a world (ground truth),
    compiled once per process."""
    truth = rates.ground_truth(world)
    volts, amps = _settings(cfg)
    explore = jax.jit(lambda k: sim.explore(
        truth, k, num_sessions=cfg.sessions, steps=cfg.steps_per_session,
        radius=cfg.explore_radius, dwell_range=cfg.dwell_range,
        voltage_range=volts, current_range=amps))
    episodes = jax.jit(lambda table, goals, k, radius: control.run_episodes(
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


# ---------------------------------------------------------------------------- report
def _in_world(run_dir: RunDir, event: str, world: str, main: str) -> list[dict]:
    """Events of one world (events logged before the control world existed are the main
    world's)."""
    return [e for e in run_dir.events(event) if e.get("world", main) == world]


def report(cfg: DopantControlConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    eps = {(e["seed"], e["controller"]): e
           for e in _in_world(run_dir, "episodes", cfg.truth, cfg.truth)}
    done = [s for s in seeds if all((s, c) in eps for c in CONTROLLERS)]
    if not done:
        return Report([], "No finished control phase yet; resume the run.")
    dists = list(cfg.distances)
    fmt = lambda t, p=3: stats.ci_cell(t, f".{p}g")

    def per_seed(ctrl, field, hops=None, table=eps, among=done):
        out = []
        for s in among:
            e = table[(s, ctrl)]
            v = np.asarray(e[field], np.float64)
            if hops is not None:
                v = v[np.asarray(e["hops"]) == hops]
            out.append(v.mean())
        return np.asarray(out)

    # Tables and plots of control.
    beam = {c: stats.bootstrap_ci(per_seed(c, "beam_time")) for c in CONTROLLERS}
    succ = {c: stats.bootstrap_ci(per_seed(c, "success")) for c in CONTROLLERS}
    steps = {c: stats.bootstrap_ci(per_seed(c, "steps")) for c in CONTROLLERS}
    by_dist = {c: np.stack([[per_seed(c, "beam_time", d)[i] for d in dists]
                            for i in range(len(done))]) for c in CONTROLLERS}
    succ_dist = {c: np.stack([[per_seed(c, "success", d)[i] for d in dists]
                              for i in range(len(done))]) for c in CONTROLLERS}
    stats.plot_curves(run_dir.plots / "beam_seconds_by_distance.png", dists, by_dist,
                      xlabel="goal distance (jumps)", ylabel="beam seconds to goal",
                      title="Beam time to goal (failures count as the budget)")
    stats.plot_curves(run_dir.plots / "success_by_distance.png", dists, succ_dist,
                      xlabel="goal distance (jumps)", ylabel="success rate")
    stats.plot_bars(run_dir.plots / "beam_seconds.png", beam, ylabel="beam seconds to goal")

    # Rate maps: errors over seeds, heatmaps of the first seed, loss curves.
    learns = {e["seed"]: e for e in _in_world(run_dir, "learn", cfg.truth, cfg.truth)}
    lseeds = [s for s in done if s in learns]
    err_names = list(learns[lseeds[0]]["map_error"]) if lseeds else []
    map_err = {k: stats.bootstrap_ci([learns[s]["map_error"][k] for s in lseeds])
               for k in err_names}
    peak = {k: stats.bootstrap_ci([learns[s]["peak_offset"][k] for s in lseeds])
            for k in err_names}
    maps = {e["seed"]: e for e in _in_world(run_dir, "rate_maps", cfg.truth, cfg.truth)}
    if lseeds and lseeds[0] in maps:
        m = maps[lseeds[0]]
        truth_map, learned_map = np.asarray(m["truth"]), np.asarray(m["learned"])
        prior_peaks = lattice.NEIGHBOURS_3x2 * rates.HUMAN_PRIOR_PEAK_BONDS
        learned_peaks = [eps[(lseeds[0], "learned")]["beam"]]
        plot_rate_maps(
            run_dir.plots / "rate_maps.png", m["extent"],
            {"ground truth Σλ (1/s)": truth_map, "learned Σλ (1/s)": learned_map,
             "|learned − truth|": np.abs(learned_map - truth_map),
             "ensemble std": np.asarray(m["ensemble_std"])},
            marks={"human prior": prior_peaks,
                   "learned best beam (nbr 0)": np.asarray(learned_peaks)},
            title=f"Rate maps, seed {lseeds[0]} (60 kV, 50 pA)")
        stats.plot_curves(run_dir.plots / "training_loss.png", learns[lseeds[0]]["loss_steps"],
                          {"ensemble mean": np.asarray([learns[s]["loss"] for s in lseeds])},
                          xlabel="step", ylabel="KMC negative log-likelihood")

    # Data efficiency: learned-controller beam seconds vs number of exposures learned from.
    budget_ev = {(e["seed"], e["records"]): e
                 for e in _in_world(run_dir, "budget", cfg.truth, cfg.truth)}
    full = cfg.sessions * cfg.steps_per_session
    budgets = [b for b in sorted(cfg.data_budgets) if all((s, b) in budget_ev for s in done)]
    budget_rows = []
    if budgets:
        xs = [*budgets, full]
        curve = np.stack([[np.mean(budget_ev[(s, b)]["beam_time"]) for b in budgets]
                          for s in done])
        curve = np.concatenate([curve, per_seed("learned", "beam_time")[:, None]], axis=1)
        flat = lambda c: np.repeat(per_seed(c, "beam_time")[:, None], len(xs), axis=1)
        stats.plot_curves(run_dir.plots / "beam_seconds_vs_data.png", np.log2(xs),
                          {"learned": curve, "human prior": flat("human-prior"),
                           "oracle": flat("oracle")},
                          xlabel="log2(exposures learned from)",
                          ylabel="beam seconds to goal")
        for i, b in enumerate(budgets):
            errs = [budget_ev[(s, b)]["map_error"] for s in done]
            succ_b = [np.mean(budget_ev[(s, b)]["success"]) for s in done]
            budget_rows.append(
                [f"{b} ({cfg.budget_members} members)", fmt(stats.bootstrap_ci(errs)),
                 fmt(stats.bootstrap_ci(curve[:, i])), fmt(stats.bootstrap_ci(succ_b))])
        budget_rows.append(
            [f"{full} ({cfg.learn.members} members)",
             fmt(stats.bootstrap_ci([learns[s]['map_error']['learned'] for s in lseeds])),
             fmt(beam['learned']), fmt(succ['learned'])])

    # Claims.
    prior_bt, learned_bt = per_seed("human-prior", "beam_time"), per_seed("learned", "beam_time")
    diff = stats.paired_difference_ci(prior_bt, learned_bt)
    claims = [stats.claim_greater(
        "learned_fewer_beam_seconds",
        "greedy control with the learned rate model reaches goals with fewer beam seconds "
        "than with the human prior (prior − learned, s per goal, paired over seeds)", diff,
        unit="training seeds")]
    map_tolerance = metrics.missing_lobe_error(rates.ground_truth(cfg.truth))
    if "learned" in map_err:
        claims.append(stats.claim_less(
            "rate_map_recovered",
            "the learned rate map's normalised error Σ|λ̂−λ|/Σλ is below "
            f"{map_tolerance:.3g}, the error of the true map with its weakest lobe removed "
            "(so no lobe of the truth was missed)", map_err["learned"], map_tolerance,
            unit="training seeds"))
    control_lines, control_claim = _control_world(cfg, run_dir, seeds, per_seed, fmt)
    if control_claim is not None:
        claims.append(control_claim)

    lines = [
        "## Control", "",
        f"{len(done)} seed(s) × {len(dists)} distances × {cfg.goals_per_distance} goals; "
        f"{cfg.dwell_s:g} s per exposure, budget {cfg.max_steps} exposures (a failure counts "
        "as the whole budget). Mean per goal with 95% bootstrap CI over seeds.", "",
        stats.markdown_table(["controller", "success rate", "exposures", "beam seconds"],
                             [[c, fmt(succ[c]), fmt(steps[c]), fmt(beam[c])]
                              for c in CONTROLLERS]),
    ]
    lines += ["", "Beam seconds by goal distance (mean over seeds):", "",
              stats.markdown_table(["controller", *(f"{d} jumps" for d in dists)],
                                   [[c, *(f"{v:.3g}" for v in by_dist[c].mean(0))]
                                    for c in CONTROLLERS])]
    lines += ["", "## Rate map", "",
              "Normalised error Σ|λ̂−λ|/Σλ over beam positions within 1.8 Å (all neighbours) "
              "and distance from the model's best beam position to the true one (Å); the human "
              "prior gets its best amplitude.", "",
              stats.markdown_table(["model", "map error", "peak offset (Å)"],
                                   [[k, fmt(map_err[k]), fmt(peak[k])] for k in err_names])]
    if budget_rows:
        lines += ["", "## Data efficiency", "",
                  "The learned controller when the ensemble sees only the first N exposures "
                  f"(human prior {fmt(beam['human-prior'])} s, oracle {fmt(beam['oracle'])} s "
                  "beam per goal).", "",
                  stats.markdown_table(["exposures", "map error", "beam seconds",
                                        "success rate"], budget_rows), "",
                  "With few exposures the maximum-likelihood rates can spike where isolated "
                  "jumps were seen (a jump's likelihood grows as λ → ∞), so the map error can "
                  "be large even where the best beam position is roughly right."]
    lines += control_lines
    lines += ["", "## Verdict", "", _verdict(claims[0], beam), "",
              "Plots: rate_maps.png, beam_seconds.png, beam_seconds_by_distance.png, "
              "success_by_distance.png, training_loss.png"
              + (", beam_seconds_vs_data.png." if budget_rows else ".")]
    return Report(claims, "\n".join(lines))


def _control_world(cfg, run_dir, seeds, per_seed, fmt):
    """The control world's table lines and its non-inferiority claim (None without it)."""
    if len(worlds(cfg)) < 2:
        return [], None
    world = cfg.control_truth
    eps = {(e["seed"], e["controller"]): e
           for e in _in_world(run_dir, "episodes", world, cfg.truth)}
    among = [s for s in seeds if all((s, c) in eps for c in CONTROLLERS)]
    if not among:
        return [], None
    get = lambda c, f: per_seed(c, f, table=eps, among=among)
    prior, learned = get("human-prior", "beam_time"), get("learned", "beam_time")
    # per seed: how much longer (%) the learned controller takes than the prior
    rel = stats.paired_difference_ci(100 * (learned - prior) / prior, np.zeros(len(among)),
                                     unit="training seeds")
    margin = 100 * cfg.prior_world_margin
    claim = stats.claim_less(
        "learned_not_worse_where_prior_is_right",
        f"in the {world} world (the human prior is right), greedy control with the learned "
        f"model needs less than {margin:g}% more beam seconds per goal than with the human "
        "prior (learned − prior, % of the prior's, paired over seeds; non-inferiority)",
        rel, margin, unit="training seeds")
    learns = [e for e in _in_world(run_dir, "learn", world, cfg.truth) if e["seed"] in among]
    lines = ["", f"## Control world: {world}", "",
             f"The same seeds, exploration, learning and goals in the `{world}` ground truth, "
             "where the human prior's shape is right. Mean per goal with 95% bootstrap CI "
             "over seeds.", "",
             stats.markdown_table(["controller", "success rate", "beam seconds"],
                                  [[c, fmt(stats.bootstrap_ci(get(c, 'success'))),
                                    fmt(stats.bootstrap_ci(get(c, 'beam_time')))]
                                   for c in CONTROLLERS])]
    lines += ["", f"Learned − human prior: {fmt(rel)} % of the prior's beam seconds "
              f"(non-inferiority margin {margin:g}%)."]
    if learns:
        lines += ["", "Rate-map error there:", ""]
        for name in ("learned", "human-prior (best scale)"):
            err = stats.bootstrap_ci([e["map_error"][name] for e in learns])
            lines.append(f"- {name}: {fmt(err)}")
    return lines, claim


def _verdict(claim: Claim, beam: dict) -> str:
    ratio = beam["human-prior"][0] / max(beam["learned"][0], 1e-9)
    if claim.holds:
        return (f"The learned model needs fewer beam seconds than the human prior "
                f"({beam['learned'][0]:.3g} s vs {beam['human-prior'][0]:.3g} s per goal, "
                f"{ratio:.2f}x; oracle {beam['oracle'][0]:.3g} s); the CI of the paired "
                "difference excludes zero.")
    if claim.undetermined:
        return (f"Undetermined: {claim.note} (learned {beam['learned'][0]:.3g} s vs human "
                f"prior {beam['human-prior'][0]:.3g} s per goal).")
    return (f"Not shown at this scale: the learned model used {beam['learned'][0]:.3g} s vs "
            f"{beam['human-prior'][0]:.3g} s for the human prior per goal, and the CI of the "
            f"paired difference [{claim.ci_low:.3g}, {claim.ci_high:.3g}] s does not exclude "
            "zero (more seeds or data may settle it).")


RECIPE = Recipe(
    name="dopant-control",
    description="Si dopant in graphene: learn jump rates (KMC likelihood, bootstrap "
    "ensemble) and steer the dopant with them",
    config_cls=DopantControlConfig,
    presets={"smoke": SMOKE, "default": DEFAULT, "paper": PAPER},
    run=run,
    report=report,
    phases=phases,
)
