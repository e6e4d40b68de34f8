"""Errors a user can cause. The CLI prints their message on one line and exits 2.

Every message says what to change, not only what went wrong.
"""

from __future__ import annotations

import math


class UserError(Exception):
    """Base class: a mistake the user can fix (bad flag, unknown name, bad file)."""


class ConfigError(UserError):
    """A configuration value is invalid."""


class UnknownNameError(UserError):
    """An unknown recipe, task, environment, loss, op, ... was named."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name, self.known = kind, name, list(known)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(self.known))}")


class RunDirError(UserError):
    """A run directory cannot be used as asked (non-empty, other recipe, missing)."""


class IncompleteRunError(RunDirError):
    """A report needs results an unfinished run does not have yet; the message names the
    missing ones and the `--resume` command that computes them."""


class DataError(UserError):
    """A data file is malformed; the message names the file, the record and the field."""


class DivergedError(UserError):
    """Training produced a non-finite loss. `lr` is the learning rate in use (if known): the
    runner turns it into a runnable command with the flag(s) holding it."""

    lr: float | None = None


def check(condition: bool, message: str, error: type[UserError] = ConfigError) -> None:
    """Raise `error(message)` unless `condition` holds."""
    if not condition:
        raise error(message)


def check_at_least_one(config: object, *names: str) -> None:
    """Raise ConfigError for the first of the named fields of `config` that is below 1."""
    for name in names:
        value = getattr(config, name)
        check(value >= 1, f"{name} must be at least 1, got {value}")


def check_finite(value: float, *, where: str, step: int, lr: float | None = None) -> None:
    """Raise DivergedError naming the step if `value` is NaN or infinite."""
    value = float(value)
    if not math.isfinite(value):
        hint = "lower the learning rate"
        if lr is not None:
            hint += f" (now {lr:g}, try {lr / 3:g})"
        exc = DivergedError(f"loss became {value} in {where} at step {step}; {hint}")
        exc.lr = lr
        raise exc
