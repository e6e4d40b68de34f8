"""IC2's report: captures and visitation entropy per agent, hiding and the filters'
belief entropy out of view, and the claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Claim, Report
from selftaught.core.rundir import RunDir
from selftaught.recipes.ic2.config import (
    GIF,
    IC2Config,
)

METRICS = ("captures", "state_entropy", "elbo_loss", "recon", "kl", "belief_entropy",
           "latent_cross_entropy", "policy_entropy")


EXACT_METRICS = ("oov_steps", "hiding_steps", "inview_steps", "exact_entropy_oov",
                 "exact_entropy_inview", "learned_entropy_oov", "learned_entropy_inview",
                 "oov_pairs", "exact_growth", "learned_growth", "entropy_corr", "exact_reward")


def _load(cfg: IC2Config, run_dir: RunDir, seeds: list[int],
          metrics=METRICS) -> dict[str, dict]:
    """{agent: {metric: [seeds, iterations], "iterations": [iterations]}} for every agent
    (an unfinished run: the finished ones)."""
    t = stats.collect(run_dir, "curve", by={"agent": list(cfg.agents), "seed": seeds},
                      values=(*metrics, "iterations"), partial="agent")
    out = {}
    for i, agent in enumerate(t["agent"]):
        out[agent] = {k: t[k][i].astype(np.float64) for k in metrics}
        out[agent]["iterations"] = t["iterations"][i, 0]
    return out


def report(cfg: IC2Config, run_dir: RunDir, seeds: list[int]) -> Report:
    metrics = METRICS + (EXACT_METRICS if cfg.exact_filter else ())
    data = _load(cfg, run_dir, seeds, metrics)
    agents = [a for a in cfg.agents if a in data]
    k = cfg.final_points
    final = {a: {m: data[a][m][:, -k:].mean(1) for m in metrics} for a in agents}
    spec = cfg.world
    md = ["## Prey captured and visitation entropy (no extrinsic reward)", "",
          f"Capture world {spec.size}x{spec.size}, {spec.num_prey} prey moving with p = "
          f"{cfg.p_prey}, egocentric view {2 * spec.view + 1}x{2 * spec.view + 1}, episodes "
          f"of {spec.episode_steps} steps, {cfg.envs} episodes x {cfg.iterations} iterations "
          f"per seed, {len(seeds)} seeds. Measured on the training episodes over the last "
          f"{k} curve points. Captures = prey captured by the episode's end (max "
          f"{spec.num_prey}); state entropy = entropy (nats) of the empirical distribution "
          f"of the full world state over the episode (max log T = "
          f"{np.log(spec.episode_steps):.2f}). Belief entropy and ELBO are each agent's "
          "own filter's. Mean [95% bootstrap CI] over seeds.", ""]

    def cell(x):
        return stats.ci_cell(stats.bootstrap_ci(x, "mean"), ".3f")

    md.append(stats.markdown_table(
        ["agent", "captures", "state entropy", "belief entropy H(b)", "latent H(b, q)",
         "-ELBO / step", "policy entropy"],
        [[a, *(cell(final[a][k]) for k in ("captures", "state_entropy", "belief_entropy",
                                           "latent_cross_entropy", "elbo_loss",
                                           "policy_entropy"))] for a in agents]))
    if agents:
        x = data[agents[0]]["iterations"]
        stats.plot_curves(run_dir.plots / "captures.png", x,
                          {a: data[a]["captures"] for a in agents}, xlabel="iterations",
                          ylabel="prey captured per episode", title="objects captured")
        stats.plot_curves(run_dir.plots / "state_entropy.png", x,
                          {a: data[a]["state_entropy"] for a in agents}, xlabel="iterations",
                          ylabel="state-visitation entropy (nats)",
                          title="true-state visitation entropy")
        md += ["", "![captures](plots/captures.png)", "",
               "![state entropy](plots/state_entropy.png)"]
        if "ic2" in agents and (run_dir.plots / GIF).exists():
            md += ["", f"![a learned IC2 episode](plots/{GIF})"]

    claims: list[Claim] = []
    if cfg.exact_filter:
        exact_md, claims = _exact_report(cfg, final, agents)
        md += exact_md
    elif "ic2" in final:
        ic2 = final["ic2"]
        for b in agents:
            if b == "ic2":
                continue
            slug = b.replace("-", "_")
            claims.append(stats.claim_greater(
                f"ic2_captures_more_than_{slug}", f"captures(ic2) - captures({b}) > 0",
                stats.paired_difference_ci(ic2["captures"], final[b]["captures"]),
                unit="training seeds"))
            claims.append(stats.claim_greater(
                f"ic2_lower_state_entropy_than_{slug}",
                f"state entropy({b}) - state entropy(ic2) > 0",
                stats.paired_difference_ci(final[b]["state_entropy"], ic2["state_entropy"]),
                unit="training seeds"))
    md += ["", "## Notes", "",
           "A claim holds when its 95% CI lies entirely above 0. Differences are paired by "
           "seed (each seed's worlds are the same across agents only at the first "
           "iteration; afterwards they follow each agent's own key stream)."]
    return Report(claims, "\n".join(md))


def _exact_report(cfg: IC2Config, final: dict, agents: list[str]) -> tuple[list[str], list]:
    """The exact-filter study: behaviour and out-of-view entropy per agent; claims that
    ic2-exact captures more than every other agent, and whether each filter's entropy
    grows per step while the prey are out of view (on the learned ic2 agent's episodes)."""

    def ratio(f, num, den):
        return f[num] / np.maximum(f[den], 1e-9)

    def cell(x, fmt=".3f"):
        return stats.ci_cell(stats.bootstrap_ci(x, "mean"), fmt)

    def gap(f, name):  # mean entropy out of view - mean entropy with prey in view
        return (ratio(f, f"{name}_entropy_oov", "oov_steps")
                - ratio(f, f"{name}_entropy_inview", "inview_steps"))

    T = cfg.world.episode_steps
    md = ["", "## Hiding and the filters' belief entropy while the prey are out of view", "",
          "Per step of an episode (before the action): *out of view* = some prey is free and "
          "none is in the window; *hiding* = out of view with the agent on a wall cell. "
          "Exact H = the exact factorised filter's belief entropy (nats, summed over prey) "
          "on out-of-view steps; gap = a filter's mean belief entropy out of view minus its "
          "mean with some prey in view; growth = mean change of a filter's belief entropy "
          "per step over consecutive out-of-view steps (the exact filter's in nats of a "
          "discrete distribution, the learned RSSM's in nats of its Gaussian belief: compare "
          "signs, not sizes); corr = correlation of the two filters' entropies over all "
          "steps. Both filters run on each agent's own episodes. Mean [95% bootstrap CI] "
          "over seeds.", "", stats.markdown_table(
              ["agent", "captures", "hiding (frac. of steps)", "out of view (frac.)",
               "exact H out of view", "exact gap", "learned gap", "exact growth / step",
               "learned growth / step", "corr"],
              [[a, cell(f["captures"]), cell(f["hiding_steps"] / T), cell(f["oov_steps"] / T),
                cell(ratio(f, "exact_entropy_oov", "oov_steps")), cell(gap(f, "exact")),
                cell(gap(f, "learned")), cell(ratio(f, "exact_growth", "oov_pairs")),
                cell(ratio(f, "learned_growth", "oov_pairs")), cell(f["entropy_corr"])]
               for a, f in ((a, final[a]) for a in agents)])]
    claims: list[Claim] = []
    if "ic2-exact" in final:
        ic2x = final["ic2-exact"]["captures"]
        for b in agents:
            if b != "ic2-exact":
                claims.append(stats.claim_greater(
                    f"ic2_exact_captures_more_than_{b.replace('-', '_')}",
                    f"captures(ic2-exact) - captures({b}) > 0",
                    stats.paired_difference_ci(ic2x, final[b]["captures"]),
                    unit="training seeds"))
    if "ic2" in final:
        f = final["ic2"]
        for name in ("exact", "learned"):
            claims.append(stats.claim_greater(
                f"{name}_filter_entropy_grows_out_of_view",
                f"on the learned ic2 agent's episodes, the {name} filter's belief entropy "
                "grows per step while the prey are out of view (mean change > 0)",
                stats.bootstrap_ci(ratio(f, f"{name}_growth", "oov_pairs"), "mean"),
                unit="training seeds"))
        for name in ("exact", "learned"):
            claims.append(stats.claim_greater(
                f"{name}_filter_entropy_higher_out_of_view",
                f"on the learned ic2 agent's episodes, the {name} filter's mean belief entropy "
                "is higher while the prey are out of view than while one is in view",
                stats.bootstrap_ci(gap(f, name), "mean"), unit="training seeds"))
        claims.append(stats.claim_greater(
            "learned_filter_entropy_tracks_exact",
            "on the learned ic2 agent's episodes, the learned filter's belief entropy is "
            "positively correlated over steps with the exact filter's",
            stats.bootstrap_ci(f["entropy_corr"], "mean"), unit="training seeds"))
    return md, claims
