"""RL score helpers on top of selftaught.stats (rliable semantics: runs x tasks)."""

from __future__ import annotations

import numpy as np

from selftaught.stats import Estimate


def iqm_difference(x, y, reps: int = 2000, seed: int = 0, *,
                   unit: str | None = None) -> Estimate:
    """IQM(x) - IQM(y) (runs x tasks each) with a stratified independent bootstrap 95% CI
    (rliable: runs are resampled within each task, separately for x and y), as an Estimate
    over n = min(runs of x, runs of y)."""
    from rliable import library, metrics

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    fn = lambda a, b: np.array([metrics.aggregate_iqm(a) - metrics.aggregate_iqm(b)])  # noqa
    point = float(fn(x, y)[0])
    n = min(len(x), len(y))
    if n < 2:
        return Estimate(point, point, point, n, unit)
    state = np.random.get_state()
    np.random.seed(seed)  # rliable draws from NumPy's global generator
    try:
        _, cis = library.get_interval_estimates({"d": (x, y)}, fn, reps=reps)
    finally:
        np.random.set_state(state)
    lo, hi = np.asarray(cis["d"]).reshape(-1)[:2]
    return Estimate(point, float(lo), float(hi), n, unit)
