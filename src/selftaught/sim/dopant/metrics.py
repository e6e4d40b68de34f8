"""How well a rate model recovers the ground-truth rate map. Models are pytree rate
functions (see `rates.evaluate`); every metric evaluates them on the same grid (the
controller's default grid), so each model compiles once."""

from __future__ import annotations

import numpy as np

from selftaught.sim.dopant.rates import (
    I_REF,
    V_REF,
    RateFn,
    canonical_grid,
    evaluate,
    with_settings,
)

GRID_EXTENT, GRID_N = 2.0, 81  # Å, points per axis: the grid of all metrics


def grid_rates(model: RateFn, voltage_kv: float = V_REF, current_pa: float = I_REF):
    """(points (N, 2), rates (N, 3)) of `model` on the metrics grid."""
    _, pts = canonical_grid(GRID_EXTENT, GRID_N)
    return pts, np.asarray(evaluate(model, with_settings(pts, voltage_kv, current_pa)))


def rate_map_error(model: RateFn, truth: RateFn, *, radius: float = 1.8) -> float:
    """Normalised mean absolute error Σ|λ̂ − λ| / Σλ over all 3 neighbours and the grid
    points within `radius` Å of the Si (0 = perfect)."""
    pts, pred = grid_rates(model)
    _, true = grid_rates(truth)
    inside = np.sum(pts**2, axis=-1) <= radius**2
    return float(np.abs(pred - true)[inside].sum() / true[inside].sum())


def missing_lobe_error(truth, *, radius: float = 1.8) -> float:
    """The rate-map error (`rate_map_error`) of the true map with its weakest lobe removed:
    the smallest of the errors of `truth` without one of its lobes (a GaussianMixtureRates).
    A model whose error is below it cannot have missed any lobe of the truth entirely while
    being exact elsewhere; it is the tolerance of the recipe's `rate_map_recovered` claim,
    set by the truth's own structure, not by a measured learned model."""
    means = np.asarray(truth.means_Mx2)
    sigmas, weights = np.asarray(truth.sigmas_M), np.asarray(truth.weights_M)
    errors = []
    for i in range(len(weights)):
        keep = np.arange(len(weights)) != i
        without = type(truth)(means_Mx2=means[keep], sigmas_M=sigmas[keep],
                              weights_M=weights[keep], background=truth.background)
        errors.append(rate_map_error(without, truth, radius=radius))
    return float(min(errors))


def peak_offset(model: RateFn, truth: RateFn) -> float:
    """Distance (Å) between the model's best beam position for neighbour 0 and the nearest
    of the truth's (the truth's peak and its mirror image y → −y)."""
    pts, pred = grid_rates(model)
    _, true = grid_rates(truth)
    p, t = pts[np.argmax(pred[:, 0])], pts[np.argmax(true[:, 0])]
    return float(min(np.linalg.norm(p - t), np.linalg.norm(p - t * np.array([1.0, -1.0]))))


def fitted_scale(model: RateFn, truth: RateFn, *, radius: float = 1.8) -> float:
    """Least-squares amplitude c minimising Σ(c·λ̂ − λ)² (to compare a shape-only prior)."""
    pts, pred = grid_rates(model)
    _, true = grid_rates(truth)
    inside = np.sum(pts**2, axis=-1) <= radius**2
    pred, true = pred[inside], true[inside]
    return float((pred * true).sum() / max((pred * pred).sum(), 1e-30))
