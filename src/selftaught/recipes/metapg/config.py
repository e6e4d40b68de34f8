"""metapg: the config (search space, SAC budget, objectives)."""

from __future__ import annotations

import dataclasses

from selftaught.core.errors import UnknownNameError, check
from selftaught.evolve.actor_critic import MetaPGTask
from selftaught.evolve.backends import BACKENDS
from selftaught.rl import control, sac

OBJECTIVES = ("performance", "generalizability", "stability")
PAPER = {"performance": "+3%", "generalizability": "+17%", "stability": "-65% instability"}


@dataclasses.dataclass(frozen=True)
class MetaPGConfig:
    """Evolve SAC's actor and critic losses for performance, generalizability, stability.

    Defaults = the `default` preset: `selftaught run metapg --preset default`, 3 searches,
    1,428 CPU-s, 1 of 3 claims holds (fragile; see the module docstring for the measured
    figures). The default's claims use the graph search space (typed DAG pairs); the
    `continuous` preset runs the same searches, re-test and claims over a continuous
    parameterisation of SAC's loss terms (`evolve.sac_family`)."""

    space: str = "graph"
    """search space: graph (pairs of typed loss DAGs, `evolve.actor_critic`) | continuous
    (five weights on SAC's loss terms, `evolve.sac_family`; SAC is one point)"""
    seed: int = 0
    """the run's seed: search k mutates with search seed seed + k and trains its
    candidates on seed block k; the re-test uses fresh blocks beyond every search's"""
    searches: int = 3
    """independent NSGA-II searches (search seeds seed, seed + 1, ...), advanced one
    generation at a time with their new candidates trained in one batch: the claims'
    unit (fewer than 3 leave every claim undetermined)"""
    num_seeds: int = 33
    """fresh training seeds of the re-test (`--seeds`), the same for SAC and every
    search's chosen members (common random numbers: differences paired seed by seed);
    a multiple of train_seeds wastes no training"""
    env: str = "Pendulum-v1"
    """continuous-control environment: Pendulum-v1 | CartPoleContinuous"""
    perturb_param: str = "l"
    """physical parameter perturbed for generalizability (Pendulum: l, m, g, ...)"""
    perturb_scales: tuple[float, ...] = (0.5, 0.75, 1.5, 2.0)
    """the perturbed values are the default times each scale (zero-shot evaluation)"""
    total_steps: int = 4_000
    """SAC environment steps per training"""
    learning_starts: int = 500
    """uniformly random steps before SAC learns"""
    buffer_size: int = 5_000
    """replay capacity"""
    batch_size: int = 64
    """SAC minibatch size"""
    hidden: int = 32
    """units per hidden layer (actor and critics)"""
    lr: float = 2e-3
    """Adam learning rate of actor, critics and temperature"""
    num_evals: int = 4
    """evaluation points per training (performance averages the second half)"""
    eval_episodes: int = 2
    """deterministic-policy episodes per evaluation point and per perturbed physics"""
    max_episode_steps: int = 0
    """episode time limit; 0 keeps the environment's own"""
    train_seeds: int = 3
    """training seeds per candidate (stability is their spread)"""
    stability_hurdle: float = 0.5
    """mean normalised performance a candidate needs for its stability to count (else -1)"""
    power_effect: float = 0.05
    """the report's power analysis: seeds needed to detect this relative change of SAC's
    mean (performance, generalizability) at 95% confidence and 80% power, from the spreads
    measured on the fresh seeds"""
    population: int = 8
    """NSGA-II population"""
    generations: int = 5
    """NSGA-II generations after the initial population"""
    critic_nodes: int = 14
    """op nodes of a critic-loss graph (SAC's uses 11)"""
    actor_nodes: int = 6
    """op nodes of an actor-loss graph (SAC's uses 3)"""
    p_critic: float = 0.5
    """probability that a mutation changes the critic graph (else the actor graph)"""
    p_edge: float = 0.3
    """probability that a mutation rewires one input instead of replacing a node"""
    sigma: float = 0.2
    """continuous space: sd of a mutation's Gaussian step, as a fraction of each
    parameter's range"""
    p_gene: float = 0.5
    """continuous space: probability that a mutation changes each parameter (at least one
    always changes)"""
    front_max: int = 3
    """front members of each search re-tested (the best on each objective by the search's
    own scores first: 3 covers the members the claims use)"""
    eval_batch: int = 4
    """candidates per compiled evaluation (candidates x train_seeds trainings vmapped)"""
    backend: str = "inprocess"
    """evaluation backend: inprocess | pool | ray"""
    workers: int = 2
    """worker processes of the pool/ray backends"""
    ray_address: str = ""
    """Ray cluster address (empty: start a local Ray)"""

    def validate(self) -> None:
        from selftaught.recipes.metapg.spaces import SPACES

        if self.space not in SPACES:
            raise UnknownNameError("search space", self.space, list(SPACES))
        check(0 < self.sigma <= 1, f"sigma must be in (0, 1] (a fraction of each "
              f"parameter's range), got {self.sigma}")
        check(0 <= self.p_gene <= 1, f"p_gene must be in [0, 1], got {self.p_gene}")
        check(self.power_effect > 0, f"power_effect must be > 0 (a relative change, e.g. "
              f"0.05), got {self.power_effect}")
        if self.backend not in BACKENDS:
            raise UnknownNameError("evaluation backend", self.backend, list(BACKENDS))
        if self.env not in control.CONTROL_ENVS:
            raise UnknownNameError("continuous-control environment", self.env,
                                   list(control.CONTROL_ENVS))
        check(len(self.perturb_scales) >= 1, "perturb_scales is empty; give at least one scale")
        env = control.make_control_env(self.env, self.max_episode_steps or None)
        control.perturbed(env, self.perturb_param, self.perturb_scales)  # PhysicsError
        check(self.train_seeds >= 2, f"train_seeds must be >= 2 (stability is a spread), "
              f"got {self.train_seeds}")
        check(self.searches >= 1, f"searches must be >= 1, got {self.searches}")
        check(self.population >= 2, f"population must be >= 2, got {self.population}")
        check(self.generations >= 0, f"generations must be >= 0, got {self.generations}")
        check(self.critic_nodes >= 11, f"critic_nodes must be >= 11 to hold SAC's critic "
              f"loss, got {self.critic_nodes}")
        check(self.actor_nodes >= 3, f"actor_nodes must be >= 3 to hold SAC's actor loss, "
              f"got {self.actor_nodes}")
        check(0 <= self.p_critic <= 1 and 0 <= self.p_edge <= 1,
              "p_critic and p_edge must be in [0, 1]")
        check(self.front_max >= 1 and self.eval_batch >= 1 and self.workers >= 1,
              "front_max, eval_batch and workers must be >= 1")
        from selftaught.core import config as cfglib

        cfglib.validate(self.sac_config())

    def sac_config(self) -> sac.SACConfig:
        return sac.SACConfig(
            loop=dataclasses.replace(
                sac.DEFAULT_LOOP, env=self.env, total_steps=self.total_steps,
                learning_starts=self.learning_starts, buffer_size=self.buffer_size,
                batch_size=self.batch_size, num_evals=self.num_evals,
                eval_episodes=self.eval_episodes, max_episode_steps=self.max_episode_steps),
            hidden=self.hidden, actor_lr=self.lr, critic_lr=self.lr, alpha_lr=self.lr)

    def task(self) -> MetaPGTask:
        env = control.make_control_env(self.env, self.max_episode_steps or None)
        grid = control.perturbed(env, self.perturb_param, self.perturb_scales)
        return MetaPGTask(self.sac_config(),
                          tuple((self.perturb_param, g[self.perturb_param]) for g in grid),
                          self.critic_nodes, self.actor_nodes, self.train_seeds, self.seed,
                          self.eval_batch)


