"""v-star: the configuration."""

from __future__ import annotations

import dataclasses

from selftaught import tasks
from selftaught.core import check
from selftaught.core.errors import check_at_least_one
from selftaught.lm.metrics import (
    k_grid,
)
from selftaught.lm.model import ModelSize
from selftaught.lm.train import (
    TrainConfig,
)


@dataclasses.dataclass(frozen=True)
class VStarConfig:
    """V-STaR on a verifiable task (see the module docstring)."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i (data, init and sampling all change)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    task: str = "chain"
    """registered task (chain, addition, multiplication) or a plug-in package.module:factory;
    it must have a verifier (verify(problem, text) -> bool)"""
    task_args: str = "steps=(2, 4)"
    """keyword arguments for the task factory, e.g. "steps=(3, 6), modulus=10" """
    human_problems: int = 12800
    """training problems with one (uneven) human solution: G_sft's data (the default's
    400 x 64 SFT rows are 2 epochs over 12,800 distinct problems, so G_sft does not memorise
    them: issue 24's non-memorising setting; preset `memorising` has 250)"""
    train_problems: int = 12800
    """training problems sampled each iteration (the human-solved ones come first)"""
    eval_problems: int = 1000
    """fresh test problems (each gets `candidates` samples; every claim is on them; issue 24:
    1,000 x 64)"""
    valid_problems: int = 64
    """fresh validation problems (disjoint from the test ones): the generalisation gate's
    fresh problems (and as many of its own training problems), and the problems on whose
    `candidates` samples the oracle verifier's score aggregate is chosen; separate from
    `eval_problems`, so a larger test set does not grow the gate's or the oracle's cost"""
    model: ModelSize = ModelSize()
    """shape of the decoder (generator and verifier) trained from scratch"""
    sft: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=40, total_steps=400, batch_size=64,
                                   weight_decay=0.1, final_lr_ratio=0.1)
    """SFT of G_sft on human data; every G_t uses the same optimiser and step count"""
    iterations: int = 2
    """T: generator / verifier iterations"""
    samples_per_problem: int = 6
    """k: samples per training problem per iteration (paper: 16)"""
    temperature: float = 0.7
    """sampling temperature for the training samples and the test candidates"""
    top_k: int = 0
    """top-k filter of the sampler (0: the whole vocabulary)"""
    verifier: TrainConfig = TrainConfig(lr=1e-3, warmup_steps=20, total_steps=250,
                                        batch_size=32, weight_decay=0.0, final_lr_ratio=0.1)
    """optimiser of the DPO verifier and of the ORM baseline"""
    dpo_beta: float = 0.1
    """beta of the DPO loss (paper: 0.1); the verifier score is beta*(log V - log G_sft)"""
    max_pairs_per_problem: int = 8
    """cap on (correct, incorrect) pairs drawn per training problem for DPO"""
    oracle_verifier: bool = True
    """also train, at every iteration on the same D_ver as the ORM, the oracle
    (process-supervised) verifier: G_sft + the ORM's linear head read at every token,
    trained with BCE on the TRUE step-correctness labels of the D_ver samples (the task's
    `step_labels`), a candidate scored by its least likely step. An upper bound on what this
    architecture can learn to check, not part of V-STaR; needs a task with step_labels
    (chain)"""
    candidates: int = 64
    """N: candidates per test problem for Best-of-k (k = 1, 2, 4, ... up to N)"""
    claim_k: int = 16
    """k at which Best-of-k, maj@k and pass@1 are compared in the claims"""
    vote_repeats: int = 16
    """maj@k averages every k-subset of a problem's candidates, or this many random ones
    when there are more (lm.metrics.maj_at_k)"""
    sample_batch: int = 1024
    """rows per sampler call (fixed, so the sampler compiles once)"""
    chunk_steps: int = 100
    """training steps per compiled chunk (progress-bar and NaN-check granularity)"""
    max_generalisation_gap: float = 5.0
    """points: the generalisation gate. Before each generator G_0 = G_sft .. G_{T-1} samples
    verifier data, its sample accuracy on its own training problems (the first
    min(valid_problems, human_problems) of the pool) and on as many fresh validation problems
    (samples_per_problem each) is logged; when the mean gap over seeds (train - fresh) of any
    of them is >= this, the claims about the verifier (V-STaR vs maj@k, DPO vs ORM,
    iterations) are reported as not tested"""

    def validate(self) -> None:
        check_at_least_one(self, "human_problems", "train_problems", "eval_problems",
                           "valid_problems",
                           "iterations", "samples_per_problem", "max_pairs_per_problem",
                           "candidates", "claim_k", "vote_repeats", "sample_batch",
                           "chunk_steps")
        check(self.human_problems <= self.train_problems,
              f"human_problems ({self.human_problems}) must be <= train_problems "
              f"({self.train_problems}): the human-solved problems are part of the pool")
        check(self.claim_k <= self.candidates,
              f"claim_k ({self.claim_k}) must be <= candidates ({self.candidates}): Best-of-k "
              "needs at least k candidates per problem; raise --candidates or lower --claim-k")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.top_k >= 0, f"top_k must be >= 0 (0 = no top-k), got {self.top_k}")
        check(self.dpo_beta > 0, f"dpo_beta must be > 0, got {self.dpo_beta}")
        check(self.max_generalisation_gap > 0,
              f"max_generalisation_gap must be > 0 points, got {self.max_generalisation_gap}")
        task = tasks.get(self.task, **tasks.parse_task_args(self.task_args))
        check(callable(getattr(task, "verify", None)),
              f"task {self.task!r} has no verifier (a verify(problem, text) method); V-STaR "
              "labels samples with it, so choose a verifiable task")
        check(not self.oracle_verifier or callable(getattr(task, "step_labels", None)),
              f"task {self.task!r} has no step checker (a step_labels(problem, text) method) "
              "for the oracle verifier; pass --no-oracle-verifier or use the chain task")

    @property
    def ks(self) -> list[int]:
        """k values of the Best-of-k curves: powers of two below N, and N."""
        return k_grid(self.candidates)
