"""GKD: on-policy distillation with generalized JSD (Agarwal et al., 2024; design lm.md §4,
small-scale.md §3).

    selftaught run gkd --preset default --seeds 3
    measured under load (the shared 2-core machine, load average 10 falling to 5 during the
    run): 965 s wall, 409 CPU-s (/usr/bin/time -v), peak RSS 1.30 GiB; smoke 38 s wall.
    Idle (2026-12-06, nothing else running): 3 min 56 s wall, 345 CPU-s, 1.32 GiB, the
    same claims.
    Start: SFT'd until validation greedy >= 40% (850 / 450 / 500 steps by seed): test greedy
    56.5% [45.5, 63.5] (gate >= 30% on validation: met, 54.3%). Test greedy after 50 updates
    (gain over the start), lr chosen per arm on seed 0's validation: continued SFT 72.8
    (+16.3), supervised KD 72.8 (+16.3), on-policy FKL 64.7 (+8.2, lr 1e-4), JSD(0.5) 72.3
    (+15.8), RKL 71.2 (+14.7), mixed FKL λ=0.5 70.7 (+14.2). Claims (unit: 3 training seeds):
    GKD (JSD(0.5): the best λ=1 arm on validation greedy, 72.0% vs FKL 63.7 / RKL 69.0) −
    supervised KD −0.5 [−1, 0] points, − continued SFT −0.5 [−4, 5.5]: neither holds; the
    gain multiple is undefined (supervised KD's gain over SFT is 0).
    Why, measured: (1) no compounding to correct: the per-step error rate of the greedy test
    solutions is flat over steps 1-9 (3-6% for every trained arm) and jumps at steps 10-12
    (14-21%, every arm alike): the errors are late-position operand/result lookups in long
    prompts (seed 0's start: of its 102 solutions with a wrong step, 50 first go wrong at
    step 10, 46 of them in 12-step chains), which teacher-forced and on-policy rows train
    alike; (2) on-policy FKL is
    unstable at this start (seed 0, 50 updates: loss 0.065 -> 0.55 at lr 3e-4, -> 3.1 at
    1e-3, greedy 2-14%); only lr 1e-4 is stable (68% validation); (3) with an eps = 0.1
    teacher (first try) forward KL learned its noise (supervised KD T=1 accuracy 5%), hence
    eps = 1e-3. Temperature-1 accuracy favours JSD(0.5) (61.3 vs 56.6 supervised KD) but
    within the seeds' spread.

The default is the paper's conditions at CPU scale (issue 25 item 1): a left-to-right
modular chain of 10-12 steps (mod 10, outputs 63-75 tokens, one slip ruins the answer),
an exact **algorithmic teacher** (`tasks.chain.algorithmic_teacher`: on any prefix, the
student's wrong ones included, it puts 1 − ε + ε/V on the correct next token *given what
the row has written*, ε/V elsewhere) and a 62k-parameter student SFT'd to >= 30% exact
match before any arm starts. The old setting (2-digit addition, a learned teacher, SeqKD)
is the `addition` preset.

The algorithm box (one teacher; per seed, one student initialisation):

    teacher  = algorithmic chain teacher | SFT(large model, ground truth)   # fixed p_T
    D_seqkd  = teacher's greedy solutions of the training prompts  (learned teacher only)
    student0 = SFT(small model, ground truth) until validation greedy >= student_init_target
             # (checked every chunk_steps); every method starts here
    gate: student0's validation greedy accuracy >= min_start_acc, else no claim is tested
    at equal updates (and one teacher query per row per update) from student0:
        sft            cross-entropy on ground truth (continued SFT, the control)
        supervised_kd  forward KL(p_T ‖ p_S) on ground-truth tokens         (λ = 0)
        seqkd          cross-entropy on D_seqkd                 (learned teacher only)
        gkd_beta0 / gkd_beta0.5 / gkd_beta1
                       JSD(β) on the student's own samples, T = 1 (λ = 1; β = 0 is forward
                       KL, β = 1 reverse KL)
        mixed_fkl_lambda0.5 / mixed_lambda0.5
                       FKL / JSD(0.5), on-policy with probability λ = 0.5, else ground truth
    learning rate: each method trains the first seed at every lr in `lrs`; the lr with the
        best validation greedy accuracy trains the other seeds (and is the first seed's)
    evaluate each student on validation and on test problems (disjoint): greedy and
    temperature-1 exact match, and (algorithmic teacher) the per-step error rate by step
    position on the greedy test solutions: step k is wrong when one of its tokens is not
    the teacher's choice given the solution's own prefix (the exposure-bias curve)

Claims (test problems; unit: training seeds): on-policy GKD (the λ = 1 divergence with the
best validation greedy accuracy) beats supervised KD, beats continued SFT, and (learned
teacher) SeqKD; its gain over SFT as a multiple of supervised KD's (paper: 1.7-2.1x). All
are gated on the SFT'd start (mean validation greedy accuracy over seeds >= min_start_acc).
Seeds vary the student's initialisation and its training randomness; the teacher, the
problems and D_seqkd are fixed by `seed` (the first seed).
"""

