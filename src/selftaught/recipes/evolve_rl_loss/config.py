"""evolve-rl-loss: the configuration (search spaces, budgets, environments)."""

from __future__ import annotations

import dataclasses

from selftaught.core.errors import check
from selftaught.evolve.backends import BACKENDS
from selftaught.evolve.rl_loss import (
    OP_SETS,
    RLLossTask,
)

SEARCH_ENV = "CartPole-v1"


@dataclasses.dataclass(frozen=True)
class EvolveRLLossConfig:
    """Search for RL losses from scratch and from the DQN graph; DQNReg vs DQN held out."""

    seed: int = 0
    """first seed; seed i of an n-seed comparison is seed + i (searches use seed)"""
    num_seeds: int = 8
    """seeds of every final comparison (paired across losses)"""
    op_set: str = "small"
    """ops: small | full (rl.md §3 list)"""
    num_nodes: int = 9
    """op nodes of programs trained on CartPole (DQNReg needs 9)"""
    scratch_num_nodes: int = 7
    """op nodes of from-scratch programs"""
    chain_length: int = 5
    """longest chain of the chain-MDP hurdle (instances have 1..chain_length states)"""
    chain_instances: int = 10
    """chain MDPs a candidate loss is scored on"""
    chain_steps: int = 40
    """tabular Q-learning steps per chain instance"""
    scratch_population: int = 128
    """population of the from-scratch regularized evolution"""
    scratch_tournament: int = 16
    """tournament size of the from-scratch search"""
    scratch_batch: int = 32
    """children per generation of the from-scratch search (evaluated together)"""
    scratch_searches: int = 5
    """independent from-scratch searches (search seeds seed, seed+1, ...): the
    rediscovery rate and its CI are over them"""
    scratch_evaluations: int = 8_000
    """real (cache-miss) candidate evaluations per from-scratch search (at most)"""
    scratch_return_evaluations: int = 8
    """CartPole trainings per from-scratch search: children over the chain hurdle are
    scored by their return until this many are spent, then the search stops"""
    scratch_p_edge: float = 0.5
    """probability that a mutation rewires one input instead of replacing a node"""
    hurdle: float = 0.95
    """chain score a program needs before it is trained on CartPole"""
    success_td_likeness: float = 0.9
    """a from-scratch search rediscovered TD when its best program cleared the hurdle and
    has at least this TD-likeness (TD: 1.0; DQNReg-like regularised TD: >= 0.9)"""
    total_steps: int = 20_000
    """DQN environment steps per CartPole training"""
    learning_starts: int = 1_000
    """random-action environment steps before DQN learns (CartPole and held-out)"""
    train_every: int = 4
    """environment steps between DQN gradient steps"""
    dqn_lr: float = 1e-3
    """DQN learning rate for every trained loss"""
    num_evals: int = 8
    """evaluation points per DQN training (learning-curve length)"""
    eval_episodes: int = 8
    """episodes per evaluation point"""
    eval_batch: int = 2
    """candidates per compiled DQN evaluation"""
    bootstrap_population: int = 16
    """population of the search seeded with the DQN loss graph"""
    bootstrap_tournament: int = 4
    """tournament size of the bootstrapped search"""
    bootstrap_evaluations: int = 48
    """real CartPole evaluations of the bootstrapped search"""
    heldout_envs: tuple[str, ...] = ("Acrobot-v1",)
    """held-out environments where the bootstrapped search's best loss is compared with DQN"""
    heldout_total_steps: int = 30_000
    """DQN environment steps per held-out training"""
    bootstrap_program: str = ""
    """optional JSON file with a program to seed the bootstrapped search (default: DQN)"""
    backend: str = "inprocess"
    """evaluation backend for DQN trainings: inprocess | pool | ray"""
    workers: int = 2
    """worker processes of the pool/ray backends"""
    ray_address: str = ""
    """Ray cluster address (empty: start a local Ray)"""

    def validate(self) -> None:
        from selftaught.core.errors import UnknownNameError
        from selftaught.rl.envs import ENVS

        if self.op_set not in OP_SETS:
            raise UnknownNameError("op set", self.op_set, list(OP_SETS))
        if self.backend not in BACKENDS:
            raise UnknownNameError("evaluation backend", self.backend, list(BACKENDS))
        for env in self.heldout_envs:
            if env not in ENVS:
                raise UnknownNameError("environment", env, list(ENVS))
            check(env != SEARCH_ENV, f"held-out env {env} is the search env; pick another")
        check(self.num_nodes >= 9, f"num_nodes must be >= 9 to hold DQNReg, got {self.num_nodes}")
        check(1 <= self.scratch_num_nodes <= self.num_nodes,
              f"scratch_num_nodes must be in [1, num_nodes={self.num_nodes}]")
        check(self.scratch_evaluations > self.scratch_population,
              "scratch_evaluations must exceed scratch_population")
        check(self.bootstrap_evaluations >= self.bootstrap_population,
              "bootstrap_evaluations must be >= bootstrap_population")
        check(self.num_seeds >= 1 and self.eval_batch >= 1 and self.scratch_searches >= 1
              and self.scratch_return_evaluations >= 1,
              "num_seeds, eval_batch, scratch_searches and scratch_return_evaluations must "
              "be >= 1")
        check(0.0 < self.hurdle <= 1.0, f"hurdle must be in (0, 1], got {self.hurdle}")
        check(0.0 <= self.scratch_p_edge <= 1.0,
              f"scratch_p_edge must be in [0, 1], got {self.scratch_p_edge}")
        self.task(SEARCH_ENV, self.total_steps).validate()

    def task(self, env: str, total_steps: int) -> RLLossTask:
        return RLLossTask(envs=(env,), op_set=self.op_set, num_nodes=self.num_nodes, seeds=1,
                          seed=self.seed, total_steps=total_steps,
                          learning_starts=self.learning_starts, train_every=self.train_every,
                          lr=self.dqn_lr, num_evals=self.num_evals,
                          eval_episodes=self.eval_episodes, batch=self.eval_batch)
