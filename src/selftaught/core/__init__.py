"""Shared core: configs, run directories, checkpoints, seeding, progress, errors."""

from selftaught.core.errors import (
    ConfigError,
    DataError,
    DivergedError,
    IncompleteRunError,
    RunDirError,
    UnknownNameError,
    UserError,
    check,
    check_finite,
)
from selftaught.core.recipe import Claim, Recipe, Report
from selftaught.core.rundir import PhaseLog, RunDir, Timer

__all__ = [
    "Claim",
    "ConfigError",
    "DataError",
    "DivergedError",
    "IncompleteRunError",
    "PhaseLog",
    "Recipe",
    "Report",
    "RunDir",
    "RunDirError",
    "Timer",
    "UnknownNameError",
    "UserError",
    "check",
    "check_finite",
]
