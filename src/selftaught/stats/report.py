"""The report toolkit: a run's events as arrays, CI cells and markdown tables.

    t = collect(run_dir, "eval", by={"seed": seeds, "iteration": range(4)},
                values=("test_pass1", "train_pass1"))      # name -> array [seeds, 4]
    rows = [[i, ci_cell(bootstrap_ci(t["test_pass1"][:, i] * 100))] for i in range(4)]
    markdown_table(["iteration", "test pass@1"], rows)
"""

from __future__ import annotations

import itertools
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from selftaught.core.errors import DataError, IncompleteRunError


def collect(run_dir, event: str, *, by: Mapping[str, Iterable], values: Sequence[str] | None,
            where: Mapping[str, Any] | None = None,
            partial: str | None = None, optional: bool = False) -> dict[str, Any] | None:
    """The fields `values` of the counted `event`s of `run_dir`, as arrays indexed by `by`.

    `by` maps each key field to the values a complete run has, in order (e.g. `{"seed":
    seeds, "iteration": range(4)}`); each array has shape `[len(v) for v in by.values()]`,
    its cell [i, j] from the event with seed=seeds[i] and iteration=j (the last one if
    several). `where` keeps only events whose other fields have these values (e.g.
    `{"split": "test"}`). A cell without its event means the run is unfinished: an
    IncompleteRunError (one line) names the missing cells and the command that resumes it.

    `values=None` takes every field that all the cells' events have (besides `event`,
    `phase` and the keys), for an event with many fields named by the recipe's settings.

    A field whose value is a list (a curve) gives an array with its length as trailing
    axes ([seeds, 4, T]); lists of different lengths give an object array of 1-D arrays.

    `partial` names a key of `by` (e.g. "seed") along which the report of a run the core
    knows to be unfinished (`run_dir.complete` is False, set by `selftaught report`) keeps
    the values whose every cell is there: its claims come from the finished seeds (the core
    marks them partial), and only a run with none finished raises. The kept values are
    returned as the list `out[partial]` (all of them for a finished run, which is checked
    in full: there a missing cell still raises). `optional`: such an unfinished run that
    lacks cells (after `partial`) gives None instead, for a section its report leaves out.
    """
    recs = collect_events(run_dir, event, by=by, where=where, partial=partial,
                          optional=optional)
    if recs is None:
        return None
    keys = {name: list(dict.fromkeys(c[i] for c in recs)) for i, name in enumerate(by)}
    cells = list(recs)
    shape = tuple(len(v) for v in keys.values())
    if values is None:
        common = set.intersection(*(set(recs[c]) for c in cells)) if cells else set()
        values = sorted(common - {"event", "phase", *keys})
    out: dict[str, Any] = {} if partial is None else {partial: list(keys[partial])}
    for name in values:
        column = []
        for cell in cells:
            rec = recs[cell]
            if name not in rec:
                raise DataError(
                    f"{run_dir.metrics_path}: the {event!r} event for {_cell(by, cell)} has "
                    f"no field {name!r} (written by another version of the recipe?); rerun the "
                    "recipe in a new --run-dir")
            column.append(rec[name])
        out[name] = _stack(column, shape)
    return out


def _stack(column: list, shape: tuple[int, ...]) -> np.ndarray:
    """The cells' values as one array [*shape, *value shape]; ragged lists: object array."""
    try:
        arr = np.array(column)
    except ValueError:  # lists of different lengths
        arr = np.empty(len(column), object)
        arr[:] = [np.asarray(v) for v in column]
    return arr.reshape(shape + arr.shape[1:])


