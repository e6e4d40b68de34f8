"""The recipe contract and the claim record every summary.json shares.

A recipe module in `selftaught.recipes` defines `RECIPE = Recipe(...)`:

    run(config, run_dir, seeds)     does the work, one `run_dir.phase(name, work, restore=)`
                                    per phase (see RunDir): logs events, saves checkpoints;
                                    resumable.
    report(config, run_dir, seeds)  rebuilds plots from metrics.jsonl alone and returns
                                    Report(claims, markdown).
    phases(config, seeds)           the plan: the phase names of a complete run, in order
                                    (optional for now; `RunDir.phase` refuses a name
                                    outside it, and a report names the ones missing).
    not_flags                       optional: {field: reason} the recipe overrides itself.

The core writes config.json, summary.json and report.md around them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

PRESETS = ("smoke", "default", "paper")


MIN_SEEDS_FOR_CI = 3
"""Fewest runs (seeds) over which a claim's 95% CI is reported; below it the bootstrap
interval is little more than [min, max], so the claim is undetermined."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of a paper tested by a run: value with a 95% CI and whether it holds.

    With `n_seeds` (the runs its CI is over) below MIN_SEEDS_FOR_CI the claim is
    undetermined: `holds` is False and the report says "too few seeds for a CI" (ci_low and
    ci_high keep the bootstrap interval, which is then no 95% CI). `partial` marks a claim
    computed from an unfinished run."""

    name: str
    statement: str
    value: float
    ci_low: float
    ci_high: float
    holds: bool
    n_seeds: int | None = None
    partial: bool = False

    def __post_init__(self):
        if self.undetermined:
            object.__setattr__(self, "holds", False)

    @property
    def undetermined(self) -> bool:
        return self.n_seeds is not None and self.n_seeds < MIN_SEEDS_FOR_CI

    @property
    def note(self) -> str:
        """Why the claim is not final ("" when it is)."""
        notes = []
        if self.undetermined:
            notes.append(f"too few seeds for a CI ({self.n_seeds} < {MIN_SEEDS_FOR_CI})")
        if self.partial:
            notes.append("partial data: the run is incomplete")
        return "; ".join(notes)

    def as_dict(self) -> dict:
        d = {
            "name": self.name,
            "statement": self.statement,
            "value": float(self.value),
            "ci_low": float(self.ci_low),
            "ci_high": float(self.ci_high),
            "holds": bool(self.holds),
        }
        if self.n_seeds is not None:
            d["n_seeds"] = int(self.n_seeds)
        if self.undetermined:
            d["undetermined"] = True
        if self.partial:
            d["partial"] = True
        if self.note:
            d["note"] = self.note
        return d


@dataclasses.dataclass
class Report:
    claims: list[Claim]
    markdown: str


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    config_cls: type
    presets: Mapping[str, Any]
    run: Callable[[Any, Any, list[int]], None]
    report: Callable[[Any, Any, list[int]], Report]
    phases: Callable[[Any, list[int]], list[str]] | None = None
    """The plan: the names of the phases a complete run finishes, in order. The runner
    hands it to `RunDir.planned`, so `RunDir.phase` refuses a name outside it, and
    `selftaught report` lists exactly what an unfinished run is missing. Optional for now
    (without it the missing phases are inferred from what some seed finished)."""
    not_flags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Config fields (dotted names) that the recipe sets itself, each with the reason; the
    CLI refuses them as flags instead of storing a value that would be ignored."""

    def preset(self, name: str) -> Any:
        from selftaught.core.errors import UnknownNameError

        if name not in self.presets:
            raise UnknownNameError(f"preset of recipe {self.name}", name, list(self.presets))
        return self.presets[name]
