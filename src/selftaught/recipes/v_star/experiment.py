"""v-star: its building steps (trainers, sampling, the gate, the oracle and the evaluation)."""

from __future__ import annotations

import jax
import numpy as np

from selftaught.lm.data import (
    TaskSetting,
    add_columns,
    task_setting,
)
from selftaught.lm.generate import Samples
from selftaught.lm.metrics import (
    auroc,
    best_of_k,
    maj_at_k,
    pass_at_k,
    ranking_accuracy,
)
from selftaught.lm.train import (
    PRM_AGGREGATES,
    cached_trainer,
    fit,
    make_dpo_loss,
    make_orm_loss,
    make_prm_loss,
    make_sft_loss,
    orm_init,
    orm_scores,
    prm_aggregate,
    prm_scores,
    sequence_logprobs,
)
from selftaught.recipes.v_star.config import (  # noqa: F401
    VStarConfig,
)
from selftaught.recipes.v_star.report import (  # noqa: F401
    _evals,
    _gate,
    report,
)


def make_setting(config: VStarConfig, seed: int) -> TaskSetting:
    return task_setting(config.task, config.task_args, config.model, config.human_problems,
                        config.train_problems, config.eval_problems, seed,
                        valid_problems=config.valid_problems)


def pack_steps(s: TaskSetting, problems: list, texts: list[str]) -> dict:
    """`s.pack` rows plus the true step labels of each (clipped) text (`task.step_labels`):
    step_mask / step_label [N, T], 1 at the token that ends each written step (the EOS for
    the final line), the label 1 iff that step is correct given the previous written state."""
    rows = s.pack(problems, texts)
    n, T = len(texts), rows["tokens"].shape[1]
    mask, label = np.zeros((n, T), np.float32), np.zeros((n, T), np.float32)
    for i, (p, text) in enumerate(zip(problems, texts)):
        at = 2 + len(s.task.prompt(p))  # BOS prompt SEP: the completion's first column
        for offset, ok in s.task.step_labels(p, s.clip(text)):
            mask[i, at + offset], label[i, at + offset] = 1.0, float(ok)
    return add_columns(rows, step_mask=mask, step_label=label)


def train_sft(config: VStarConfig, s: TaskSetting, rows: dict, key, params, label: str):
    sft = cached_trainer(make_sft_loss, s.model_cfg, config.sft, config.sft.z_loss)
    state, losses = fit(sft, sft.init(key, params), rows, config.sft.total_steps,
                        chunk=config.chunk_steps, description=label)
    return state.params, float(losses[-50:].mean())


def train_dpo(config: VStarConfig, s: TaskSetting, pairs: list, g_sft, key, label: str):
    """V = DPO(init G_sft, reference G_sft) on (problem, chosen, rejected) pairs."""
    rows = s.pack_pairs([s.train[i] for i, _, _ in pairs], [c for _, c, _ in pairs],
                        [r for _, _, r in pairs],
                        capacity=len(s.train) * config.max_pairs_per_problem)
    n = len(pairs)
    ref_c = sequence_logprobs(g_sft, s.model_cfg, rows["chosen_tokens"][:n],
                              rows["chosen_mask"][:n])
    ref_r = sequence_logprobs(g_sft, s.model_cfg, rows["rejected_tokens"][:n],
                              rows["rejected_mask"][:n])
    rows = add_columns(rows, ref_chosen_lp=ref_c, ref_rejected_lp=ref_r)
    dpo = cached_trainer(make_dpo_loss, s.model_cfg, config.verifier, config.dpo_beta)
    state, losses, aux = fit(dpo, dpo.init(key, g_sft), rows, config.verifier.total_steps,
                             chunk=config.chunk_steps, description=label, aux=True)
    return state.params, {"dpo_loss": float(losses[-50:].mean()),
                          "dpo_reward_accuracy": float(aux["reward_accuracy"][-50:].mean())}


def train_orm(config: VStarConfig, s: TaskSetting, problems: list, texts: list[str],
              labels: np.ndarray, g_sft, key, label: str):
    rows = s.pack(problems, texts, label=labels.astype(np.float32))
    orm = cached_trainer(make_orm_loss, s.model_cfg, config.verifier)
    state, losses, aux = fit(orm, orm.init(key, orm_init(g_sft, s.model_cfg)), rows,
                             config.verifier.total_steps, chunk=config.chunk_steps,
                             description=label, aux=True)
    return state.params, {"orm_loss": float(losses[-50:].mean()),
                          "orm_accuracy": float(aux["accuracy"][-50:].mean())}


