"""Point estimates with stratified-bootstrap 95% CIs (rliable)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from selftaught.core.recipe import Claim


class Estimate(tuple):
    """(point, low, high) of a statistic, unpacking like a 3-tuple, that remembers `n`, the
    number of independent values its CI resamples (runs, seeds, tasks...), and optionally
    their `unit` ("training seeds"). Every claim is built from one (`claim`,
    `claim_greater`): there is no claim from a plain tuple."""

    n: int
    unit: str | None

    def __new__(cls, point: float, low: float, high: float, n: int, unit: str | None = None):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"Estimate needs n, the number of values its CI resamples "
                             f"(an int >= 0), got {n!r}")
        self = super().__new__(cls, (float(point), float(low), float(high)))
        self.n = int(n)
        self.unit = unit
        return self

    def __reduce__(self):  # pickles (process pools, Ray) keep n and unit
        return (type(self), (*self, self.n, self.unit))

    def scaled(self, factor: float) -> Estimate:
        """The estimate of factor × the statistic (e.g. a rate in percent)."""
        lo, hi = sorted((self[1] * factor, self[2] * factor))
        return Estimate(self[0] * factor, lo, hi, self.n, self.unit)


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
    unit: str | None = None,
) -> Estimate:
    """(point, low, high) of `statistic` over runs with a stratified bootstrap CI, as an
    Estimate over n = the number of runs (rows), in `unit` if given.

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
        return Estimate(point, point, point, n, unit)
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
    return Estimate(point, float(lo), float(hi), n, unit)


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
    x, y, *, reps: int = 2000, seed: int = 0, unit: str | None = None
) -> Estimate:
    """P(X > Y) (Mann-Whitney U / (n_x n_y), averaged over tasks) with a bootstrap CI, as an
    Estimate over n = min(runs of x, runs of y)."""
    library, metrics = _rly()
    sx, sy = _runs_by_tasks(x), _runs_by_tasks(y)
    point = float(metrics.probability_of_improvement(sx, sy))
    n = min(sx.shape[0], sy.shape[0])
    if n < 2:
        return Estimate(point, point, point, n, unit)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        _, cis = library.get_interval_estimates(
            {"p": (sx, sy)}, metrics.probability_of_improvement, reps=reps
        )
    finally:
        np.random.set_state(state)
    lo, hi = np.asarray(cis["p"]).reshape(-1)[:2]
    return Estimate(point, float(lo), float(hi), n, unit)


def iqm_difference(x, y, reps: int = 2000, seed: int = 0, *,
                   unit: str | None = None) -> Estimate:
    """IQM(x) - IQM(y) (runs x tasks each) with a stratified independent bootstrap 95% CI
    (rliable: runs are resampled within each task, separately for x and y), as an Estimate
    over n = min(runs of x, runs of y)."""
    library, metrics = _rly()
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


