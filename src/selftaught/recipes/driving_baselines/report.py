"""driving-baselines' report: per-agent metrics with CIs over training seeds, the paired
comparisons and the claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Report
from selftaught.core.rundir import RunDir
from selftaught.recipes.driving_baselines.config import (
    COLUMNS,
    EVAL_PAIRS,
    SHORT,
    SUMMARY_KEYS,
    DrivingBaselinesConfig,
)
from selftaught.recipes.driving_baselines.experiment import (
    _draw,
    _render_agent,
)
from selftaught.stats import paired_difference_ci, plot_bars


def _rows(cfg: DrivingBaselinesConfig, run_dir: RunDir, seeds: list[int]) -> dict:
    """{(agent, sim_agents): {metric: per-scenario array pooled over seeds, "_seeds": [..]}}
    for every evaluation of the plan (the fixed baselines' under seed -1); an unfinished run
    gives its finished seeds' and leaves out an evaluation none has finished."""
    arms = [(a, "log", [-1]) for a in ("expert", "constant_velocity", "idm")
            if a in cfg.agents]
    arms += [(a, sim, seeds) for a in cfg.agents if a.startswith(("bc_", "rl_"))
             for sim in EVAL_PAIRS.get(a, ("log",))]
    rows: dict = {}
    for agent, sim, arm_seeds in arms:
        t = stats.collect(run_dir, "eval", by={"seed": arm_seeds}, values=SUMMARY_KEYS,
                          where={"agent": agent, "sim_agents": sim}, partial="seed",
                          optional=True)
        if t is None:  # an unfinished run: not evaluated on any seed yet
            continue
        rows[(agent, sim)] = {k: t[k].astype(np.float64).reshape(-1) for k in SUMMARY_KEYS}
        rows[(agent, sim)]["_seeds"] = t["seed"]
    return rows


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
        return stats.mean_ci(v, unit="test scenarios")
    v = _by_seed(r, v)
    return stats.mean_ci(v, unit=TRAINED)


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
    rows = _rows(cfg, run_dir, seeds)
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
