"""GKD: the setting (task, teacher, student), the SFT'd starting student and each method's
student, trained and evaluated per seed (the first seed also per learning rate)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from selftaught.core import check
from selftaught.core.errors import ConfigError
from selftaught.lm import init_params
from selftaught.lm.data import pad_rows, task_setting
from selftaught.lm.distill import (
    make_distill_loss,
    prompt_completion_rows,
    teacher_model,
)
from selftaught.lm.generate import generate
from selftaught.lm.tokenizer import EOS
from selftaught.lm.train import fit, make_sft, make_sft_loss, make_trainer
from selftaught.recipes.gkd.config import (
    METHODS,
    GKDConfig,
)
from selftaught.tasks.chain import STEP_TOKENS, ChainTask, algorithmic_teacher


@dataclasses.dataclass
class Setting:
    s: object  # lm.data.TaskSetting
    teacher_cfg: object
    student_cfg: object
    prompt_len: int
    ground: dict  # rows: tokens, loss_mask, prompt, prompt_mask, weight
    teacher_fn: object = None  # the algorithmic teacher (tokens_BxT -> logits_BxTxV) or None


def make_setting(config: GKDConfig) -> Setting:
    s = task_setting(config.task, config.task_args, config.student, 0, config.train_problems,
                     config.eval_problems, config.seed)
    P = s.task.max_prompt_len + 2
    teacher_cfg = config.teacher.config(s.tok.vocab_size, s.model_cfg.max_len)
    prompts = [s.task.prompt(p) for p in s.train]
    ground = pad_rows(prompt_completion_rows(
        s.tok, prompts, [s.task.reference_solution(p) for p in s.train], P, s.max_new))
    fn = None
    if config.teacher_kind == "algorithmic":
        if not isinstance(s.task, ChainTask):
            raise ConfigError(f"the algorithmic teacher needs --task chain (got "
                              f"{config.task!r}); use --teacher-kind learned for other tasks")
        fn = algorithmic_teacher(s.task, {c: s.tok.encode(c)[0] for c in s.task.alphabet},
                                 EOS, s.tok.vocab_size, P, config.teacher_eps)
    return Setting(s, teacher_cfg, s.model_cfg, P, ground, fn)


def teacher_rows(st: Setting, teacher_params, key) -> tuple[dict, float]:
    """SeqKD data: the teacher's greedy solutions of the training prompts (+ its accuracy)."""
    s = st.s
    out = generate(teacher_params, st.teacher_cfg, s.tok, s.task, s.train, 1, key, greedy=True,
                   description="teacher samples")
    rows = prompt_completion_rows(s.tok, [s.task.prompt(p) for p in s.train],
                                  [t[0] for t in out.texts], st.prompt_len, s.max_new)
    return pad_rows(rows), float(out.correct.mean())


def make_trainers(config: GKDConfig, st: Setting, teacher) -> dict:
    """One trainer per (method, lr) (built once per run, so each compiles once for all
    seeds), plus "init": the SFT that makes the common starting student."""
    out = {}
    for method in config.methods:
        kind, beta, lam, _ = METHODS[method]
        loss = make_sft_loss(st.student_cfg) if kind == "xent" else make_distill_loss(
            st.student_cfg, st.teacher_cfg, teacher, kind=kind, beta=beta, lam=lam,
            max_new_tokens=st.s.max_new, temperature=config.distill_temperature,
            teacher_fn=st.teacher_fn)
        for lr in config.lrs:
            out[method, lr] = make_trainer(loss, dataclasses.replace(config.student_train,
                                                                     lr=lr))
    steps = config.student_init_steps
    out["init"] = make_sft(st.student_cfg, dataclasses.replace(
        config.student_train, total_steps=steps,
        warmup_steps=min(config.student_train.warmup_steps, steps),
        final_lr_ratio=config.student_init_final_lr_ratio))
    return out


