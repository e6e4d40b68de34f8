"""Progress bars (rich). Quiet when SELFTAUGHT_QUIET=1 or when not attached to a terminal.

Hot loops stay compiled: callers advance a bar once per compiled chunk, never per step.
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
    if os.environ.get("SELFTAUGHT_QUIET") == "1":
        return False
    return sys.stderr.isatty() or os.environ.get("SELFTAUGHT_PROGRESS") == "1"


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

