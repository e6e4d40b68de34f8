"""Point estimates with stratified-bootstrap 95% CIs (rliable)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from selftaught.core.recipe import Claim


def _rly():
    from rliable import library, metrics

    return library, metrics


def _runs_by_tasks(x) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"scores must be runs x tasks, got shape {arr.shape}")
    return arr


def bootstrap_ci(
    values,
    statistic: Callable[[np.ndarray], float] | str = "mean",
    *,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(point, low, high) of `statistic` over runs with a stratified bootstrap CI.

    `statistic` is 'mean', 'median', 'iqm', 'optimality_gap' or a function of a
    runs x tasks array. With one run the CI collapses to the point.
    """
    library, metrics = _rly()
    scores = _runs_by_tasks(values)
    fn = {
        "mean": metrics.aggregate_mean,
        "median": metrics.aggregate_median,
        "iqm": metrics.aggregate_iqm,
        "optimality_gap": metrics.aggregate_optimality_gap,
    }.get(statistic, statistic) if isinstance(statistic, str) else statistic
    point = float(fn(scores))
    if scores.shape[0] < 2:
        return point, point, point
    state = np.random.get_state()
    np.random.seed(seed)  # rliable draws from NumPy's global generator
    try:
        _, cis = library.get_interval_estimates(
            {"x": scores},
            lambda s: np.array([fn(s)]),
            reps=reps,
            confidence_interval_size=confidence,
        )
    finally:
        np.random.set_state(state)
    lo, hi = cis["x"][:, 0]
    return point, float(lo), float(hi)


def aggregate(scores: dict[str, np.ndarray], *, reps: int = 2000, seed: int = 0) -> dict:
    """{algo: {metric: (point, low, high)}} for IQM, mean, median and optimality gap."""
    return {
        algo: {
            m: bootstrap_ci(s, m, reps=reps, seed=seed)
            for m in ("iqm", "mean", "median", "optimality_gap")
        }
        for algo, s in scores.items()
    }


def probability_of_improvement(
    x, y, *, reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """P(X > Y) (Mann-Whitney U / (n_x n_y), averaged over tasks) with a bootstrap CI."""
    library, metrics = _rly()
    sx, sy = _runs_by_tasks(x), _runs_by_tasks(y)
    point = float(metrics.probability_of_improvement(sx, sy))
    if min(sx.shape[0], sy.shape[0]) < 2:
        return point, point, point
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        _, cis = library.get_interval_estimates(
            {"p": (sx, sy)}, metrics.probability_of_improvement, reps=reps
        )
    finally:
        np.random.set_state(state)
    lo, hi = np.asarray(cis["p"]).reshape(-1)[:2]
    return point, float(lo), float(hi)


def paired_difference_ci(
    a, b, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over paired runs (same seed) with a percentile bootstrap CI."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff.reshape(diff.shape[0], -1).mean(axis=1)
    point = float(diff.mean())
    if diff.shape[0] < 2:
        return point, point, point
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.shape[0], size=(reps, diff.shape[0]))
    means = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return point, float(lo), float(hi)


def claim_greater(
    name: str, statement: str, estimate: tuple[float, float, float], threshold: float = 0.0
) -> Claim:
    """A claim that holds when the CI's lower end lies above `threshold`.

    With a single seed the CI is the point itself, so the claim holds when the point does.
    """
    value, lo, hi = estimate
    return Claim(name, statement, value, lo, hi, holds=bool(lo > threshold))
