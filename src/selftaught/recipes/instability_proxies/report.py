"""instability-proxies' report: attention-logit growth, log Z drift, LR sensitivity and
flat ranges with CIs over seeds, the plots and the claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core import Report
from selftaught.core.recipe import Claim
from selftaught.recipes.instability_proxies.config import (
    InstabilityConfig,
)
from selftaught.recipes.instability_proxies.programs import (
    INTERVENTIONS,
    MAIN,
    plan,
)


def lr_sensitivity(loss_L: np.ndarray, init_loss: float) -> float:
    """mean_lr min(loss(lr), loss_init) - min_lr loss(lr); a diverged (NaN) run counts as
    loss_init."""
    capped = np.minimum(np.where(np.isfinite(loss_L), loss_L, np.inf), init_loss)
    return float(capped.mean() - capped.min())


def flat_decades(lrs, loss_L: np.ndarray, band: float) -> float:
    """Decades spanned by the longest run of consecutive lrs whose loss is within `band`
    of the best (a diverged run breaks the run)."""
    lrs = np.asarray(lrs, np.float64)
    order = np.argsort(lrs)
    lrs, loss = lrs[order], np.asarray(loss_L, np.float64)[order]
    ok = np.isfinite(loss) & (loss <= np.nanmin(np.where(np.isfinite(loss), loss, np.nan))
                              + band) if np.isfinite(loss).any() else np.zeros(len(loss), bool)
    best, start = 0.0, None
    for i, good in enumerate(ok):
        if good and start is None:
            start = i
        if good:
            best = max(best, float(np.log10(lrs[i] / lrs[start])))
        else:
            start = None
    return best


FIELDS = ("val_loss", "attn_logit_max", "attn_entropy", "log_z", "init_loss", "diverged_at")


def _table(cfg: InstabilityConfig, run_dir, seeds: list[int]) -> dict[tuple[str, int], dict]:
    """{(intervention, width): {"lr": [L], "seed": [S], field: S x L arrays,
    "curve_attn_logit_max": {(seed, lr): curve}}} for every cell of the plan (an unfinished
    run: of its finished programs)."""
    tab = {}
    lrs, seeds = sorted(cfg.lrs), sorted(seeds)
    done = run_dir.done_phases()
    for name, (prog, variants) in plan(cfg).items():
        if run_dir.complete is False and name not in done:
            continue  # an unfinished run reports its finished programs
        for iv, _ in variants:
            t = stats.collect(run_dir, "cell", by={"seed": seeds, "lr": lrs},
                              values=(*FIELDS, "curve_attn_logit_max"),
                              where={"program": name, "intervention": iv})
            out = {"lr": lrs, "seed": seeds, **{f: t[f].astype(np.float64) for f in FIELDS}}
            out["curve_attn_logit_max"] = {
                (s, lr): np.asarray(t["curve_attn_logit_max"][i, j], np.float64)
                for i, s in enumerate(seeds) for j, lr in enumerate(lrs)}
            tab[(iv, prog.width)] = out
    return tab


def _ci(x) -> stats.Estimate:
    x = np.asarray(x, np.float64)
    return stats.mean_ci(x)


def report(cfg: InstabilityConfig, run_dir, seeds: list[int]) -> Report:
    tab = _table(cfg, run_dir, seeds)
    md: list[str] = []
    claims: list[Claim] = []
    if not tab:
        return Report([], "No finished programs yet.")
    widths = sorted({w for _, w in tab})
    top = max(cfg.lrs)
    md += ["## Final validation loss (nats/byte) vs learning rate", "",
           f"Mean over {len(seeds)} seed(s); `div` = every seed diverged (NaN/inf), "
           "`k/n div` = some did. Loss at init ~ ln 256 = 5.55.", ""]
    for w in widths:
        ivs = [iv for iv in INTERVENTIONS if (iv, w) in tab]
        lrs = tab[(ivs[0], w)]["lr"]
        rows = []
        for iv in ivs:
            t = tab[(iv, w)]
            row = [iv]
            for j in range(len(lrs)):
                col = t["val_loss"][:, j]
                nd = int((~np.isfinite(col)).sum())
                if nd == len(col):
                    row.append("div")
                else:
                    row.append(f"{np.nanmean(col):.3f}" + (f" ({nd}/{len(col)} div)" if nd else ""))
            rows.append(row)
        md += [f"### width {w}", "",
               stats.markdown_table(["intervention", *(f"{lr:g}" for lr in lrs)], rows), ""]
    _plot_loss_vs_lr(run_dir.plots / "loss_vs_lr.png", tab, widths)
    md += ["![loss vs lr](plots/loss_vs_lr.png)", ""]

    # instabilities at the top lr
    md += ["## Instabilities at the highest learning rate", "",
           f"lr = {top:g}; mean over the last 10% of steps (over seeds; NaN = diverged).", ""]
    rows = []
    for w in widths:
        for iv in MAIN:
            if (iv, w) not in tab:
                continue
            t = tab[(iv, w)]
            j = t["lr"].index(top) if top in t["lr"] else -1
            f = lambda k, t=t, j=j: f"{np.nanmean(t[k][:, j]):.3g}" if np.isfinite(
                t[k][:, j]).any() else "div"
            rows.append([w, iv, f("attn_logit_max"), f("attn_entropy"), f("log_z"),
                         f("val_loss")])
    md.append(stats.markdown_table(
        ["width", "intervention", "max attention logit", "attention entropy", "log Z",
         "val loss"], rows))
    w0 = widths[0]
    if ("baseline", w0) in tab and ("qk_ln", w0) in tab:
        _plot_attn_curves(run_dir.plots / "attn_logit_vs_step.png", tab, w0, top, cfg.steps)
        md += ["", "![max attention logit vs step](plots/attn_logit_vs_step.png)"]
        b, q = tab[("baseline", w0)], tab[("qk_ln", w0)]
        j = b["lr"].index(top)
        # a diverged baseline run counts as unbounded growth
        diff = np.where(np.isfinite(b["attn_logit_max"][:, j]), b["attn_logit_max"][:, j],
                        1e6) - q["attn_logit_max"][:, j]
        claims.append(stats.claim_greater(
            "attn_logit_growth_fixed_by_qk_ln",
            f"width {w0}, lr {top:g}: max attention logit without qk-layernorm minus with it "
            "> 0 (a diverged run counts as 1e6)", _ci(diff), unit="training seeds"))
    if ("baseline", w0) in tab and ("z_loss", w0) in tab:
        b, z = tab[("baseline", w0)], tab[("z_loss", w0)]
        j = b["lr"].index(top)
        absz = lambda a: np.where(np.isfinite(a), np.abs(a), 1e6)
        diff = absz(b["log_z"][:, j]) - absz(z["log_z"][:, j])
        claims.append(stats.claim_greater(
            "logit_divergence_fixed_by_z_loss",
            f"width {w0}, lr {top:g}: |log Z| without z-loss minus with z-loss > 0", _ci(diff),
            unit="training seeds"))

    # LR sensitivity
    sens = {}
    for (iv, w), t in tab.items():
        init = np.nanmean(t["init_loss"], axis=1)
        sens[(iv, w)] = np.array([lr_sensitivity(t["val_loss"][i], init[i])
                                  for i in range(len(t["seed"]))])
    md += ["", "## LR sensitivity", "",
           "mean over the lr grid of min(loss(lr), loss_init) - min_lr loss(lr), per seed; "
           "mean and 95% bootstrap CI over seeds (lower is better).", ""]
    bars, rows = {}, []
    for w in widths:
        for iv in INTERVENTIONS:
            if (iv, w) in sens:
                est = _ci(sens[(iv, w)])
                bars[f"{iv} w{w}"] = est
                rows.append([w, iv, f"{est[0]:.3f}", f"[{est[1]:.3f}, {est[2]:.3f}]"])
    md.append(stats.markdown_table(["width", "intervention", "LR sensitivity", "95% CI"], rows))
    stats.plot_bars(run_dir.plots / "lr_sensitivity.png", bars, ylabel="LR sensitivity (nats)",
                    title="lower = less sensitive")
    md += ["", "![LR sensitivity](plots/lr_sensitivity.png)"]
    if all((iv, w0) in sens for iv in ("baseline", "qk_ln")):
        claims.append(stats.claim_greater(
            "qk_ln_lowers_lr_sensitivity",
            f"width {w0}: LR sensitivity(baseline) - LR sensitivity(qk-layernorm) > 0",
            _ci(sens[("baseline", w0)] - sens[("qk_ln", w0)]), unit="training seeds"))
    if all((iv, w0) in sens for iv in ("qk_ln", "qk_ln+z_loss")):
        claims.append(stats.claim_greater(
            "z_loss_lowers_lr_sensitivity",
            f"width {w0}: LR sensitivity(qk-ln) - LR sensitivity(qk-ln + z-loss) > 0",
            _ci(sens[("qk_ln", w0)] - sens[("qk_ln+z_loss", w0)]), unit="training seeds"))
    comb = [w for w in widths if ("qk_ln+z_loss", w) in tab]
    if comb:
        dec = np.array([[flat_decades(tab[("qk_ln+z_loss", w)]["lr"], row, cfg.band)
                         for row in tab[("qk_ln+z_loss", w)]["val_loss"]] for w in comb])
        worst = dec.min(axis=0)  # per seed: the narrowest flat range over widths
        est = _ci(worst)
        claims.append(stats.claim(
            "combined_flat_over_decades",
            f"qk-ln + z-loss: final loss within {cfg.band:g} nats of its best over >= "
            f"{cfg.flat_decades:g} decades of lr at every width (value: decades, worst width)",
            est, holds=est[1] >= cfg.flat_decades, unit="training seeds"))
    md += ["", "## Notes", "",
           "Each program (width x structural switches) is one compiled `lm.sweep` program "
           "that trains all of its lr x z-loss x warmup x eps x seed cells under one vmap. "
           "Extra interventions run at one width on top of qk-layernorm + z-loss. A claim "
           "holds when its 95% CI lies above its threshold."]
    return Report(claims, "\n".join(md))


def _plot_loss_vs_lr(path, tab, widths):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(widths), figsize=(4.2 * len(widths), 3.8), dpi=110,
                             sharey=True, squeeze=False)
    for ax, w in zip(axes[0], widths, strict=True):
        for iv in INTERVENTIONS:
            if (iv, w) not in tab:
                continue
            t = tab[(iv, w)]
            loss = np.where(np.isfinite(t["val_loss"]), t["val_loss"], np.nan)
            ax.plot(t["lr"], np.nanmean(loss, axis=0), marker="o", label=iv,
                    linestyle="-" if iv in MAIN else "--")
        ax.set_xscale("log")
        ax.set_title(f"width {w}")
        ax.set_xlabel("learning rate")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final validation loss")
    axes[0][-1].legend(fontsize=7)
    stats.save_figure(fig, path)


def _plot_attn_curves(path, tab, width, lr, steps):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for iv in ("baseline", "qk_ln"):
        t = tab[(iv, width)]
        for k, s in enumerate(t["seed"]):
            y = t["curve_attn_logit_max"][(s, lr)]
            x = np.linspace(steps / len(y), steps, len(y))
            ax.plot(x, y, color="C0" if iv == "baseline" else "C1", alpha=0.7,
                    label=iv if k == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("max attention logit")
    ax.set_title(f"width {width}, lr {lr:g}")
    ax.grid(alpha=0.3)
    ax.legend()
    stats.save_figure(fig, path)
