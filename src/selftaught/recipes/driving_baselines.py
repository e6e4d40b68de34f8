"""driving-baselines: the Waymax paper's planning-agent baseline table, on procedurally
generated scenarios (straight roads, curves, signalised intersections).

    selftaught run driving-baselines --preset default
    (measured for issue 30 with 3 training seeds: 11 min 08 s wall, 466 CPU-seconds, peak RSS
    1.49 GiB, on the shared 2-core machine at load average 5-10; ~4 min per seed)

Expected at default size (measured, 3 training seeds, 200 held-out scenarios, with Waymax's
semantics: closed-loop expert, Waymax's IDM sim agents, object injection and its route
metrics; claims are per-seed means over the held-out scenarios with a 95% bootstrap CI over
the training seeds, n = 3): behaviour cloning with the route in its observation gains
+4.4 [3.8, 4.8] points of route progress over BC without it (holds); against IDM agents the
RL planner trained against log playback has +10.5 [8.5, 12.5] points more
collision-or-off-road episodes than the planner trained against IDM agents (30.7% vs 20.2%;
holds); BC with discretised bicycle actions fails 1.5 [-3.5, 9.5] points less often than BC
with delta actions (does not hold). Moving the log-trained planner from log to IDM agents
costs +30 [29.5, 31] points (a report row, not the claim: it mixes overfitting with IDM
agents being harder for any planner, which the control removes). The expert replays its
log through the bicycle inverse with ADE 1.6e-5 m (a correctness test,
tests/sim/driving/test_recipe.py, not a claim).

Claims (unit: training seeds; each seed trains every learned agent on its own scenarios
and all are evaluated on the same held-out set; fewer than 3 seeds: undetermined):
  routes_help_planning       route progress (points) of BC bicycle with route − without.
  rl_overfits_to_log_agents  collision-or-off-road rate (points) against IDM agents of the
                             RL planner trained vs log playback − the one trained vs IDM
                             agents (the IDM→IDM control).
  bc_discrete_bicycle_best   collision-or-off-road rate (points) of BC delta − BC bicycle.

Algorithm box:
  1. generate a fixed held-out evaluation set (and, per seed, training scenarios)
  2. evaluate expert (log through the bicycle inverse), constant velocity and IDM route
     following in the planning-agent env (only the SDC is controlled, others replay the log)
  3. per seed: behaviour cloning on the logs with (a) DeltaLocal actions, (b) discretised
     bicycle actions, (c) discretised bicycle without the route in the observation; evaluate
  4. per seed: an RL planner (CEM policy search over the parameters of a route-following
     controller; objective = route progress - 2 x [collision or off-road]) trained against
     log-playback agents and against IDM agents; evaluate each against both
  5. report: metrics table (95% bootstrap CIs over training seeds for trained agents, over
     held-out scenarios for the untrained ones), the paired RL train/test-agent comparisons,
     claims, a PNG of a scenario and a GIF of a rollout
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.core import progress
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.recipe import Recipe, Report
from selftaught.core.rundir import RunDir
from selftaught.sim.driving import agents as ag
from selftaught.sim.driving import dynamics as dyn
from selftaught.sim.driving import env as envlib
from selftaught.sim.driving import generator as gen
from selftaught.sim.driving import policies as pol
from selftaught.sim.driving import visualization as vz
from selftaught.stats import paired_difference_ci, plot_bars

AGENTS = ("expert", "constant_velocity", "idm", "bc_delta", "bc_bicycle", "bc_bicycle_noroute",
          "rl_vs_log", "rl_vs_idm")  # fmt: skip
COLUMNS = (
    ("offroad", "off-road %", 100.0),
    ("overlap", "collision %", 100.0),
    ("kinematic_infeasibility", "kin. infeasible %", 100.0),
    ("ade", "ADE (m)", 1.0),
    ("route_progress", "route progress %", 100.0),
    ("off_route", "off-route %", 100.0),
)
SHORT = {"expert": "expert", "constant_velocity": "const. vel.", "idm": "IDM",
         "bc_delta": "BC delta", "bc_bicycle": "BC bicycle", "bc_bicycle_noroute": "BC no route",
         "rl_vs_log": "RL (log)", "rl_vs_idm": "RL (IDM)"}  # fmt: skip
SUMMARY_KEYS = ("offroad", "overlap", "kinematic_infeasibility", "ade", "route_progress",
                "off_route", "wrong_way", "return")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DrivingBaselinesConfig:
    seed: int = 0
    """Base seed (training scenarios, network init, CEM noise)."""
    num_seeds: int = 3
    """training seeds when --seeds is not given (each trains every learned agent on its own
    scenarios; claims about trained agents are paired over them, so fewer than 3 leaves
    them undetermined)"""
    num_train_scenarios: int = 300
    """generated scenarios the behaviour-cloning agents train on"""
    num_eval_scenarios: int = 200
    """Held-out generated scenarios every agent is evaluated on."""
    num_objects: int = 32
    """objects (agents) per generated scenario"""
    eval_batch: int = 50
    """Scenarios per vmapped evaluation call."""
    bc_steps: int = 3000
    """behaviour-cloning gradient steps"""
    bc_batch: int = 256
    """behaviour-cloning batch size (agent-steps)"""
    bc_lr: float = 1e-3
    """behaviour-cloning learning rate"""
    bc_hidden: int = 128
    """hidden width of the behaviour-cloning MLP"""
    accel_bins: int = 13
    """acceleration bins of the discretised bicycle action"""
    curvature_bins: int = 41
    """curvature (steering) bins of the discretised bicycle action"""
    rl_iterations: int = 6
    """cross-entropy-method iterations of the RL planner"""
    rl_population: int = 10
    """candidate parameter vectors per CEM iteration"""
    rl_elite: int = 3
    """best candidates that set the next CEM distribution"""
    rl_scenarios: int = 16
    """training scenarios each CEM candidate is scored on"""
    agents: tuple[str, ...] = AGENTS
    """Which baselines to run (claims need their agents)."""

    def validate(self) -> None:
        names = ("num_train_scenarios", "num_eval_scenarios", "num_objects", "eval_batch",
                 "bc_steps", "bc_batch", "bc_hidden", "rl_iterations", "rl_scenarios")
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.accel_bins < 3 or self.curvature_bins < 3:
            raise ConfigError("--accel_bins and --curvature_bins must be at least 3")
        if not 1 <= self.rl_elite <= self.rl_population:
            raise ConfigError(
                f"--rl_elite must be in [1, rl_population={self.rl_population}], "
                f"got {self.rl_elite}"
            )
        if not self.bc_lr > 0:
            raise ConfigError(f"--bc_lr must be positive, got {self.bc_lr}")
        for a in self.agents:
            if a not in AGENTS:
                raise UnknownNameError("driving baseline", a, AGENTS)


PRESETS = {
    "smoke": DrivingBaselinesConfig(
        num_seeds=1, num_train_scenarios=24, num_eval_scenarios=16, num_objects=12, eval_batch=16,
        bc_steps=300, bc_batch=128, bc_hidden=64, rl_iterations=2, rl_population=4,
        rl_elite=2, rl_scenarios=4, agents=("expert", "bc_bicycle", "bc_bicycle_noroute",
                                            "rl_vs_log", "rl_vs_idm"),
    ),  # fmt: skip (CI-sized: the agents of the two main claims)
    "default": DrivingBaselinesConfig(),
    "paper": DrivingBaselinesConfig(
        num_seeds=3, num_train_scenarios=2000, num_eval_scenarios=1000, num_objects=64,
        eval_batch=200, bc_steps=20000, bc_hidden=256, rl_iterations=20, rl_population=32,
        rl_elite=8, rl_scenarios=64,
    ),  # fmt: skip
}


# --------------------------------------------------------------------------- data
def _gen_config(cfg) -> gen.GeneratorConfig:
    return gen.GeneratorConfig(num_objects=cfg.num_objects)


def _scenarios(cfg, seeds, salt: int):
    return jax.tree.map(jnp.asarray, gen.generate_batch(seeds, _gen_config(cfg), salt=salt))


def eval_scenarios(cfg):
    return _scenarios(cfg, range(cfg.num_eval_scenarios), salt=1)


def train_scenarios(cfg, seed: int):
    base = 1_000_003 * (seed + 1)
    return _scenarios(cfg, range(base, base + cfg.num_train_scenarios), salt=0)


# --------------------------------------------------------------------------- agents
def bc_spec(cfg, agent: str) -> pol.BCSpec:
    return pol.BCSpec(
        kind="delta" if agent == "bc_delta" else "bicycle",
        use_route=agent != "bc_bicycle_noroute",
        accel_bins=cfg.accel_bins, curvature_bins=cfg.curvature_bins, hidden=cfg.bc_hidden,
    )  # fmt: skip


def make_env_actor(cfg, agent: str, sim_agents: str):
    bic = dyn.InvertibleBicycleModel()
    if agent == "expert":
        return envlib.PlanningAgentEnv(bic, sim_agents), ag.expert_actor(bic)
    if agent == "constant_velocity":
        return envlib.PlanningAgentEnv(bic, sim_agents), ag.from_updates(
            bic, ag.constant_speed_update, agent
        )
    if agent == "idm":
        return envlib.PlanningAgentEnv(bic, sim_agents), ag.from_updates(
            bic, ag.sdc_route_update, agent
        )
    if agent.startswith("bc_"):
        spec = bc_spec(cfg, agent)
        model = pol.MLP(spec.hidden, spec.out_dim)
        d = spec.dynamics()
        return envlib.PlanningAgentEnv(d, sim_agents), ag.policy_actor(
            d, pol.bc_policy_fn(spec, model), agent
        )
    if agent.startswith("rl_"):
        return envlib.PlanningAgentEnv(bic, sim_agents), pol.rl_policy_actor(bic)
    raise UnknownNameError("driving baseline", agent, AGENTS)


def _eval_fn(cfg, agent: str, sim_agents: str):
    # the two RL planners share one compiled rollout (their parameters are arguments)
    return _compiled_eval(cfg, "rl_vs_log" if agent.startswith("rl_") else agent, sim_agents)


@functools.lru_cache(maxsize=64)
def _compiled_eval(cfg, agent: str, sim_agents: str):
    env, actor = make_env_actor(cfg, agent, sim_agents)

    def one(params, s, key):
        final, m, r = envlib.rollout(env, s, actor, params, key)
        return envlib.summarize(m, r, s.object_metadata.is_sdc), final

    return jax.jit(jax.vmap(one, in_axes=(None, 0, 0)))


def evaluate(cfg, agent: str, sim_agents: str, params, scenarios, *, keep_first=False):
    """Per-scenario summaries {metric: [n]} (and the first final state if keep_first)."""
    fn = _eval_fn(cfg, agent, sim_agents)
    n = scenarios.timestep.shape[0]
    b = cfg.eval_batch  # a fixed batch shape: one compilation per (agent, sim agents)
    outs, first = [], None
    with progress.bar(f"eval {agent} vs {sim_agents}", total=-(-n // b)) as bar:
        for lo in range(0, n, b):
            idx = np.minimum(np.arange(lo, lo + b), n - 1)  # pad the last batch
            batch = jax.tree.map(lambda a, idx=idx: a[idx], scenarios)
            keys = jax.random.split(jax.random.PRNGKey(lo), b)
            summ, final = fn(params, batch, keys)
            take = min(b, n - lo)
            outs.append({k: np.asarray(v)[:take] for k, v in summ.items()})
            if keep_first and first is None:
                first = jax.tree.map(lambda a: np.asarray(a[0]), final)
            bar.advance(1)
    out = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    return (out, first) if keep_first else out


# --------------------------------------------------------------------------- training
def train_bc(cfg, agent: str, scenarios, seed: int, log):
    spec = bc_spec(cfg, agent)
    obs, tgt, valid = pol.bc_dataset(spec, scenarios)
    model, init, train_chunk, chunk = pol.make_bc_train(
        spec, obs, tgt, valid, steps=cfg.bc_steps, batch=cfg.bc_batch, lr=cfg.bc_lr
    )
    rng = jax.random.PRNGKey(seed)
    rng, k = jax.random.split(rng)
    params, opt_state = init(k)
    done = 0
    with progress.bar(f"train {agent}", total=cfg.bc_steps) as bar:
        while done < cfg.bc_steps:
            rng, k = jax.random.split(rng)
            params, opt_state, losses = train_chunk(params, opt_state, k)
            done += chunk
            from selftaught.core.errors import check_finite

            check_finite(float(losses[-1]), where=f"{agent} behaviour cloning", step=done,
                         lr=cfg.bc_lr)  # fmt: skip
            log("bc_loss", agent=agent, seed=seed, step=done, loss=float(losses.mean()))
            bar.advance(chunk)
    return params


def train_rl(cfg, sim_agents: str, scenarios, seed: int, log):
    env = envlib.PlanningAgentEnv(dyn.InvertibleBicycleModel(), sim_agents)
    sub = jax.tree.map(lambda a: a[: cfg.rl_scenarios], scenarios)
    one_iteration = pol.make_cem_train(
        env, sub, population=cfg.rl_population, elite=cfg.rl_elite, iterations=cfg.rl_iterations
    )
    mean, std = jnp.full(5, 0.5), jnp.full(5, 0.3)
    rng = jax.random.PRNGKey(10_000 + seed)
    with progress.bar(f"train rl vs {sim_agents}", total=cfg.rl_iterations) as bar:
        for it in range(cfg.rl_iterations):
            rng, k = jax.random.split(rng)
            mean, std, sc = one_iteration(mean, std, k)
            log("rl_iteration", sim_agents=sim_agents, seed=seed, iteration=it,
                best=float(sc.max()), mean=float(sc.mean()), theta=np.asarray(mean))
            bar.advance(1)
    return mean


# --------------------------------------------------------------------------- run
EVAL_PAIRS = {  # agent -> sim agents it is evaluated against
    "rl_vs_log": ("log", "idm"),
    "rl_vs_idm": ("idm", "log"),
}


def phases(cfg: DrivingBaselinesConfig, seeds: list[int]) -> list[str]:
    """The plan: the fixed baselines' evaluations, then per seed each learned agent's
    training and its evaluations, then the rendering."""
    out = [f"eval/{a}" for a in ("expert", "constant_velocity", "idm") if a in cfg.agents]
    learned = [a for a in cfg.agents if a.startswith(("bc_", "rl_"))]
    for seed in seeds:
        for agent in learned:
            out.append(f"seed{seed}/train/{agent}")
            out += [f"seed{seed}/eval/{agent}@{sim}" for sim in EVAL_PAIRS.get(agent, ("log",))]
    return out + ["render"]


def run(cfg: DrivingBaselinesConfig, run_dir: RunDir, seeds: list[int]) -> None:
    scen = eval_scenarios(cfg)
    for agent in ("expert", "constant_velocity", "idm"):
        if agent in cfg.agents:
            run_dir.phase(f"eval/{agent}", evaluate_agent, cfg, agent, "log", None, scen, -1)
    learned = [a for a in cfg.agents if a.startswith(("bc_", "rl_"))]
    for seed in seeds:
        train_set = functools.cache(lambda seed=seed: train_scenarios(cfg, seed))
        for agent in learned:
            params = run_dir.phase(f"seed{seed}/train/{agent}", train_agent, cfg, agent,
                                   train_set, seed)
            for sim_agents in EVAL_PAIRS.get(agent, ("log",)):
                run_dir.phase(f"seed{seed}/eval/{agent}@{sim_agents}", evaluate_agent, cfg,
                              agent, sim_agents, _policy(agent, params), scen, seed)
    run_dir.phase("render", render, cfg, run_dir, seeds, scen)


def train_agent(log, cfg: DrivingBaselinesConfig, agent: str, train_set, seed: int) -> dict:
    """A learned agent on the seed's training scenarios (`train_set()`, built once per seed
    when first needed): behaviour cloning (`bc_*`) or the CEM-tuned planner against its
    training sim agents (`rl_*`: checkpoint {"theta"})."""
    if agent.startswith("bc_"):
        return train_bc(cfg, agent, train_set(), seed, log)
    return {"theta": train_rl(cfg, EVAL_PAIRS[agent][0], train_set(), seed, log)}


def _policy(agent: str, params):
    """A learned agent's checkpoint as `evaluate` takes it (the RL planner's theta array)."""
    return jnp.asarray(params["theta"]) if agent.startswith("rl_") else params


def evaluate_agent(log, cfg: DrivingBaselinesConfig, agent: str, sim_agents: str, params,
                   scen, seed: int) -> None:
    """One agent against `sim_agents` on the held-out scenarios (seed -1: not learned)."""
    res = evaluate(cfg, agent, sim_agents, params, scen)
    log("eval", agent=agent, sim_agents=sim_agents, seed=seed,
        **{k: res[k] for k in SUMMARY_KEYS})  # fmt: skip


def _render_agent(cfg, seeds):
    for a in ("bc_bicycle", "rl_vs_log", "idm", "constant_velocity", "expert"):
        if a in cfg.agents:
            return a
    return cfg.agents[0]


def render(log, cfg, run_dir: RunDir, seeds, scen) -> None:
    """A PNG of a held-out scenario and a GIF of the chosen agent's rollout on it."""
    agent = _render_agent(cfg, seeds)
    params = None
    if agent.startswith(("bc_", "rl_")):
        params = _policy(agent, run_dir.load_checkpoint(f"seed{seeds[0]}/train/{agent}"))
    one = jax.tree.map(lambda a: a[:1], scen)
    _, final = evaluate(cfg, agent, "log", params, one, keep_first=True)
    run_dir.save_checkpoint("render_state", final)
    _draw(run_dir, agent)


