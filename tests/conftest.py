import os

os.environ.setdefault("SELFTAUGHT_QUIET", "1")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# The numerics policy of the tests (selftaught.core.device): deterministic GPU ops (XLA reads
# XLA_FLAGS when its backend starts, so before any test computes) and full-float32 matmuls, so
# that comparisons of two computations hold on a GPU as on the CPU (where every precision
# setting computes the same float32 products).
from selftaught.core import device  # noqa: E402

device.configure("highest", deterministic_gpu=True)


import contextlib  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture
def killed_at(monkeypatch):
    """`with killed_at(owner, "name", n): run(...)` — inside the block the n-th call of
    `owner.name` (counting only calls where `when(*args)` holds) raises KeyboardInterrupt, a
    simulated kill, before it runs; the block must end by that kill, and the original is
    restored on exit, so the resumed run that follows is unpatched."""

    @contextlib.contextmanager
    def patch(owner, name: str, n: int, when=lambda *a, **k: True):
        real, calls = getattr(owner, name), {"n": 0}

        def dying(*args, **kw):
            if when(*args, **kw):
                calls["n"] += 1
                if calls["n"] == n:
                    raise KeyboardInterrupt("simulated kill")
            return real(*args, **kw)

        monkeypatch.setattr(owner, name, dying)
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            monkeypatch.setattr(owner, name, real)
        assert calls["n"] >= n, f"{name} was called {calls['n']} times, never killed"

    return patch
