"""GKD: the configuration and the methods compared (divergence, beta, on-policy fraction)."""

from __future__ import annotations

import dataclasses

from selftaught.core import check
from selftaught.core.errors import check_at_least_one
from selftaught.lm import TrainConfig
from selftaught.lm.model import ModelSize
from selftaught.tasks import parse_task_args

#: method -> (kind, β, λ, fixed data) ; "sft" and "seqkd" are cross-entropy
METHODS = {
    "sft": ("xent", 0.0, 0.0, "ground"),
    "supervised_kd": ("fkl", 0.0, 0.0, "ground"),
    "seqkd": ("xent", 0.0, 0.0, "teacher"),
    "gkd_beta0": ("jsd", 0.0, 1.0, "ground"),
    "gkd_beta0.5": ("jsd", 0.5, 1.0, "ground"),
    "gkd_beta1": ("jsd", 1.0, 1.0, "ground"),
    "mixed_lambda0.5": ("jsd", 0.5, 0.5, "ground"),
    "mixed_fkl_lambda0.5": ("jsd", 0.0, 0.5, "ground"),
}


#: the on-policy (λ = 1) arms: forward KL, JSD(0.5), reverse KL
GKD = ("gkd_beta0", "gkd_beta0.5", "gkd_beta1")


TEACHERS = ("algorithmic", "learned")


@dataclasses.dataclass(frozen=True)
class GKDConfig:
    """GKD vs continued SFT / supervised KD (/ SeqKD) for a small SFT'd student (see the
    module docstring)."""

    seed: int = 0
    """first seed (also fixes the teacher, the problems, SeqKD's data and the lr choice)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    task: str = "chain"
    """registered task (chain, addition, multiplication) or a plug-in package.module:factory"""
    task_args: str = "steps=(10, 12), modulus=10, human_loose_prob=0.0"
    """keyword arguments for the task factory"""
    train_problems: int = 4000
    """training prompts (with ground-truth solutions)"""
    eval_problems: int = 200
    """held-out problems in each of the validation split (lr and β are chosen on it) and the
    disjoint test split (reported)"""
    teacher_kind: str = "algorithmic"
    """algorithmic: the exact chain teacher (task chain, modulus <= 10) | learned: a
    transformer of shape --teacher SFT'd on ground truth"""
    teacher_eps: float = 1e-3
    """algorithmic teacher: the mass spread uniformly over the vocabulary (the correct token
    gets 1 - eps + eps/V), so KL in both directions stays finite. Measured on seed 0 with
    eps = 0.1 (a 75-token solution sampled from such a teacher is garbage-free with
    probability 0.905^75 < 0.1%): forward KL to it taught the student that noise (supervised
    KD: temperature-1 test accuracy 5% vs 67% for SFT) and on-policy forward KL, trained on
    those noisy samples, collapsed to 0-1.5% greedy accuracy (first step wrong in 92-99% of
    solutions) at either lr"""
    teacher: ModelSize = ModelSize(d_model=64, n_layers=2, n_heads=4)
    """learned teacher: its shape"""
    student: ModelSize = ModelSize(d_model=48, n_layers=2, n_heads=4)
    """the student's shape"""
    teacher_checkpoint: str = ""
    """learned teacher trained elsewhere (msgpack, e.g. another gkd run's
    checkpoints/teacher.msgpack, with the --teacher shape and task); empty: train it here"""
    teacher_train: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=50, total_steps=1500,
                                             batch_size=64, final_lr_ratio=0.1)
    """learned teacher: SFT on ground truth"""
    student_init_steps: int = 2000
    """most SFT steps (at student_train's lr) that make the common starting student"""
    student_init_target: float = 0.4
    """the starting SFT stops at the first chunk (chunk_steps) whose validation greedy
    accuracy reaches this (0: always student_init_steps); the chain is learned in a sharp
    transition whose step varies by seed and schedule, so a fixed step count missed the gate"""
    student_init_final_lr_ratio: float = 1.0
    """the starting SFT's lr ends at this fraction of student_train's lr (1: constant after
    the warm-up; measured on seed 0 of the default: 800 steps decayed to 0.1x reached 25.5%
    validation greedy accuracy (2000 training problems), 600 constant-lr steps 69%
    (4000 problems; 18.5% at 500 steps), and continued SFT from 69% reached 100% in 150
    updates at either lr)"""
    min_start_acc: float = 0.3
    """gate: the claims are tested only if the starting student's validation greedy accuracy
    (mean over seeds) reaches this"""
    student_train: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=5, total_steps=50,
                                             batch_size=32, final_lr_ratio=0.1)
    """optimiser of the starting SFT (its lr) and of every method after it (total_steps =
    updates per method; the lr comes from --lrs)"""
    lrs: tuple[float, ...] = (1e-4, 1e-3, 3e-3)
    """learning rates each method tries on the first seed; the best on validation greedy
    accuracy trains the other seeds"""
    methods: tuple[str, ...] = ("sft", "supervised_kd", "gkd_beta0", "gkd_beta0.5",
                                "gkd_beta1", "mixed_fkl_lambda0.5")
    """methods to train (a subset of: sft, supervised_kd, seqkd, gkd_beta0, gkd_beta0.5,
    gkd_beta1, mixed_lambda0.5, mixed_fkl_lambda0.5); the claims need sft, supervised_kd and a
    gkd_beta* (seqkd only with the learned teacher)"""
    distill_temperature: float = 1.0
    """temperature of teacher and student distributions inside the divergence"""
    eval_samples: int = 2
    """temperature-1 samples per evaluation problem (temperature-1 accuracy)"""
    sample_batch: int = 200
    """rows per sampler call"""
    chunk_steps: int = 50
    """training steps per compiled chunk (and between the starting SFT's validation checks)"""

    def validate(self) -> None:
        check_at_least_one(self, "train_problems", "eval_problems", "student_init_steps",
                           "eval_samples", "sample_batch", "chunk_steps")
        for m in self.methods:
            check(m in METHODS, f"method {m!r}; choose from {', '.join(METHODS)}")
        check(self.distill_temperature > 0,
              f"distill_temperature must be > 0, got {self.distill_temperature}")
        check(self.teacher_kind in TEACHERS,
              f"teacher_kind {self.teacher_kind!r}; choose algorithmic or learned")
        check(0 < self.teacher_eps < 1, f"teacher_eps={self.teacher_eps} must be in (0, 1)")
        check(len(self.lrs) >= 1 and all(lr > 0 for lr in self.lrs),
              f"lrs={self.lrs}: give at least one learning rate, all > 0")
        check(len(set(self.lrs)) == len(self.lrs), f"lrs={self.lrs} repeats a value")
        check(0 <= self.student_init_final_lr_ratio <= 1,
              f"student_init_final_lr_ratio={self.student_init_final_lr_ratio} must be in "
              "[0, 1]")
        check(0 <= self.student_init_target <= 1,
              f"student_init_target={self.student_init_target} must be in [0, 1]")
        check(0 <= self.min_start_acc <= 1,
              f"min_start_acc={self.min_start_acc} must be in [0, 1]")
        check(self.teacher_kind == "learned" or "seqkd" not in self.methods,
              "seqkd with the algorithmic teacher is SFT on the reference solutions; drop "
              "seqkd from --methods or use --teacher-kind learned")
        parse_task_args(self.task_args)
