"""stats.seeds_needed against the normal-approximation formula and a simulation of the CI
rule it sizes for."""

from statistics import NormalDist

import numpy as np
import pytest

from selftaught import stats


def test_seeds_needed_is_the_normal_formula_rounded_up():
    z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.8)  # 1.95996 + 0.84162
    assert stats.seeds_needed(1.0, 0.5) == int(np.ceil((z / 0.5) ** 2)) == 32
    assert stats.seeds_needed(0.23, 0.035) == int(np.ceil((z * 0.23 / 0.035) ** 2))
    assert stats.seeds_needed(2.0, -0.5) == stats.seeds_needed(2.0, 0.5)  # sign-free
    assert stats.seeds_needed(0.01, 10.0) == 1  # never below one unit
    assert stats.seeds_needed(1.0, 0.5, power=0.9) > stats.seeds_needed(1.0, 0.5)
    assert stats.seeds_needed(float("nan"), 0.5) == -1
    with pytest.raises(ValueError, match="non-zero"):
        stats.seeds_needed(1.0, 0.0)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        stats.seeds_needed(1.0, 0.5, power=1.0)


def test_at_that_n_the_ci_excludes_zero_with_the_requested_power():
    """Simulated experiments of n paired differences ~ N(effect, sd): the known-sd 95% CI's
    lower end lies above 0 in ~80% of them (binomial 4.5-sigma band over 4000 trials)."""
    sd, effect = 0.3, 0.1
    n = stats.seeds_needed(sd, effect)
    rng = np.random.default_rng(0)
    means = rng.normal(effect, sd, size=(4000, n)).mean(axis=1)
    rate = np.mean(means - NormalDist().inv_cdf(0.975) * sd / np.sqrt(n) > 0)
    band = 4.5 * np.sqrt(0.8 * 0.2 / 4000)
    # ceil makes the achieved power a little above 0.8, never below
    assert 0.8 - band < rate < 0.8 + band + 0.02
    half = rng.normal(effect, sd, size=(4000, n // 2)).mean(axis=1)  # n = 71 here
    assert np.mean(half - NormalDist().inv_cdf(0.975) * sd / np.sqrt(n // 2) > 0) < rate - 0.1
