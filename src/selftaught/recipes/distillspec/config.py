"""distillspec: the configuration."""

from __future__ import annotations

import dataclasses

from selftaught.core import check
from selftaught.core.errors import check_at_least_one
from selftaught.lm import TrainConfig
from selftaught.lm.distill import (
    DIVERGENCES,
)
from selftaught.lm.model import ModelSize
from selftaught.tasks import parse_task_args

MODES = ("greedy", "t1")


@dataclasses.dataclass(frozen=True)
class DistillSpecConfig:
    """Undistilled vs distilled drafts for speculative decoding (see the module docstring)."""

    seed: int = 0
    """first seed (also fixes the target and the problems)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    task: str = "addition"
    """registered task (addition, multiplication, chain) or a plug-in package.module:factory"""
    task_args: str = "digits=(1, 3)"
    """keyword arguments for the task factory"""
    train_problems: int = 2000
    """training prompts with ground-truth solutions"""
    eval_problems: int = 16
    """prompts per decoding batch (small: on a CPU the target's cost grows with the tokens it
    scores at once, see README)"""
    eval_batches: int = 8
    """batches of eval_problems prompts in each split (test: measured and reported;
    validation: what the divergence, γ and ε are chosen on), decoded one batch after another
    in one compiled program; every timing covers all of them"""
    target: ModelSize = ModelSize(d_model=128, n_layers=4, n_heads=4)
    """the target model's shape"""
    draft: ModelSize = ModelSize(d_model=16, n_layers=1, n_heads=2)
    """the draft model's shape"""
    target_checkpoint: str = ""
    """a target trained elsewhere (msgpack with the --target shape and task, e.g. a gkd run's
    checkpoints/teacher.msgpack); empty: train the target in this run"""
    target_train: TrainConfig = TrainConfig(lr=2e-3, warmup_steps=50, total_steps=800,
                                            batch_size=32, final_lr_ratio=0.1)
    """SFT of the target on ground truth"""
    draft_train: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=30, total_steps=600,
                                           batch_size=32, final_lr_ratio=0.1)
    """SFT of the undistilled draft on ground truth"""
    distill_train: TrainConfig = TrainConfig(lr=1e-3, warmup_steps=20, total_steps=300,
                                             batch_size=32, final_lr_ratio=0.1)
    """on-policy distillation of each draft, from the undistilled draft"""
    divergences: tuple[str, ...] = DIVERGENCES
    """divergences of the distilled drafts (fkl, rkl, jsd = JSD(0.5), tvd), all on-policy
    (λ = 1); the claims use the one with the highest acceptance α on the validation prompts"""
    matched_control: bool = True
    """also train "base_matched": the base draft continued by SFT on ground truth with
    distill_train (same steps, schedule and batch as each distilled draft), the
    compute-matched control the distilled drafts are compared with"""
    ablation_divergence: str = "jsd"
    """divergence of the on-policy ablation (fixed before seeing results; must be one of
    `divergences`, whose draft is the λ = 1 arm)"""
    ablation_lambdas: tuple[float, ...] = (0.0, 0.5)
    """on-policy fractions λ < 1 of the ablation drafts (λ = 0: fixed ground-truth data,
    i.e. supervised KD; each step samples from the draft with probability λ); empty: none"""
    gammas: tuple[int, ...] = (1, 2, 3, 5)
    """draft tokens per target call (on this CPU the speedup peaks at γ = 1-2: the target's
    cost grows with the tokens it scores per call, so γ = 6, 7 were dropped)"""
    epsilons: tuple[float, ...] = (1.0, 0.5, 0.2, 0.1, 0.05)
    """lenience values of the lossy frontier (1 = exact)"""
    lossy_gamma: int = 3
    """γ of the lossy frontier"""
    lossy_margin: float = 0.05
    """non-inferiority margin of the lossy frontier (accuracy, fraction): ε* is the most
    lenient ε whose validation accuracy (T=1, the chosen draft) stays within it of exact
    decoding's (ε = 1); the claim: on test, ε*'s accuracy loss has its CI above −margin"""
    timing_repeats: int = 3
    """timed repetitions per measurement (the minimum is kept)"""
    chunk_steps: int = 100
    """training steps per compiled chunk"""

    def validate(self) -> None:
        check_at_least_one(self, "train_problems", "eval_problems", "eval_batches",
                           "timing_repeats", "chunk_steps", "lossy_gamma")
        check(0 <= self.lossy_margin < 1,
              f"lossy_margin must lie in [0, 1) (an accuracy fraction), got {self.lossy_margin}")
        check(len(self.gammas) > 0 and all(g >= 1 for g in self.gammas),
              f"gammas must be integers >= 1, got {self.gammas}")
        check(all(0 < e <= 1 for e in self.epsilons),
              f"epsilons must lie in (0, 1] (1 = exact), got {self.epsilons}")
        check(self.lossy_gamma in self.gammas,
              f"lossy_gamma={self.lossy_gamma} must be one of gammas={self.gammas} (the "
              "lossy frontier is compared with exact decoding at the same γ)")
        for d in self.divergences:
            check(d in DIVERGENCES, f"divergence {d!r}; choose from {', '.join(DIVERGENCES)}")
        check(len(self.divergences) > 0, "divergences must name at least one divergence")
        if self.ablation_lambdas:
            check(self.ablation_divergence in self.divergences,
                  f"ablation_divergence={self.ablation_divergence!r} must be one of "
                  f"divergences={self.divergences} (its λ = 1 draft is the on-policy arm)")
        for lam in self.ablation_lambdas:
            check(0 <= lam < 1, f"ablation_lambdas must lie in [0, 1) (λ = 1 is the main "
                  f"draft), got {self.ablation_lambdas}")
        parse_task_args(self.task_args)


def ablation_name(div: str, lam: float) -> str:
    return f"{div}_lam{lam:g}"


#: draft name -> (divergence, λ); "base" and "base_matched" are SFT
def draft_specs(config: DistillSpecConfig) -> dict[str, tuple[str, float]]:
    specs = {"base": ("xent", 0.0), **{d: (d, 1.0) for d in config.divergences}}
    if config.matched_control:
        specs["base_matched"] = ("xent", 0.0)
    for lam in config.ablation_lambdas:
        specs[ablation_name(config.ablation_divergence, lam)] = (config.ablation_divergence, lam)
    return specs


def draft_names(config: DistillSpecConfig) -> list[str]:
    return list(draft_specs(config))


def settings(config: DistillSpecConfig) -> list[tuple[str, int, float]]:
    """(mode, γ, ε) decoded: exact at every γ in both modes, then each lossy ε < 1 at T=1
    and γ = lossy_gamma."""
    return ([(mode, g, 1.0) for mode in MODES for g in config.gammas]
            + [("t1", config.lossy_gamma, e) for e in config.epsilons if e < 1.0])
