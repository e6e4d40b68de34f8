"""driving-baselines: the Waymax paper's planning-agent baseline table, on procedurally
generated scenarios (straight roads, curves, signalised intersections).

    selftaught run driving-baselines --preset default
    (3 training seeds, idle 2-core CPU, /usr/bin/time -v, 2026-12-06: 5 min 04 s wall, 450
    CPU-seconds, peak RSS 1.44 GiB; 11 min 08 s at load 5-10, the same claims)

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

import functools

from selftaught.core.recipe import Recipe
from selftaught.core.rundir import RunDir
from selftaught.recipes.driving_baselines.config import (  # noqa: F401
    AGENTS,
    COLUMNS,
    EVAL_PAIRS,
    SHORT,
    SUMMARY_KEYS,
    DrivingBaselinesConfig,
)
from selftaught.recipes.driving_baselines.experiment import (  # noqa: F401
    _compiled_eval,
    _draw,
    _eval_fn,
    _gen_config,
    _policy,
    _render_agent,
    _scenarios,
    _state_from_dict,
    bc_spec,
    eval_scenarios,
    evaluate,
    evaluate_agent,
    make_env_actor,
    render,
    train_agent,
    train_bc,
    train_rl,
    train_scenarios,
)
from selftaught.recipes.driving_baselines.report import (  # noqa: F401
    COMPARISONS,
    TRAINED,
    _by_seed,
    _comparisons,
    _fail,
    _mean_ci,
    _paired,
    _rows,
    report,
)

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


RECIPE = Recipe(
    name="driving-baselines",
    description="Waymax-style simulator baselines: expert, constant velocity, IDM, BC, RL",
    config_cls=DrivingBaselinesConfig,
    presets=PRESETS,
    run=run,
    report=report,
    phases=phases,
)