def _draw(run_dir: RunDir, agent: str) -> None:
    final = run_dir.load_checkpoint("render_state")
    final = jax.tree.map(np.asarray, final)
    state = _state_from_dict(final)
    run_dir.plots.mkdir(parents=True, exist_ok=True)
    vz.plot_state(state, run_dir.plots / "scenario.png", t=10, title="held-out scenario, t = 1 s")
    vz.animate_rollout(state, run_dir.plots / f"rollout_{agent}.gif", t0=10, every=3)


def _state_from_dict(d):
    """Rebuild a SimulatorState from a checkpoint (a dict restored without a target)."""
    from selftaught.sim.driving import datatypes as dtp

    if isinstance(d, dtp.SimulatorState):
        return d
    return dtp.SimulatorState(
        sim_trajectory=dtp.Trajectory(**d["sim_trajectory"]),
        log_trajectory=dtp.Trajectory(**d["log_trajectory"]),
        log_traffic_light=dtp.TrafficLights(**d["log_traffic_light"]),
        object_metadata=dtp.ObjectMetadata(**d["object_metadata"]),
        timestep=np.asarray(d["timestep"]),
        roadgraph_points=dtp.RoadgraphPoints(**d["roadgraph_points"]),
        sdc_paths=dtp.Paths(**d["sdc_paths"]),
    )


