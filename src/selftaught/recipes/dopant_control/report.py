"""dopant-control's report: beam seconds, success and steps per controller with CIs over
seeds, the rate-map error, the control (prior-like) world and the claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Claim, Report
from selftaught.core.rundir import RunDir
from selftaught.recipes.dopant_control.config import (
    CONTROLLERS,
    DopantControlConfig,
    worlds,
)
from selftaught.sim.dopant import lattice, metrics, rates
from selftaught.sim.dopant.plots import plot_rate_maps

EPISODE = ("beam", "hops", "success", "steps", "beam_time")


def _episodes(run_dir: RunDir, world: str, seeds: list[int], **kw) -> dict | None:
    """The control episodes of one world: field -> [seeds, controllers, ...] and "seed", the
    seeds with every controller's episodes (an unfinished run: its finished ones)."""
    return stats.collect(run_dir, "episodes", by={"seed": seeds, "controller": CONTROLLERS},
                         values=EPISODE, where={"world": world}, partial="seed", **kw)


def report(cfg: DopantControlConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    eps = _episodes(run_dir, cfg.truth, seeds)
    done = eps["seed"]
    dists = list(cfg.distances)
    fmt = lambda t, p=3: stats.ci_cell(t, f".{p}g")

    def per_seed(ctrl, field, hops=None, table=eps):
        """Per seed of `table`, the mean of `field` over the controller's goals (those at
        `hops` jumps)."""
        j, out = CONTROLLERS.index(ctrl), []
        for v, h in zip(table[field][:, j], table["hops"][:, j]):
            v = np.asarray(v, np.float64)
            if hops is not None:
                v = v[np.asarray(h) == hops]
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
    # (the learn phase, which logs both, precedes control: every done seed has them)
    learns = stats.collect(run_dir, "learn", by={"seed": done}, where={"world": cfg.truth},
                           values=("map_error", "peak_offset", "loss_steps", "loss"))
    err_names = list(learns["map_error"][0])
    map_err = {k: stats.bootstrap_ci([m[k] for m in learns["map_error"]]) for k in err_names}
    peak = {k: stats.bootstrap_ci([m[k] for m in learns["peak_offset"]]) for k in err_names}
    m = stats.collect(run_dir, "rate_maps", by={"seed": done[:1]}, where={"world": cfg.truth},
                      values=("extent", "truth", "learned", "ensemble_std"))
    truth_map, learned_map = m["truth"][0], m["learned"][0]
    prior_peaks = lattice.NEIGHBOURS_3x2 * rates.HUMAN_PRIOR_PEAK_BONDS
    learned_peaks = [eps["beam"][0, CONTROLLERS.index("learned")]]
    plot_rate_maps(
        run_dir.plots / "rate_maps.png", m["extent"][0].tolist(),
        {"ground truth Σλ (1/s)": truth_map, "learned Σλ (1/s)": learned_map,
         "|learned − truth|": np.abs(learned_map - truth_map),
         "ensemble std": m["ensemble_std"][0]},
        marks={"human prior": prior_peaks,
               "learned best beam (nbr 0)": np.asarray(learned_peaks)},
        title=f"Rate maps, seed {done[0]} (60 kV, 50 pA)")
    stats.plot_curves(run_dir.plots / "training_loss.png", learns["loss_steps"][0],
                      {"ensemble mean": np.asarray(learns["loss"])},
                      xlabel="step", ylabel="KMC negative log-likelihood")

    # Data efficiency: learned-controller beam seconds vs number of exposures learned from.
    budgets = sorted(cfg.data_budgets)
    bud = stats.collect(run_dir, "budget", by={"seed": done, "records": budgets},
                        where={"world": cfg.truth}, values=("map_error", "success", "beam_time"),
                        optional=True) if budgets else None  # an unfinished run: maybe none
    full = cfg.sessions * cfg.steps_per_session
    budget_rows = []
    if bud is not None:
        xs = [*budgets, full]
        curve = np.stack([[np.mean(bt) for bt in row] for row in bud["beam_time"]])
        curve = np.concatenate([curve, per_seed("learned", "beam_time")[:, None]], axis=1)
        flat = lambda c: np.repeat(per_seed(c, "beam_time")[:, None], len(xs), axis=1)
        stats.plot_curves(run_dir.plots / "beam_seconds_vs_data.png", np.log2(xs),
                          {"learned": curve, "human prior": flat("human-prior"),
                           "oracle": flat("oracle")},
                          xlabel="log2(exposures learned from)",
                          ylabel="beam seconds to goal")
        for i, b in enumerate(budgets):
            errs = list(bud["map_error"][:, i])
            succ_b = [np.mean(x) for x in bud["success"][:, i]]
            budget_rows.append(
                [f"{b} ({cfg.budget_members} members)", fmt(stats.bootstrap_ci(errs)),
                 fmt(stats.bootstrap_ci(curve[:, i])), fmt(stats.bootstrap_ci(succ_b))])
        budget_rows.append(
            [f"{full} ({cfg.learn.members} members)",
             fmt(stats.bootstrap_ci([m["learned"] for m in learns["map_error"]])),
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
    eps = _episodes(run_dir, world, seeds, optional=True)
    if eps is None:  # an unfinished run that has not controlled in this world yet
        return [], None
    get = lambda c, f: per_seed(c, f, table=eps)
    prior, learned = get("human-prior", "beam_time"), get("learned", "beam_time")
    # per seed: how much longer (%) the learned controller takes than the prior
    rel = stats.mean_ci(100 * (learned - prior) / prior, unit="training seeds")
    margin = 100 * cfg.prior_world_margin
    claim = stats.claim_less(
        "learned_not_worse_where_prior_is_right",
        f"in the {world} world (the human prior is right), greedy control with the learned "
        f"model needs less than {margin:g}% more beam seconds per goal than with the human "
        "prior (learned − prior, % of the prior's, paired over seeds; non-inferiority)",
        rel, margin, unit="training seeds")
    learns = stats.collect(run_dir, "learn", by={"seed": eps["seed"]}, where={"world": world},
                           values=("map_error",))["map_error"]
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
    if len(learns):
        lines += ["", "Rate-map error there:", ""]
        for name in ("learned", "human-prior (best scale)"):
            err = stats.bootstrap_ci([e[name] for e in learns])
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
