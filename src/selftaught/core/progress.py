"""Progress: rich bars on a terminal, plain lines per finished phase elsewhere.

Bars are drawn on stderr when it is a terminal (or SELFTAUGHT_PROGRESS=1). When stdout or
stderr is not a terminal (`make demo > log`), each finished phase prints one plain line to
stdout instead (`phase_line`), e.g. `[rest-em] seed1/iter2 done in 41.3 s (test_pass1=0.62)`.
SELFTAUGHT_QUIET=1 silences both. Hot loops stay compiled: callers advance a bar once per
compiled chunk, never per step.

Inside a run's phase (`RunDir.phase`, through `logging_to`), every bar also reports its
count as a plain line at most every `SELFTAUGHT_LOG_EVERY` seconds (default 60) and when it
completes, e.g. `[bbf] Breakout-MinAtar/w4: bbf Breakout-MinAtar full 4/11 (5m 12s)`: the
run's log file shows how far a long phase has got, whatever the terminal (and quiet mode).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator

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


_sinks: list[Callable[[str], None]] = []


def log_every_s() -> float:
    """Seconds between two plain progress lines of one bar (`SELFTAUGHT_LOG_EVERY`)."""
    try:
        return max(0.0, float(os.environ.get("SELFTAUGHT_LOG_EVERY", "60")))
    except ValueError:
        return 60.0


@contextlib.contextmanager
def logging_to(sink: Callable[[str], None]) -> Iterator[None]:
    """Within the block, bars opened from now on also send their counts to `sink` as plain
    lines (`description done/total (elapsed)`), throttled to one per `log_every_s()` and
    always at completion."""
    _sinks.append(sink)
    try:
        yield
    finally:
        _sinks.pop()


def _elapsed(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


class _Bar:
    def __init__(self, progress: Progress | None, task_id, description: str = "",
                 total: float | None = None):
        self._progress, self._task = progress, task_id
        self._description, self._total, self._done = description, total, 0.0
        self._sink = _sinks[-1] if _sinks else None
        self._every = log_every_s() if self._sink is not None else 0.0
        self._start = self._last = time.monotonic()

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)
        self._done += n
        if self._sink is None:
            return
        now = time.monotonic()
        complete = self._total is not None and self._done >= self._total
        if complete or now - self._last >= self._every:
            self._last = now
            count = f"{self._done:g}" + (f"/{self._total:g}" if self._total is not None else "")
            self._sink(f"{self._description} {count} ({_elapsed(now - self._start)})")


_active: list[Progress] = []


@contextlib.contextmanager
def bar(description: str, total: float | None) -> Iterator[_Bar]:
    """A progress bar; nested bars share one live display. Inside `logging_to` its counts
    also go to the sink as plain lines."""
    if not _enabled():
        yield _Bar(None, None, description, total)
        return
    if _active:
        progress = _active[-1]
        task = progress.add_task(description, total=total)
        try:
            yield _Bar(progress, task, description, total)
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
            yield _Bar(progress, task, description, total)
    finally:
        _active.pop()

