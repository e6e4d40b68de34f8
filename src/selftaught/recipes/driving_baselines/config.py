"""driving-baselines: the agents compared, the metrics reported and the configuration."""

from __future__ import annotations

import dataclasses

from selftaught.core.errors import ConfigError, UnknownNameError

AGENTS = ("expert", "constant_velocity", "idm", "bc_delta", "bc_bicycle", "bc_bicycle_noroute",
          "rl_vs_log", "rl_vs_idm")  # fmt: skip


COLUMNS = (
    ("offroad", "off-road %", 100.0),
    ("overlap", "collision %", 100.0),
    ("kinematic_infeasibility", "kin. infeasible %", 100.0),
    ("ade", "ADE (m)", 1.0),
    ("route_progress", "route progress %", 100.0),
    ("off_route", "off-route %", 100.0),
)


SHORT = {"expert": "expert", "constant_velocity": "const. vel.", "idm": "IDM",
         "bc_delta": "BC delta", "bc_bicycle": "BC bicycle", "bc_bicycle_noroute": "BC no route",
         "rl_vs_log": "RL (log)", "rl_vs_idm": "RL (IDM)"}  # fmt: skip


SUMMARY_KEYS = ("offroad", "overlap", "kinematic_infeasibility", "ade", "route_progress",
                "off_route", "wrong_way", "return")  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DrivingBaselinesConfig:
    seed: int = 0
    """Base seed (training scenarios, network init, CEM noise)."""
    num_seeds: int = 3
    """training seeds when --seeds is not given (each trains every learned agent on its own
    scenarios; claims about trained agents are paired over them, so fewer than 3 leaves
    them undetermined)"""
    num_train_scenarios: int = 300
    """generated scenarios the behaviour-cloning agents train on"""
    num_eval_scenarios: int = 200
    """Held-out generated scenarios every agent is evaluated on."""
    num_objects: int = 32
    """objects (agents) per generated scenario"""
    eval_batch: int = 50
    """Scenarios per vmapped evaluation call."""
    bc_steps: int = 3000
    """behaviour-cloning gradient steps"""
    bc_batch: int = 256
    """behaviour-cloning batch size (agent-steps)"""
    bc_lr: float = 1e-3
    """behaviour-cloning learning rate"""
    bc_hidden: int = 128
    """hidden width of the behaviour-cloning MLP"""
    accel_bins: int = 13
    """acceleration bins of the discretised bicycle action"""
    curvature_bins: int = 41
    """curvature (steering) bins of the discretised bicycle action"""
    rl_iterations: int = 6
    """cross-entropy-method iterations of the RL planner"""
    rl_population: int = 10
    """candidate parameter vectors per CEM iteration"""
    rl_elite: int = 3
    """best candidates that set the next CEM distribution"""
    rl_scenarios: int = 16
    """training scenarios each CEM candidate is scored on"""
    agents: tuple[str, ...] = AGENTS
    """Which baselines to run (claims need their agents)."""

    def validate(self) -> None:
        names = ("num_train_scenarios", "num_eval_scenarios", "num_objects", "eval_batch",
                 "bc_steps", "bc_batch", "bc_hidden", "rl_iterations", "rl_scenarios")
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name} must be at least 1, got {getattr(self, name)}")
        if self.accel_bins < 3 or self.curvature_bins < 3:
            raise ConfigError("--accel_bins and --curvature_bins must be at least 3")
        if not 1 <= self.rl_elite <= self.rl_population:
            raise ConfigError(
                f"--rl_elite must be in [1, rl_population={self.rl_population}], "
                f"got {self.rl_elite}"
            )
        if not self.bc_lr > 0:
            raise ConfigError(f"--bc_lr must be positive, got {self.bc_lr}")
        for a in self.agents:
            if a not in AGENTS:
                raise UnknownNameError("driving baseline", a, AGENTS)


EVAL_PAIRS = {  # agent -> sim agents it is evaluated against
    "rl_vs_log": ("log", "idm"),
    "rl_vs_idm": ("idm", "log"),
}
