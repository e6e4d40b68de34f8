import numpy as np
import pytest

from selftaught.core.errors import UnknownNameError
from selftaught.evolve.backends import _chunks, make_backend
from selftaught.evolve.program import random_program
from selftaught.evolve.symreg import SymRegTask

TASK = SymRegTask("nguyen1", num_nodes=6)


def _programs(n=13):
    rng = np.random.default_rng(0)
    return [random_program(TASK.space, rng) for _ in range(n)]


def test_chunks_cover_in_order():
    items = list(range(10))
    parts = _chunks(items, 3)
    assert sum(parts, []) == items and len(parts) == 3
    assert _chunks(items[:1], 4) == [[0]]


def test_inprocess_matches_direct_fitness_formula():
    progs = _programs()
    be = make_backend("inprocess", TASK)
    got = be(progs)
    x, y = TASK.points()
    from selftaught.evolve.program import compile_program

    want = []
    for p in progs:
        out = np.asarray(compile_program(p)({"x": x}), np.float64)
        want.append(max(-np.sqrt(np.mean((out - y) ** 2)) / np.std(y), -10.0))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    be.close()


def test_process_pool_matches_inprocess():
    progs = _programs()
    ref = make_backend("inprocess", TASK)(progs)
    pool = make_backend("pool", TASK, workers=2)
    try:
        np.testing.assert_allclose(pool(progs), ref, rtol=1e-5)
    finally:
        pool.close()


@pytest.mark.slow
def test_ray_matches_inprocess():
    pytest.importorskip("ray")
    progs = _programs()
    ref = make_backend("inprocess", TASK)(progs)
    be = make_backend("ray", TASK, workers=2)
    try:
        np.testing.assert_allclose(be(progs), ref, rtol=1e-5)
    finally:
        be.close()


def test_unknown_backend():
    with pytest.raises(UnknownNameError, match="unknown evaluation backend 'tpu'"):
        make_backend("tpu", TASK)


def test_lazy_backend_starts_once_on_first_call_and_closes_on_exit(monkeypatch):
    """LazyBackend: nothing is started until a call needs it, one backend serves every
    call, the context closes it; never started, nothing is closed."""
    from selftaught.evolve import backends

    made, closed = [], []

    class Fake:
        def __init__(self, *a, **k):
            made.append((a, k))

        def close(self):
            closed.append(True)

    monkeypatch.setattr(backends, "make_backend", lambda *a, **k: Fake(*a, **k))
    with backends.LazyBackend("pool", "task", workers=3, address=None) as lazy:
        assert made == []
        first = lazy()
        assert lazy() is first
        assert made == [(("pool", "task"), {"workers": 3, "address": None})]
    assert closed == [True]
    with backends.LazyBackend("inprocess", "task"):
        pass
    assert len(made) == 1 and closed == [True]