# --------------------------------------------------------------------------- report
def _rows(run_dir: RunDir) -> dict:
    """{(agent, sim_agents): {metric: pooled per-scenario array}} from metrics.jsonl."""
    rows: dict = {}
    for e in run_dir.events("eval"):
        key = (e["agent"], e["sim_agents"])
        r = rows.setdefault(key, {k: [] for k in SUMMARY_KEYS})
        for k in SUMMARY_KEYS:
            r[k].append(np.asarray(e[k], np.float64))
        r.setdefault("_seeds", []).append(e["seed"])
    return {k: {m: (np.concatenate(v) if m != "_seeds" else v) for m, v in r.items()}
            for k, r in rows.items()}  # fmt: skip


TRAINED = "training seeds"
"""The unit of replication of a claim about trained agents: each seed trains every learned
agent once; all seeds are evaluated on the same held-out scenarios."""


def _by_seed(r, values) -> np.ndarray:
    """A metric pooled over seeds (in r["_seeds"] order) -> [seeds, scenarios]."""
    return np.asarray(values, np.float64).reshape(len(r["_seeds"]), -1)


def _paired(rows, a, b, metric=None, fn=None):
    """Difference a - b of a metric, paired by training seed: each seed's mean over the
    held-out scenarios, with the CI over training seeds (n = seeds; one trained model is
    one replication, however many scenarios it is tested on)."""
    if a not in rows or b not in rows or rows[a]["_seeds"] != rows[b]["_seeds"]:
        return None
    get = fn or (lambda r: r[metric])
    x, y = get(rows[a]), get(rows[b])
    if x.shape != y.shape:
        return None
    return paired_difference_ci(_by_seed(rows[a], x), _by_seed(rows[b], y), unit=TRAINED)


