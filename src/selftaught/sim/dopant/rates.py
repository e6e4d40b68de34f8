"""Rate functions: per-neighbour jump rates (1/s) as a function of the context.

A context is a float array (…, 4) in the Si's canonical frame (see `lattice`):
CONTEXT_FIELDS = (x_A, y_A, voltage_kV, current_pA) — the beam position relative to the Si
and the microscope's voltage and current. A rate function maps contexts (…, 4) to rates
(…, 3), one per neighbour.

Ground truth: a Gaussian mixture `f` (lobes for neighbour 0, made symmetric under
y → −y) copied to the other neighbours by the 3-fold rotation,
    λ_k(r, V, I) = scale(V, I) · (f(R₋₁₂₀ₖ r) + background),
    scale(V, I) = (I / 50 pA) · exp((V − 60 kV) / 10 kV),
so rotating the beam by 120° permutes the neighbour rates and reflecting it swaps
neighbours 1 and 2. The human prior is the same family with one Gaussian at (0.85, 0) Å.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from selftaught.core.errors import UnknownNameError
from selftaught.sim.dopant.lattice import (
    BOND,
    GROUP_MATRICES_6x2x2,
    GROUP_PERMS_6x3,
    group_matrix,
)

CONTEXT_FIELDS = ("x_A", "y_A", "voltage_kV", "current_pA")
V_REF, V_SCALE, I_REF = 60.0, 10.0, 50.0  # kV, kV, pA

RateFn = Callable[[jax.Array], jax.Array]

# R(−120°·k) for k = 0, 1, 2: brings neighbour k onto +x.
_UNROTATE_3x2x2 = np.stack([group_matrix(-k % 3, 0) for k in range(3)]).astype(np.float32)


def dose_scale(voltage_kv, current_pa):
    """Rate multiplier of the microscope settings (1 at 60 kV, 50 pA)."""
    return (current_pa / I_REF) * jnp.exp((voltage_kv - V_REF) / V_SCALE)


@struct.dataclass
class GaussianMixtureRates:
    """Lobes of neighbour 0 (canonical frame); peak heights in 1/s at 60 kV, 50 pA."""

    means_Mx2: jax.Array
    sigmas_M: jax.Array
    weights_M: jax.Array
    background: jax.Array  # 1/s per neighbour, everywhere

    def lobe(self, r_Nx2):
        """f(r) for neighbour 0, symmetrised under y → −y."""

        def mix(r):
            d2 = jnp.sum((r[..., None, :] - self.means_Mx2) ** 2, axis=-1)
            return jnp.sum(self.weights_M * jnp.exp(-d2 / (2 * self.sigmas_M**2)), axis=-1)

        return 0.5 * (mix(r_Nx2) + mix(r_Nx2 * jnp.array([1.0, -1.0])))

    def __call__(self, ctx_Nx4):
        ctx_Nx4 = jnp.asarray(ctx_Nx4, jnp.float32)
        r = ctx_Nx4[..., :2]
        r_Nx3x2 = jnp.einsum("kab,...b->...ka", jnp.asarray(_UNROTATE_3x2x2), r)
        shape_Nx3 = self.lobe(r_Nx3x2) + self.background
        return dose_scale(ctx_Nx4[..., 2], ctx_Nx4[..., 3])[..., None] * shape_Nx3


def mixture(means, sigmas, weights, background=0.0) -> GaussianMixtureRates:
    return GaussianMixtureRates(
        means_Mx2=jnp.asarray(means, jnp.float32).reshape(-1, 2),
        sigmas_M=jnp.asarray(sigmas, jnp.float32).reshape(-1),
        weights_M=jnp.asarray(weights, jnp.float32).reshape(-1),
        background=jnp.asarray(background, jnp.float32),
    )


# Named ground truths. "offaxis" (default): the fastest beam positions are two lobes beside
# the bond axis plus a weaker lobe near the Si, so the human prior (peak at 0.85 bond
# lengths ≈ 1.21 Å on the axis) lies beside them — a reasonable but imperfect guess.
# "prior-like": the human prior is exactly right (a control experiment).
TRUTHS: dict[str, Callable[[], GaussianMixtureRates]] = {
    "offaxis": lambda: mixture(
        [(1.05, 0.35), (1.05, -0.35), (0.45, 0.0)], [0.2, 0.2, 0.25], [1.0, 1.0, 0.4], 0.005
    ),
    "prior-like": lambda: mixture(
        [(HUMAN_PRIOR_PEAK_BONDS * BOND, 0.0)], [math.sqrt(HUMAN_PRIOR_VARIANCE_BONDS2) * BOND],
        [1.0], 0.005
    ),
}


def ground_truth(name: str) -> GaussianMixtureRates:
    if name not in TRUTHS:
        raise UnknownNameError("dopant ground truth", name, list(TRUTHS))
    return TRUTHS[name]()


# The human prior of the reference implementation (putting-dune), which is in units of the
# C-C bond length: a Gaussian peaked 0.85 bond lengths (~1.21 Å) from the Si towards the
# neighbour, with variance 0.1 bond lengths^2 (sigma ~0.45 Å).
HUMAN_PRIOR_PEAK_BONDS = 0.85
HUMAN_PRIOR_VARIANCE_BONDS2 = 0.1


def human_prior(peak_rate: float = 1.0) -> GaussianMixtureRates:
    """The expert's rule of thumb, as in the reference implementation (putting-dune): a
    Gaussian centred 0.85 bond lengths (~1.21 Å) from the Si towards the neighbour, with
    variance 0.1 bond lengths² (only its shape matters to the controller; `peak_rate` sets
    its height in 1/s)."""
    return mixture([(HUMAN_PRIOR_PEAK_BONDS * BOND, 0.0)],
                   [math.sqrt(HUMAN_PRIOR_VARIANCE_BONDS2) * BOND], [peak_rate], 0.0)


def transform_context(ctx_Nx4, g):
    """Apply group element index g (0..5, see lattice.GROUP) to the beam position."""
    mat = jnp.asarray(GROUP_MATRICES_6x2x2)[g]
    xy = jnp.einsum("...ab,...b->...a", mat, ctx_Nx4[..., :2])
    return jnp.concatenate([xy, ctx_Nx4[..., 2:]], axis=-1)


def transform_neighbour(k, g):
    """The neighbour that neighbour k becomes under group element g (−1 stays −1)."""
    k = jnp.asarray(k, jnp.int32)
    return jnp.where(k >= 0, jnp.asarray(GROUP_PERMS_6x3)[g, jnp.maximum(k, 0)], -1)


@struct.dataclass
class Symmetrized:
    """The group average of a rate function, exactly equivariant:
    λ_sym(r)[k] = (1/6) Σ_g λ(g·r)[π_g(k)]. A pytree when `inner` is one."""

    inner: RateFn

    def __call__(self, ctx_Nx4):
        ctx_Nx4 = jnp.asarray(ctx_Nx4, jnp.float32)
        perms = jnp.asarray(GROUP_PERMS_6x3)
        per_g = [self.inner(transform_context(ctx_Nx4, g))[..., perms[g]] for g in range(6)]
        return sum(per_g) / 6.0


def symmetrize(rate_fn: RateFn) -> Symmetrized:
    return Symmetrized(rate_fn)


@jax.jit
def evaluate(rate_fn: RateFn, ctx_Nx4) -> jax.Array:
    """Compiled evaluation of a pytree rate function (GaussianMixtureRates, Symmetrized,
    learn.EnsembleRates, ...): one compilation per model type and input shape."""
    return rate_fn(jnp.asarray(ctx_Nx4, jnp.float32))


def canonical_grid(extent: float, n: int):
    """An n x n grid of beam positions over [−extent, extent]² (Å): (xs_n, points_NNx2)."""
    xs = np.linspace(-extent, extent, n, dtype=np.float32)
    xx, yy = np.meshgrid(xs, xs, indexing="xy")
    return xs, np.stack([xx.ravel(), yy.ravel()], axis=-1)


def with_settings(points_Nx2, voltage_kv=V_REF, current_pa=I_REF):
    """Contexts (N, 4) from beam positions at fixed microscope settings."""
    pts = jnp.asarray(points_Nx2, jnp.float32)
    settings = jnp.broadcast_to(
        jnp.array([voltage_kv, current_pa], jnp.float32), (*pts.shape[:-1], 2)
    )
    return jnp.concatenate([pts, settings], axis=-1)
