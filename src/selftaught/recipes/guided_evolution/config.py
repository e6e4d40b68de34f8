"""Guided evolution: the configuration, its tasks, targets and arms."""

from __future__ import annotations

import dataclasses

import numpy as np

from selftaught.core.errors import check
from selftaught.evolve.backends import BACKENDS
from selftaught.evolve.discriminator import (
    GUIDE_MODES,
)
from selftaught.evolve.optimizer import REFERENCE, OptimizerTask
from selftaught.evolve.rl_loss import REFERENCE_LOSSES, ChainLossTask
from selftaught.evolve.symreg import SymRegTask, equation

ARMS = ("unguided", "guided", "regression", "tuned", "oracle")


LEARNED_ARMS = ARMS[:3]
"""the arms without the oracle: no search for a (TPR, FPR) grid"""


DOMAINS = ("symreg", "optimizer", "rl_loss")


@dataclasses.dataclass(frozen=True)
class GuidedEvolutionConfig:
    """Regularized evolution with vs without a GNN pair discriminator (or a regressor)."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i"""
    num_seeds: int = 10
    """seeds when --seeds is not given (each runs both arms)"""
    domain: str = "symreg"
    """symreg (Nguyen equations) | optimizer (update rules, scored by training an MLP) |
    rl_loss (RL loss functions, scored on the chain-MDP hurdle of evolve-rl-loss)"""
    arms: tuple[str, ...] = ("unguided", "guided")
    """arms to run: unguided | guided (pairwise discriminator) | regression (regressor) |
    tuned (pairwise discriminator answering "better" when P >= a threshold tuned online
    for the predicted gain precision / p on validation pairs, see `tune_pairs`; always the
    filter rule, whatever `guide_mode`, since the threshold is chosen for it) | oracle
    (one arm per (TPR, FPR) cell of `oracle_tpr` x `oracle_fpr`, paired by position: a
    discriminator that knows the true fitness and answers with that TPR and FPR)"""
    tune_pairs: int = 4
    """tuned arm: children per batch mutated without screening (real evaluations, counted
    in the budget); their discriminator verdicts, taken before the evaluation, are the
    validation pairs on which the threshold is chosen (from 32 pairs with >= 2 of each
    class on; before that the threshold is 0.5)"""
    tune_redraws: int = 0
    """tuned arm: times a validation child whose function is already known (a cache hit,
    no pair) is re-drawn, as the unguided arm re-draws its children (0: plain mutation, as
    measured by `--preset diagnose`; raise it where few mutations are novel)"""
    oracle_tpr: tuple[float, ...] = ()
    """the oracle arm's cells, their true-positive rates (cell i = (oracle_tpr[i],
    oracle_fpr[i]); e.g. --oracle-tpr 0.9 0.5 --oracle-fpr 0.02 0.1)"""
    oracle_fpr: tuple[float, ...] = ()
    """the oracle arm's cells, their false-positive rates (one per `oracle_tpr`)"""
    diag_holdout: int = 16
    """diagnostics: unscreened (novel) mutations of the batch's parents scored per batch
    outside the search's budget (not real evaluations), to measure the improving-mutation
    rate p and the discriminator's TPR / FPR without the selection bias of the evaluated
    children (0: off; cheap on symreg, costly on the optimizer and rl_loss domains)"""
    diag_windows: int = 10
    """diagnostics: windows of real evaluations over which p, TPR, FPR are counted"""
    equations: tuple[str, ...] = ("nguyen1", "nguyen2", "nguyen3")
    """symreg domain: Nguyen benchmark equations (nguyen1 .. nguyen12; 9-12 of x and y)"""
    problems: tuple[int, ...] = (0, 1, 2)
    """optimizer / rl_loss domains: seeds of the problems (MLP teacher and data; chain MDPs)"""
    opt_steps: int = 150
    """optimizer domain: full-batch training steps per evaluation"""
    rl_target: str = "td"
    """rl_loss domain: the reference loss whose chain score (plus target_gain) is the target:
    td (the TD loss δ², score 1.0) | myopic ((Q(s,a) - r)², no bootstrapping: solves the
    length-1 chains only)"""
    target_gain: float = 0.0
    """optimizer / rl_loss domains: target = the best reference program's fitness (Adam,
    SGD-momentum, signSGD; the TD loss) plus this (negative: a little below it)"""
    num_nodes: int = 8
    """op nodes per program"""
    population_size: int = 64
    """population of the regularized evolution"""
    tournament_size: int = 8
    """tournament size (parents are the best of this many random members)"""
    batch_size: int = 16
    """children per generation (evaluated together)"""
    max_evaluations: int = 1500
    """real (cache-miss) evaluations per run"""
    target_fitness: float = -0.01
    """symreg domain: a run succeeds when -NRMSE reaches this (NRMSE <= 1%)"""
    p_fresh: float = 0.05
    """probability that a mutation returns a fresh random program"""
    proposals: int = 8
    """guided: mutations proposed per child and screened by the discriminator"""
    guide_mode: str = "filter"
    """guided mutation: filter (best of `proposals` single mutations of the parent) |
    chain (accumulate mutations the discriminator prefers) | adaptive (chain that stops at
    the first mutation the discriminator does not prefer to the parent)"""
    disc_dim: int = 32
    """hidden width of the GNN discriminator"""
    disc_layers: int = 2
    """message-passing layers of the GNN discriminator"""
    disc_lr: float = 1e-3
    """discriminator learning rate"""
    disc_train_steps: int = 10
    """discriminator updates after each evaluated batch"""
    disc_min_programs: int = 64
    """evaluated programs before the discriminator starts guiding"""
    curve_points: int = 30
    """points of the success-vs-evaluations curves"""
    fast: bool = True
    """memoise each distinct program's fitness and functional hash within a search, and let
    an oracle arm rate all its filter proposals in one call: the same searches, faster
    (False: the sequential reference path, kept for tests and bench/oracle_sweep.py)"""
    backend: str = "inprocess"
    """evaluation backend: inprocess | pool | ray"""
    workers: int = 2
    """worker processes of the pool/ray backends"""
    ray_address: str = ""
    """Ray cluster address (empty: start a local Ray)"""

    def validate(self) -> None:
        from selftaught.core.errors import UnknownNameError

        if self.domain not in DOMAINS:
            raise UnknownNameError("domain", self.domain, DOMAINS)
        check(len(self.arms) >= 2 and "unguided" in self.arms,
              "--arms needs unguided and at least one predictor arm (guided, regression)")
        for a in self.arms:
            if a not in ARMS:
                raise UnknownNameError("arm", a, ARMS)
        check(("oracle" in self.arms) == bool(self.oracle_tpr),
              "the oracle arm needs (TPR, FPR) cells (--oracle-tpr ... --oracle-fpr ...), and "
              "those need 'oracle' in --arms")
        check(len(self.oracle_tpr) == len(self.oracle_fpr),
              f"--oracle-tpr ({len(self.oracle_tpr)} values) and --oracle-fpr "
              f"({len(self.oracle_fpr)}) pair up: give one FPR per TPR")
        for cell in zip(self.oracle_tpr, self.oracle_fpr):
            check(all(0.0 <= x <= 1.0 for x in cell),
                  f"each oracle cell is (TPR, FPR) in [0, 1], got {cell}")
        check(self.diag_holdout >= 0 and self.diag_windows >= 1,
              "diag_holdout must be >= 0 and diag_windows >= 1")
        check(self.tune_redraws >= 0, f"tune_redraws must be >= 0, got {self.tune_redraws}")
        check("tuned" not in self.arms or 1 <= self.tune_pairs < self.batch_size,
              f"the tuned arm needs 1 <= tune_pairs < batch_size ({self.batch_size}), got "
              f"{self.tune_pairs}")
        if self.domain == "symreg":
            check(len(self.equations) >= 1, "give at least one equation (--equations nguyen1)")
            for e in self.equations:
                equation(e)
            check(self.target_fitness <= 0.0, "target_fitness is a -NRMSE, so it must be <= 0")
        else:
            check(len(self.problems) >= 1, "give at least one problem seed (--problems 0)")
            check(self.opt_steps >= 1, f"opt_steps must be >= 1, got {self.opt_steps}")
            if self.domain == "rl_loss" and self.rl_target not in REFERENCE_LOSSES:
                raise UnknownNameError("rl_target reference loss", self.rl_target,
                                       list(REFERENCE_LOSSES))
            need = max(len(p.nodes) for p in reference_programs(self))
            check(self.num_nodes >= need,
                  f"num_nodes={self.num_nodes} cannot hold the {self.domain} domain's reference "
                  f"program ({need} nodes), whose score sets the target; raise --num-nodes to "
                  f"at least {need}")
        if self.backend not in BACKENDS:
            from selftaught.core.errors import UnknownNameError

            raise UnknownNameError("evaluation backend", self.backend, list(BACKENDS))
        check(self.population_size >= 2, f"population_size must be >= 2, got "
              f"{self.population_size}")
        check(1 <= self.tournament_size <= self.population_size,
              f"tournament_size must be in [1, population_size={self.population_size}], got "
              f"{self.tournament_size}")
        check(self.max_evaluations > self.population_size,
              f"max_evaluations ({self.max_evaluations}) must exceed population_size "
              f"({self.population_size})")
        check(self.batch_size >= 1 and self.num_nodes >= 1 and self.proposals >= 0,
              "batch_size and num_nodes must be >= 1 and proposals >= 0")
        if self.guide_mode not in GUIDE_MODES:
            raise UnknownNameError("guided mutation mode", self.guide_mode, GUIDE_MODES)
        check(0.0 <= self.p_fresh <= 1.0, f"p_fresh must be in [0, 1], got {self.p_fresh}")


