"""value-classification: the config, its cells and each cell's DQN config."""

from __future__ import annotations

import dataclasses

from selftaught.core import config as cfglib
from selftaught.core.errors import UnknownNameError, check
from selftaught.rl.dqn import DQNConfig
from selftaught.rl.envs import ENVS
from selftaught.rl.value_losses import LOSSES

CONDITIONS = ("clean", "noisy", "high_rr")
LABEL = {"mse": "MSE", "hl_gauss": "HL-Gauss", "two_hot": "two-hot", "c51": "C51"}


@dataclasses.dataclass(frozen=True)
class ValueClassificationConfig:
    """DQN with regression vs classification value losses, many seeds at once."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i"""
    num_seeds: int = 10
    """seeds per (task, loss, width) cell, trained together under vmap"""
    envs: tuple[str, ...] = ("Breakout-MinAtar", "SpaceInvaders-MinAtar")
    """environments of the main comparison (one cell per env and loss)"""
    losses: tuple[str, ...] = LOSSES
    """value losses compared: mse | hl_gauss | two_hot | c51"""
    sweep_widths: tuple[float, ...] = (1.0, 2.0)
    """torso widths of the sweep (run on sweep_envs for sweep_losses; width 1 = main runs)"""
    sweep_losses: tuple[str, ...] = ("mse", "hl_gauss")
    """losses of the width sweep"""
    sweep_envs: tuple[str, ...] = ("SpaceInvaders-MinAtar",)
    """environments of the width sweep"""
    final_points: int = 3
    """the score of a run is its mean over the last this many evaluation points"""
    loss_lrs: tuple[float, ...] = ()
    """learning rate per loss, in the order of --losses (empty: dqn.lr for every loss, the
    paper's protocol); per-loss rates tuned on held-out seeds come from
    `value-loss-mechanisms`"""
    dqn: DQNConfig = DQNConfig()
    """DQN hyper-parameters shared by every cell (env, loss, width are set per cell)"""
    conditions: tuple[str, ...] = ()
    """conditions study (`--preset conditions`): in each of clean | noisy | high_rr, every
    loss of --losses trains at every rate of --lr-grid on --tune-seeds (which pick each
    loss's rate) and on the run's seeds (the reported scores) on --envs; empty: the main
    grid and width sweep instead"""
    lr_grid: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3)
    """learning rates of the conditions study (log-spaced: the sensitivity area is the mean
    IQM over them)"""
    tune_seeds: tuple[int, ...] = (100, 101, 102)
    """held-out seeds on which the conditions study picks each loss's learning rate (never
    the reported seeds)"""
    noise_std: float = 1.0
    """noisy condition: sd of the N(0, sd^2) noise added to every training reward"""
    high_replay_ratio: float = 1.0
    """high_rr condition: gradient updates per environment step (dqn.loop.train_every
    becomes 1 and dqn.loop.grad_steps = this x dqn.loop.num_envs)"""

    def validate(self) -> None:
        check(self.num_seeds >= 1, f"num_seeds must be at least 1, got {self.num_seeds}")
        check(len(self.envs) >= 1 and len(self.losses) >= 1, "name at least one env and loss")
        for env in (*self.envs, *self.sweep_envs):
            if env not in ENVS:
                raise UnknownNameError("environment", env, list(ENVS))
        for loss in (*self.losses, *self.sweep_losses):
            if loss not in LOSSES:
                raise UnknownNameError("value loss", loss, LOSSES)
        check(all(w > 0 for w in self.sweep_widths),
              f"sweep_widths must be positive, got {self.sweep_widths}")
        check(not self.loss_lrs or (len(self.loss_lrs) == len(self.losses)
                                    and all(lr > 0 for lr in self.loss_lrs)),
              f"--loss-lrs needs one positive rate per loss ({len(self.losses)}: "
              f"{', '.join(self.losses)}), got {self.loss_lrs}")
        for c in self.conditions:
            if c not in CONDITIONS:
                raise UnknownNameError("condition", c, CONDITIONS)
        if self.conditions:
            check(len(self.lr_grid) >= 1 and all(lr > 0 for lr in self.lr_grid),
                  f"--lr-grid needs positive learning rates, got {self.lr_grid}")
            check(len(self.tune_seeds) >= 1, "--tune-seeds needs at least one held-out seed")
            check(self.noise_std > 0, f"--noise-std must be positive, got {self.noise_std}")
            k = self.high_replay_ratio * self.dqn.loop.num_envs
            check(k >= 1 and abs(k - round(k)) < 1e-9,
                  f"--high-replay-ratio x dqn.loop.num_envs must be a whole number of updates "
                  f"per vector step, got {self.high_replay_ratio} x {self.dqn.loop.num_envs}")
        check(1 <= self.final_points <= self.dqn.loop.num_evals,
              f"final_points must be in [1, dqn.loop.num_evals={self.dqn.loop.num_evals}], "
              f"got {self.final_points}")


def cells(cfg: ValueClassificationConfig) -> list[tuple[str, str, float]]:
    """(env, loss, width) training cells: the main grid at width 1, then the sweep."""
    out = [(e, loss, 1.0) for e in cfg.envs for loss in cfg.losses]
    for e in cfg.sweep_envs:
        for w in cfg.sweep_widths:
            for loss in cfg.sweep_losses:
                if (e, loss, w) not in out:
                    out.append((e, loss, float(w)))
    return out


def phase_name(env: str, loss: str, width: float) -> str:
    return f"{env}/{loss}/w{width:g}"



def cell_config(cfg: ValueClassificationConfig, env: str, loss: str, width: float) -> DQNConfig:
    lr = cfg.loss_lrs[cfg.losses.index(loss)] if cfg.loss_lrs and loss in cfg.losses else None
    return cfglib.replace(cfg.dqn, **{"loop.env": env}, loss=loss, width=float(width),
                          lr=cfg.dqn.lr if lr is None else float(lr))




def cond_cells(cfg: ValueClassificationConfig) -> list[tuple[str, str, str, float]]:
    """(env, condition, loss, lr) cells of the conditions study."""
    return [(e, c, loss, float(lr)) for e in cfg.envs for c in cfg.conditions
            for loss in cfg.losses for lr in cfg.lr_grid]


def cond_phase_name(env: str, cond: str, loss: str, lr: float) -> str:
    return f"{env}/{cond}/{loss}/lr{lr:g}"


def condition_config(cfg: ValueClassificationConfig, env: str, cond: str, loss: str
                     ) -> DQNConfig:
    """The DQN of one condition (its lr is the run's own, passed to init): clean = dqn;
    noisy = reward + N(0, noise_std^2) for learning; high_rr = high_replay_ratio updates
    per environment step."""
    dqn = cfglib.replace(cfg.dqn, **{"loop.env": env}, loss=loss, width=1.0)
    if cond == "noisy":
        dqn = dataclasses.replace(dqn, reward_noise=cfg.noise_std)
    elif cond == "high_rr":
        dqn = cfglib.replace(dqn, **{"loop.train_every": 1, "loop.grad_steps": round(
            cfg.high_replay_ratio * dqn.loop.num_envs)})
    return dqn


