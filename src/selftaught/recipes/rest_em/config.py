"""rest-em: the configuration."""

from __future__ import annotations

import dataclasses

from selftaught.core import check
from selftaught.core.errors import check_at_least_one
from selftaught.lm import (
    TrainConfig,
)
from selftaught.lm.model import ModelSize
from selftaught.tasks import parse_task_args


@dataclasses.dataclass(frozen=True)
class RestEMConfig:
    """ReST^EM on a verifiable arithmetic task (see the module docstring)."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i (data, init and sampling all change)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    task: str = "addition"
    """registered task (addition, multiplication, chain) or a plug-in package.module:factory"""
    task_args: str = "digits=2, human_skip_prob=0, human_loose_prob=0"
    """keyword arguments for the task factory; human_skip_prob / human_loose_prob (the tasks'
    default 0.5 each) degrade the human solutions, 0 makes them correct and complete"""
    human_problems: int = 300
    """training problems that come with one human solution: the SFT baseline's data"""
    train_problems: int = 300
    """the E-step's problem pool (final answers only; the human-solved problems come first);
    equal to human_problems is the paper's setting (the same problems for both arms); with
    length_arg: the fresh problems each round samples"""
    eval_problems: int = 200
    """held-out test problems (and as many validation problems)"""
    model: ModelSize = ModelSize()
    """shape of the decoder trained from scratch"""
    sft: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=50, total_steps=800, batch_size=64,
                                   weight_decay=0.1, final_lr_ratio=0.1)
    """SFT on human data; the M-step uses the same optimiser settings"""
    mstep_steps: int = 800
    """optimizer steps of each M-step"""
    mstep_init: str = "base"
    """'base' (paper: fine-tune the base model every iteration) or 'last' (previous iterate)"""
    iterations: int = 5
    """EM iterations I"""
    sft_candidates: int = 5
    """SFT runs on the human data with different training keys (the first is iteration 0);
    the one with the best validation pass@1 is the selection-matched baseline, as ReST^EM
    picks the best of its I iterations on validation (set it to I; 1 = no restarts)"""
    num_samples: int = 4
    """N: samples per training problem in the E-step (paper: 32)"""
    max_per_problem: int = 2
    """K: cap on correct samples kept per problem (paper: 10)"""
    temperature: float = 0.7
    """sampling temperature of the E-step and of pass@k / maj@k evaluation"""
    top_k: int = 40
    """top-k filter of sampling (0 = none)"""
    eval_samples: int = 8
    """samples per test problem for pass@k and maj@k"""
    eval_k: int = 4
    """k of pass@k and maj@k"""
    sample_batch: int = 1024
    """rows per sampler call (fixed, so the sampler compiles once)"""
    chunk_steps: int = 100
    """training steps per compiled chunk (progress-bar and NaN-check granularity)"""
    length_arg: str = ""
    """the task argument that sets an instance's length (chain: steps, addition: digits).
    Set, the run is the curriculum comparison (rest_em.curriculum): the human solutions have
    the lengths task_args gives it (short ones), each round samples train_problems fresh
    problems -- the curriculum arm one length longer than its previous round (up to
    target_length), the flat arm at target_length from round 1 -- and retrains the base
    model on the human data plus every sample kept so far. Empty: the ReST^EM loop"""
    target_length: int = 0
    """with length_arg: the length the curriculum reaches and both arms are measured at"""
    verify: str = "answer"
    """with length_arg: what counts as a correct sample (E-step, gate and pass@1): 'answer'
    (the task's final-answer check) or 'steps' (also every written step checks out,
    task.step_labels: for tasks whose answers can be guessed, like chain's m values)"""
    gate_k: int = 16
    """with length_arg: k of the pool pass@k gate checked on every round's E-step samples"""
    gate_min: float = 0.2
    """with length_arg: a curriculum round whose pool pass@gate_k is below this stops the
    curriculum (the flat arm logs the gate and goes on: plain ReST^EM has no gate)"""

    def validate(self) -> None:
        check_at_least_one(self, "human_problems", "train_problems", "eval_problems",
                           "mstep_steps", "num_samples", "max_per_problem", "eval_samples",
                           "eval_k", "sample_batch", "chunk_steps")
        check(self.human_problems <= self.train_problems or bool(self.length_arg),
              f"human_problems ({self.human_problems}) must be <= train_problems "
              f"({self.train_problems}): the human-solved problems are part of the pool")
        check(self.iterations >= 0, f"iterations must be >= 0, got {self.iterations}")
        check(self.sft_candidates >= 1,
              f"sft_candidates must be >= 1 (1 = no SFT restarts), got {self.sft_candidates}")
        check(self.mstep_init in ("base", "last"),
              f"mstep_init must be 'base' or 'last', got {self.mstep_init!r}")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.top_k >= 0, f"top_k must be >= 0 (0 = no top-k), got {self.top_k}")
        check(self.eval_k <= self.eval_samples,
              f"eval_k ({self.eval_k}) must be <= eval_samples ({self.eval_samples})")
        args = parse_task_args(self.task_args)
        if self.length_arg:
            from selftaught.recipes.rest_em.curriculum import check_curriculum
            check_curriculum(self, args)
