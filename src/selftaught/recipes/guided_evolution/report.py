"""Guided evolution's report: evaluations to target per arm, and the precision / p
diagnosis (small-scale.md §6)."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Report
from selftaught.core.rundir import RunDir
from selftaught.evolve.discriminator import (
    precision_of,
    rates,
    screened_improvement_rate,
)
from selftaught.evolve.symreg import NGUYEN
from selftaught.recipes.guided_evolution.config import (
    TIE,
    GuidedEvolutionConfig,
    arm_names,
    oracle_cells,
    tasks,
)


def _ratio(s: np.ndarray) -> float:
    return float(np.mean(s[:, 0]) / max(np.mean(s[:, 1]), 1e-9))


def _finite_mean(values) -> float:
    """Mean of the finite values (NaN when there are none: e.g. the unguided arm's, or a
    predictor that never became ready)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _task_label(config: GuidedEvolutionConfig, name: str) -> str:
    return f"{name} ({NGUYEN[name][0]})" if config.domain == "symreg" else name


SEARCH = "search seeds"
"""The unit of every claim: one seed runs every arm's search once (paired across arms)."""


def report(config: GuidedEvolutionConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    all_arms = arm_names(config)
    arms = [a for a in all_arms if a not in oracle_cells(config)]
    eqs = [e for e, _ in tasks(config)]
    if run_dir.complete is False:  # an unfinished run reports the tasks it has started
        started = {r["equation"] for r in run_dir.events("run")}
        eqs = [e for e in eqs if e in started] or eqs
    # (task, seed, arm) -> its search's record; an unfinished run: the seeds done everywhere
    by = stats.collect_events(run_dir, "run", by={"equation": eqs, "seed": seeds,
                                                  "arm": all_arms}, partial="seed")
    done_seeds = list(dict.fromkeys(s for _, s, _ in by))
    # per seed: evaluations to target averaged over tasks, per arm
    evals = np.array([[np.mean([by[(e, s, a)]["evals_to_target"] for e in eqs]) for a in arms]
                      for s in done_seeds])
    n = len(done_seeds)
    paper = {"optimizer": "3.7x", "rl_loss": "4x"}.get(config.domain, "3.7-4x")
    claims = []
    for i, a in enumerate(arms[1:], 1):
        pair = evals[:, [0, i]]
        ratio = stats.bootstrap_ci(pair, _ratio)
        claims.append(stats.claim_greater(
            f"evals_ratio_unguided_over_{a}",
            f"real evaluations to reach the target, unguided / {a} ({config.domain}), mean "
            f"over seeds (paper: {paper} fewer with the discriminator); holds if CI > 1",
            ratio, 1.0, unit=SEARCH))
    if "guided" in arms and "regression" in arms:
        pair = evals[:, [arms.index("regression"), arms.index("guided")]]
        claims.append(stats.claim_greater(
            "evals_ratio_regression_over_pairwise",
            "real evaluations to target with the regressor / with the pairwise discriminator "
            "(paper: pairwise beats regression); holds if CI > 1",
            stats.bootstrap_ci(pair, _ratio), 1.0, unit=SEARCH))
    success = {a: np.array([[by[(e, s, a)]["reached"] for e in eqs] for s in done_seeds],
                           float) for a in arms}
    md = ["## Evaluations to target", ""]
    if config.domain == "symreg":
        md.append(f"Target: -NRMSE >= {config.target_fitness}")
    else:
        tg = ", ".join(f"{e}: {by[(e, done_seeds[0], arms[0])]['target']:.3f}" for e in eqs)
        ref = ("-log10(validation MSE) of the best reference program (Adam, SGD-momentum, "
               "signSGD)" if config.domain == "optimizer" else
               f"the chain-hurdle score of the {config.rl_target} reference loss "
               f"({'δ², TD' if config.rl_target == 'td' else '(Q(s,a) - r)², myopic'})")
        md.append(f"Target: {ref} {config.target_gain:+g} ({tg})")
    md[-1] += (f", within {config.max_evaluations} real evaluations (failures counted as "
               f"{config.max_evaluations}); guide mode `{config.guide_mode}`, "
               f"{config.proposals} proposals.")
    table, images = [], []
    ylabel = {"symreg": "best -NRMSE", "optimizer": "best -log10 val. MSE"}.get(
        config.domain, "best chain score")
    for e in eqs:
        for a in arms:
            rows = [by[(e, s, a)] for s in done_seeds]
            acc = _finite_mean([r["disc_online_accuracy"] for r in rows])
            acc_rate = _finite_mean([r.get("accept_rate", np.nan) for r in rows])
            table.append([_task_label(config, e), a,
                          f"{np.mean([r['evals_to_target'] for r in rows]):.0f}",
                          f"{np.mean([r['reached'] for r in rows]):.0%}",
                          "-" if np.isnan(acc) else f"{acc:.2f}",
                          "-" if np.isnan(acc_rate) else f"{acc_rate:.0%}",
                          f"`{rows[0]['best_formula']}`"])
        x = np.asarray(by[(e, done_seeds[0], arms[0])]["curve_x"])
        curves = {a: np.array([by[(e, s, a)]["curve"] for s in done_seeds]) for a in arms}
        stats.plot_curves(run_dir.plots / f"{e}_best_fitness.png", x, curves,
                          xlabel="real evaluations", ylabel=ylabel,
                          hlines={"target": np.full(n, by[(e, done_seeds[0], arms[0])].get(
                              "target", config.target_fitness))})
        images += ["", f"![{e}](plots/{e}_best_fitness.png)"]
    md += ["", stats.markdown_table(
        ["task", "arm", "mean evals to target", "success rate", "predictor accuracy",
         "accepted proposals", "best program (seed 0)"], table), *images]
    md += ["", "Success rate over all tasks: " + ", ".join(
        f"{a} {success[a].mean():.0%}" for a in arms) + f"; seeds {n}."]
    # diagnosis: does a run's speed-up follow its predictor's accuracy?
    for a in arms[1:]:
        acc = np.array([_finite_mean([by[(e, s, a)]["disc_online_accuracy"] for e in eqs])
                        for s in done_seeds])
        speed = evals[:, 0] / np.maximum(evals[:, arms.index(a)], 1.0)
        ok = np.isfinite(acc)
        if ok.sum() >= 3 and np.ptp(acc[ok]) > 0 and np.ptp(speed[ok]) > 0:
            r = float(np.corrcoef(acc[ok], speed[ok])[0, 1])
            pt = stats.bootstrap_ci(acc[ok])
            md += ["", f"{a}: predictor online accuracy {pt[0]:.3f} [{pt[1]:.3f}, {pt[2]:.3f}]; "
                   f"Pearson r between a seed's accuracy and its speed-up "
                   f"(unguided evals / {a} evals) = {r:+.2f} over {int(ok.sum())} seeds."]
    acc = [(s, by[(e, s, "guided")]["disc_online_accuracy"]) for e in eqs for s in done_seeds
           if "guided" in arms]
    acc_seeds = len({s for s, a in acc if np.isfinite(a)})  # the searches behind the CI
    acc = np.array([a for _, a in acc if np.isfinite(a)])
    if acc.size:
        claims.append(stats.claim_greater(
            "discriminator_online_accuracy",
            "pairwise accuracy of the discriminator on freshly evaluated programs before "
            "training on them; holds if CI > 0.5",
            stats.bootstrap_ci(acc, unit="(task, search seed) runs"), 0.5, unit=SEARCH,
            n=acc_seeds))
    stats.plot_bars(run_dir.plots / "evals_to_target.png",
                    {a: stats.bootstrap_ci(evals[:, i]) for i, a in enumerate(arms)},
                    ylabel="real evaluations to target")
    md += ["", "![evaluations to target](plots/evals_to_target.png)"]
    d_claims, d_md = _diagnosis(config, run_dir, by, eqs, done_seeds)
    return Report(claims + d_claims, "\n".join(md + d_md))


def _fmt(x: float, f: str = ".3f") -> str:
    return "-" if not np.isfinite(x) else format(x, f)


def _diagnosis(config: GuidedEvolutionConfig, run_dir: RunDir, by: dict, eqs: list,
               seeds: list) -> tuple[list, list[str]]:
    """Improving-mutation rate p and the discriminator's TPR / FPR / precision on
    child-vs-parent pairs; the speed-up predicted by precision / p (capped by the retry
    budget: `screened_improvement_rate`) against the measured one, over the oracle grid
    and over the learned discriminator's seeds. The prediction assumes the filter rule."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms, cells, R = arm_names(config), oracle_cells(config), config.proposals
    S, A = len(seeds), len(arms)
    if "unguided" not in arms or S == 0:
        return [], []
    ev = np.array([[np.mean([by[(e, s, a)]["evals_to_target"] for e in eqs]) for a in arms]
                   for s in seeds])                                              # [S, A]
    hold = np.array([[np.sum([by[(e, s, a)].get("confusion_holdout", [[0] * 4])
                              for e in eqs], axis=(0, 1)) for a in arms] for s in seeds])
    evald = np.array([[np.sum([by[(e, s, a)].get("confusion_evaluated", [[0] * 4])
                               for e in eqs], axis=(0, 1)) for a in arms] for s in seeds])
    nov = np.array([[np.sum([by[(e, s, a)].get("holdout_novelty", [[1, 1]]) for e in eqs],
                            axis=(0, 1)) for a in arms] for s in seeds])          # [S, A, 2]
    u = arms.index("unguided")

    def arm_stats(a: int, sel=slice(None)) -> dict:
        h, v = rates(hold[sel, a].sum(0)), rates(evald[sel, a].sum(0))
        pu = rates(evald[sel, u].sum(0))["p"]
        if a == u:  # no discriminator: every mutation is "accepted"
            h = {**h, "tpr": 1.0, "fpr": 1.0, "precision": h["p"]}
            v = {**v, "tpr": 1.0, "precision": v["p"]}
        tpr, fpr = cells.get(arms[a], (h["tpr"], h["fpr"]))  # oracle: its nominal rates
        f = nov[sel, a, 1].sum() / max(nov[sel, a, 0].sum(), 1)
        pred = (float(screened_improvement_rate(h["p"], tpr, fpr, R, f)) / h["p"] if h["p"]
                else float("nan"))
        return {"p": h["p"], "tpr": tpr, "fpr": fpr, "novel": f,
                "precision": float(precision_of(h["p"], tpr, fpr)),
                "tpr_meas": h["tpr"], "fpr_meas": h["fpr"], "prec_meas": h["precision"],
                "p_eval": v["p"], "tpr_eval": v["tpr"], "prec_eval": v["precision"],
                "realized": v["p"] / pu if pu else float("nan"), "predicted": pred,
                "own": v["p"] / h["p"] if h["p"] else float("nan"),
                "speedup": float(np.mean(ev[sel, u]) / max(np.mean(ev[sel, a]), 1e-9))}

    st = [arm_stats(a) for a in range(A)]
    md = ["", "## Diagnosis: precision / p (small-scale.md §6)", "",
          f"p = rate of improving mutations (child fitness > parent's + {TIE:g}) among "
          f"{config.diag_holdout} unscreened novel mutations of each batch's parents, scored "
          "outside the budget (held out: no selection bias); TPR / FPR / precision of the "
          "discriminator's \"child better\" (P > 0.5, before training on them) on those held-out "
          "pairs, and (biased: only children the arm chose) on the evaluated pairs. "
          f"Predicted gain = P(evaluated child improves) / p under the filter rule with "
          f"{R} proposals (`screened_improvement_rate`) = precision / p capped by 1 - (1 - "
          f"novel q)^{R}, q = p TPR + (1 - p) FPR, novel = the fraction of mutations that are "
          "not known functions (only those are screened; oracle cells: their nominal TPR / "
          "FPR). Realized gain = improving rate of the "
          "evaluated children / unguided's; own gain = improving rate of the evaluated "
          "children / the arm's own held-out p (what the prediction models: a screened search "
          "climbs to parents whose p is lower, so realized = own x p_arm / p_unguided). "
          "Speed-up = unguided / arm mean evaluations to "
          f"target. Pooled over {len(eqs)} task(s) x {S} seeds.", "",
          stats.markdown_table(
              ["arm", "p", "novel", "TPR", "FPR", "precision", "precision/p", "TPR eval.",
               "precision eval.", "predicted gain", "own gain", "realized gain", "speed-up"],
              [[a, _fmt(x["p"]), _fmt(x["novel"], ".2f"), _fmt(x["tpr_meas"]),
                _fmt(x["fpr_meas"]), _fmt(x["prec_meas"]), _fmt(x["precision"] / x["p"], ".2f"),
                _fmt(x["tpr_eval"]), _fmt(x["prec_eval"]), _fmt(x["predicted"], ".2f"),
                _fmt(x["own"], ".2f"), _fmt(x["realized"], ".2f"), _fmt(x["speedup"], ".2f")]
               for a, x in zip(arms, st)])]
    # p and the learned discriminator's rates over the search (pooled over runs)
    W = config.diag_windows
    x = ((np.arange(W) + 1) * config.max_evaluations // W).astype(int)
    win = {a: np.sum([by[(e, s, a)].get("confusion_holdout", np.zeros((W, 4)))
                      for e in eqs for s in seeds], axis=0) for a in arms}
    curves = {a: np.array([[rates(win[a][w])["p"] for w in range(W)]]) for a in arms
              if a not in cells or a == max(cells, key=lambda c: cells[c][0] - cells[c][1])}
    stats.plot_curves(run_dir.plots / "p_over_search.png", x, curves,
                      xlabel="real evaluations (window end)",
                      ylabel="p (improving novel mutations)")
    md += ["", "![p over the search](plots/p_over_search.png)"]
    for a in ("guided", "regression", "tuned"):
        if a in arms:
            r = [rates(win[a][w]) for w in range(W)]
            stats.plot_curves(run_dir.plots / f"{a}_rates_over_search.png", x,
                              {k: np.array([[q[k] for q in r]]) for k in
                               ("p", "tpr", "fpr", "precision")},
                              xlabel="real evaluations (window end)", ylabel="rate")
            md += ["", f"{a}: held-out p, TPR, FPR, precision per window of "
                   f"{config.max_evaluations // W} evaluations: " + "; ".join(
                       f"{x[w]}: p {_fmt(q['p'], '.2f')} TPR {_fmt(q['tpr'], '.2f')} "
                       f"prec {_fmt(q['precision'], '.2f')}" for w, q in enumerate(r)),
                   "", f"![{a} rates](plots/{a}_rates_over_search.png)"]
    claims = []
    names = [a for a in arms if a in cells]
    if len(names) >= 3:
        idx = [arms.index(a) for a in names]

        def grid_pred_speed(rows_idx, key="speedup"):
            cell = [arm_stats(i, rows_idx) for i in idx]
            return (np.array([c["predicted"] for c in cell]),
                    np.array([c[key] for c in cell]))

        def rho(rows):
            return stats.spearman(*grid_pred_speed(rows[:, 0].astype(int)))

        def slope(rows, key="speedup"):
            pr, sp = grid_pred_speed(rows[:, 0].astype(int), key)
            ok = (pr > 0) & (sp > 0) & np.isfinite(pr) & np.isfinite(sp)
            return (np.polyfit(np.log(pr[ok]), np.log(sp[ok]), 1)[0] if ok.sum() >= 3
                    and np.ptp(np.log(pr[ok])) > 0 else np.nan)

        rows = np.arange(S)[:, None]
        est = stats.unit_bootstrap(rows, rho, unit=SEARCH)
        sl = stats.unit_bootstrap(rows, slope, reps=1000, unit=SEARCH)
        so = stats.unit_bootstrap(rows, lambda r: slope(r, "own"), reps=1000, unit=SEARCH)
        claims.append(stats.claim_greater(
            "oracle_speedup_tracks_precision_over_p",
            f"Spearman rank correlation over the {len(names)} oracle (TPR, FPR) cells between "
            "the predicted gain (precision / p, capped by the retry budget) and the measured "
            "speed-up (unguided / oracle evaluations to target); CI by resampling search "
            "seeds (paired across cells); holds if CI > 0", est, 0.0, unit=SEARCH))
        claims.append(stats.claim(
            "oracle_per_eval_gain_matches_precision_over_p",
            f"slope of log(own gain: improving rate of the evaluated children / the arm's own "
            f"held-out p) on log(predicted gain) over the {len(names)} oracle cells; CI by "
            "resampling search seeds; holds if the CI lies within [0.75, 1.25] (the "
            "per-evaluation gain is proportional to the prediction within a quarter)",
            so, bool(0.75 <= so[1] and so[2] <= 1.25), unit=SEARCH))
        md += ["", f"Oracle grid: slope of log(speed-up) on log(predicted gain) over "
               f"{len(names)} cells = {sl[0]:.2f} [{sl[1]:.2f}, {sl[2]:.2f}] (1 = speed-up "
               f"proportional to the prediction; {S} search seeds resampled); of log(own gain) "
               f"on log(predicted gain): {so[0]:.2f} [{so[1]:.2f}, {so[2]:.2f}]."]
        meet = [a for a in names if st[arms.index(a)]["p"] < 0.1
                and st[arms.index(a)]["precision"] >= 3 * st[arms.index(a)]["p"]]
        md += ["", "Oracle cells with p < 0.1 and precision >= 3p: " + (", ".join(
            f"{a} speed-up {st[arms.index(a)]['speedup']:.2f} (predicted "
            f"{st[arms.index(a)]['predicted']:.2f})" for a in meet) or "none") + "."]
    # left: the whole chain (prediction -> evaluations to target); right: its first link,
    # the improving rate of the evaluated children over the arm's own p
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, key, label in zip(axes, ("speedup", "own"), (
            "speed-up (unguided / arm evals to target)",
            "own gain (improving rate of evaluated children / arm's p)")):
        for a, x_ in zip(arms, st):
            if a in cells:
                ax.scatter(x_["predicted"], x_[key], c="tab:blue", s=25)
                ax.annotate(f"{x_['tpr']:g}/{x_['fpr']:g}", (x_["predicted"], x_[key]),
                            fontsize=6)
        for a in ("guided", "regression", "tuned"):
            if a in arms:
                i = arms.index(a)
                per = [arm_stats(i, [k]) for k in range(S)]
                ax.scatter([q["predicted"] for q in per], [q[key] for q in per], marker="x",
                           label=f"{a} (per seed)")
        ax.scatter([], [], c="tab:blue", s=25, label="oracle cell (TPR/FPR)")
        ax.plot([0.2, 20], [0.2, 20], "k--", lw=0.8, label="y = prediction")
        ax.set(xscale="log", yscale="log", ylabel=label,
               xlabel="predicted gain (precision / p, retry-capped)")
        ax.legend(fontsize=7)
    stats.save_figure(fig, run_dir.plots / "precision_over_p.png", dpi=120)
    md += ["", "![speed-up vs precision/p](plots/precision_over_p.png)"]
    for name in ("guided", "tuned"):  # the learned discriminator where theory says it wins
        if name not in arms or not config.diag_holdout:  # p needs the held-out mutations
            continue
        g = arms.index(name)
        runs = [(s_i, e) for s_i, s in enumerate(seeds) for e in eqs
                if (lambda r: r["p"] < 0.1 and r["precision"] >= 3 * r["p"])(
                    rates(np.sum(by[(e, s, name)].get("confusion_holdout", [[0] * 4]), 0)))]
        qual = sorted({s_i for s_i, _ in runs})
        rows = np.array([[np.mean([by[(e, seeds[k], a)]["evals_to_target"] for kk, e in runs
                                   if kk == k]) for a in ("unguided", name)]
                         for k in qual]).reshape(-1, 2)
        est = stats.unit_bootstrap(rows, lambda r: np.mean(r[:, 0]) / max(np.mean(r[:, 1]), 1e-9),
                                   unit=SEARCH)
        claims.append(stats.claim_greater(
            f"{name}_2x_where_precision_over_p_ge_3",
            f"learned discriminator ({name}): speed-up (unguided / {name} evaluations to "
            "target) over the (task, seed) runs whose held-out p < 0.1 and precision >= 3p; "
            "holds if CI > 2", est, 2.0, unit=SEARCH).gated(
                bool(runs), f"no (task, seed) run of the {name} arm met held-out p < 0.1 and "
                "precision >= 3p, the condition the claim is about"))
        x_ = st[g]
        op = "P > 0.5" if name == "guided" else "its tuned threshold"
        md += ["", f"{name}: discriminator at its operating point ({op}), pooled held-out "
               f"pairs: p {_fmt(x_['p'])}, TPR {_fmt(x_['tpr_meas'])}, FPR "
               f"{_fmt(x_['fpr_meas'])}, precision {_fmt(x_['prec_meas'])} = "
               f"{_fmt(x_['precision'] / x_['p'], '.2f')} x p; {len(runs)} of {len(eqs) * S} "
               "runs meet p < 0.1 and precision >= 3p."]
        hist = np.sum([by[(e, s, name)].get("holdout_prob_hist", np.zeros((2, 20)))
                       for e in eqs for s in seeds], axis=0).astype(float)
        if hist[0].sum() and hist[1].sum():
            tpr_t = hist[0][::-1].cumsum()[::-1] / hist[0].sum()  # P >= bin's lower edge
            fpr_t = hist[1][::-1].cumsum()[::-1] / hist[1].sum()
            below = 1.0 - fpr_t  # negatives in lower bins (ties in a bin count half)
            auc = float(np.sum(hist[0] * (below + 0.5 * hist[1] / hist[1].sum()))
                        / hist[0].sum())
            gain = screened_improvement_rate(x_["p"], tpr_t, fpr_t, R, x_["novel"]) / x_["p"]
            b_ = int(np.nanargmax(gain))
            md += ["", f"{name}: held-out ROC AUC {auc:.3f} (child-vs-parent pairs, 20-bin "
                   f"histogram); the best threshold on these same pairs (an upper bound, not "
                   f"a tuned result) would be P >= {b_ / 20:.2f}: TPR {tpr_t[b_]:.2f}, FPR "
                   f"{fpr_t[b_]:.3f}, predicted gain {gain[b_]:.2f} (at P > 0.5: "
                   f"{x_['predicted']:.2f})."]
    if "tuned" in arms:
        md += _tuned_validation(config, by, eqs, seeds)
    return claims, md


def _tuned_validation(config: GuidedEvolutionConfig, by: dict, eqs: list,
                      seeds: list) -> list[str]:
    """The tuned arm's own validation pairs (its unscreened, budget-counted children; the
    verdict taken before evaluation, at the threshold then in force and at P > 0.5): p,
    TPR, FPR, precision and precision / p, pooled over runs, with a CI over search seeds
    for precision / p. Needs no `diag_holdout`, so it measures the optimizer / rl_loss
    domains too."""
    th = [by[(e, s, "tuned")].get("threshold_mean", np.nan) for e in eqs for s in seeds]
    thf = [by[(e, s, "tuned")].get("threshold_final", np.nan) for e in eqs for s in seeds]
    conf = np.array([np.sum([by[(e, s, "tuned")].get("confusion_validation", [[0] * 4] * 2)
                             for e in eqs], axis=0) for s in seeds], np.float64)  # [S, 2, 4]
    md = ["", f"tuned: threshold over runs, mean of each run's choices "
          f"{_finite_mean(th):.2f}, final {_finite_mean(thf):.2f} (chosen online on "
          f"{config.tune_pairs} unscreened, budget-counted children per batch; the filter "
          f"rule with {config.proposals} proposals)."]
    if not conf.sum():
        return md
    recs = [by[(e, s, "tuned")] for e in eqs for s in seeds]
    drawn = sum(r.get("validation_drawn", 0) for r in recs)
    novel = sum(r.get("validation_first_novel" if config.tune_redraws else "validation_pairs",
                      0) for r in recs) / max(drawn, 1)
    rows = []
    for k, label in enumerate(("tuned threshold (in force)", "P > 0.5")):
        r = rates(conf[:, k].sum(0))
        pred = (float(screened_improvement_rate(r["p"], r["tpr"], r["fpr"], config.proposals,
                                                novel)) / r["p"] if r["p"] else float("nan"))

        def prec_over_p(c, k=k):
            q = rates(c[:, k].sum(0))
            return q["precision"] / q["p"] if q["p"] else np.nan

        est = stats.unit_bootstrap(conf, prec_over_p, unit=SEARCH)
        rows.append([label, f"{int(conf[:, k].sum())}", _fmt(r["p"]), _fmt(r["tpr"]),
                     _fmt(r["fpr"]), _fmt(r["precision"]),
                     f"{_fmt(est[0], '.2f')} [{_fmt(est[1], '.2f')}, {_fmt(est[2], '.2f')}]",
                     _fmt(pred, ".2f")])
    md += ["", "tuned: its validation pairs (unscreened children, verdict before evaluation; "
           f"pooled over {len(eqs)} task(s) x {len(seeds)} seeds, CI over search seeds). "
           f"Novel fraction of plain mutations {novel:.2f} ({drawn} drawn); predicted gain = "
           f"`screened_improvement_rate` / p with {config.proposals} proposals at that "
           "novel fraction:", "",
           stats.markdown_table(["operating point", "pairs", "p", "TPR", "FPR", "precision",
                                 "precision / p", "predicted gain"], rows)]
    return md
