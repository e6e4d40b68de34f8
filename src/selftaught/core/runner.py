"""Run a recipe into a run directory and rebuild its summary/report."""

from __future__ import annotations

import datetime as _dt
import resource
import sys
import time
from pathlib import Path
from typing import Any

from selftaught.core import config as cfglib
from selftaught.core.errors import RunDirError
from selftaught.core.recipe import Recipe
from selftaught.core.rundir import RunDir
from selftaught.core.seeding import seed_list


def default_run_dir(recipe: str, preset: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recipe}-{preset}-{stamp}"


def _peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def execute(
    recipe: Recipe,
    config: Any,
    *,
    preset: str,
    seeds: int,
    run_dir: Path | None = None,
    resume: bool = False,
) -> tuple[RunDir, dict]:
    """Run (or resume) `recipe` and write summary.json and report.md. Returns (run, summary)."""
    start = time.perf_counter()
    if resume:
        if run_dir is None:
            raise RunDirError("--resume needs the run directory: --resume RUN_DIR")
        run = RunDir.create(run_dir, recipe=recipe.name, preset="", seeds=0, config={}, resume=True)
        stored = run.read_config()
        config = cfglib.from_dict(recipe.config_cls, stored["config"])
        preset, seeds = stored["preset"], stored["seeds"]
    else:
        cfglib.validate(config)
        if seeds < 1:
            from selftaught.core.errors import ConfigError

            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir(recipe.name, preset)
        run = RunDir.create(
            run_dir,
            recipe=recipe.name,
            preset=preset,
            seeds=seeds,
            config=cfglib.to_dict(config),
            resume=False,
        )
    recipe.run(config, run, seed_list(config.seed, seeds))
    run.log(
        "session_end",
        seconds=time.perf_counter() - start,
        peak_rss_mib=_peak_rss_mib(),
        resumed=resume,
    )
    return run, finalize(recipe, run)


def finalize(recipe: Recipe, run: RunDir) -> dict:
    """Rebuild plots, report.md and summary.json from config.json + metrics.jsonl."""
    stored = run.read_config()
    if stored["recipe"] != recipe.name:
        raise RunDirError(f"{run.path} holds recipe {stored['recipe']!r}, not {recipe.name!r}")
    config = cfglib.from_dict(recipe.config_cls, stored["config"])
    seeds = seed_list(config.seed, stored["seeds"])
    run.plots.mkdir(parents=True, exist_ok=True)
    rep = recipe.report(config, run, seeds)
    summary = {
        "recipe": recipe.name,
        "preset": stored["preset"],
        "seeds": stored["seeds"],
        "claims": [c.as_dict() for c in rep.claims],
        "wall_seconds": run.wall_seconds(),
    }
    run.write_json("summary.json", summary)
    peaks = [e["peak_rss_mib"] for e in run.events("session_end")]
    lines = [
        f"# {recipe.name} — {recipe.description}",
        "",
        f"Preset `{stored['preset']}`, {stored['seeds']} seed(s), "
        f"compute {summary['wall_seconds']:.0f} s"
        + (f", peak memory {max(peaks):.0f} MiB" if peaks else "")
        + ".",
        "",
        "## Claims",
        "",
        "| claim | statement | value | 95% CI | holds |",
        "|---|---|---|---|---|",
    ]
    for c in rep.claims:
        lines.append(
            f"| {c.name} | {c.statement} | {c.value:.4g} | [{c.ci_low:.4g}, {c.ci_high:.4g}] "
            f"| {'yes' if c.holds else 'no'} |"
        )
    lines += ["", rep.markdown.strip(), ""]
    run.write_text("report.md", "\n".join(lines))
    return summary
