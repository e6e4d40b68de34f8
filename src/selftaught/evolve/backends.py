"""Evaluation backends with one interface: `backend(programs) -> fitness array`.

    inprocess  the task's evaluator in this process (vmapped over the batch)
    pool       a local process pool (spawned workers; each builds the evaluator once and
               evaluates a contiguous chunk of the batch, vmapped)
    ray        Ray actors, one per worker, on a local Ray instance or an existing cluster
               (`address="ray://host:10001"` or "auto"); optional extra `selftaught[ray]`

A *task* is a picklable object with `.space` and `.build() -> fn(programs) -> array`;
`build` is called once per worker (it compiles), so workers keep their compile cache.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.evolve.program import Program

BACKENDS = ("inprocess", "pool", "ray")


class Task(Protocol):
    space: Any

    def build(self) -> Callable[[list[Program]], np.ndarray]: ...


def _chunks(items: list, n: int) -> list[list]:
    n = max(1, min(n, len(items)))
    bounds = np.linspace(0, len(items), n + 1).astype(int)
    return [items[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


class InProcess:
    name = "inprocess"

    def __init__(self, task: Task):
        self.task = task
        self._fn = task.build()

    def __call__(self, programs: list[Program]) -> np.ndarray:
        return np.asarray(self._fn(list(programs)))

    def close(self) -> None:
        pass


_WORKER_FN: Callable | None = None


def _worker_init(task: Task) -> None:
    global _WORKER_FN
    _WORKER_FN = task.build()


def _worker_eval(programs: list[Program]) -> np.ndarray:
    assert _WORKER_FN is not None
    return np.asarray(_WORKER_FN(programs))


def _worker_ping(_: int) -> int:
    return 0 if _WORKER_FN is not None else 1


class ProcessPool:
    name = "pool"

    def __init__(self, task: Task, workers: int = 2):
        self.task, self.workers = task, workers
        ctx = multiprocessing.get_context("spawn")  # never fork a process running XLA
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(task,))
        list(self._pool.map(_worker_ping, range(workers)))  # start and build every worker

    def __call__(self, programs: list[Program]) -> np.ndarray:
        parts = list(self._pool.map(_worker_eval, _chunks(list(programs), self.workers)))
        return np.concatenate(parts)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("backend 'ray' needs Ray: pip install 'selftaught[ray]' "
                          "(or choose --backend inprocess | pool)") from None
    return ray


class RayBackend:
    name = "ray"

    def __init__(self, task: Task, workers: int = 2, address: str | None = None):
        ray = _import_ray()
        self.task, self.workers, self._ray = task, workers, ray
        self._owns = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            else:
                ray.init(num_cpus=workers, ignore_reinit_error=True, log_to_driver=False,
                         include_dashboard=False)
                self._owns = True

        @ray.remote(num_cpus=1)
        class Worker:
            def __init__(self, task):
                self.fn = task.build()

            def evaluate(self, programs):
                return np.asarray(self.fn(programs))

        self._actors = [Worker.remote(task) for _ in range(workers)]

    def __call__(self, programs: list[Program]) -> np.ndarray:
        refs = [a.evaluate.remote(c) for a, c in
                zip(self._actors, _chunks(list(programs), self.workers))]
        return np.concatenate(self._ray.get(refs))

    def close(self) -> None:
        for a in self._actors:
            self._ray.kill(a)
        self._actors = []
        if self._owns:
            self._ray.shutdown()


def make_backend(name: str, task: Task, *, workers: int = 2, address: str | None = None):
    """The backend called `name` for `task` (call `.close()` when done)."""
    if name == "inprocess":
        return InProcess(task)
    if name == "pool":
        return ProcessPool(task, workers)
    if name == "ray":
        return RayBackend(task, workers, address)
    raise UnknownNameError("evaluation backend", name, list(BACKENDS))


class LazyBackend:
    """`make_backend(name, task, ...)` started on the first call and returned by every call
    (a resumed run whose evaluations are all done starts none: no pool, no Ray); as a
    context manager it closes the backend, if one was started, on exit."""

    def __init__(self, name: str, task: Task, *, workers: int = 2, address: str | None = None):
        self.name, self.task, self.workers, self.address = name, task, workers, address
        self.backend = None

    def __call__(self):
        if self.backend is None:
            self.backend = make_backend(self.name, self.task, workers=self.workers,
                                        address=self.address)
        return self.backend

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    def __enter__(self) -> LazyBackend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
