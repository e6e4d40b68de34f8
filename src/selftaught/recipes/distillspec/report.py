"""distillspec's report: the tables, plots and claims from the logged events."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core import Report
from selftaught.core.errors import ConfigError
from selftaught.recipes.distillspec.config import (
    MODES,
    DistillSpecConfig,
    ablation_name,
    draft_names,
    settings,
)


def _control(config: DistillSpecConfig) -> str:
    return "base_matched" if config.matched_control else "base"


def _records(run_dir, seeds, config: DistillSpecConfig) -> list[dict]:
    """The test measurements: every draft at every (mode, γ, ε) setting, per seed."""
    recs = []
    for mode, g, eps in settings(config):
        recs += stats.collect_events(run_dir, "spec", by={"seed": seeds,
                                                          "draft": draft_names(config)},
                                     where={"mode": mode, "gamma": g, "epsilon": eps}).values()
    return recs


def validation_records(run_dir, seeds, config: DistillSpecConfig) -> dict:
    """(seed, draft, mode, γ, ε) -> the validation record of each candidate (and the
    control at ε = 1); ConfigError for a run without them (an older design), the one-line
    IncompleteRunError for one with records missing."""
    val = run_dir.events("val_spec")  # (only to tell an older design from an unfinished run)
    if not val or "spec_cpu" not in val[0]:
        raise ConfigError(f"{run_dir.path} predates the validation split (no val_spec "
                          "records with timings); run the recipe again into a new directory")
    idx = {}
    for mode, g, eps in settings(config):  # exact: the candidates and the control; lossy:
        names = [*config.divergences, _control(config)] if eps == 1.0 else config.divergences
        for (sd, d), r in stats.collect_events(  # the candidates
                run_dir, "val_spec", by={"seed": seeds, "draft": names},
                where={"mode": mode, "gamma": g, "epsilon": eps}).items():
            idx[(sd, d, mode, g, eps)] = r
    return idx


def validation_choice(run_dir, seeds, config: DistillSpecConfig) -> tuple[dict, dict]:
    """(mode -> the divergence whose draft has the highest validation α, mean over γ and
    seeds, first in `divergences` on ties; (divergence, mode) -> that mean). Reads only the
    validation records."""
    idx = validation_records(run_dir, seeds, config)
    score = lambda d, m: np.mean([idx[(sd, d, m, g, 1.0)]["alpha"]  # noqa: E731
                                  for sd in seeds for g in config.gammas])
    scores = {(d, m): float(score(d, m)) for d in config.divergences for m in MODES}
    return {m: max(config.divergences, key=lambda d, m=m: scores[(d, m)]) for m in MODES}, scores


def fastest_gamma(val: dict, seeds, gammas, draft: str, mode: str) -> int:
    """The γ whose exact speculative decoding of the validation prompts took the least CPU
    time (mean over seeds; the smallest γ on ties)."""
    cpu = {g: np.mean([val[(sd, draft, mode, g, 1.0)]["spec_cpu"] for sd in seeds])
           for g in sorted(gammas)}
    return min(cpu, key=cpu.get)


def most_lenient_within(acc: dict, margin: float) -> float:
    """The smallest lenience ε < 1 whose accuracy acc[ε] is at least acc[1.0] − margin
    (1.0, exact decoding, when none is): the lossy frontier's operating point."""
    ok = [e for e in acc if e < 1.0 and acc[e] >= acc[1.0] - margin - 1e-12]
    return min(ok) if ok else 1.0


def _arr(recs, seeds, draft, mode, gamma, key, eps=1.0):
    idx = {(r["seed"], r["draft"], r["mode"], r["gamma"], r["epsilon"]): r for r in recs}
    return np.array([idx[(sd, draft, mode, gamma, eps)][key] for sd in seeds])


def speedup_gain(recs, seeds, draft, g_draft, ctrl, g_ctrl, mode) -> np.ndarray:
    """Per seed: speedup(draft at γ g_draft) / speedup(ctrl at g_ctrl) − 1 (both over the
    same target-only time, so the ratio of CPU times)."""
    return (_arr(recs, seeds, draft, mode, g_draft, "speedup")
            / _arr(recs, seeds, ctrl, mode, g_ctrl, "speedup") - 1.0)


