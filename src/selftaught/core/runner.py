"""Run a recipe into a run directory and rebuild its summary/report."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import re
import resource
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from selftaught.core import config as cfglib
from selftaught.core.errors import ConfigError, DivergedError, RunDirError, UserError
from selftaught.core.recipe import MIN_UNITS_FOR_CI, Recipe
from selftaught.core.rundir import PHASE_DONE, RunDir, locked
from selftaught.core.seeding import seed_list


def default_run_dir(recipe: str, preset: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{recipe}-{preset}-{stamp}"


def _peak_rss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1024 * 1024) if sys.platform == "darwin" else kib / 1024


def stored_config(recipe: Recipe, run: RunDir, stored: dict) -> Any:
    """The recipe config stored in config.json; a wrong key or type names the file."""
    try:
        return cfglib.from_dict(recipe.config_cls, stored["config"], where="config")
    except ConfigError as exc:
        raise RunDirError(f"{run.path / 'config.json'}: {exc}") from None


def execute(
    recipe: Recipe,
    config: Any,
    *,
    preset: str,
    seeds: int,
    run_dir: Path | None = None,
    resume: bool = False,
) -> tuple[RunDir, dict]:
    """Run (or resume) `recipe` and write summary.json and report.md. Returns (run, summary).

    The run directory is locked for the whole call: a second process on it gets a
    RunDirError naming the PID that holds it."""
    start = time.perf_counter()
    if resume:
        if run_dir is None:
            raise RunDirError("--resume needs the run directory: --resume RUN_DIR")
        RunDir.open(run_dir)  # refuse before the lock creates anything
    else:
        cfglib.validate(config)
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        run_dir = Path(run_dir) if run_dir is not None else default_run_dir(recipe.name, preset)
    with locked(run_dir):
        if resume:
            run = RunDir.create(run_dir, recipe=recipe.name, preset="", seeds=0, config={},
                                resume=True)
            stored = run.read_config()
            config = stored_config(recipe, run, stored)
            preset, seeds = stored["preset"], stored["seeds"]
            if not run.done_phases():
                try:
                    cfglib.validate(config)
                except ConfigError as exc:
                    raise ConfigError(
                        f"the stored config of {run.path} is invalid ({exc}); no phase of it "
                        f"finished, so start afresh in the same directory: `selftaught run "
                        f"{recipe.name} --preset {preset or 'default'} --seeds {seeds} "
                        f"--run-dir {shlex.quote(str(run.path))}` with corrected flags"
                    ) from None
        else:
            run = RunDir.create(
                run_dir,
                recipe=recipe.name,
                preset=preset,
                seeds=seeds,
                config=cfglib.to_dict(config),
                resume=False,
            )
        seed_ids = seed_list(config.seed, seeds)
        plan = recipe.phases(config, seed_ids) if recipe.phases is not None else None
        try:
            with run.planned(plan, f"{recipe.name} phases"):
                recipe.run(config, run, seed_ids)
        except DivergedError as exc:
            raise DivergedError(
                f"{exc}{_rerun_advice(recipe, run, config, preset, seeds, exc)}"
            ) from None
        run.log(
            "session_end",
            seconds=time.perf_counter() - start,
            peak_rss_mib=_peak_rss_mib(),
            resumed=resume,
        )
        return run, finalize(recipe, run)


def _rerun_advice(recipe, run, config, preset, seeds, exc) -> str:
    """The command that reruns this config (its flags against the preset) with the learning
    rate the divergence message suggests: the field(s) holding it set to a third of it."""
    lr = getattr(exc, "lr", None)
    if lr is None:
        return ""
    lr_fields = _fields_equal(cfglib.to_dict(config), lr)
    if not lr_fields:
        return ""
    try:
        base = cfglib.to_dict(recipe.preset(preset))
    except UserError:
        base = {}
    flags = [t for name, value in _flat(cfglib.to_dict(config)).items()
             if name not in lr_fields and _flat(base).get(name, object()) != value
             for t in _flag_tokens(name, value)]
    flags += [t for name in lr_fields for t in _flag_tokens(name, float(f"{lr / 3:g}"))]
    where = "NEW_DIR" if run.done_phases() else str(run.path)
    argv = ["selftaught", "run", recipe.name, "--preset", preset, "--seeds", str(seeds),
            "--run-dir", where, *flags]
    return f"; rerun: `{shlex.join(argv)}`"


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = v
    return out


def _flag_tokens(name: str, value) -> list[str]:
    """tyro's spelling of `--name value` (hyphens; --x / --no-x for booleans)."""
    head, _, leaf = name.rpartition(".")
    flag = "--" + name.replace("_", "-")
    if isinstance(value, bool):
        if value:
            return [flag]
        return ["--" + (head + "." if head else "").replace("_", "-") + "no-"
                + leaf.replace("_", "-")]
    if isinstance(value, list):
        return [flag, *(repr(v) if isinstance(v, float) else str(v) for v in value)]
    return [flag, repr(value) if isinstance(value, float) else str(value)]


def _fields_equal(d: dict, value: float) -> list[str]:
    """Dotted names of the float fields named like a learning rate that equal `value`."""
    return [name for name, v in _flat(d).items()
            if isinstance(v, float) and "lr" in name.rpartition(".")[2]
            and math.isclose(v, value, rel_tol=1e-6)]


_SEED_PHASE = re.compile(r"^seed(-?\d+)/(.+)$")


@dataclasses.dataclass
class RunStatus:
    """Whether a run finished, and what it lacks if not."""

    complete: bool
    missing: list[str]  # phase names known to be missing
    finished_seeds: list[int]  # seeds with every (known) phase done
    last_done: str | None


