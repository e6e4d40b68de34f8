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

import numpy as np

PRESETS = ("smoke", "default", "paper")


MIN_UNITS_FOR_CI = 3
"""Fewest units of replication (training seeds, search seeds, tasks...) over which a claim's
95% CI is reported; below it the bootstrap interval is little more than [min, max], so the
claim is undetermined."""

MIN_SEEDS_FOR_CI = MIN_UNITS_FOR_CI
"""The name of MIN_UNITS_FOR_CI from when every unit was a training seed."""


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of a paper tested by a run: value with a 95% CI and whether it holds.

    Every claim states its unit of replication, `unit` (plural, e.g. "training seeds",
    "search seeds": the independent repetitions of the experiment that the claim
    generalises over) and their number `n`; both are required. With `n` below
    MIN_UNITS_FOR_CI the claim is undetermined, whatever its value: `holds` is False and the
    report says "too few <unit> for a CI" (ci_low and ci_high keep the bootstrap interval,
    which is then no 95% CI). `ci_over` names what the interval resamples when that is not
    the unit (e.g. "200 test scenarios" of one trained model). `partial` marks a claim
    computed from an unfinished run. `untested` names a precondition of the claim that the
    run did not meet (e.g. "the full agent is at random level: IQM 0.01 [-0.01, 0.02]"):
    the claim is then not tested, whatever its value (`holds` is False, the report says
    "not tested" and why); use `Claim.gated` to apply a precondition."""

    name: str
    statement: str
    value: float
    ci_low: float
    ci_high: float
    holds: bool
    unit: str
    n: int
    partial: bool = False
    ci_over: str = ""
    untested: str = ""

    def __post_init__(self):
        if not isinstance(self.unit, str) or not self.unit.strip():
            raise ValueError(f"claim {self.name!r}: unit must name the unit of replication "
                             f"(e.g. 'training seeds'), got {self.unit!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) \
                or self.n < 0:
            raise ValueError(f"claim {self.name!r}: n must be the number of {self.unit} "
                             f"(an int >= 0), got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        if not isinstance(self.untested, str):
            raise ValueError(f"claim {self.name!r}: untested must be the failed precondition "
                             f"(a str, '' when met), got {self.untested!r}")
        if self.undetermined or self.untested:
            object.__setattr__(self, "holds", False)

    def gated(self, met: bool, why: str) -> Claim:
        """This claim if its precondition is met, else the same claim marked not tested
        because of `why` (what was required and what was measured)."""
        if met:
            return self
        if not why.strip():
            raise ValueError(f"claim {self.name!r}: say which precondition failed")
        return dataclasses.replace(self, untested=why.strip())

    @property
    def undetermined(self) -> bool:
        return self.n < MIN_UNITS_FOR_CI

    @property
    def note(self) -> str:
        """Why the claim is not final ("" when it is)."""
        notes = []
        if self.undetermined:
            notes.append(f"too few {self.unit} for a CI ({self.n} < {MIN_UNITS_FOR_CI})")
        if self.untested:
            notes.append(f"not tested: {self.untested}")
        if self.partial:
            notes.append("partial data: the run is incomplete")
        return "; ".join(notes)

    @property
    def replication(self) -> str:
        """"n=3 training seeds" (and what the CI resamples when that differs)."""
        text = f"n={self.n} {self.unit}"
        return f"{text}; CI over {self.ci_over}" if self.ci_over else text

    def as_dict(self) -> dict:
        d = {
            "name": self.name,
            "statement": self.statement,
            "value": float(self.value),
            "ci_low": float(self.ci_low),
            "ci_high": float(self.ci_high),
            "holds": bool(self.holds),
            "unit": self.unit,
            "n": self.n,
        }
        if self.ci_over:
            d["ci_over"] = self.ci_over
        if self.undetermined:
            d["undetermined"] = True
        if self.untested:
            d["untested"] = self.untested
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
