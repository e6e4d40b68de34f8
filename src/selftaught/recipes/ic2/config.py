"""IC2: the agents (reward weights), the PPO settings and the configuration."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from selftaught.core.errors import UnknownNameError, check, check_at_least_one
from selftaught.rl import bayes_filter as bf
from selftaught.rl import gridworld as gw
from selftaught.rl import ppo as ppolib

AGENTS = ("ic2", "random", "belief-entropy", "visitation-obs", "novelty", "ic2-exact",
          "ic2-exact-input")


# reward weights of [ic2, belief-entropy, visitation-obs, novelty], the random flag, the
# weight of ic2-exact's reward; the last entry (set by `_weights`) = the policy reads the
# exact filter's features instead of the learned filter's
_WEIGHTS = {"ic2": (1, 0, 0, 0, 0, 0), "belief-entropy": (0, 1, 0, 0, 0, 0),
            "visitation-obs": (0, 0, 1, 0, 0, 0), "novelty": (0, 0, 0, 1, 0, 0),
            "random": (0, 0, 0, 0, 1, 0), "ic2-exact": (0, 0, 0, 0, 0, 1),
            "ic2-exact-input": (1, 0, 0, 0, 0, 0)}


LEARNED = ("ic2", "belief-entropy")  # agents whose reward is the learned filter's


IC2_PPO = ppolib.PPOConfig(lr=3e-4, epochs=4, clip=0.2, gamma=0.95, gae_lambda=0.9,
                           entropy_coef=0.01, value_coef=0.5, max_grad_norm=0.5,
                           scale_rewards=True)  # the learner as it was inside this recipe


def _weights(cfg: IC2Config, agent: str) -> jax.Array:
    """The traced agent vector: `_WEIGHTS[agent]` + the exact-input flag (with
    `exact_filter`, every agent whose reward is not the learned filter's acts on the exact
    filter's features, so ic2-exact and the observation-surprise agent differ only in
    their reward)."""
    exact_input = cfg.exact_filter and agent not in LEARNED
    return jnp.asarray((*_WEIGHTS[agent], float(exact_input)), jnp.float32)


@dataclasses.dataclass(frozen=True)
class IC2Config:
    """IC2 and its baselines in a partially observed capture world, no extrinsic reward."""

    seed: int = 0
    """first seed (seeds are seed, seed + 1, ...)"""
    num_seeds: int = 5
    """seeds per agent, trained together under vmap"""
    world: gw.WorldSpec = gw.WorldSpec(task="capture", size=6, view=1, num_prey=2,
                                       episode_steps=40)
    """the gridworld (task must be capture; episode_steps = the episode length T)"""
    p_prey: float = 0.5
    """probability per step that a free prey moves one cell"""
    agents: tuple[str, ...] = AGENTS
    """agents to train: ic2, random, belief-entropy, visitation-obs, novelty; with
    --exact-filter also ic2-exact, ic2-exact-input"""
    iterations: int = 300
    """policy/filter updates per seed (each on a fresh batch of episodes)"""
    num_evals: int = 10
    """learning-curve points (the iterations are split into this many chunks)"""
    final_points: int = 3
    """a run's score is its mean over the last this many curve points"""
    envs: int = 16
    """episodes per iteration (parallel worlds)"""
    deter: int = 32
    """filter: GRU state size"""
    stoch: int = 8
    """filter: latent (belief) dimensions"""
    hidden: int = 64
    """filter and policy hidden units"""
    recurrent: bool = True
    """filter with a GRU memory path (RSSM); False: memory only in the latent belief (a
    deep variational Bayes filter, as in the IC2 paper)"""
    filter_lr: float = 1e-3
    """Adam learning rate of the filter"""
    filter_steps: int = 2
    """filter gradient steps per iteration (on the iteration's episodes)"""
    kl_weight: float = 1.0
    """weight of the KL term of the ELBO"""
    ppo: ppolib.PPOConfig = IC2_PPO
    """the policy's PPO learner (`rl.ppo`; full-batch epochs, rewards scaled by their batch
    standard deviation, gamma = the discount of the intrinsic return)"""
    exact_filter: bool = False
    """also run the exact factorised prey filter (`rl.bayes_filter`; needs --world.cage):
    enables the ic2-exact agent, gives the agents that do not use the learned filter the
    exact filter's features [window, own cell, beliefs b_t, their running mean, t / T] and
    measures hiding and both filters' belief entropy out of view"""

    def validate(self) -> None:
        check_at_least_one(self, "num_seeds", "iterations", "num_evals", "envs", "deter",
                           "stoch", "hidden", "filter_steps")
        self.world.validate()
        self.ppo.validate()
        n = self.world.episode_steps * self.envs
        check(n % self.ppo.num_minibatches == 0, f"ppo.num_minibatches "
              f"({self.ppo.num_minibatches}) must divide the {n} steps of an iteration "
              f"(world.episode_steps x envs)")
        check(self.world.task == "capture", f"ic2 needs the capture world (--world.task "
              f"capture), got {self.world.task!r}")
        gw.check_params(p_prey=self.p_prey)
        check(len(self.agents) >= 1, "agents must name at least one agent")
        for a in self.agents:
            if a not in AGENTS:
                raise UnknownNameError("ic2 agent", a, AGENTS)
        check(len(set(self.agents)) == len(self.agents), f"agents repeat a name: {self.agents}")
        if self.exact_filter:
            bf.check_spec(self.world)
        for a in ("ic2-exact", "ic2-exact-input"):
            check(self.exact_filter or a not in self.agents, f"the {a} agent needs the exact "
                  f"filter: add --exact-filter (and --world.cage) or drop {a} from --agents")
        check(self.iterations % self.num_evals == 0, f"iterations ({self.iterations}) must be "
              f"a multiple of num_evals ({self.num_evals})")
        check(1 <= self.final_points <= self.num_evals,
              f"final_points must be in [1, num_evals={self.num_evals}], got {self.final_points}")
        check(self.filter_lr > 0, f"filter_lr must be positive, got {self.filter_lr}")
        check(self.kl_weight >= 0, f"kl_weight must be >= 0, got {self.kl_weight}")


GIF = "ic2_behaviour.gif"