def _mean_ci(r, values) -> stats.Estimate:
    """Mean with a 95% percentile-bootstrap CI (vectorised NumPy): over training seeds (each
    seed's mean over the held-out scenarios) for a trained agent, over the held-out
    scenarios for an untrained one (expert, constant velocity, IDM: seed -1, one
    deterministic evaluation)."""
    v = np.asarray(values, np.float64)
    if r["_seeds"] == [-1]:
        return paired_difference_ci(v, np.zeros_like(v), unit="test scenarios")
    v = _by_seed(r, v)
    return paired_difference_ci(v, np.zeros_like(v), unit=TRAINED)


def _fail(r):
    return np.maximum(r["overlap"], r["offroad"])


COMPARISONS = (  # (label, a, b): collision-or-off-road rate of a minus b, paired over seeds
    ("RL (log) vs IDM agents − RL (IDM) vs IDM agents (the claim)",
     ("rl_vs_log", "idm"), ("rl_vs_idm", "idm")),
    ("RL (log) vs IDM agents − RL (log) vs log agents (moving the log-trained planner)",
     ("rl_vs_log", "idm"), ("rl_vs_log", "log")),
    ("RL (IDM) vs log agents − RL (log) vs log agents (vice versa)",
     ("rl_vs_idm", "log"), ("rl_vs_log", "log")),
    ("RL (IDM) vs log agents − RL (IDM) vs IDM agents (moving the IDM-trained planner)",
     ("rl_vs_idm", "log"), ("rl_vs_idm", "idm")),
)  # fmt: skip