def lossy_frontier(config: DistillSpecConfig, recs, val: dict, seeds, draft: str):
    """The lossy frontier as claims: ε* = the most lenient ε whose validation accuracy (T=1,
    `draft`, γ = lossy_gamma, mean over seeds) stays within lossy_margin of exact decoding;
    on test, ε* raises τ over exact (paired over seeds) and its accuracy loss has its CI
    above −margin (non-inferiority). Not tested when no ε < 1 qualifies on validation."""
    g, margin = config.lossy_gamma, config.lossy_margin
    eps = sorted({1.0, *config.epsilons}, reverse=True)
    val_acc = {e: float(np.mean([val[(sd, draft, "t1", g, e)]["acc"] for sd in seeds]))
               for e in eps}
    e_star = most_lenient_within(val_acc, margin)
    test = lambda k, e: _arr(recs, seeds, draft, "t1", g, k, e)  # noqa: E731
    where = f"T=1, {draft}, γ={g}"
    picked = (f"ε*={e_star:g}, the most lenient ε whose validation accuracy stayed within "
              f"{margin * 100:g} points of exact decoding (selected on validation)")
    why = (f"no ε < 1 kept validation accuracy within {margin * 100:g} points of exact "
           "decoding's (validation accuracy %: "
           + ", ".join(f"ε={e:g} {a * 100:.1f}" for e, a in val_acc.items()) + ")")
    claims = [
        stats.claim_greater(
            "lossy_raises_tau_t1",
            f"lenient speculative decoding at {picked} has more tokens per target call τ "
            f"than exact decoding (ε=1), test prompts, {where}",
            stats.paired_difference_ci(test("tau", e_star), test("tau", 1.0)),
            unit="training seeds"),
        stats.claim_greater(
            "lossy_accuracy_noninferior_t1",
            f"at {picked}, the test accuracy loss vs exact decoding stays within the margin "
            f"(accuracy difference in points, CI above −{margin * 100:g}; {where})",
            stats.paired_difference_ci(test("acc", e_star), test("acc", 1.0)).scaled(100),
            threshold=-margin * 100, unit="training seeds")]
    claims = [c.gated(e_star < 1.0, why) for c in claims]
    sp_ratio = test("speedup", e_star) / test("speedup", 1.0)
    md = ["", f"## Lossy operating point (selected on validation, {where})", "",
          f"{picked if e_star < 1 else why}. On test: τ {test('tau', 1.0).mean():.2f} → "
          f"{test('tau', e_star).mean():.2f}, accuracy {test('acc', 1.0).mean() * 100:.1f}% → "
          f"{test('acc', e_star).mean() * 100:.1f}%, CPU-time speedup × "
          f"{sp_ratio.mean():.3f} (per seed: {', '.join(f'{x:.3f}' for x in sp_ratio)}).", "",
          stats.markdown_table(["validation accuracy %", *(f"ε={e:g}" for e in eps)],
                               [[draft, *(f"{val_acc[e] * 100:.1f}" for e in eps)]])]
    return claims, md


def power_lines(recs, seeds, chosen: dict, gam: dict, ctrl: str) -> list[str]:
    """Report lines: the seed-to-seed spread of the CPU-time speedup at the γ chosen on
    validation and the training seeds that a 10% speedup difference needs (95% CI, 80%
    power; `stats.seeds_needed`), paired (distilled vs control on the same seed) and for
    two independent arms (sqrt(2) × the relative sd of one arm's speedup)."""
    rows = []
    for m in MODES:
        d = chosen[m]
        gain = speedup_gain(recs, seeds, d, gam[(d, m)], ctrl, gam[(ctrl, m)], m)
        spd = _arr(recs, seeds, d, m, gam[(d, m)], "speedup")
        if len(seeds) < 2:
            rows.append([m, d, f"{spd.mean():.3f}", "n/a", "n/a", "n/a", "n/a"])
            continue
        sd_gain, rel_sd = float(np.std(gain, ddof=1)), float(np.std(spd, ddof=1) / spd.mean())
        rows.append([m, d, f"{spd.mean():.3f}", f"{rel_sd * 100:.1f}%",
                     f"{sd_gain * 100:.1f}%",
                     str(stats.seeds_needed(sd_gain, 0.10)),
                     str(stats.seeds_needed(np.sqrt(2) * rel_sd, 0.10))])
    return ["", "## Power: training seeds to separate a 10% speedup difference (95% CI, "
            "80% power, `stats.seeds_needed`)", "",
            stats.markdown_table(
                ["mode", "draft", "speedup (CPU time)", "relative sd over seeds",
                 f"sd of the paired gain over {ctrl}", "seeds (paired)",
                 "seeds (independent arms)"], rows)]