def step_errors(st: Setting, problems, tokens_NxL, mask_NxL) -> dict[str, list[int]]:
    """The exposure-bias curve's counts on one solution per problem (algorithmic teacher):
    step k is *reached* when the solution wrote its first token and *wrong* when one of its
    `STEP_TOKENS` tokens differs from the teacher's choice given the solution's own prefix
    (or is missing). -> step_reached [K], step_wrong [K], first_wrong [K + 1] (the last
    entry: solutions with no wrong step)."""
    s, P = st.s, st.prompt_len
    K, L = s.task.steps[1], tokens_NxL.shape[1]
    enc = s.tok.encode_prompts([s.task.prompt(p) for p in problems], P)
    rows = np.concatenate([enc["tokens"], tokens_NxL], axis=1)
    want = np.asarray(_argmax(st.teacher_fn, rows))[:, P - 1:P - 1 + L]
    bad = (want != tokens_NxL) | ~mask_NxL
    n_N = np.array([len(p.operands) // 2 for p in problems])
    off = STEP_TOKENS * np.arange(K)
    reached = (off[None] < L) & mask_NxL[:, np.minimum(off, L - 1)] & (np.arange(K) < n_N[:, None])
    pad = np.pad(bad, ((0, 0), (0, STEP_TOKENS * K - min(L, STEP_TOKENS * K))),
                 constant_values=True)[:, :STEP_TOKENS * K]
    wrong = pad.reshape(len(problems), K, STEP_TOKENS).any(-1) & reached
    first = np.where(wrong.any(1), wrong.argmax(1), K)
    return dict(step_reached=reached.sum(0).tolist(), step_wrong=wrong.sum(0).tolist(),
                first_wrong=np.bincount(first, minlength=K + 1).tolist())


@functools.partial(jax.jit, static_argnums=0)
def _argmax(fn, tokens_BxT):
    return fn(tokens_BxT).argmax(-1)


def evaluate(config: GKDConfig, st: Setting, cfg, params, key, *,
             validation: bool = True) -> dict:
    """Greedy and temperature-1 accuracy on the test problems (greedy_acc, t1_acc) and, with
    `validation`, on the disjoint validation problems (val_greedy_acc, val_t1_acc): lr and β
    are chosen on the latter, the claims report the former. With the algorithmic teacher,
    also `step_errors` of the greedy test solutions."""
    s = st.s
    out = {}
    splits = [("", s.test), *([("val_", s.valid)] if validation else [])]
    for j, (prefix, problems) in enumerate(splits):
        k = key if j == 0 else jax.random.fold_in(key, 100)  # test: the keys used before
        g = generate(params, cfg, s.tok, s.task, problems, 1, k, greedy=True,
                     batch_size=config.sample_batch, description=f"eval {prefix}greedy")
        t1 = generate(params, cfg, s.tok, s.task, problems, config.eval_samples,
                      jax.random.fold_in(k, 1), temperature=1.0,
                      batch_size=config.sample_batch, description=f"eval {prefix}T=1")
        out[f"{prefix}greedy_acc"] = float(g.correct.mean())
        out[f"{prefix}t1_acc"] = float(t1.correct.mean())
        if j == 0 and st.teacher_fn is not None:
            out.update(step_errors(st, problems, g.tokens[:, 0], g.mask[:, 0]))
    return out


def run(config: GKDConfig, run_dir, seeds: list[int]) -> None:
    st = make_setting(config)
    root = jax.random.PRNGKey(config.seed)
    data = {"ground": st.ground}
    teacher = None
    if config.teacher_kind == "learned":
        t_like = init_params(st.teacher_cfg, jax.random.fold_in(root, 0))
        teacher = run_dir.phase("teacher", train_teacher, config, st, root, t_like,
                                restore=t_like)
        data["teacher"], _ = teacher_rows(st, teacher, jax.random.fold_in(root, 3))
    trainers = make_trainers(config, st, teacher)
    for seed in seeds:
        run_seed(config, run_dir, st, seed, seeds[0], data, trainers)


def train_teacher(log, config: GKDConfig, st: Setting, root, like):
    """The fixed learned teacher p_T: SFT of the large model on ground truth (or a given
    checkpoint)."""
    params, loss = teacher_model(like, checkpoint=config.teacher_checkpoint,
                                 model_cfg=st.teacher_cfg, train_cfg=config.teacher_train,
                                 data=st.ground, key=jax.random.fold_in(root, 1),
                                 chunk=config.chunk_steps, description="teacher SFT")
    ev = evaluate(config, st, st.teacher_cfg, params, jax.random.fold_in(root, 2),
                  validation=False)
    log("eval", model="teacher", seed=config.seed, final_loss=loss, **ev)
    return params


def choose_lr(evals, method: str, lrs) -> float:
    """The lr of `lrs` whose first-seed `method` student has the best validation greedy
    accuracy (the first one on ties). `evals`: that seed's eval events of `method`."""
    val = {e["lr"]: e["val_greedy_acc"] for e in evals if e["model"] == method}
    missing = [lr for lr in lrs if lr not in val]
    check(not missing, f"no first-seed evaluation of {method} at lr {missing}; the run is "
          "unfinished: continue it with --resume")
    return max(lrs, key=lambda lr: val[lr])


def run_seed(config: GKDConfig, run_dir, st: Setting, seed: int, first: int, data,
             trainers) -> None:
    key = jax.random.PRNGKey(seed + 1000)
    like = init_params(st.student_cfg, jax.random.fold_in(key, 0))
    start = run_dir.phase(f"seed{seed}/init", init_student, config, st, seed, key, like,
                          data, trainers, restore=like)
    for method in config.methods:
        if seed == first:
            for lr in config.lrs:
                run_dir.phase(f"seed{seed}/{method}/lr{lr:g}", train_student, config, st,
                              seed, key, method, lr, start, data, trainers)
        else:
            lr = choose_lr(run_dir.events("eval", seed=first), method, config.lrs)
            run_dir.phase(f"seed{seed}/{method}", train_student, config, st, seed, key,
                          method, lr, start, data, trainers)


def init_student(log, config: GKDConfig, st: Setting, seed: int, key, like, data, trainers):
    """student0 = SFT(small model, ground truth) in chunks of `chunk_steps`, stopped at the
    first chunk whose validation greedy accuracy reaches `student_init_target` (at most
    `student_init_steps` steps); evaluated."""
    sft = trainers["init"]
    state, done = sft.init(jax.random.fold_in(key, 1), like), 0
    s = st.s
    while done < config.student_init_steps:
        n = min(config.chunk_steps, config.student_init_steps - done)
        state, _ = fit(sft, state, data["ground"], n, chunk=n,
                       description=f"seed {seed}: student init {done}+{n}")
        done += n
        if config.student_init_target > 0:
            val = generate(state.params, st.student_cfg, s.tok, s.task, s.valid, 1,
                           jax.random.fold_in(key, 4), greedy=True,
                           batch_size=config.sample_batch, description="init: val greedy")
            log("init_progress", seed=seed, step=done, val_greedy_acc=float(val.correct.mean()))
            if val.correct.mean() >= config.student_init_target:
                break
    ev = evaluate(config, st, st.student_cfg, state.params, jax.random.fold_in(key, 2))
    log("eval", model="init", seed=seed, init_steps=done, **ev)
    log.headline(val_greedy_acc=ev["val_greedy_acc"], steps=done)
    return state.params


def train_student(log, config: GKDConfig, st: Setting, seed: int, key, method: str, lr: float,
                  start, data, trainers) -> None:
    """One method's student at one lr, trained from student0 and evaluated (no checkpoint).
    Its keys depend on the method only (every lr sees the same batches and samples)."""
    i = list(METHODS).index(method)  # the key does not depend on the subset chosen
    trainer = trainers[method, lr]
    state, losses = fit(trainer, trainer.init(jax.random.fold_in(key, 10 + i), start),
                        data[METHODS[method][3]], config.student_train.total_steps,
                        chunk=config.chunk_steps, description=f"seed {seed}: {method} lr {lr:g}")
    ev = evaluate(config, st, st.student_cfg, state.params, jax.random.fold_in(key, 3))
    log("eval", model=method, seed=seed, lr=lr, final_loss=float(losses[-50:].mean()), **ev)
    log.headline(val_greedy_acc=ev["val_greedy_acc"])