def collect_events(run_dir, event: str, *, by: Mapping[str, Iterable],
                   where: Mapping[str, Any] | None = None, partial: str | None = None,
                   optional: bool = False) -> dict[tuple, dict] | None:
    """The counted `event`s of `run_dir` by cell: {(value of each key of `by`): the event}
    for every cell of `by`, in its order (the last event of a cell if several). The same
    rules as `collect` (`where`, `partial`, `optional`, the one-line IncompleteRunError for
    a missing cell), for a report that reads many fields of one record, or fields only some
    versions of the recipe log. `by={}`: the one cell () holds the event logged once."""
    keys = {name: list(vals) for name, vals in by.items()}
    if partial is not None and partial not in keys:
        raise ValueError(f"partial={partial!r} is not a key of `by` ({', '.join(keys)})")
    match = dict(where or {})
    found: dict[tuple, dict] = {}
    for rec in run_dir.events(event, **match):
        found[tuple(rec.get(name) for name in keys)] = rec
    cells = list(itertools.product(*keys.values()))
    missing = [c for c in cells if c not in found]
    unfinished = getattr(run_dir, "complete", None) is False
    if missing and partial is not None and unfinished:
        axis = list(keys).index(partial)
        lacking = {c[axis] for c in missing}
        kept = [v for v in keys[partial] if v not in lacking]
        if kept:
            keys[partial] = kept
            cells = list(itertools.product(*keys.values()))
            missing = []
    if missing and optional and unfinished:
        return None
    if missing:
        raise IncompleteRunError(_missing_text(run_dir, event, list(keys), missing, match))
    return {c: found[c] for c in cells}


def _cell(keys: Mapping[str, Any], cell: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, cell))


def _missing_text(run_dir, event: str, keys: list[str], missing: list[tuple],
                  where: Mapping[str, Any]) -> str:
    try:
        recipe = run_dir.read_config()["recipe"]
    except Exception:  # an unreadable config.json: the command still names the directory
        recipe = "RECIPE"
    shown = "; ".join(_cell(keys, c) for c in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    filt = f" ({_cell(where, tuple(where.values()))})" if where else ""
    cells = f" for {shown}{more}" if keys else ""
    return (f"{run_dir.path} is an unfinished run: no {event!r} event{filt}{cells}; "
            f"finish it with `selftaught run {recipe} --resume {shlex.quote(str(run_dir.path))}`")


def ci_cell(estimate: Sequence[float], fmt: str = ".1f") -> str:
    """A table cell `point [low, high]` of an estimate (e.g. `bootstrap_ci`'s), each number
    formatted with `fmt`: "12.3 [10.1, 14.0]"."""
    point, low, high = estimate[:3]
    return f"{point:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> str:
    """A markdown table: the header line, the separator line, one line per row (cells shown
    with `str`; every row as long as the header)."""
    header = [str(h) for h in header]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for row in rows:
        cells = [str(c) for c in row]
        if len(cells) != len(header):
            raise ValueError(f"a row has {len(cells)} cells, the header {len(header)}: {cells}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def resolution_md(claims: Sequence, pooled: Mapping[str, Sequence[float]], *, units: str,
                  fmt: str = ".2f") -> list[str]:
    """A report section: beside each claim's CI over its units of replication, the paired
    bootstrap over the pooled `units` (e.g. "the 3,000 test problems of 3 seeds pooled, k =
    16"), one row per claim named in `pooled` ({claim name: Estimate, e.g.
    `pooled_difference_ci`}), in the order of `claims`."""
    by_name = {c.name: c for c in claims}
    missing = [name for name in pooled if name not in by_name]
    if missing:
        raise ValueError(f"no claim named {missing} among {sorted(by_name)}")
    rows = [[c.name, ci_cell((c.value, c.ci_low, c.ci_high), fmt), ci_cell(pooled[c.name], fmt)]
            for c in claims if c.name in pooled]
    return [f"## Resolution of the test set: paired bootstrap over {units}", "",
            "The claims' CI is over training seeds; this one resamples test problems (the "
            "per-problem differences of every seed pooled), so it says how small a difference "
            "the test set can resolve, not how much it varies with training.", "",
            markdown_table(["claim", "difference, CI over training seeds",
                            "difference, CI over test problems"], rows)]
