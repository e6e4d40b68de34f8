"""length-generalization's report: exact match by length per cell, the longest solved
length, heat maps, curves and the claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core import Report
from selftaught.core.recipe import Claim
from selftaught.recipes.length_generalization.config import (
    BASELINES,
    UNIT,
    LengthGenConfig,
    seed_grid,
)


def max_solved_length(acc_N: np.ndarray, threshold: float) -> int:
    """Largest n such that every length 1..n has exact match >= threshold (0 if none)."""
    # exact match is a float32 mean (45/50 = 0.89999998): compare with a float32-sized slack
    ok = np.nan_to_num(np.asarray(acc_N, np.float64), nan=0.0) >= threshold - 1e-6
    return int(np.argmin(ok)) if not ok.all() else len(ok)


CELL = ("exact_match", "val_exact_match", "diverged_at")


def _table(cfg: LengthGenConfig, run_dir) -> dict[str, list[dict]]:
    """{variant: its seed cells' events, in (init seed, data seed) order} for every variant
    (an unfinished run: its finished ones)."""
    out: dict[str, list[dict]] = {}
    for name in cfg.variants:
        grid = seed_grid(cfg, name)
        by = {"init_seed": sorted({i for i, _ in grid}), "data_seed": sorted({d for _, d in grid})}
        t = stats.collect(run_dir, "cell", by=by, values=CELL, where={"variant": name},
                          optional=True)
        if t is None:  # an unfinished run: this variant is not trained yet
            continue
        out[name] = [{"init_seed": i, "data_seed": d, **{k: t[k][a, b] for k in CELL}}
                     for a, i in enumerate(by["init_seed"])
                     for b, d in enumerate(by["data_seed"])]
    return out


def report(cfg: LengthGenConfig, run_dir, seeds: list[int]) -> Report:
    tab = _table(cfg, run_dir)
    if not tab:
        return Report([], "No finished variants yet.")
    L, N = cfg.train_digits, cfg.test_digits
    grids = ", ".join(f"{n}: {len(evs)}" for n, evs in tab.items())
    md = [f"## Exact match by test length (trained on 1..{L} digits)", "",
          f"Test pairs; mean over each variant's seed cells (weight init x data order; cells "
          f"per variant: {grids}); {cfg.test_examples} problems per length; `max ok` = the "
          f"largest n with >= {cfg.threshold:.0%} exact match at every length 1..n (best "
          f"cell / median); `learned` = cells with max ok >= L. `val 1..L` = mean validation "
          "exact match over lengths 1..L (the split on which lr / steps were chosen).", ""]
    solved, rows = {}, []
    for name, evs in tab.items():
        acc = np.array([e["exact_match"] for e in evs], np.float64)  # seeds x lengths
        val = np.array([e.get("val_exact_match", [np.nan] * N) for e in evs], np.float64)
        solved[name] = np.array([max_solved_length(a, cfg.threshold) for a in acc], np.float64)
        rows.append([name, *(f"{x:.2f}" for x in np.nanmean(acc, 0)),
                     f"{solved[name].max():.0f} / {np.median(solved[name]):.0f}",
                     f"{int((solved[name] >= L).sum())} / {len(evs)}",
                     f"{np.nanmean(val[:, :L]):.2f}"])
    md.append(stats.markdown_table(
        ["variant", *range(1, N + 1), "max ok best / med", "learned", "val 1..L"], rows))
    cols = sorted({(e["init_seed"], e["data_seed"]) for evs in tab.values() for e in evs})
    rows = []
    for name, evs in tab.items():
        by = {(e["init_seed"], e["data_seed"]): e for e in evs}
        rows.append([name, *(
            "–" if c not in by else "div" if by[c]["diverged_at"] >= 0
            else str(max_solved_length(by[c]["exact_match"], cfg.threshold))
            for c in cols)])
    md += ["", "## Per seed cell: largest solved length", "",
           stats.markdown_table(["variant", *(f"i{i}d{d}" for i, d in cols)], rows)]
    _heatmaps(run_dir.plots / "heatmap.png", tab, cfg)
    _curves(run_dir.plots / "exact_match_by_length.png", tab, cfg)
    md += ["", "![per-seed heat map](plots/heatmap.png)", "",
           "![exact match by length](plots/exact_match_by_length.png)"]

    claims: list[Claim] = []
    main = [n for n in tab if n not in BASELINES]
    target = cfg.target_digits
    if main:
        best = max(main, key=lambda n: (solved[n].max(), np.median(solved[n])))
        s = solved[best]
        learned = (s >= L).astype(np.float64)
        est = stats.bootstrap_ci(learned, "mean")
        claims.append(stats.claim(
            "best_config_learns_1_to_L",
            f"{best} (gate): most seed cells learn the training lengths, i.e. reach >= "
            f"{cfg.threshold:.0%} exact match at every length 1..{L} (value: fraction of "
            "cells; holds when the lower CI end > 0.5)",
            est, holds=est[1] > 0.5, unit=UNIT))
        top = np.sort(s)[-max(1, len(s) // 3):]  # the best third of seeds
        est = stats.bootstrap_ci(top, "mean")
        what = (f"beyond L, i.e. >= {target}" if target == L + 1
                else f">= {cfg.target_factor:g} L = {target}")
        claims.append(stats.claim(
            f"best_config_{'extrapolates_beyond_L' if target == L + 1 else 'reaches_target'}",
            f"{best}: the best third of seed cells solve (>= {cfg.threshold:.0%} exact match "
            f"at every length up to it) {what} digits (value: their mean solved length; "
            "n = the cells of that best third; holds when the lower CI end >= the target)",
            est, holds=est[1] >= target, unit=UNIT))
        spread = stats.bootstrap_ci(s, lambda a: float(np.max(a) - np.min(a)))
        claims.append(stats.claim(
            "seed_spread_is_large",
            f"{best}: max - min solved length over the seed grid >= L/4 = {L / 4:g} digits "
            "(lower end of the seed-bootstrap CI of the range)",
            spread, holds=spread[1] >= L / 4, unit=UNIT))
    for b in BASELINES:
        if b in tab:
            acc = np.array([e["exact_match"] for e in tab[b]], np.float64)
            ok = solved[b] >= L  # "fails beyond L" says something only about learned cells
            beyond = np.nanmean(acc[ok][:, L:], axis=1)  # lengths L+1..N
            est = (stats.bootstrap_ci(beyond, "mean") if ok.any()
                   else stats.Estimate(float("nan"), float("nan"), float("nan"), 0))
            claims.append(stats.claim(
                f"{b}_fails_beyond_L",
                f"{b}: over the seed cells that learned lengths 1..{L} ({int(ok.sum())} of "
                f"{len(ok)}; n counts only those, so fewer than 3 make it undetermined), mean "
                f"exact match over lengths {L + 1}..{N} < 0.5 (upper CI end below 0.5)",
                est, holds=bool(ok.sum() >= 3) and est[2] < 0.5, unit=UNIT))
    md += ["", "## Notes", "",
           "Each variant is one compiled `lm.sweep` program training all seed cells under one "
           "vmap. Exact match is teacher-forced argmax over the whole answer, which equals "
           "greedy decoding's exact match."]
    return Report(claims, "\n".join(md))


def _heatmaps(path, tab, cfg):
    import matplotlib.pyplot as plt

    names = list(tab)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), dpi=110,
                             squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        m = np.zeros((cfg.init_seeds, max(e["data_seed"] for e in tab[name]) - cfg.seed + 1))
        for e in tab[name]:
            m[e["init_seed"] - cfg.seed, e["data_seed"] - cfg.seed] = max_solved_length(
                e["exact_match"], cfg.threshold)
        im = ax.imshow(m, vmin=0, vmax=cfg.test_digits, cmap="viridis")
        for (i, j), x in np.ndenumerate(m):
            ax.text(j, i, f"{x:.0f}", ha="center", va="center", color="w")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("data-order seed")
        ax.set_ylabel("init seed")
    fig.colorbar(im, ax=axes[0].tolist(), label="largest solved length")
    stats.save_figure(fig, path, tight=False)  # the colorbar spans the axes: no tight layout


def _curves(path, tab, cfg):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    x = np.arange(1, cfg.test_digits + 1)
    for name, evs in tab.items():
        acc = np.array([e["exact_match"] for e in evs], np.float64)
        line, = ax.plot(x, np.nanmean(acc, 0), marker="o", label=name)
        ax.fill_between(x, np.nanmin(acc, 0), np.nanmax(acc, 0), alpha=0.15,
                        color=line.get_color())
    ax.axvline(cfg.train_digits, color="gray", linestyle="--", label="L (train)")
    ax.set_xlabel("operand digits")
    ax.set_ylabel("exact match (mean, min-max over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    stats.save_figure(fig, path)
