"""non-episodic: the configuration and the conditions compared (episodic, reset-free with
regrowth, drift, shaping)."""

from __future__ import annotations

import dataclasses

from selftaught.core import config as cfglib
from selftaught.core.errors import check, check_at_least_one
from selftaught.rl import gridworld as gw
from selftaught.rl.dqn import DQNConfig, LoopConfig


@dataclasses.dataclass(frozen=True)
class NonEpisodicConfig:
    """Double DQN in reset-free gridworlds: episodic vs not, static vs dynamic, shaping."""

    seed: int = 0
    """first seed (seeds are seed, seed + 1, ...)"""
    num_seeds: int = 5
    """seeds per condition, trained together under vmap"""
    world: gw.WorldSpec = gw.WorldSpec(task="tool", size=6, view=2, num_resources=2,
                                       episode_steps=50)
    """the gridworld (task, room size, view radius, resources, episode / validation length)"""
    regrowth: float = 0.01
    """probability per step that a consumed resource regrows (at a random free cell), the
    same in every condition, so a reset-free life never runs out of resources"""
    dynamism: tuple[float, ...] = (0.01, 0.05)
    """drift probabilities p of the dynamic conditions (each resource moves one cell with
    probability p per step); p = 0, the regrowth-only world, is always run"""
    env_shaping: tuple[float, ...] = (5_000.0, 20_000.0)
    """shaping_steps of the environment-shaped conditions (spawn-radius growth horizon)"""
    reward_shaping: tuple[float, ...] = (0.1, 0.5)
    """reward bonus per needed pick-up of the reward-shaped conditions"""
    validation_tasks: int = 64
    """held-out validation worlds per evaluation (curves, the saturation check)"""
    test_tasks: int = 64
    """held-out test worlds per evaluation, disjoint from the validation worlds (claims)"""
    shaping_margin: float = 0.1
    """non-inferiority margin of env vs reward shaping; the comparison is saturated (not
    tested) when the unshaped world's validation success is within it of episodic's"""
    entropy_steps: int = 4_000
    """random-policy steps per condition over which transition entropy is measured"""
    final_points: int = 3
    """a run's score is its mean success over the last this many evaluations"""
    total_steps: int = 40_000
    """lifetime steps per seed (one life; the episodic agent spends them in episodes)"""
    num_evals: int = 8
    """evaluation points (learning-curve length)"""
    lr: float = 5e-4
    """Adam learning rate of the Q network"""
    gamma: float = 0.95
    """discount (a never-ending life needs gamma < 1)"""
    batch_size: int = 64
    """replayed transitions per gradient step"""
    buffer_size: int = 20_000
    """replay buffer capacity in transitions"""
    learning_starts: int = 1_000
    """random-action lifetime steps before learning"""
    train_every: int = 4
    """env steps between gradient steps"""
    target_update_every: int = 250
    """hard target-network update period in gradient steps"""
    eps_end: float = 0.1
    """exploration epsilon reached after eps_decay_frac of the life (decays from 1)"""
    eps_decay_frac: float = 0.3
    """fraction of the life over which epsilon decays linearly"""
    hidden_width: float = 2.0
    """MLP torso width multiplier (64 x width units, two layers)"""

    def validate(self) -> None:
        check_at_least_one(self, "num_seeds", "validation_tasks", "test_tasks", "total_steps",
                           "num_evals", "batch_size", "buffer_size", "train_every",
                           "target_update_every", "entropy_steps")
        self.world.validate()
        check(0 < self.regrowth <= 1, "regrowth is a probability per step and must be in "
              f"(0, 1] (a reset-free life must not run out of resources), got {self.regrowth}")
        for p in self.dynamism:
            gw.check_params(p=p)
            check(p > 0, "dynamism lists the drift probabilities of the dynamic conditions "
                  "(> 0; p = 0 always runs as the regrowth-only world), got 0")
        for s in self.env_shaping:
            check(s > 0, f"env_shaping horizons must be positive, got {s}")
        for b in self.reward_shaping:
            check(b > 0, f"reward_shaping bonuses must be positive, got {b}")
        check(0 < self.shaping_margin < 1, f"shaping_margin must be in (0, 1), got "
              f"{self.shaping_margin}")
        check(1 <= self.final_points <= self.num_evals,
              f"final_points must be in [1, num_evals={self.num_evals}], got {self.final_points}")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(0 <= self.gamma < 1, f"gamma must be in [0, 1) for a never-ending life, got "
              f"{self.gamma}")
        check(0 <= self.eps_end <= 1, f"eps_end must be in [0, 1], got {self.eps_end}")
        cfglib.validate(_dqn(self))


def _dqn(cfg: NonEpisodicConfig) -> DQNConfig:
    """The Double DQN configuration a recipe config implies (one life = one env)."""
    return DQNConfig(
        loop=LoopConfig(
            env="CartPole-v1",  # unused: the gridworld is injected into make_agent
            total_steps=cfg.total_steps, num_envs=1, buffer_size=cfg.buffer_size,
            batch_size=cfg.batch_size, learning_starts=cfg.learning_starts,
            train_every=cfg.train_every, grad_steps=1, num_evals=cfg.num_evals,
            eval_episodes=1, eval_epsilon=0.05),
        loss="mse", encoder="mlp", width=cfg.hidden_width, lr=cfg.lr, gamma=cfg.gamma,
        double_dqn=True, target_update_every=cfg.target_update_every, eps_start=1.0,
        eps_end=cfg.eps_end, eps_decay_frac=cfg.eps_decay_frac,
    )


@dataclasses.dataclass(frozen=True)
class Condition:
    name: str
    group: str  # episodic | static | dynamic | env-shaped | reward-shaped
    knob: float  # drift p, shaping horizon or bonus (0 for episodic and static)
    regrowth: float
    p: float = 0.0
    episodic: bool = False
    shaping_steps: float = 0.0
    reward_bonus: float = 0.0

    def params(self) -> gw.WorldParams:
        return gw.world_params(p=self.p, p_prey=0.5, episodic=self.episodic,
                               shaping_steps=self.shaping_steps, reward_bonus=self.reward_bonus,
                               p_regrow=self.regrowth)


STATIC = "non-episodic p=0 (regrowth only)"
"""The baseline reset-free world: static (no drift), consumed resources regrow. It is the
p = 0 member of the dynamism family and the unshaped member of the shaping family."""


def conditions(cfg: NonEpisodicConfig) -> list[Condition]:
    """Every condition regrows consumed resources with probability `cfg.regrowth` per step:
    the families differ from the static regrowing world in one thing each (resets, drift p,
    where resources appear, what a pick-up pays)."""
    r = cfg.regrowth
    out = [Condition("episodic", "episodic", 0.0, r, episodic=True),
           Condition(STATIC, "static", 0.0, r)]
    out += [Condition(f"dynamic p={p:g}", "dynamic", p, r, p=p) for p in cfg.dynamism]
    out += [Condition(f"env-shaped S={s:g}", "env-shaped", s, r, shaping_steps=s)
            for s in cfg.env_shaping]
    out += [Condition(f"reward-shaped b={b:g}", "reward-shaped", b, r, reward_bonus=b)
            for b in cfg.reward_shaping]
    return out