def mean_ci(
    values, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0, unit: str | None = None
) -> Estimate:
    """Mean over units (the leading axis; further axes are averaged within a unit first)
    with a percentile bootstrap CI (vectorised NumPy), as an Estimate over n = the number of
    units. The CI of one quantity measured once per unit (a seed's score, a scenario's
    error); `paired_difference_ci` is this on a - b."""
    v = np.asarray(values, dtype=np.float64)
    v = v.reshape(v.shape[0], -1).mean(axis=1)
    point = float(v.mean())
    n = v.shape[0]
    if n < 2:
        return Estimate(point, point, point, n, unit)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(reps, n))
    means = v[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(point, float(lo), float(hi), n, unit)


def paired_difference_ci(
    a, b, *, reps: int = 2000, confidence: float = 0.95, seed: int = 0, unit: str | None = None
) -> Estimate:
    """Mean of a - b over paired runs (same seed) with a percentile bootstrap CI, as an
    Estimate over n = the number of pairs (the leading axis; further axes are averaged
    within a pair first)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return mean_ci(diff, reps=reps, confidence=confidence, seed=seed, unit=unit)


def pooled_difference_ci(a_blocks, b_blocks, *, unit: str = "test problems",
                         reps: int = 2000, confidence: float = 0.95, seed: int = 0) -> Estimate:
    """Paired bootstrap over units pooled from several blocks: block i holds a_blocks[i] and
    b_blocks[i], one value per unit (e.g. each training seed's own test problems, with two
    selectors' per-problem accuracies); the differences a - b of every block are pooled and
    resampled as units (`paired_difference_ci`), so n = the pooled unit count. Its CI says
    how finely the pooled units resolve the difference; it ignores the spread between the
    blocks (the training seeds), which a claim's CI over seeds is about."""
    if len(a_blocks) != len(b_blocks) or not len(a_blocks):
        raise ValueError(f"need as many a blocks as b blocks (>= 1), got {len(a_blocks)} "
                         f"and {len(b_blocks)}")
    a = [np.asarray(x, np.float64).reshape(-1) for x in a_blocks]
    b = [np.asarray(x, np.float64).reshape(-1) for x in b_blocks]
    if any(x.shape != y.shape for x, y in zip(a, b)):
        raise ValueError(f"block sizes differ between a {[len(x) for x in a]} and b "
                         f"{[len(y) for y in b]}: each block pairs the same units")
    return paired_difference_ci(np.concatenate(a), np.concatenate(b), reps=reps,
                                confidence=confidence, seed=seed, unit=unit)


def unit_bootstrap(rows, statistic, *, unit: str, reps: int = 2000, seed: int = 0) -> Estimate:
    """statistic(rows) with a percentile bootstrap over the leading axis of `rows` (the units
    of replication, e.g. search seeds), each resample taking whole rows so the columns of a
    unit (its arms, cells) stay paired: for any statistic of several paired columns (a
    ratio of means, a correlation, a regression slope). Resamples whose statistic is not
    finite are dropped; with fewer than 2 rows the CI collapses to the point (a claim on it
    is undetermined by the contract anyway)."""
    rows = np.asarray(rows, np.float64)
    n = len(rows)
    point = float(statistic(rows)) if n else float("nan")
    if n < 2:
        return Estimate(point, point, point, n, unit)
    rng = np.random.default_rng(seed)
    boot = np.array([statistic(rows[rng.integers(0, n, n)]) for _ in range(reps)])
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [0.025, 0.975]) if boot.size else (np.nan, np.nan)
    return Estimate(point, float(lo), float(hi), n, unit)


def group_bootstrap(groups, statistic, *, unit: str | None = None, reps: int = 2000,
                    seed: int = 0) -> Estimate:
    """statistic(groups) with a percentile bootstrap that resamples each group on its own:
    for a statistic of independent arms or cells (their runs are different seeds, so they
    are not paired; `unit_bootstrap` is the paired case). A group is an array whose leading
    axis holds its runs; a 2-D group (runs x tasks) is resampled within each task column,
    as rliable's stratified bootstrap does. `statistic` takes the list of (resampled)
    groups and returns a float. n = the fewest runs in a group. Resamples whose statistic
    is not finite are dropped; with fewer than 2 runs in some group the CI collapses to the
    point (a claim on it is undetermined by the contract anyway)."""
    groups = [np.asarray(g, np.float64) for g in groups]
    if not groups or any(g.ndim == 0 or g.ndim > 2 for g in groups):
        raise ValueError("group_bootstrap needs a non-empty list of 1-D or 2-D arrays "
                         "(runs first)")
    point = float(statistic(groups))
    n = min(g.shape[0] for g in groups)
    if n < 2:
        return Estimate(point, point, point, n, unit)
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(reps):
        res = []
        for g in groups:
            idx = rng.integers(0, g.shape[0], size=g.shape)
            res.append(np.take_along_axis(g, idx, axis=0))
        boot.append(statistic(res))
    boot = np.asarray(boot, np.float64)
    boot = boot[np.isfinite(boot)]
    lo, hi = np.quantile(boot, [0.025, 0.975]) if boot.size else (np.nan, np.nan)
    return Estimate(point, float(lo), float(hi), n, unit)


def spearman(x, y) -> float:
    """Spearman's rank correlation of the pairs where both are finite (ties get average
    ranks); NaN with fewer than 3 such pairs or when either side is constant."""
    from scipy.stats import rankdata

    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(rankdata(x[ok]), rankdata(y[ok]))[0, 1])


