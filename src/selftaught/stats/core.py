"""Point estimates with stratified-bootstrap 95% CIs (rliable)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from selftaught.core.recipe import Claim


class Estimate(tuple):
    """(point, low, high) of a statistic, unpacking like a 3-tuple, that remembers `n`, the
    number of runs (seeds) behind it; `claim_greater` marks claims with too few runs."""

    n: int | None

    def __new__(cls, point: float, low: float, high: float, n: int | None = None):
        self = super().__new__(cls, (point, low, high))
        self.n = n
        return self

    def __getnewargs__(self):
        return (*self, self.n)


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
    n = scores.shape[0]
    if n < 2:
        return Estimate(point, point, point, n)
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
    return Estimate(point, float(lo), float(hi), n)


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
    n = min(sx.shape[0], sy.shape[0])
    if n < 2:
        return Estimate(point, point, point, n)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        _, cis = library.get_interval_estimates(
            {"p": (sx, sy)}, metrics.probability_of_improvement, reps=reps
        )
    finally:
        np.random.set_state(state)
    lo, hi = np.asarray(cis["p"]).reshape(-1)[:2]
    return Estimate(point, float(lo), float(hi), n)


def paired_difference_ci(
    a, b, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over paired runs (same seed) with a percentile bootstrap CI."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    diff = diff.reshape(diff.shape[0], -1).mean(axis=1)
    point = float(diff.mean())
    n = diff.shape[0]
    if n < 2:
        return Estimate(point, point, point, n)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.shape[0], size=(reps, diff.shape[0]))
    means = diff[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(point, float(lo), float(hi), n)


def claim_greater(
    name: str,
    statement: str,
    estimate: tuple[float, float, float],
    threshold: float = 0.0,
    *,
    n_seeds: int | None = None,
) -> Claim:
    """A claim that holds when the CI's lower end lies above `threshold`.

    When `estimate` is an Estimate over fewer than `core.recipe.MIN_SEEDS_FOR_CI` runs (or
    `n_seeds` says so) the claim is undetermined ("too few seeds for a CI"). A plain tuple
    with no run count is judged on its CI as given.
    """
    value, lo, hi = estimate
    n = n_seeds if n_seeds is not None else getattr(estimate, "n", None)
    return Claim(name, statement, value, lo, hi, holds=bool(lo > threshold), n_seeds=n)