def report(config: DistillSpecConfig, run_dir, seeds: list[int]) -> Report:
    recs = _records(run_dir, seeds, config)
    names = draft_names(config)
    G = list(config.gammas)
    # per draft and mode: α averaged over γ; speedup per γ (per seed)
    alpha = {(d, m): np.mean([_arr(recs, seeds, d, m, g, "alpha") for g in G], axis=0)
             for d in names for m in MODES}
    sp = {(d, m): np.stack([_arr(recs, seeds, d, m, g, "speedup") for g in G], 1)
          for d in names for m in MODES}
    chosen, val_scores = validation_choice(run_dir, seeds, config)
    val = validation_records(run_dir, seeds, config)
    ctrl = _control(config)
    # γ of each speedup comparison: the fastest on validation, per draft and mode
    gam = {(d, m): fastest_gamma(val, seeds, G, d, m) for m in MODES for d in (chosen[m], ctrl)}
    ctrl_words = ("the compute-matched undistilled draft (base + as many SFT steps as the "
                  "distillation)" if config.matched_control else "the undistilled draft")
    claims = []
    for m, label in (("t1", "temperature 1"), ("greedy", "greedy")):
        best = chosen[m]
        claims.append(stats.claim_greater(
            f"distilled_raises_alpha_{m}",
            f"the distilled draft chosen on validation α ({best}) has a higher test "
            f"acceptance rate α than {ctrl_words} ({label}, mean over γ)",
            stats.paired_difference_ci(alpha[(best, m)], alpha[(ctrl, m)]),
            unit="training seeds"))
        gd, gc = gam[(best, m)], gam[(ctrl, m)]
        rel = speedup_gain(recs, seeds, best, gd, ctrl, gc, m)
        claims.append(stats.claim_greater(
            f"distilled_raises_speedup_{m}",
            f"the distilled draft ({best}) raises the speedup (CPU time) over {ctrl_words} "
            f"({label}; γ chosen on validation CPU time: {best} γ={gd}, {ctrl} γ={gc}; "
            "relative gain, paper +10-45%)", stats.bootstrap_ci(rel), unit="training seeds"))
        ratio = (_arr(recs, seeds, best, m, gd, "speedup")
                 / _arr(recs, seeds, best, m, gd, "theory_speedup"))
        claims.append(stats.claim_greater(
            f"speedup_vs_theory_{m}",
            f"measured speedup / theory τ/(γc+1) at the measured c ({best}, {label}, "
            f"γ={gd} chosen on validation; holds above 0.9)", stats.bootstrap_ci(ratio),
            threshold=0.9, unit="training seeds"))
    fixed = ablation_name(config.ablation_divergence, 0.0)
    if fixed in names:
        for m, label in (("t1", "temperature 1"), ("greedy", "greedy")):
            claims.append(stats.claim_greater(
                f"on_policy_beats_fixed_alpha_{m}",
                f"on-policy distillation (λ = 1) gives a higher test α than fixed "
                f"ground-truth data (λ = 0), both {config.ablation_divergence} from the base "
                f"draft at equal steps ({label}, mean over γ)",
                stats.paired_difference_ci(alpha[(config.ablation_divergence, m)],
                                           alpha[(fixed, m)]), unit="training seeds"))
    lossy_claims, lossy_md = lossy_frontier(config, recs, val, seeds, chosen["t1"])
    claims += lossy_claims
    # plots
    for m in MODES:
        stats.plot_curves(run_dir.plots / f"speedup_{m}.png", np.array(G),
                          {d: sp[(d, m)] for d in names},
                          xlabel="γ (draft tokens per target call)",
                          ylabel="speedup over the target alone (CPU time)",
                          title=f"DistillSpec, {m}, {len(seeds)} seed(s)")
    eps = sorted(config.epsilons, reverse=True)
    lg = config.lossy_gamma
    front = {}
    for d in names:
        acc = np.stack([_arr(recs, seeds, d, "t1", lg, "acc", e) * 100 for e in eps], 1)
        spd = np.stack([_arr(recs, seeds, d, "t1", lg, "speedup", e) for e in eps], 1)
        front[d] = (acc, spd)
    stats.plot_curves(run_dir.plots / "lossy_accuracy.png", np.array(eps),
                      {d: front[d][0] for d in names}, xlabel="lenience ε (1 = exact)",
                      ylabel="held-out accuracy, T=1 (%)",
                      title=f"lossy frontier, γ={lg}: accuracy")
    stats.plot_curves(run_dir.plots / "lossy_speedup.png", np.array(eps),
                      {d: front[d][1] for d in names}, xlabel="lenience ε (1 = exact)",
                      ylabel="speedup (CPU time)", title=f"lossy frontier, γ={lg}: speedup")
    base = stats.collect_events(run_dir, "baseline", by={"seed": seeds, "mode": MODES})
    n = config.eval_problems * config.eval_batches
    md = [f"Divergence selected on validation α ({n} validation prompts disjoint from the "
          f"{n} test prompts, mean over γ and seeds): greedy {chosen['greedy']}, "
          f"temperature 1 {chosen['t1']}. γ of each speedup comparison selected on "
          "validation CPU time: " + ", ".join(f"{d} {m} γ={g}" for (d, m), g in gam.items())
          + f". The other tables and every claim are on the test prompts; the distilled "
          f"draft is compared with `{ctrl}`.", "",
          stats.markdown_table(
              ["validation α (mean over γ, seeds)", *config.divergences],
              [[m, *(f"{val_scores[(d, m)]:.3f}" for d in config.divergences)]
               for m in MODES])]
    md += lossy_md + power_lines(recs, seeds, chosen, gam, ctrl)

    def mean(m, k):
        return np.mean([base[(sd, m)][k] for sd in seeds])

    md += ["",
          "## Cost ratio and target-only decoding", "",
          stats.markdown_table(
              ["mode", "c (CPU time)", "c (wall)", "target-only CPU s", "target-only wall s",
               "target accuracy"],
              [[m, f"{mean(m, 'cost_ratio'):.3f}", f"{mean(m, 'wall_cost_ratio'):.3f}",
                f"{mean(m, 'target_cpu'):.3f}", f"{mean(m, 'target_seconds'):.3f}",
                f"{mean(m, 'target_acc') * 100:.1f}%"] for m in MODES])]

    def cell(d, m, g):
        a, tau, s_, t_, w_ = (_arr(recs, seeds, d, m, g, k).mean() for k in (
            "alpha", "tau", "speedup", "theory_speedup", "wall_speedup"))
        return f"{a:.2f} / {tau:.2f} / {s_:.2f} ({t_:.2f}) / {w_:.2f}"

    for m in MODES:
        md += ["", f"## {m}: α / τ / speedup in CPU time (theory τ/(γc+1)) / wall-clock "
               "speedup, per γ, mean over seeds", "",
               stats.markdown_table(["draft", *(f"γ={g}" for g in G)],
                                    [[d, *(cell(d, m, g) for g in G)] for d in names])]
    md += ["", f"## Lossy frontier (T=1, γ={lg}): accuracy % / speedup (CPU time)", "",
           stats.markdown_table(
               ["draft", *(f"ε={e:g}" for e in eps)],
               [[d, *(f"{front[d][0][:, i].mean():.1f} / {front[d][1][:, i].mean():.2f}"
                      for i in range(len(eps)))] for d in names])]
    md += ["", "![speedup t1](plots/speedup_t1.png) ![speedup greedy](plots/speedup_greedy.png)",
           "![lossy accuracy](plots/lossy_accuracy.png) "
           "![lossy speedup](plots/lossy_speedup.png)"]
    return Report(claims, "\n".join(md))
