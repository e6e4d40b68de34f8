"""Plots with CI bands, written as PNG into a run's plots/ folder (Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path, *, tight: bool = True, **savefig) -> Path:
    """Write `fig` to `path` (its folder created) and close it; `tight` lays it out first
    (tight_layout), `savefig` passes on (e.g. dpi). -> the path. Every plot of a run is
    written here, so none is left open to grow the process's memory."""
    if tight:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, **savefig)
    plt.close(fig)
    return path


def _band(runs_x_points: np.ndarray, reps: int = 1000, seed: int = 0):
    """Mean and 95% percentile-bootstrap band of the mean over runs, per point."""
    arr = np.asarray(runs_x_points, dtype=np.float64)
    mean = arr.mean(axis=0)
    if arr.shape[0] < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.shape[0], size=(reps, arr.shape[0]))
    boots = arr[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [0.025, 0.975], axis=0)
    return mean, lo, hi


def plot_curves(
    path: Path,
    x,
    curves: dict[str, np.ndarray],
    *,
    xlabel: str,
    ylabel: str,
    title: str = "",
    hlines: dict[str, np.ndarray] | None = None,
) -> Path:
    """Mean curve per label with a 95% bootstrap band over runs (`runs x points`).
    `hlines` draws a per-run scalar baseline as a horizontal line with its band."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    x = np.asarray(x)
    for label, runs in curves.items():
        mean, lo, hi = _band(np.atleast_2d(runs))
        (line,) = ax.plot(x, mean, marker="o", label=label)
        ax.fill_between(x, lo, hi, alpha=0.2, color=line.get_color())
    for label, values in (hlines or {}).items():
        mean, lo, hi = _band(np.asarray(values, dtype=np.float64).reshape(-1, 1))
        line = ax.axhline(mean[0], linestyle="--", color="gray", label=label)
        ax.axhspan(lo[0], hi[0], alpha=0.15, color=line.get_color())
    if np.issubdtype(x.dtype, np.integer):
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, path)


def _no_overlapping_xticks(fig, ax) -> None:
    """Turn the x tick labels upright when any two of them would overlap."""
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    if any(a.x1 > b.x0 for a, b in zip(boxes, boxes[1:])):
        for t in ax.get_xticklabels():
            t.set_rotation(90)


def plot_bars(
    path: Path, estimates: dict[str, tuple[float, float, float]], *, ylabel: str, title: str = ""
) -> Path:
    """Bars with 95% CI whiskers from (point, low, high) estimates."""
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(estimates)), 4), dpi=110)
    labels = list(estimates)
    pts = np.array([estimates[k][0] for k in labels])
    lo = np.array([estimates[k][1] for k in labels])
    hi = np.array([estimates[k][2] for k in labels])
    ax.bar(labels, pts, yerr=[pts - lo, hi - pts], capsize=4, alpha=0.8)
    _no_overlapping_xticks(fig, ax)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def plot_profiles(
    path: Path, scores: dict[str, np.ndarray], taus: np.ndarray, *, xlabel: str, reps: int = 500
) -> Path:
    """rliable performance profiles (fraction of runs with score > tau) with CI bands."""
    from rliable import library, plot_utils

    sd = {k: np.atleast_2d(np.asarray(v, dtype=np.float64).T).T for k, v in scores.items()}
    dists, cis = library.create_performance_profile(sd, taus, reps=reps)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    plot_utils.plot_performance_profiles(
        dists, taus, performance_profile_cis=cis, xlabel=xlabel, ax=ax
    )
    # the legend from the labelled lines (a bare list of names would be matched to the
    # artists in drawing order: line, CI band, line, ... so the 2nd name got the 1st band)
    lines = {line.get_label(): line for line in ax.get_lines()}
    ax.legend([lines[k] for k in sd], list(sd))
    return save_figure(fig, path)
