"""Progress: rich bars on a terminal, plain lines per finished phase elsewhere.

Bars are drawn on stderr when it is a terminal (or SELFTAUGHT_PROGRESS=1). When stdout or
stderr is not a terminal (`make demo > log`), each finished phase prints one plain line to
stdout instead (`phase_line`), e.g. `[rest-em] seed1/iter2 done in 41.3 s (test_pass1=0.62)`.
SELFTAUGHT_QUIET=1 silences both. Hot loops stay compiled: callers advance a bar once per
compiled chunk, never per step.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


def _enabled() -> bool:
    if _quiet():
        return False
    return _is_tty(sys.stderr) or os.environ.get("SELFTAUGHT_PROGRESS") == "1"


def _quiet() -> bool:
    return os.environ.get("SELFTAUGHT_QUIET") == "1"


def _is_tty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def phase_done_text(recipe: str, phase: str, wall_seconds: float, fields: dict) -> str:
    """`[recipe] phase done in 12.3 s (name=value, ...)`: the scalar fields (numbers,
    strings, booleans) of a finished phase; lists and arrays are left out."""
    shown = []
    for name, value in fields.items():
        if isinstance(value, float):
            shown.append(f"{name}={value:.4g}")
        elif isinstance(value, (bool, int, str)):
            shown.append(f"{name}={value}")
    tail = f" ({', '.join(shown)})" if shown else ""
    return f"[{recipe}] {phase} done in {wall_seconds:.1f} s{tail}"


def phase_line(text: str) -> None:
    """Print one finished phase's line to stdout (flushed), unless SELFTAUGHT_QUIET=1 or
    both stdout and stderr are terminals (the bars show progress there)."""
    if _quiet() or (_is_tty(sys.stdout) and _is_tty(sys.stderr)):
        return
    print(text, file=sys.stdout, flush=True)


class _Bar:
    def __init__(self, progress: Progress | None, task_id):
        self._progress, self._task = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


_active: list[Progress] = []


@contextlib.contextmanager
def bar(description: str, total: float | None) -> Iterator[_Bar]:
    """A progress bar; nested bars share one live display."""
    if not _enabled():
        yield _Bar(None, None)
        return
    if _active:
        progress = _active[-1]
        task = progress.add_task(description, total=total)
        try:
            yield _Bar(progress, task)
        finally:
            progress.remove_task(task)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    _active.append(progress)
    try:
        with progress:
            task = progress.add_task(description, total=total)
            yield _Bar(progress, task)
    finally:
        _active.pop()

