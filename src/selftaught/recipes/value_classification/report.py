"""value-classification: the reports (width study and conditions study) and their claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Claim, Report
from selftaught.core.rundir import RunDir
from selftaught.recipes.value_classification.config import LABEL, ValueClassificationConfig
from selftaught.rl.dqn import replay_ratio
from selftaught.rl.envs import normalized_return


def _scores(run_dir: RunDir, cfg: ValueClassificationConfig, seeds: list[int]):
    """{(loss, width): seeds x envs final normalised scores}, curves per (env, loss, width)."""
    table: dict[tuple[str, str, float], dict[int, dict]] = {}
    for e in run_dir.events("curve"):
        table.setdefault((e["env"], e["loss"], float(e["width"])), {})[e["seed"]] = e
    curves = {}
    finals = {}
    for (env, loss, width), by_seed in table.items():
        runs = [by_seed[s] for s in seeds if s in by_seed]
        ev = normalized_return(env, np.array([r["eval_return"] for r in runs], np.float64))
        curves[(env, loss, width)] = (np.array(runs[0]["steps"]), ev)
        finals[(env, loss, width)] = ev[:, -cfg.final_points:].mean(axis=1)
    return finals, curves


def _matrix(finals, envs, loss, width) -> np.ndarray | None:
    cols = [finals.get((e, loss, width)) for e in envs]
    if any(c is None for c in cols):
        return None
    n = min(len(c) for c in cols)
    return np.stack([c[:n] for c in cols], axis=1)  # runs x tasks


def report(cfg: ValueClassificationConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    if cfg.conditions:
        return conditions_report(cfg, run_dir, seeds)
    finals, curves = _scores(run_dir, cfg, seeds)
    md: list[str] = []
    main = {LABEL.get(x, x): _matrix(finals, cfg.envs, x, 1.0) for x in cfg.losses}
    main = {k: v for k, v in main.items() if v is not None}
    md += ["## Final normalised return (width 1)", "",
           f"Tasks: {', '.join(cfg.envs)}; {len(seeds)} seeds per loss; score = mean greedy "
           f"return over the last {cfg.final_points} evaluations, normalised per task as "
           "(R - random) / (reference - random) (see `selftaught.rl.envs.ENVS`). "
           "IQM and 95% stratified-bootstrap CIs (rliable).", ""]
    agg = stats.aggregate(main) if main else {}
    md.append(stats.markdown_table(
        ["loss", "IQM", "95% CI", "mean", "median", "optimality gap"],
        [[name, f"{a['iqm'][0]:.3f}", f"[{a['iqm'][1]:.3f}, {a['iqm'][2]:.3f}]",
          f"{a['mean'][0]:.3f}", f"{a['median'][0]:.3f}", f"{a['optimality_gap'][0]:.3f}"]
         for name, a in agg.items()]))
    if agg:
        stats.plot_bars(run_dir.plots / "iqm.png", {k: v["iqm"] for k, v in agg.items()},
                        ylabel="IQM normalised return", title="width 1")
        hi = max(1.0, max(float(v.max()) for v in main.values()))
        stats.plot_profiles(run_dir.plots / "profiles.png", main, np.linspace(0, hi, 41),
                            xlabel="normalised return (tau)")
        md += ["", "![IQM](plots/iqm.png)", "", "![performance profiles](plots/profiles.png)"]

    # per-task table and learning curves
    md += ["", "## Per task (mean final normalised return over seeds)", "",
           stats.markdown_table(
               ["task", *(LABEL.get(x, x) for x in cfg.losses)],
               [[env, *("-" if finals.get((env, x, 1.0)) is None
                        else f"{finals[(env, x, 1.0)].mean():.3f}" for x in cfg.losses)]
                for env in cfg.envs])]
    images = []
    for env in cfg.envs:
        got = {LABEL.get(x, x): curves[(env, x, 1.0)] for x in cfg.losses
               if (env, x, 1.0) in curves}
        if got:
            steps = next(iter(got.values()))[0]
            path = run_dir.plots / f"curves_{env}.png"
            stats.plot_curves(path, steps, {k: v[1] for k, v in got.items()},
                              xlabel="env steps", ylabel="normalised return", title=env)
            images += ["", f"![learning curves {env}](plots/{path.name})"]
    md += ["", "Learning curves (mean and 95% bootstrap band over seeds):", *images]

    claims: list[Claim] = []
    hl, mse = main.get("HL-Gauss"), main.get("MSE")
    if hl is not None and mse is not None:
        d = stats.iqm_difference(hl, mse)
        claims.append(stats.claim_greater(
            "hl_gauss_iqm_gt_mse", "IQM(HL-Gauss) - IQM(MSE) > 0 (normalised return)", d, 0.0,
            unit="training seeds"))
        p = stats.probability_of_improvement(hl, mse)
        claims.append(stats.claim_greater(
            "p_hl_gauss_gt_mse", "P(HL-Gauss > MSE) > 0.5", p, 0.5, unit="training seeds"))
        rows = []
        for name, m in main.items():
            if name != "HL-Gauss":
                pt, lo, hi_ = stats.probability_of_improvement(hl, m)
                rows.append(["HL-Gauss", name, f"{pt:.3f}", f"[{lo:.3f}, {hi_:.3f}]"])
        md += ["", "## Probability of improvement", "",
               stats.markdown_table(["X", "Y", "P(X > Y)", "95% CI"], rows)]

    # width sweep
    widths = sorted({float(w) for w in (1.0, *cfg.sweep_widths)})
    if cfg.sweep_envs and len(widths) > 1:
        md += ["", "## Width sweep", "",
               f"Tasks: {', '.join(cfg.sweep_envs)}. IQM of final normalised return "
               "(95% CI).", ""]
        bars, mats, rows = {}, {}, []
        for loss in cfg.sweep_losses:
            row = []
            for w in widths:
                m = _matrix(finals, cfg.sweep_envs, loss, w)
                mats[(loss, w)] = m
                if m is None:
                    row.append("-")
                    continue
                est = stats.bootstrap_ci(m, "iqm")
                bars[f"{LABEL.get(loss, loss)} x{w:g}"] = est
                row.append(stats.ci_cell(est, ".3f"))
            rows.append([LABEL.get(loss, loss), *row])
        md.append(stats.markdown_table(["loss", *(f"width {w:g}" for w in widths)], rows))
        if bars:
            stats.plot_bars(run_dir.plots / "width_sweep.png", bars, ylabel="IQM",
                            title="width sweep")
            md += ["", "![width sweep](plots/width_sweep.png)"]
        lo_w, hi_w = widths[0], widths[-1]
        need = [("hl_gauss", lo_w), ("hl_gauss", hi_w), ("mse", lo_w), ("mse", hi_w)]
        if all(mats.get(k) is not None for k in need):
            gain = _width_gain_difference(mats, lo_w, hi_w)
            claims.append(stats.claim_greater(
                "hl_gauss_gains_more_from_width",
                f"[IQM(w{hi_w:g}) - IQM(w{lo_w:g})] of HL-Gauss minus that of MSE > 0", gain,
                unit="training seeds"))
    md += ["", "## Notes", "",
           "Scores come from greedy evaluation episodes run inside the compiled training "
           "program. A claim holds when its 95% CI lies entirely above the threshold; at "
           "CPU scale (short training, few tasks) the paper's effects may not reproduce, "
           "and the table says so."]
    return Report(claims, "\n".join(md))


def _width_gain_difference(mats, lo_w, hi_w, reps: int = 2000) -> stats.Estimate:
    """[IQM_hl(hi) - IQM_hl(lo)] - [IQM_mse(hi) - IQM_mse(lo)], with a bootstrap that
    resamples the runs of each of the four (independent) matrices within each task column
    (`stats.group_bootstrap`), as an Estimate over n = the fewest runs of the four."""
    from rliable import metrics

    iqm = metrics.aggregate_iqm
    arrs = [mats[("hl_gauss", hi_w)], mats[("hl_gauss", lo_w)], mats[("mse", hi_w)],
            mats[("mse", lo_w)]]
    return stats.group_bootstrap(
        arrs, lambda a: (iqm(a[0]) - iqm(a[1])) - (iqm(a[2]) - iqm(a[3])), reps=reps)



def _iqm(x) -> float:
    from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(x, np.float64).reshape(-1), 0.25))


def lr_choice(tune_iqm: dict[float, float]) -> float:
    """The rate with the highest IQM on the tuning seeds (ties: the smaller rate)."""
    return max(sorted(tune_iqm), key=lambda lr: tune_iqm[lr])


def sensitivity_area(scores_RxL: np.ndarray) -> float:
    """Mean over the (log-spaced) learning rates of the IQM over runs: the area under the
    LR-sensitivity curve per unit log-lr. scores_RxL: runs x lrs (x tasks)."""
    s = np.asarray(scores_RxL, np.float64)
    return float(np.mean([_iqm(s[:, j]) for j in range(s.shape[1])]))


def conditions_report(cfg: ValueClassificationConfig, run_dir: RunDir, seeds: list[int]
                      ) -> Report:
    by: dict[tuple, dict[int, dict]] = {}
    for e in run_dir.events("cond_curve"):
        by.setdefault((e["env"], e["condition"], e["loss"], float(e["lr"])), {})[e["seed"]] = e
    lrs = [float(x) for x in cfg.lr_grid]

    def final(env, cond, loss, lr, which):
        got = by.get((env, cond, loss, lr), {})
        runs = [got[s] for s in which if s in got]
        if len(runs) < len(which):
            return None
        ev = normalized_return(env, np.array([r["eval_return"] for r in runs], np.float64))
        return ev[:, -cfg.final_points:].mean(axis=1)

    def matrix(cond, loss, lr, which):  # runs x tasks
        cols = [final(e, cond, loss, lr, which) for e in cfg.envs]
        return None if any(c is None for c in cols) else np.stack(cols, axis=1)

    what = {"clean": f"clean ({replay_ratio(cfg.dqn):g} gradient updates per environment "
                     "step)",
            "noisy": f"noisy (every training reward + N(0, {cfg.noise_std:g}^2), evaluation "
                     "on the clean reward)",
            "high_rr": f"high_rr ({cfg.high_replay_ratio:g} gradient updates per environment "
                       f"step vs {replay_ratio(cfg.dqn):g} in clean)"}
    md = ["## Conditions study: HL-Gauss vs MSE where \"Stop regressing\" says it helps", "",
          f"Tasks: {', '.join(cfg.envs)}. Conditions: "
          f"{'; '.join(what[c] for c in cfg.conditions)}. Each loss's learning rate is chosen from "
          f"{', '.join(f'{x:g}' for x in lrs)} by IQM on the held-out seeds "
          f"{list(cfg.tune_seeds)}; scores are on the reported seeds {seeds[0]}..{seeds[-1]} "
          f"(n = {len(seeds)}). Score = mean normalised greedy return over the last "
          f"{cfg.final_points} evaluations.", ""]
    chosen: dict[tuple[str, str], float] = {}
    rows, sens_rows, curves_plot = [], [], {}
    for cond in cfg.conditions:
        for loss in cfg.losses:
            tune = {lr: matrix(cond, loss, lr, list(cfg.tune_seeds)) for lr in lrs}
            rep = {lr: matrix(cond, loss, lr, seeds) for lr in lrs}
            if any(v is None for v in (*tune.values(), *rep.values())):
                continue
            lr = lr_choice({k: _iqm(v) for k, v in tune.items()})
            chosen[(cond, loss)] = lr
            rows.append([cond, LABEL.get(loss, loss),
                         " / ".join(f"{_iqm(tune[x]):.3f}" for x in lrs), f"{lr:g}",
                         stats.ci_cell(stats.bootstrap_ci(rep[lr], "iqm"), ".3f")])
            grid = np.stack([rep[x].mean(axis=1) for x in lrs], axis=1)  # runs x lrs
            curves_plot.setdefault(cond, {})[LABEL.get(loss, loss)] = grid
            sens_rows.append([cond, LABEL.get(loss, loss),
                              " / ".join(f"{_iqm(rep[x]):.3f}" for x in lrs),
                              f"{sensitivity_area(grid):.3f}"])
    md += ["### Learning-rate choice (tuning seeds) and reported score at the chosen rate", "",
           stats.markdown_table(
               ["condition", "loss", "tuning IQM per lr (" + " / ".join(f"{x:g}" for x in lrs)
                + ")", "chosen lr", "reported IQM (95% CI)"], rows)]
    md += ["", "### LR-sensitivity curves (reported seeds)", "",
           "IQM of normalised return at each learning rate; area = mean over the log-spaced "
           "rates (higher = better and flatter across rates).", "",
           stats.markdown_table(["condition", "loss", "IQM per lr", "area"], sens_rows)]
    for cond, got in curves_plot.items():
        path = run_dir.plots / f"lr_curve_{cond}.png"
        stats.plot_curves(path, np.log10(lrs), got, xlabel="log10 learning rate",
                          ylabel="normalised return", title=f"{cond}: LR sensitivity")
        md += ["", f"![LR sensitivity {cond}](plots/{path.name})"]

    claims: list[Claim] = []
    diff_rows = []
    for cond in cfg.conditions:
        if ("hl_gauss", "mse") != tuple(x for x in ("hl_gauss", "mse") if (cond, x) in chosen):
            continue
        hl = matrix(cond, "hl_gauss", chosen[(cond, "hl_gauss")], seeds)
        mse = matrix(cond, "mse", chosen[(cond, "mse")], seeds)
        d = stats.iqm_difference(hl, mse, unit="training seeds")
        diff_rows.append([cond, stats.ci_cell(d, ".3f"),
                          "a tie is expected (paper: gains come from noise and "
                          "non-stationarity)" if cond == "clean" else "HL-Gauss > MSE"])
        if cond != "clean":
            claims.append(stats.claim_greater(
                f"hl_gauss_gt_mse_{cond}",
                f"{cond}: IQM(HL-Gauss) - IQM(MSE) > 0, each at its lr tuned on held-out seeds",
                d, 0.0, unit="training seeds"))
    md += ["", "### IQM(HL-Gauss) - IQM(MSE) at the tuned rates (reported seeds)", "",
           stats.markdown_table(["condition", "difference (95% CI)", "expectation"],
                                diff_rows)]
    area = _area_difference(cfg, matrix, seeds, lrs)
    if area is not None:
        claims.append(stats.claim_greater(
            "hl_gauss_flatter_lr_curve",
            "LR-sensitivity area of HL-Gauss - that of MSE > 0 (mean over conditions and "
            "the log-spaced rates of the IQM; reported seeds)", area, 0.0,
            unit="training seeds"))
    md += ["", "### Diagnostics at the chosen rates (reported seeds, last evaluation chunk)",
           "", _diagnostics(cfg, by, chosen, seeds)]
    md += ["", "## Notes", "",
           "A claim holds when its 95% CI lies entirely above 0. The learning-rate choice "
           "uses only the tuning seeds; the sensitivity curves and claims use only the "
           "reported seeds."]
    return Report(claims, "\n".join(md))


def _area_difference(cfg, matrix, seeds, lrs):
    """Sensitivity area (HL-Gauss) - (MSE), averaged over conditions, bootstrapped over the
    reported seeds (a seed's row holds all its cells, resampled together)."""
    cols = []
    for cond in cfg.conditions:
        for loss in ("hl_gauss", "mse"):
            for lr in lrs:
                m = matrix(cond, loss, lr, seeds)
                if m is None:
                    return None
                cols.append(m)
    rows = np.stack(cols, axis=1)  # seeds x (cond, loss, lr) x tasks
    shape = (len(cfg.conditions), 2, len(lrs))

    def stat(r):
        iqm = np.array([_iqm(r[:, j]) for j in range(r.shape[1])]).reshape(shape)
        area = iqm.mean(axis=2)  # cond x loss
        return float((area[:, 0] - area[:, 1]).mean())

    return stats.unit_bootstrap(rows, stat, unit="training seeds")


def _diagnostics(cfg, by, chosen, seeds) -> str:
    """Per condition and loss at the chosen rate: the TD error's RMS in value units (every
    loss measures it the same way), its ratio to the HL-Gauss target sd, and the noise sd
    in bin widths."""
    width = (cfg.dqn.v_max - cfg.dqn.v_min) / cfg.dqn.num_bins
    sigma = cfg.dqn.sigma_ratio * width
    rows = []
    for (cond, loss), lr in chosen.items():
        td = [np.sqrt(by[(e, cond, loss, lr)][s]["td_sq"][-1]) for e in cfg.envs
              for s in seeds if s in by.get((e, cond, loss, lr), {})]
        q = [by[(e, cond, loss, lr)][s]["q"][-1] for e in cfg.envs
             for s in seeds if s in by.get((e, cond, loss, lr), {})]
        noise = cfg.noise_std * cfg.dqn.reward_scale if cond == "noisy" else 0.0
        rows.append([cond, LABEL.get(loss, loss), f"{lr:g}", f"{np.mean(td):.3f}",
                     f"{np.mean(td) / sigma:.2f}", f"{noise / width:.2f}",
                     f"{np.mean(q):.3f}"])
    # does the value estimate track the TD target at all? final mean Q(s, a) at every rate
    q_rows = []
    for cond, loss in chosen:
        cells = []
        for lr in (float(x) for x in cfg.lr_grid):
            q = [by[(e, cond, loss, lr)][s]["q"][-1] for e in cfg.envs
                 for s in seeds if s in by.get((e, cond, loss, lr), {})]
            cells.append(f"{np.mean(q):.3f}" if q else "-")
        q_rows.append([cond, LABEL.get(loss, loss), " / ".join(cells)])
    return (f"Bin width {width:.3f}, HL-Gauss sigma {sigma:.3f} (value units).\n\n"
            + stats.markdown_table(["condition", "loss", "lr", "RMS TD error",
                                    "RMS TD / sigma", "reward-noise sd / bin width",
                                    "mean Q(s, a)"], rows)
            + "\n\nFinal mean Q(s, a) at each learning rate ("
            + " / ".join(f"{x:g}" for x in cfg.lr_grid) + "):\n\n"
            + stats.markdown_table(["condition", "loss", "mean Q per lr"], q_rows))