def train_oracle(config: VStarConfig, s: TaskSetting, problems: list, texts: list[str],
                 g_sft, key, label: str):
    """The oracle verifier: G_sft + a head, BCE on true per-step labels (`pack_steps`)."""
    rows = pack_steps(s, problems, texts)
    prm = cached_trainer(make_prm_loss, s.model_cfg, config.verifier)
    state, losses, aux = fit(prm, prm.init(key, orm_init(g_sft, s.model_cfg)), rows,
                             config.verifier.total_steps, chunk=config.chunk_steps,
                             description=label, aux=True)
    return state.params, {
        "oracle_loss": float(losses[-50:].mean()),
        "oracle_step_accuracy": float(aux["step_accuracy"][-50:].mean()),
        "step_error_rate": float(1 - rows["step_label"].sum() / rows["step_mask"].sum())}


def oracle_eval(config: VStarConfig, s: TaskSetting, gen, oracle, cand: Samples, key,
                out: dict) -> np.ndarray:
    """The oracle verifier's scores [P, N] of the test candidates. How a solution's step
    logits become one score (`lm.train.PRM_AGGREGATES`) is chosen by within-problem AUROC on
    as many candidates per VALIDATION problem (index `oracle_aggregate`, its validation
    AUROCs `auroc_oracle_valid_<how>`); the test AUROC of every aggregate is logged as a
    diagnostic (`auroc_oracle_<how>`), `auroc_oracle` / `bok_oracle_k` use the chosen one."""
    val = sample(config, s, gen, s.valid, config.candidates, key, label="validation candidates")
    P, N = cand.correct.shape

    def logits(problems, smp):
        steps = pack_steps(s, [p for p in problems for _ in range(N)],
                           [t for ts in smp.texts for t in ts])
        return steps, prm_scores(oracle, s.model_cfg, steps["tokens"])

    v_steps, v_z = logits(s.valid, val)
    t_steps, t_z = logits(s.test, cand)
    valid_auroc = [ranking_accuracy(prm_aggregate(v_z, v_steps["step_mask"], how)
                                    .reshape(len(s.valid), N), val.correct)
                   for how in PRM_AGGREGATES]
    test_scores = [prm_aggregate(t_z, t_steps["step_mask"], how).reshape(P, N)
                   for how in PRM_AGGREGATES]
    best = int(np.argmax(np.nan_to_num(valid_auroc, nan=-1.0)))
    for how, va, ts in zip(PRM_AGGREGATES, valid_auroc, test_scores):
        out[f"auroc_oracle_valid_{how}"] = va
        out[f"auroc_oracle_{how}"] = ranking_accuracy(ts, cand.correct)
    out["oracle_aggregate"] = best
    out["auroc_oracle"] = out[f"auroc_oracle_{PRM_AGGREGATES[best]}"]
    out.update(step_diagnostics(t_steps, t_z, cand.correct))
    return test_scores[best]


def step_diagnostics(steps: dict, z_NxT, correct_PxN) -> dict[str, float]:
    """What limits a process verifier on the test candidates (`pack_steps` rows, the oracle's
    logits z): `auroc_true_steps`, the within-problem AUROC of the TRUE labels' min (every
    step right = 1, else 0: the ceiling of any verifier that checks steps); `lucky_correct`,
    the fraction of correct candidates with a wrong step (right by luck: no step checker
    can tell them from wrong ones); `oracle_step_accuracy_test` and `oracle_step_auroc_test`,
    how well the oracle classifies the written steps of these unseen candidates."""
    P, N = correct_PxN.shape
    m = steps["step_mask"][:P * N] > 0
    y = steps["step_label"][:P * N]
    true_min = np.where(m, y, 1.0).min(-1).reshape(P, N)
    correct = np.asarray(correct_PxN, bool)
    z, yy = z_NxT[m], y[m] > 0.5
    return {"auroc_true_steps": ranking_accuracy(true_min, correct),
            "lucky_correct": float((true_min[correct] < 1).mean()) if correct.any()
            else float("nan"),
            "oracle_step_accuracy_test": float(np.mean((z > 0) == yy)),
            "oracle_step_auroc_test": auroc(z, yy)}


