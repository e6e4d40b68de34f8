"""Multi-seed statistics on rliable: IQM, bootstrap CIs, probability of improvement,
performance profiles, claim records built from them, and the report toolkit (`collect` a
run's events as arrays, `ci_cell`, `markdown_table`).

The claim contract: every estimator returns an `Estimate` that carries n, the number of
values its CI resamples; every claim is built from one (`claim`, `claim_greater`,
`claim_less`) and names its unit of replication; fewer than MIN_UNITS_FOR_CI units make it
undetermined, whatever its value.

Scores follow rliable: an array `runs x tasks` (a 1-D array is one task).
"""

from selftaught.core.recipe import MIN_SEEDS_FOR_CI, MIN_UNITS_FOR_CI
from selftaught.stats.core import (
    Estimate,
    aggregate,
    bootstrap_ci,
    claim,
    claim_greater,
    claim_less,
    group_bootstrap,
    iqm_difference,
    mean_ci,
    paired_difference_ci,
    pooled_difference_ci,
    probability_of_improvement,
    proportion_ci,
    seeds_needed,
    spearman,
    t_interval,
    unit_bootstrap,
)
from selftaught.stats.plots import plot_bars, plot_curves, plot_profiles, save_figure
from selftaught.stats.report import (
    ci_cell,
    collect,
    collect_events,
    markdown_table,
    resolution_md,
)

__all__ = [
    "MIN_SEEDS_FOR_CI",
    "MIN_UNITS_FOR_CI",
    "Estimate",
    "aggregate",
    "bootstrap_ci",
    "ci_cell",
    "claim",
    "claim_greater",
    "claim_less",
    "group_bootstrap",
    "collect",
    "collect_events",
    "iqm_difference",
    "mean_ci",
    "markdown_table",
    "paired_difference_ci",
    "pooled_difference_ci",
    "plot_bars",
    "plot_curves",
    "plot_profiles",
    "save_figure",
    "probability_of_improvement",
    "proportion_ci",
    "resolution_md",
    "seeds_needed",
    "spearman",
    "t_interval",
    "unit_bootstrap",
]