def status(recipe: Recipe, run: RunDir, config: Any, seeds: list[int]) -> RunStatus:
    """A run is complete when a session ran the recipe to its end (its `session_end` event)
    and no expected phase is missing. Expected phases come from `recipe.phases` when given,
    else from the `seed{S}/NAME` phases that some seed finished."""
    raw = run._raw_events()
    done_order = [r["phase"] for r in raw if r["event"] == PHASE_DONE]
    done = set(done_order)
    ended = any(r["event"] == "session_end" for r in raw)
    if recipe.phases is not None:
        expected = list(recipe.phases(config, seeds))
    elif ended:  # the recipe ran to its end; without a phase list that is the whole story
        expected = []
    else:  # infer: a seed{S}/NAME phase that some seed finished is expected of every seed
        suffixes: list[str] = []
        for ph in done_order:
            m = _SEED_PHASE.match(ph)
            if m and m.group(2) not in suffixes:
                suffixes.append(m.group(2))
        expected = [f"seed{s}/{suf}" for s in seeds for suf in suffixes]
    missing = [p for p in expected if p not in done]
    by_seed = {s: [p for p in expected if p.startswith(f"seed{s}/")] for s in seeds}
    if any(by_seed.values()):
        finished = [s for s in seeds if by_seed[s] and all(p in done for p in by_seed[s])]
    else:  # phases not named per seed: all or nothing
        finished = list(seeds) if ended and not missing else []
    return RunStatus(ended and not missing, missing, finished,
                     done_order[-1] if done_order else None)


def finalize(recipe: Recipe, run: RunDir) -> dict:
    """Rebuild plots, report.md and summary.json from config.json + metrics.jsonl.

    An unfinished run gets a report too, marked incomplete: it lists the missing phases and
    every claim is flagged as computed from partial data."""
    stored = run.read_config()
    if stored["recipe"] != recipe.name:
        raise RunDirError(f"{run.path} holds recipe {stored['recipe']!r}, not {recipe.name!r}")
    config = stored_config(recipe, run, stored)
    seeds = seed_list(config.seed, stored["seeds"])
    st = status(recipe, run, config, seeds)
    resume_cmd = f"selftaught run {recipe.name} --resume {shlex.quote(str(run.path))}"
    run.plots.mkdir(parents=True, exist_ok=True)
    run.complete = st.complete  # an unfinished run's report may use its finished seeds
    try:
        rep = recipe.report(config, run, seeds)
    except UserError:
        raise
    except Exception as exc:
        if st.complete:
            raise
        raise RunDirError(
            f"{run.path} is an incomplete run ({_missing_text(st)}) and its report cannot be "
            f"built from the partial data ({type(exc).__name__}); finish it with "
            f"`{resume_cmd}`"
        ) from None
    claims = rep.claims if st.complete else [
        dataclasses.replace(c, partial=True) for c in rep.claims
    ]
    summary = {
        "recipe": recipe.name,
        "preset": stored["preset"],
        "seeds": stored["seeds"],
        "claims": [c.as_dict() for c in claims],
        "wall_seconds": run.wall_seconds(),
    }
    if not st.complete:
        summary["complete"] = False
        summary["missing_phases"] = st.missing
        summary["finished_seeds"] = st.finished_seeds
        summary["resume"] = resume_cmd
    run.write_json("summary.json", summary)
    peaks = [e["peak_rss_mib"] for e in run.events("session_end")]
    seeds_text = (f"{stored['seeds']} seed(s)" if st.complete else
                  f"{len(st.finished_seeds)} of {stored['seeds']} seed(s) finished")
    lines = [
        f"# {recipe.name} — {recipe.description}",
        "",
        f"Preset `{stored['preset']}`, {seeds_text}, "
        f"compute {summary['wall_seconds']:.0f} s"
        + (f", peak memory {max(peaks):.0f} MiB" if peaks else "")
        + ".",
        "",
    ]
    if not st.complete:
        lines += [
            f"**Incomplete run**: {_missing_text(st)}. Every claim below is computed from "
            f"partial data. Finish it with `{resume_cmd}`.",
            "",
        ]
    lines += [
        "## Claims",
        "",
        "| claim | statement | value | 95% CI | holds |",
        "|---|---|---|---|---|",
    ]
    for c in claims:
        lines.append(
            f"| {c.name} | {c.statement} | {c.value:.4g} | {_ci_text(c)} | {_holds_text(c)} |"
        )
    lines += ["", rep.markdown.strip(), ""]
    run.write_text("report.md", "\n".join(lines))
    return summary


def _missing_text(st: RunStatus) -> str:
    if st.missing:
        shown = ", ".join(st.missing[:8])
        more = f" and {len(st.missing) - 8} more" if len(st.missing) > 8 else ""
        return f"missing phases: {shown}{more}"
    after = f" after phase {st.last_done}" if st.last_done else ""
    return f"it stopped{after}; the phases after it did not run"


def _ci_text(c) -> str:
    if c.undetermined:
        return f"too few {c.unit} for a CI ({c.n} < {MIN_UNITS_FOR_CI})" + (
            f"; CI over {c.ci_over}" if c.ci_over else "")
    return f"[{c.ci_low:.4g}, {c.ci_high:.4g}] ({c.replication})"


def _holds_text(c) -> str:
    text = ("undetermined" if c.undetermined else f"not tested: {c.untested}" if c.untested
            else "yes" if c.holds else "no")
    return f"{text} (partial data)" if c.partial else text
