"""dopant-control: the configuration, the controllers compared and the worlds run."""

from __future__ import annotations

import dataclasses

from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.sim.dopant import rates
from selftaught.sim.dopant.learn import LearnConfig

CONTROLLERS = ("learned", "human-prior", "oracle", "random")


LEARNED_MODELS = ("ensemble", "distilled")


@dataclasses.dataclass(frozen=True)
class DopantControlConfig:
    seed: int = 0
    """first seed; seeds are seed, seed+1, ..."""
    num_seeds: int = 5
    """seeds (independent data sets, ensembles and goal sets) for the CIs"""
    truth: str = "offaxis"
    """ground-truth rate function: offaxis (multi-modal) | prior-like (the prior is right)"""
    control_truth: str = "prior-like"
    """control world run beside --truth on the same seeds (collect, learn, control; no
    data-budget sweep): prior-like, the ground truth where the human prior is right, in
    which the learned controller must not lose to it ('' or the same as --truth skips it)"""
    prior_world_margin: float = 0.1
    """non-inferiority margin in the control world, as a fraction of the human prior's beam
    seconds per goal: the learned controller may need at most this much more there"""
    sessions: int = 64
    """exploration sessions (vmapped)"""
    steps_per_session: int = 64
    """exposures per exploration session"""
    explore_radius: float = 2.2
    """exploratory beam: uniform in a disk of this radius (Å) around the Si"""
    dwell_range: tuple[float, float] = (0.3, 3.0)
    """exploratory dwell times, log-uniform in this range (s)"""
    vary_settings: bool = False
    """vary voltage and current during exploration and feed them to the network"""
    voltage_range: tuple[float, float] = (55.0, 65.0)
    """exploration voltage range (kV) when vary_settings"""
    current_range: tuple[float, float] = (30.0, 70.0)
    """exploration current range (pA) when vary_settings"""
    learn: LearnConfig = LearnConfig()
    """how the rate model is learned (bootstrap ensemble, its training and distillation)"""
    learned_model: str = "ensemble"
    """which learned model drives the controller: ensemble | distilled"""
    symmetrize: bool = True
    """average the learned model's predictions over the D3 group (exactly equivariant)"""
    distances: tuple[int, ...] = (2, 4, 6)
    """goal distances in jumps from the start site"""
    goals_per_distance: int = 20
    """goals drawn per distance and seed"""
    max_steps: int = 100
    """exposure budget per episode (a failure costs max_steps * dwell_s beam seconds)"""
    dwell_s: float = 1.0
    """dwell per control exposure (s) at 60 kV, 50 pA"""
    random_radius: float = 2.0
    """random-beam baseline: uniform in a disk of this radius (Å)"""
    grid_n: int = 81
    """grid search resolution per axis over [-2, 2]² Å for the best beam position"""
    data_budgets: tuple[int, ...] = (256, 1024)
    """data-efficiency sweep: also learn from only the first N exposures (() skips it)"""
    budget_members: int = 5
    """ensemble size per budget in the data-efficiency sweep (all budgets train in one
    vmapped run; members x budgets = learn.members reuses the compiled trainer)"""

    def validate(self) -> None:
        if self.truth not in rates.TRUTHS:
            raise UnknownNameError("dopant ground truth (--truth)", self.truth, list(rates.TRUTHS))
        if self.control_truth not in ("", "prior-like"):
            raise ConfigError(f"--control-truth must be prior-like (the world where the human "
                              f"prior is right) or '' (none), got {self.control_truth!r}")
        if not 0 < self.prior_world_margin < 1:
            raise ConfigError(f"--prior-world-margin must be a fraction in (0, 1), "
                              f"got {self.prior_world_margin}")
        if self.learned_model not in LEARNED_MODELS:
            raise UnknownNameError("learned model (--learned-model)", self.learned_model,
                                   LEARNED_MODELS)
        if self.learned_model == "distilled" and self.learn.distill_steps < 1:
            raise ConfigError("--learned-model distilled needs --learn.distill-steps >= 1")
        for name in ("num_seeds", "sessions", "steps_per_session", "goals_per_distance",
                     "max_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, "
                                  f"got {getattr(self, name)}")
        for name in ("explore_radius", "dwell_s", "random_radius"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, "
                                  f"got {getattr(self, name)}")
        lo, hi = self.dwell_range
        if not 0 < lo <= hi:
            raise ConfigError(f"--dwell-range needs 0 < low <= high, got {self.dwell_range}")
        if not 0 < self.voltage_range[0] <= self.voltage_range[1]:
            raise ConfigError(f"--voltage-range needs 0 < low <= high, got {self.voltage_range}")
        if not 0 <= self.current_range[0] <= self.current_range[1]:
            raise ConfigError(f"--current-range needs 0 <= low <= high, got {self.current_range}")
        if not self.distances or not all(1 <= d <= 20 for d in self.distances):
            raise ConfigError(f"--distances must be jump counts in 1..20, got {self.distances}")
        total = self.sessions * self.steps_per_session
        if not all(1 <= b <= total for b in self.data_budgets):
            raise ConfigError(f"--data-budgets must be exposure counts in 1..{total} "
                              f"(sessions x steps-per-session), got {self.data_budgets}")
        if self.budget_members < 1:
            raise ConfigError(f"--budget-members must be >= 1, got {self.budget_members}")
        if self.grid_n < 3:
            raise ConfigError(f"--grid-n must be >= 3, got {self.grid_n}")


def _settings(cfg):
    if cfg.vary_settings:
        return cfg.voltage_range, cfg.current_range
    return (rates.V_REF, rates.V_REF), (rates.I_REF, rates.I_REF)


def worlds(cfg: DopantControlConfig) -> list[tuple[str, str]]:
    """(ground truth, phase/checkpoint prefix) of each world a run covers: the main world
    (--truth, no prefix) and the control world (--control-truth) unless skipped."""
    out = [(cfg.truth, "")]
    if cfg.control_truth and cfg.control_truth != cfg.truth:
        out.append((cfg.control_truth, f"{cfg.control_truth}/"))
    return out
