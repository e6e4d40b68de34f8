"""The numerics policy, set in one place: float32 matmul precision and deterministic GPU ops.

- Matmul precision. On recent NVIDIA GPUs XLA computes float32 matrix products in TF32 by
  default (~1e-3 relative error): fast, but two computations that should agree (a cached
  and an uncached decode, a conv and its reference) differ. `highest` computes them in full
  float32. The CLI's `--matmul-precision` sets it (absent: XLA's fast default);
  the test suite pins `highest` (tests/conftest.py). On the CPU every setting computes full
  float32, so CPU numbers do not depend on it.
- Deterministic GPU ops. GPU reductions and scatters are not bit-reproducible by default,
  so a resumed run would not equal an uninterrupted one. The CLI turns on XLA's
  `--xla_gpu_deterministic_ops` unless `--nondeterministic-gpu` is given. XLA reads its
  flags when JAX starts its backend, so this must run before the first JAX computation.
"""

from __future__ import annotations

import os

PRECISIONS = ("default", "high", "highest")
DETERMINISTIC_FLAG = "--xla_gpu_deterministic_ops=true"


def set_matmul_precision(name: str) -> None:
    """Set JAX's default float32 matmul precision: 'default' (XLA's fast choice: TF32 on
    recent NVIDIA GPUs), 'high' or 'highest' (full float32)."""
    import jax

    from selftaught.core.errors import UnknownNameError

    if name not in PRECISIONS:
        raise UnknownNameError("matmul precision", name, PRECISIONS)
    jax.config.update("jax_default_matmul_precision", None if name == "default" else name)


def set_deterministic_gpu(enabled: bool = True, environ: dict | None = None) -> None:
    """Add (or leave out) XLA's deterministic-GPU-ops flag in XLA_FLAGS. Call before JAX
    initialises a backend; harmless on the CPU."""
    env = os.environ if environ is None else environ
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(
        "--xla_gpu_deterministic_ops")]
    if enabled:
        flags.append(DETERMINISTIC_FLAG)
    if flags:
        env["XLA_FLAGS"] = " ".join(flags)
    else:
        env.pop("XLA_FLAGS", None)


def configure(matmul_precision: str | None = None, deterministic_gpu: bool = True) -> None:
    """Apply the whole policy (the CLI calls this once, before any JAX work). A precision of
    None leaves JAX's setting as it is (XLA's default unless something pinned it)."""
    set_deterministic_gpu(deterministic_gpu)
    if matmul_precision is not None:
        set_matmul_precision(matmul_precision)