def proportion_ci(successes: int, n: int, *, confidence: float = 0.95,
                  unit: str | None = None) -> Estimate:
    """A success rate k/n with its Wilson score interval (Wilson 1927), as an Estimate over
    n trials in `unit`: unlike a bootstrap of 0/1 outcomes it does not collapse at 0/n or
    n/n, and it stays inside [0, 1]. n = 0 gives (nan, 0, 1)."""
    from statistics import NormalDist

    if isinstance(n, bool) or int(n) != n or n < 0 or not 0 <= successes <= n:
        raise ValueError(f"proportion_ci needs 0 <= successes <= n, got {successes} of {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n == 0:
        return Estimate(float("nan"), 0.0, 1.0, 0, unit)
    z = NormalDist().inv_cdf((1 + confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), int(n), unit)


def t_interval(x, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of the units x: mean -+ t_{(1+confidence)/2, n-1} s /
    sqrt(n); NaN for fewer than 2 units. A diagnostic beside the percentile bootstrap, which
    for very few units is too narrow (with 3 values it spans at most their range, so its
    lower end is the smallest unit)."""
    from scipy.stats import t

    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def seeds_needed(sd: float, effect: float, *, confidence: float = 0.95,
                 power: float = 0.8) -> int:
    """Units (seeds) needed so that a true mean difference `effect` puts the lower end of a
    two-sided `confidence` CI of the mean above 0 with probability `power`, when the
    per-unit differences have standard deviation `sd` (normal approximation:
    n = ((z_{(1+confidence)/2} + z_power) sd / effect)^2, rounded up). For a paired design
    (common random numbers) `sd` is the sd of the per-seed differences; for two independent
    arms of equal spread it is sqrt(2) x the arm's sd. NaN inputs give -1 (unknown)."""
    from statistics import NormalDist

    if not (0.0 < confidence < 1.0 and 0.0 < power < 1.0):
        raise ValueError(f"confidence and power must be in (0, 1), got {confidence}, {power}")
    if not (np.isfinite(sd) and np.isfinite(effect)):
        return -1
    if effect == 0:
        raise ValueError("effect must be non-zero: no number of seeds detects a zero effect")
    z = NormalDist().inv_cdf((1 + confidence) / 2) + NormalDist().inv_cdf(power)
    return max(1, int(np.ceil((z * abs(sd) / abs(effect)) ** 2)))


def claim(
    name: str,
    statement: str,
    estimate: Estimate,
    holds: bool,
    *,
    unit: str | None = None,
    n: int | None = None,
) -> Claim:
    """The claim that `estimate` supports, with the caller's own rule for `holds`.

    `unit` names the unit of replication (default: the estimate's own unit; one of them is
    required). `n` (default: the estimate's n) may only restate the count downwards: when
    the CI resamples something finer than independent replications of the claim (test
    scenarios of one trained model, training seeds of one searched program), name the
    honest unit and n (e.g. unit="search seeds", n=1) and the claim records what the CI
    was over. Fewer than MIN_UNITS_FOR_CI units make the claim undetermined."""
    _check_estimate(name, estimate)
    unit = unit if unit is not None else estimate.unit
    if unit is None:
        raise ValueError(f"claim {name!r}: name its unit of replication "
                         f"(unit='training seeds', 'search seeds', 'tasks', ...)")
    if n is None:
        n = estimate.n
    elif n > estimate.n:
        raise ValueError(f"claim {name!r}: n={n} {unit} but its CI resamples only "
                         f"{estimate.n} values")
    ci_over = ""
    if n != estimate.n or (estimate.unit is not None and estimate.unit != unit):
        ci_over = f"{estimate.n} {estimate.unit or 'values'}"
    value, lo, hi = estimate
    return Claim(name, statement, value, lo, hi, holds=bool(holds), unit=unit, n=n,
                 ci_over=ci_over)


def claim_greater(
    name: str,
    statement: str,
    estimate: Estimate,
    threshold: float = 0.0,
    *,
    unit: str | None = None,
    n: int | None = None,
) -> Claim:
    """A claim that holds when the CI's lower end lies above `threshold` (see `claim` for
    `unit` and `n`)."""
    _check_estimate(name, estimate)
    return claim(name, statement, estimate, estimate[1] > threshold, unit=unit, n=n)


def claim_less(
    name: str,
    statement: str,
    estimate: Estimate,
    threshold: float = 0.0,
    *,
    unit: str | None = None,
    n: int | None = None,
) -> Claim:
    """A claim that holds when the CI's upper end lies below `threshold`."""
    _check_estimate(name, estimate)
    return claim(name, statement, estimate, estimate[2] < threshold, unit=unit, n=n)


def _check_estimate(name: str, estimate) -> None:
    """TypeError unless `estimate` is an Estimate (a plain tuple carries no n)."""
    if not isinstance(estimate, Estimate):
        raise TypeError(f"claim {name!r}: the estimate must be a stats.Estimate (which "
                        f"carries n), not {type(estimate).__name__}; build it with "
                        "bootstrap_ci, paired_difference_ci, probability_of_improvement, "
                        "... or Estimate(point, low, high, n)")
