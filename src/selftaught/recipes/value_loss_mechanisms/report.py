"""value-loss-mechanisms' report: advantage over MSE vs label noise, non-stationarity and
width, the lr-choice margins, the clipped fraction and the claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Claim, Report
from selftaught.core.rundir import RunDir
from selftaught.recipes.value_loss_mechanisms.config import (
    LABEL,
    ValueLossMechanismsConfig,
)
from selftaught.recipes.value_loss_mechanisms.experiment import (
    clipped_fraction,
    lr_scores,
)


def _last(curves) -> np.ndarray:
    """seeds x conditions: the last point of each [seeds, conditions, points] curve."""
    return np.array([[c[-1] for c in row] for row in curves], np.float64)


def _finals(cfg: ValueLossMechanismsConfig, run_dir: RunDir,
            seeds: list[int]) -> dict[tuple[str, float], np.ndarray]:
    """{(loss, width): seeds x conditions final relative RMSE}, seeds in `seeds` order, for
    every (loss, width) of the config (an unfinished run: the evaluated ones)."""
    out = {}
    for loss in cfg.losses:
        for w in map(float, cfg.widths):
            t = stats.collect(run_dir, "eval", by={"seed": seeds}, values=("curves",),
                              where={"loss": loss, "width": w}, optional=True)
            if t is not None:
                out[(loss, w)] = _last(t["curves"])
    return out


def _advantage_growth(mse: np.ndarray, other: np.ndarray, hi: int, lo: int):
    """Paired over seeds: [mse - other](hi) - [mse - other](lo), averaged over widths.
    Arrays: widths x seeds x conditions."""
    adv = mse - other
    return stats.paired_difference_ci(adv[..., hi].mean(0), adv[..., lo].mean(0))


def _fmt(est) -> str:
    return stats.ci_cell(est, "+.3f")


def report(cfg: ValueLossMechanismsConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    conds = [tuple(c) for c in cfg.conditions()]
    finals = _finals(cfg, run_dir, seeds)
    losses = [x for x in cfg.losses if all((x, float(w)) in finals for w in cfg.widths)]
    widths = [float(w) for w in cfg.widths]
    md = ["## Setup", "",
          f"Relative RMSE = RMSE to the true function on {cfg.eval_points} fresh inputs / its "
          f"std (lower is better), after {cfg.steps} Adam steps, {len(seeds)} evaluation "
          f"seeds (paired: a seed fixes task, data and noise for every loss). Learning rates "
          f"chosen per (loss, width) on {cfg.tune_seeds} held-out tuning seeds from "
          f"{', '.join(f'{x:g}' for x in cfg.lrs)}. Support [{cfg.v_min:g}, {cfg.v_max:g}] x "
          f"{cfg.num_bins}; HL-Gauss sigma = {cfg.sigma_ratio:g} bin widths.", ""]

    # chosen learning rates (an unfinished run: "-" where not tuned yet)
    chosen = {}
    for loss in cfg.losses:
        for w in widths:
            e = stats.collect_events(run_dir, "lr_choice", by={},
                                     where={"loss": loss, "width": w}, optional=True)
            chosen[(loss, w)] = None if e is None else e[()]["lr"]
    md += ["## Learning rates chosen on the tuning seeds", "", stats.markdown_table(
        ["loss", *(f"width {w:g}" for w in widths)],
        [[LABEL[loss], *("-" if chosen[(loss, w)] is None else f"{chosen[(loss, w)]:g}"
                         for w in widths)]
         for loss in cfg.losses])]

    def cname(c):
        return f"noise {c[0]:g}" if c[1] == 0 else f"gamma {c[1]:g}"

    md += ["", "## Relative RMSE (mean over seeds and widths, 95% CI)", "", stats.markdown_table(
        ["condition", *(LABEL[x] for x in losses)],
        [[cname(c), *(stats.ci_cell(stats.bootstrap_ci(
            np.stack([finals[(loss, w)][:, ci] for w in widths]).mean(0)), ".3f")
            for loss in losses)] for ci, c in enumerate(conds)])]

    claims: list[Claim] = []
    noise_idx = [conds.index((float(s), 0.0)) for s in cfg.noise_levels]
    noise0 = conds.index((0.0, 0.0))
    noise_hi = conds.index((float(max(cfg.noise_levels)), 0.0))
    gam_hi = conds.index((0.0, float(max(cfg.gammas)))) if cfg.gammas else None
    plots = []
    if "mse" in losses and len(losses) > 1:
        mse = np.stack([finals[("mse", w)] for w in widths])  # W x S x C
        md += ["", "## Advantage over MSE: RMSE(MSE) - RMSE(loss) (positive = loss better)",
               "", "Mean over widths, paired 95% CI over seeds.", "", stats.markdown_table(
                   ["condition", *(LABEL[x] for x in losses if x != "mse")],
                   [[cname(c), *(_fmt(stats.paired_difference_ci(
                       mse[..., ci].mean(0),
                       np.stack([finals[(x, w)] for w in widths])[..., ci].mean(0)))
                       for x in losses if x != "mse")] for ci, c in enumerate(conds)])]
        for x in losses:
            if x == "mse":
                continue
            other = np.stack([finals[(x, w)] for w in widths])
            claims.append(stats.claim_greater(
                f"{x}_advantage_grows_with_noise",
                f"[RMSE(MSE) - RMSE({LABEL[x]})] at noise {max(cfg.noise_levels):g} minus "
                "that at noise 0 > 0", _advantage_growth(mse, other, noise_hi, noise0),
                unit="training seeds"))
            if gam_hi is not None:
                claims.append(stats.claim_greater(
                    f"{x}_advantage_grows_with_nonstationarity",
                    f"[RMSE(MSE) - RMSE({LABEL[x]})] with bootstrapped targets at gamma "
                    f"{max(cfg.gammas):g} minus that at gamma 0 > 0",
                    _advantage_growth(mse, other, gam_hi, noise0), unit="training seeds"))
        if "hl_gauss" in losses and len(widths) > 1:
            hl = np.stack([finals[("hl_gauss", w)] for w in widths])
            adv = (mse - hl).mean(-1)  # W x S
            claims.append(stats.claim_greater(
                "hl_gauss_advantage_grows_with_width",
                f"[RMSE(MSE) - RMSE(HL-Gauss)] at width {widths[-1]:g} minus that at width "
                f"{widths[0]:g} (mean over conditions) > 0",
                stats.paired_difference_ci(adv[-1], adv[0]), unit="training seeds"))
            md += ["", "## HL-Gauss advantage per width (mean over conditions)", "",
                   stats.markdown_table(["width", "advantage"], [
                       [f"{w:g}", _fmt(stats.paired_difference_ci(mse[i].mean(-1),
                                                                  hl[i].mean(-1)))]
                       for i, w in enumerate(widths)])]
        md += ["", "## Noise growth per width, at each loss's chosen lr", "",
               "RMSE(MSE) - RMSE(loss) at noise 0 and at the highest noise, and its growth, "
               "paired 95% CI over seeds (MSE at its own chosen lr). The claims average the "
               "growth over widths, so one width whose lr choice differs can decide them.", ""]
        rows = []
        for x in losses:
            if x == "mse":
                continue
            for i, w in enumerate(widths):
                m, o = mse[i], finals[(x, w)]
                adv = m - o
                rows.append([
                    LABEL[x], f"{w:g}",
                    f"{chosen[(x, w)]:g} ({chosen[('mse', w)]:g})",
                    _fmt(stats.paired_difference_ci(m[:, noise0], o[:, noise0])),
                    _fmt(stats.paired_difference_ci(m[:, noise_hi], o[:, noise_hi])),
                    _fmt(stats.paired_difference_ci(adv[:, noise_hi], adv[:, noise0]))])
        md.append(stats.markdown_table(
            ["loss", "width", "lr (MSE's)", "advantage at noise 0",
             f"at noise {max(cfg.noise_levels):g}", "growth"], rows))
        # advantage vs noise plot (per loss, mean over widths, band over seeds)
        xs = np.asarray(cfg.noise_levels, np.float64)
        curves = {LABEL[x]: (mse - np.stack([finals[(x, w)] for w in widths])).mean(0)[
            :, noise_idx] for x in losses if x != "mse"}
        stats.plot_curves(run_dir.plots / "advantage_vs_noise.png", xs, curves,
                          xlabel="label-noise std (units of target std)",
                          ylabel="RMSE(MSE) - RMSE(loss)", title="advantage over MSE")
        plots.append("advantage_vs_noise.png")
        if cfg.gammas:
            gi = [noise0] + [conds.index((0.0, float(g))) for g in cfg.gammas]
            xs = np.asarray([0.0, *cfg.gammas], np.float64)
            curves = {LABEL[x]: (mse - np.stack([finals[(x, w)] for w in widths])).mean(0)[
                :, gi] for x in losses if x != "mse"}
            stats.plot_curves(run_dir.plots / "advantage_vs_gamma.png", xs, curves,
                              xlabel="gamma (bootstrapped targets)",
                              ylabel="RMSE(MSE) - RMSE(loss)", title="advantage over MSE")
            plots.append("advantage_vs_gamma.png")

    # how close each lr choice was (tuning seeds), and the targets the support clips
    tune = {}
    for loss in cfg.losses:
        for w in map(float, cfg.widths):
            e = stats.collect_events(run_dir, "tune", by={}, where={"loss": loss, "width": w},
                                     optional=True)
            if e is not None:  # (an unfinished run: the tuned ones)
                tune[(loss, w)] = lr_scores(e[()]["final"])
    if tune:
        md += ["", "## Learning-rate choice margin (tuning seeds)", "",
               "Tuning score = mean final relative RMSE over the tuning seeds and all "
               "conditions; margin = (runner-up - chosen) / chosen.", ""]
        rows = []
        for (x, w), sc in tune.items():
            order = np.sort(sc)
            margin = (order[1] - order[0]) / order[0] if len(sc) > 1 else np.inf
            rows.append([LABEL[x], f"{w:g}", *(
                f"**{v:.4f}**" if j == int(np.argmin(sc)) else f"{v:.4f}"
                for j, v in enumerate(sc)), f"{margin:.1%}"])
        md.append(stats.markdown_table(
            ["loss", "width", *(f"lr {x:g}" for x in cfg.lrs), "margin"], rows))
    md += ["", f"## Training targets outside the support [{cfg.v_min:g}, {cfg.v_max:g}]", "",
           "Fraction of the noisy labels the classification losses clip to the support's "
           "edge (evaluation seeds' training sets).", "", stats.markdown_table(
               ["noise", "fraction clipped"],
               [[f"{s:g}", f"{clipped_fraction(cfg, seeds, float(s)):.4f}"]
                for s in cfg.noise_levels])]

    # sigma sweep
    sig = {}
    for r in map(float, cfg.sigma_ratios):
        t = stats.collect(run_dir, "sigma", by={"seed": seeds}, values=("curves",),
                          where={"sigma_ratio": r}, optional=True)
        if t is not None:  # (an unfinished run: the ratios it has swept)
            sig[r] = _last(t["curves"])
    if sig:
        md += ["", f"## HL-Gauss sigma / bin-width sweep (width {cfg.sigma_width:g})", "",
               stats.markdown_table(
                   ["sigma / bin width", "rel. RMSE, mean over conditions",
                    f"at noise {max(cfg.noise_levels):g}"],
                   [[f"{r:g}", stats.ci_cell(stats.bootstrap_ci(sig[r].mean(-1)), ".3f"),
                     stats.ci_cell(stats.bootstrap_ci(sig[r][:, noise_hi]), ".3f")]
                    for r in sorted(sig)])]
        best = min(sig, key=lambda r: sig[r].mean())
        md += ["", f"Lowest mean relative RMSE at sigma / bin width = {best:g} "
                   "(the paper recommends 0.75)."]
        stats.plot_bars(run_dir.plots / "sigma_sweep.png",
                        {f"{r:g}": stats.bootstrap_ci(sig[r].mean(-1)) for r in sorted(sig)},
                        ylabel="relative RMSE (lower is better)", title="HL-Gauss sigma ratio")
        plots.append("sigma_sweep.png")
    md += ["", *[f"![{p}](plots/{p})" for p in plots]]
    md += ["", "## Notes", "",
           "A claim holds when its 95% CI lies entirely above 0. Runs that diverged count "
           "as relative RMSE = inf in lr selection (so a diverging lr is never chosen)."]
    return Report(claims, "\n".join(md))