def tasks(config: GuidedEvolutionConfig) -> list[tuple[str, object]]:
    """(name, picklable evaluation task) per task of the domain."""
    if config.domain == "symreg":
        return [(e, SymRegTask(e, config.num_nodes, seed=config.seed)) for e in config.equations]
    if config.domain == "rl_loss":
        return [(f"chain{k}", ChainLossTask(config.num_nodes, seed=k,
                                            reference_loss=config.rl_target))
                for k in config.problems]
    return [(f"mlp{k}", OptimizerTask(config.num_nodes, seed=k, steps=config.opt_steps))
            for k in config.problems]


def reference_programs(config: GuidedEvolutionConfig) -> list:
    """The optimizer / rl_loss domain's reference programs: Adam, SGD-momentum and signSGD;
    the `rl_target` loss (over the RL-loss space's inputs)."""
    if config.domain == "optimizer":
        return list(REFERENCE.values())
    return [ChainLossTask(config.num_nodes, reference_loss=config.rl_target).reference()]


def target_of(config: GuidedEvolutionConfig, evaluate) -> float:
    """The fitness a run must reach on the task `evaluate` scores: the best of
    `reference_programs` plus `target_gain`; `target_fitness` (a -NRMSE) for symreg."""
    if config.domain == "symreg":
        return config.target_fitness
    return float(np.max(evaluate(reference_programs(config)))) + config.target_gain


def arm_names(config: GuidedEvolutionConfig) -> list[str]:
    """The arms run, with `oracle` expanded into one arm per oracle cell."""
    out = []
    for a in config.arms:
        out += list(oracle_cells(config)) if a == "oracle" else [a]
    return out


def oracle_cells(config: GuidedEvolutionConfig) -> dict[str, tuple[float, float]]:
    """{arm name: (TPR, FPR)} of the oracle arm's grid cells."""
    return {f"oracle-t{t:g}-f{f:g}": (float(t), float(f))
            for t, f in zip(config.oracle_tpr, config.oracle_fpr)}


TIE = 1e-6
"""a child is better than its parent when its fitness exceeds the parent's by more than this"""
