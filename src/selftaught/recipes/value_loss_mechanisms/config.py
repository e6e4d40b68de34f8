"""value-loss-mechanisms: the configuration (losses, widths, noise and non-stationarity
conditions, the learning-rate grid)."""

from __future__ import annotations

import dataclasses

from selftaught.core.errors import UnknownNameError, check, check_at_least_one
from selftaught.rl.value_losses import LOSSES

LABEL = {"mse": "MSE", "hl_gauss": "HL-Gauss", "two_hot": "two-hot", "c51": "C51"}


TUNE_SEED_OFFSET = 1_000_000
"""tuning seeds are base + TUNE_SEED_OFFSET + i: disjoint from any evaluation seed"""


@dataclasses.dataclass(frozen=True)
class ValueLossMechanismsConfig:
    """Regression vs classification losses on a known function under label noise and
    bootstrapped (non-stationary) targets, at several widths, with per-loss tuned lr."""

    seed: int = 0
    """first evaluation seed (seed s fixes the task, the data and the noise)"""
    num_seeds: int = 8
    """evaluation seeds when --seeds is not given"""
    losses: tuple[str, ...] = LOSSES
    """value losses to compare (mse | hl_gauss | two_hot | c51)"""
    widths: tuple[float, ...] = (0.25, 1.0, 2.0)
    """MLP width scales (two hidden layers of 64 x width units)"""
    noise_levels: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0)
    """label-noise standard deviations, in units of the target's standard deviation"""
    gammas: tuple[float, ...] = (0.5, 0.8, 0.9)
    """discounts of the bootstrapped experiment (gamma = 0, plain regression, is added)"""
    input_dim: int = 2
    """dimension d of the inputs x in [-1, 1]^d"""
    num_sinusoids: int = 4
    """sinusoids in the target function"""
    max_frequency: int = 1
    """largest integer frequency per input coordinate"""
    train_points: int = 512
    """size of the fixed (noisy) training set"""
    eval_points: int = 1024
    """fresh inputs on which RMSE to the true function is measured"""
    steps: int = 1500
    """gradient steps per run"""
    batch_size: int = 32
    """training points per gradient step (sampled with replacement from the training set)"""
    target_period: int = 50
    """bootstrapped experiment: gradient steps between target-network refreshes"""
    lrs: tuple[float, ...] = (1e-3, 3e-3, 1e-2, 3e-2)
    """Adam learning-rate grid searched per (loss, width) on the tuning seeds"""
    tune_seeds: int = 2
    """held-out seeds used only to choose each loss's learning rate"""
    v_min: float = -4.0
    """lower end of the classification support (the targets have unit variance)"""
    v_max: float = 4.0
    """upper end of the classification support"""
    num_bins: int = 51
    """bins (HL-Gauss) / atoms (two-hot, C51) of the classification heads"""
    sigma_ratio: float = 0.75
    """HL-Gauss sigma / bin width in the main grid (the paper's 0.75)"""
    sigma_ratios: tuple[float, ...] = (0.25, 0.5, 0.75, 1.5, 3.0)
    """HL-Gauss sigma / bin width values of the sigma sweep (empty: no sweep)"""
    sigma_width: float = 1.0
    """width scale at which the sigma sweep runs"""
    curve_points: int = 10
    """evaluations of the relative RMSE during training (for the learning curves)"""

    def validate(self) -> None:
        check(len(self.losses) >= 1 and "mse" in self.losses,
              "losses must include mse (the baseline every advantage is measured against)")
        for name in self.losses:
            if name not in LOSSES:
                raise UnknownNameError("value loss", name, LOSSES)
        check(len(self.widths) >= 1 and all(w > 0 for w in self.widths),
              f"widths must be positive scales, got {self.widths}")
        check(len(self.noise_levels) >= 2 and all(s >= 0 for s in self.noise_levels),
              f"give at least two noise levels >= 0, got {self.noise_levels}")
        check(all(0 < g < 1 for g in self.gammas),
              f"gammas must lie in (0, 1), got {self.gammas}")
        check(len(self.lrs) >= 1 and all(lr > 0 for lr in self.lrs),
              f"lrs must be positive, got {self.lrs}")
        check_at_least_one(self, "input_dim", "num_sinusoids", "max_frequency", "train_points",
                           "eval_points", "steps", "batch_size", "target_period", "tune_seeds",
                           "curve_points")
        n_freq = ((2 * self.max_frequency + 1) ** self.input_dim - 1) // 2
        check(self.num_sinusoids <= n_freq,
              f"num_sinusoids ({self.num_sinusoids}) exceeds the {n_freq} distinct frequency "
              "vectors of this input_dim and max_frequency; raise --max-frequency")
        check(self.curve_points <= self.steps,
              f"curve_points ({self.curve_points}) must not exceed steps ({self.steps})")
        check(self.v_min < self.v_max, f"v_min ({self.v_min}) must be below v_max ({self.v_max})")
        check(self.num_bins >= 2, f"num_bins must be at least 2, got {self.num_bins}")
        check(self.sigma_ratio > 0 and all(r > 0 for r in self.sigma_ratios),
              "sigma ratios must be > 0")
        if self.sigma_ratios:
            check("hl_gauss" in self.losses and self.sigma_width in self.widths,
                  "the sigma sweep needs hl_gauss in --losses and --sigma-width in --widths "
                  "(or pass --sigma-ratios with no values)")

    def conditions(self) -> list[tuple[float, float]]:
        """(noise, gamma) of every run condition: the noise series at gamma 0, then the
        bootstrapped series without noise (gamma 0 without noise is shared)."""
        out = [(float(s), 0.0) for s in self.noise_levels]
        if 0.0 not in self.noise_levels:
            out.append((0.0, 0.0))
        out += [(0.0, float(g)) for g in self.gammas]
        return out