from __future__ import annotations

from selftaught.core import Recipe
from selftaught.lm import TrainConfig
from selftaught.lm.model import ModelSize
from selftaught.recipes.gkd.config import (  # noqa: F401
    GKD,
    METHODS,
    TEACHERS,
    GKDConfig,
)
from selftaught.recipes.gkd.report import (  # noqa: F401
    METRICS,
    _evals,
    _exposure_section,
    _table,
    gain_multiple,
    report,
    select_on_validation,
    step_error_rates,
)
from selftaught.recipes.gkd.train import (  # noqa: F401
    Setting,
    _argmax,
    choose_lr,
    evaluate,
    init_student,
    make_setting,
    make_trainers,
    run,
    run_seed,
    step_errors,
    teacher_rows,
    train_student,
    train_teacher,
)


def phases(config: GKDConfig, seeds: list[int]) -> list[str]:
    out = ["teacher"] if config.teacher_kind == "learned" else []
    for sd in seeds:
        out.append(f"seed{sd}/init")
        if sd == seeds[0]:
            out += [f"seed{sd}/{m}/lr{lr:g}" for m in config.methods for lr in config.lrs]
        else:
            out += [f"seed{sd}/{m}" for m in config.methods]
    return out


_ADDITION = GKDConfig(
    task="addition", task_args="digits=2", teacher_kind="learned",
    train_problems=2000, student=ModelSize(d_model=32, n_layers=1, n_heads=2),
    student_init_steps=300, student_init_final_lr_ratio=0.1, student_init_target=0.0,
    student_train=TrainConfig(lr=2e-3, warmup_steps=20, total_steps=400, batch_size=32,
                              final_lr_ratio=0.1),
    lrs=(2e-3,), methods=tuple(m for m in METHODS if m != "mixed_fkl_lambda0.5"))


PRESETS = {
    "smoke": GKDConfig(
        num_seeds=1, task_args="steps=(3, 4), modulus=10, human_loose_prob=0.0",
        train_problems=60, eval_problems=16,
        student=ModelSize(d_model=8, n_layers=1, n_heads=2),
        student_init_steps=10, student_init_target=0.0,
        student_train=TrainConfig(lr=1e-2, warmup_steps=2, total_steps=10, batch_size=8),
        lrs=(1e-2,), methods=("sft", "supervised_kd", "gkd_beta0"),
        eval_samples=1, sample_batch=16, chunk_steps=10,
    ),
    "default": GKDConfig(),
    "addition": _ADDITION,
    "paper": GKDConfig(
        num_seeds=5, train_problems=20000, eval_problems=1000,
        student=ModelSize(d_model=64, n_layers=2, n_heads=4),
        student_train=TrainConfig(lr=3e-3, warmup_steps=100, total_steps=3000,
                                  batch_size=64, final_lr_ratio=0.1),
        lrs=(3e-4, 1e-3, 3e-3), methods=tuple(m for m in METHODS if m != "seqkd"),
        eval_samples=8, sample_batch=4096,
    ),
}


RECIPE = Recipe(
    name="gkd",
    description="GKD: on-policy distillation with generalized JSD beats supervised KD/SFT",
    config_cls=GKDConfig,
    presets=PRESETS,
    run=run,
    report=report,
    phases=phases,
)
