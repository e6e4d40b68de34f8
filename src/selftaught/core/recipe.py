"""The recipe contract and the claim record every summary.json shares.

A recipe module in `selftaught.recipes` defines `RECIPE = Recipe(...)`:

    run(config, run_dir, seeds)     does the work; splits it into phases (see RunDir),
                                    logs events, saves checkpoints; resumable.
    report(config, run_dir, seeds)  rebuilds plots from metrics.jsonl alone and returns
                                    Report(claims, markdown).

The core writes config.json, summary.json and report.md around them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

PRESETS = ("smoke", "default", "paper")


@dataclasses.dataclass(frozen=True)
class Claim:
    """One claim of a paper tested by a run: value with a 95% CI and whether it holds."""

    name: str
    statement: str
    value: float
    ci_low: float
    ci_high: float
    holds: bool

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["holds"] = bool(d["holds"])
        for k in ("value", "ci_low", "ci_high"):
            d[k] = float(d[k])
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

    def preset(self, name: str) -> Any:
        from selftaught.core.errors import UnknownNameError

        if name not in self.presets:
            raise UnknownNameError(f"preset of recipe {self.name}", name, list(self.presets))
        return self.presets[name]
