import os

os.environ.setdefault("SELFTAUGHT_QUIET", "1")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

# The numerics policy of the tests (selftaught.core.device): deterministic GPU ops (XLA reads
# XLA_FLAGS when its backend starts, so before any test computes) and full-float32 matmuls, so
# that comparisons of two computations hold on a GPU as on the CPU (where every precision
# setting computes the same float32 products). SELFTAUGHT_TEST_MATMUL_PRECISION=default (or
# high) runs the suite under another precision: a check that no test depends on it.
from selftaught.core import device  # noqa: E402

device.configure(os.environ.get("SELFTAUGHT_TEST_MATMUL_PRECISION", "highest"),
                 deterministic_gpu=True)


def _compilation_cache_dir() -> str | None:
    """JAX's persistent compilation cache for the tests, OUTSIDE the clone so that it survives
    `git clean` and is shared by clones and xdist workers: $JAX_COMPILATION_CACHE_DIR if set
    ('' turns the cache off), else ~/.cache/selftaught-jax/<jax version>-<cpu>. The CPU
    fingerprint keeps a home directory shared between machines (NFS) from loading code
    compiled for another instruction set (XLA_FLAGS, e.g. --xla_cpu_max_isa, are part of
    JAX's own cache key)."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return os.environ["JAX_COMPILATION_CACHE_DIR"] or None
    import hashlib
    import platform

    import jax

    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((x for x in f if x.startswith(("flags", "Features"))), "")
    except OSError:
        cpu = ""
    cpu += platform.machine() + platform.processor()
    tag = f"{jax.__version__}-{hashlib.sha256(cpu.encode()).hexdigest()[:12]}"
    return os.path.join(os.path.expanduser("~"), ".cache", "selftaught-jax", tag)


def _enable_compilation_cache() -> None:
    import jax

    path = _compilation_cache_dir()
    if path is None:
        return
    jax.config.update("jax_compilation_cache_dir", path)
    # the tests' programs are small: cache every one, however fast it compiled
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


_enable_compilation_cache()


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


@pytest.fixture(scope="module", autouse=True)
def _free_compiled_programs():
    """After each test file, drop JAX's in-memory compiled programs: with `--dist loadfile` a
    worker runs many files, and their executables would otherwise pile up (peak RSS). A file
    that compiles the same program again reads it back from the persistent cache."""
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