def _comparisons(rows) -> str:
    """The train-vs-evaluation sim-agent comparisons of the RL planners as a table (the
    first is the claim `rl_overfits_to_log_agents`; the others are context, not claims)."""
    out = []
    for label, a, b in COMPARISONS:
        d = _paired(rows, a, b, fn=_fail)
        if d is not None:
            d = d.scaled(100)
            out.append([label, stats.ci_cell(d, ".3g"), d.n])
    if not out:
        return ""
    return "\n".join(["", "", "## RL planners: which sim agents they train and test against",
                      "", "Collision-or-off-road rate difference (percentage points), paired "
                      "over training seeds, mean [95% bootstrap CI over seeds].", "",
                      stats.markdown_table(["comparison", "difference", "seeds"], out)])


def report(cfg: DrivingBaselinesConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    rows = _rows(run_dir)
    bars, table = {}, []
    for (agent, sim), r in rows.items():
        cells = [agent, sim]
        for key, _, scale in COLUMNS:
            cells.append(stats.ci_cell(_mean_ci(r, r[key] * scale), ".3g"))
            if key == "overlap":
                bars[f"{SHORT[agent]}\nvs {sim}"] = tuple(_mean_ci(r, _fail(r) * 100))[:3]
        table.append(cells)
    lines = ["## Metrics (held-out scenarios, mean [95% bootstrap CI])", "",
             "CIs over training seeds (each seed's mean over the held-out scenarios) for the "
             "trained agents (BC, RL); over the held-out scenarios for the untrained ones "
             "(expert, constant velocity, IDM), which are evaluated once.", "",
             stats.markdown_table(["agent", "sim agents", *(c[1] for c in COLUMNS)], table)]
    n_eval = max((len(r["ade"]) for r in rows.values()), default=0)
    n_seeds = max((len(r["_seeds"]) for r in rows.values()), default=0)
    lines += ["", f"{cfg.num_eval_scenarios} held-out scenarios per agent and seed "
              f"({n_eval} pooled rows for the largest entry, {n_seeds} training seed(s)); "
              "episodes last 8 s after 1.1 s "
              "of logged history. Off-road / collision / infeasible / off-route are the "
              "share of episodes with at least one such step."]  # fmt: skip
    table = "\n".join(lines)
    run_dir.write_text("metrics_table.md", table + "\n")
    if bars:
        plot_bars(run_dir.plots / "failure_rate.png", bars,
                  ylabel="collision or off-road (% of episodes)")  # fmt: skip
    agent = _render_agent(cfg, seeds)
    if run_dir.has_checkpoint("render_state") and not (
        run_dir.plots / f"rollout_{agent}.gif"
    ).exists():
        _draw(run_dir, agent)

    # claims in percent, like the table (percentage points for differences); CIs over
    # training seeds (per-seed means over the held-out scenarios). The expert's replay of the
    # log (ADE ~ 0) is a correctness test (tests/sim/driving/test_recipe.py), not a claim.
    claims = []
    est = _paired(rows, ("bc_bicycle", "log"), ("bc_bicycle_noroute", "log"), "route_progress")
    if est is not None:
        claims.append(stats.claim_greater(
            "routes_help_planning", "route progress gain (percentage points) of BC (bicycle) "
            "with the route in its observation over BC without", est.scaled(100),
            unit=TRAINED))  # fmt: skip
    d = _paired(rows, ("rl_vs_log", "idm"), ("rl_vs_idm", "idm"), fn=_fail)
    if d is not None:
        claims.append(stats.claim_greater(
            "rl_overfits_to_log_agents", "against IDM agents, the collision-or-off-road rate "
            "(percentage points) of the RL planner trained against log playback minus that of "
            "the planner trained against IDM agents (the control)", d.scaled(100),
            unit=TRAINED))  # fmt: skip
    d = _paired(rows, ("bc_delta", "log"), ("bc_bicycle", "log"), fn=_fail)
    if d is not None:
        claims.append(stats.claim_greater(
            "bc_discrete_bicycle_best", "collision-or-off-road rate (percentage points) of BC "
            "with delta actions minus BC with discretised bicycle actions", d.scaled(100),
            unit=TRAINED))  # fmt: skip
    table += _comparisons(rows)
    md = table + "\n\nPlots: `plots/failure_rate.png`, `plots/scenario.png`, " \
        f"`plots/rollout_{agent}.gif`.\n"
    return Report(claims, md)


RECIPE = Recipe(
    name="driving-baselines",
    description="Waymax-style simulator baselines: expert, constant velocity, IDM, BC, RL",
    config_cls=DrivingBaselinesConfig,
    presets=PRESETS,
    run=run,
    report=report,
    phases=phases,
)