def sample(config: VStarConfig, s: TaskSetting, params, problems: list, n: int, key,
           greedy: bool = False, label: str = "sampling") -> Samples:
    return s.sample(params, problems, n, key, temperature=config.temperature,
                    top_k=config.top_k, batch_size=config.sample_batch, greedy=greedy,
                    description=label)


def log_gate(log, config: VStarConfig, s: TaskSetting, gen, key, seed: int, t: int) -> None:
    """The generalisation gate of G_t (it samples the verifier data of iteration t + 1):
    sample accuracy on its own training problems vs on fresh validation problems."""
    train = s.train[:min(len(s.valid), len(s.human))]
    smp = sample(config, s, gen, train + s.valid, config.samples_per_problem, key,
                 label=f"seed {seed}: gate of G_{t} (train vs fresh)")
    log("gate", seed=seed, iteration=t, train_accuracy=float(smp.correct[:len(train)].mean()),
        fresh_accuracy=float(smp.correct[len(train):].mean()), train_problems=len(train),
        fresh_problems=len(s.valid))


def per_problem_ks(config: VStarConfig) -> list[int]:
    """The k values whose per-problem accuracies `evaluate` returns (the claims' k: claim_k,
    and 8 and N for DPO vs ORM)."""
    return sorted({config.claim_k, *(k for k in (8, max(config.ks)) if k in config.ks)})


def evaluate(config: VStarConfig, s: TaskSetting, gen, verifier, g_sft, key, seed: int,
             orm=None, oracle=None) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Greedy pass@1 of the generator, and on N sampled candidates per test problem:
    Best-of-k with the DPO verifier (and the ORM), maj@k, pass@k, for every k in config.ks,
    and each verifier's within-problem AUROC (`auroc_dpo`, `auroc_orm`: the fraction of
    (correct, incorrect) candidate pairs of one test problem it orders right; 0.5 = chance),
    the ranking quality that caps what Best-of-k can gain over a random candidate; with the
    oracle (process-supervised) verifier also its `bok_oracle_k` and `auroc_oracle`.
    Second: each test problem's own value (float [P] lists, for the paired bootstrap over
    test problems) of greedy pass@1 (`pass1`) and of every selector at `per_problem_ks`; the
    scalar metrics are their means."""
    greedy = sample(config, s, gen, s.test, 1, key, greedy=True, label="greedy pass@1")
    cand = sample(config, s, gen, s.test, config.candidates, jax.random.fold_in(key, 1),
                  label="test candidates")
    P, N = cand.correct.shape
    rows = s.pack([p for p in s.test for _ in range(N)],
                 [t for ts in cand.texts for t in ts])
    lp_v = sequence_logprobs(verifier, s.model_cfg, rows["tokens"], rows["loss_mask"])
    lp_ref = sequence_logprobs(g_sft, s.model_cfg, rows["tokens"], rows["loss_mask"])
    dpo_score = (config.dpo_beta * (lp_v - lp_ref)).reshape(P, N)
    targets = [p.answer for p in s.test]
    out = {"pass1": float(greedy.correct.mean()), "sample_acc": float(cand.correct.mean())}
    out["auroc_dpo"] = ranking_accuracy(dpo_score, cand.correct)
    if orm is not None:
        orm_score = orm_scores(orm, s.model_cfg, rows["tokens"]).reshape(P, N)
        out["auroc_orm"] = ranking_accuracy(orm_score, cand.correct)
    if oracle is not None:
        oracle_score = oracle_eval(config, s, gen, oracle, cand, jax.random.fold_in(key, 2),
                                   out)
    per = {"pass1": greedy.correct[:, 0].astype(np.float64)}
    for k in config.ks:
        sel = {"bok_dpo": best_of_k(dpo_score, cand.correct, k),
               "maj": maj_at_k(cand.answers, targets, k, max_subsets=config.vote_repeats,
                               seed=seed * 1000 + k, per_problem=True)}
        if orm is not None:
            sel["bok_orm"] = best_of_k(orm_score, cand.correct, k)
        if oracle is not None:
            sel["bok_oracle"] = best_of_k(oracle_score, cand.correct, k)
        for name, values in sel.items():
            out[f"{name}_{k}"] = float(np.mean(values))
            if k in per_problem_ks(config):
                per[f"{name}_{k}"] = values
        out[f"passk_{k}"] = float(np.mean(pass_at_k(N, cand.num_correct, k)))
    return out, {name: np.round(v, 6).tolist() for name, v in per.items()}


