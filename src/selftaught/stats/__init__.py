"""Multi-seed statistics on rliable: IQM, bootstrap CIs, probability of improvement,
performance profiles, and claim records built from them.

Scores follow rliable: an array `runs x tasks` (a 1-D array is one task).
"""

from selftaught.core.recipe import MIN_SEEDS_FOR_CI
from selftaught.stats.core import (
    Estimate,
    aggregate,
    bootstrap_ci,
    claim_greater,
    paired_difference_ci,
    probability_of_improvement,
)
from selftaught.stats.plots import plot_bars, plot_curves, plot_profiles

__all__ = [
    "MIN_SEEDS_FOR_CI",
    "Estimate",
    "aggregate",
    "bootstrap_ci",
    "claim_greater",
    "paired_difference_ci",
    "plot_bars",
    "plot_curves",
    "plot_profiles",
    "probability_of_improvement",
]
