"""driving-baselines: scenarios, the agents (expert, constant velocity, IDM, behaviour cloning,
the RL planner), their training and closed-loop evaluation against log or IDM sim agents."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core import programs, progress
from selftaught.core.errors import UnknownNameError
from selftaught.core.rundir import RunDir
from selftaught.recipes.driving_baselines.config import (
    AGENTS,
    EVAL_PAIRS,
    SUMMARY_KEYS,
    DrivingBaselinesConfig,
)
from selftaught.sim.driving import agents as ag
from selftaught.sim.driving import dynamics as dyn
from selftaught.sim.driving import env as envlib
from selftaught.sim.driving import generator as gen
from selftaught.sim.driving import policies as pol
from selftaught.sim.driving import visualization as vz


def _gen_config(cfg) -> gen.GeneratorConfig:
    return gen.GeneratorConfig(num_objects=cfg.num_objects)


def _scenarios(cfg, seeds, salt: int):
    return jax.tree.map(jnp.asarray, gen.generate_batch(seeds, _gen_config(cfg), salt=salt))


def eval_scenarios(cfg):
    return _scenarios(cfg, range(cfg.num_eval_scenarios), salt=1)


def train_scenarios(cfg, seed: int):
    base = 1_000_003 * (seed + 1)
    return _scenarios(cfg, range(base, base + cfg.num_train_scenarios), salt=0)


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


@programs.cached(vmap=((None, 0, 0),), maxsize=64)
def _compiled_eval(cfg, agent: str, sim_agents: str):
    """rollout(params, scenarios, keys) -> (summaries, final states), over the scenarios."""
    env, actor = make_env_actor(cfg, agent, sim_agents)

    def one(params, s, key):
        final, m, r = envlib.rollout(env, s, actor, params, key)
        return envlib.summarize(m, r, s.object_metadata.is_sdc), final

    return one


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
