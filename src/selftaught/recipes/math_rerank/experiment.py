"""math-rerank: its building steps (setting, trainers, evaluator training and checkpoint
choice, sampling, selector metrics)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from selftaught.lm.data import TaskSetting, stack_rows, task_setting
from selftaught.lm.generate import Samples
from selftaught.lm.metrics import (
    maj_at_k,
    pass_at_k,
    ranking_accuracy,
    rerank_at_k,
)
from selftaught.lm.train import (
    TrainConfig,
    cached_trainer,
    fit,
    make_evaluator_loss,
    make_sft_loss,
)
from selftaught.recipes.math_rerank.config import (  # noqa: F401
    EVALUATORS,
    STAGES,
    STYLES,
    MathRerankConfig,
)
from selftaught.recipes.math_rerank.report import (  # noqa: F401
    EVENTS,
    _finished,
    _gate,
    _selection_md,
    report,
)


def make_setting(config: MathRerankConfig, seed: int) -> TaskSetting:
    """The task setting of one seed: sft_problems + pool_problems training problems,
    eval_problems test problems and valid_problems validation problems (disjoint splits)."""
    n_train = config.sft_problems + config.pool_problems
    s = task_setting(config.task, config.task_args, config.model, 0, n_train,
                     config.eval_problems, seed)
    return dataclasses.replace(s, valid=s.task.problems("valid", config.valid_problems, seed))


def terse(solution: str) -> str:
    """The terse style of a solution: its final line only (`=ANSWER`)."""
    return solution.rstrip().rsplit("\n", 1)[-1]


def _stack(trees):
    return jax.tree_util.tree_map(lambda *x: np.stack([np.asarray(a) for a in x]), *trees)


def _unstack(tree, n: int):
    return [jax.tree_util.tree_map(lambda x, i=i: x[i], tree) for i in range(n)]


def train_pair(train_cfg: TrainConfig, s: TaskSetting, inits: list, datas: list[dict], key,
               chunk: int, label: str):
    """Two SFT runs (one init and one dataset each, same shapes) as one vmapped program."""
    sft = cached_trainer(make_sft_loss, s.model_cfg, train_cfg, train_cfg.z_loss)
    keys = jax.random.split(key, len(inits))
    states = jax.vmap(sft.init)(keys, _stack(inits))
    states, losses = fit(sft, states, stack_rows(datas), train_cfg.total_steps, chunk=chunk,
                         seeds=True, description=label)
    return _unstack(states.params, len(inits)), losses[:, -50:].mean(axis=1)


def train_evaluator(config: MathRerankConfig, s: TaskSetting, pairs: list, init, kind: str,
                    key, label: str) -> tuple[list, dict]:
    """E = evaluator FT of `init` on (pool index, correct, incorrect) pairs: one training run,
    its parameters kept at each of `evaluator_checkpoints` -> ([params per checkpoint],
    {"{kind}_loss_{steps}", "{kind}_train_pair_accuracy_{steps}": means over the last 50
    steps before each checkpoint})."""
    problems = s.train[config.sft_problems:]
    rows = s.pack_pairs([problems[i] for i, _, _ in pairs], [c for _, c, _ in pairs],
                        [r for _, _, r in pairs],
                        capacity=len(problems) * config.max_pairs_per_problem)
    yes, no = verdict_ids(config, s)
    ev = cached_trainer(make_evaluator_loss, s.model_cfg, config.evaluator, yes, no, kind,
                        config.margin)
    ck = config.evaluator_checkpoints
    # one chunk length dividing every segment between checkpoints: a single compile
    chunk = min(config.chunk_steps, int(np.gcd.reduce(np.diff((0, *ck)))))
    state, done, params, losses, accs = ev.init(key, init), 0, [], [], []
    for steps in ck:
        state, seg_loss, aux = fit(ev, state, rows, steps - done, chunk=chunk, aux=True,
                                   description=f"{label}, steps {done}-{steps}")
        params.append(state.params)
        losses.append(seg_loss)
        accs.append(aux["pair_accuracy"])
        done = steps
    losses, accs = np.concatenate(losses), np.concatenate(accs)
    st = {}
    for steps in ck:
        st[f"{kind}_loss_{steps}"] = float(losses[max(0, steps - 50):steps].mean())
        st[f"{kind}_train_pair_accuracy_{steps}"] = float(accs[max(0, steps - 50):steps].mean())
    return params, st


def choose_checkpoint(valid_pair_accuracy) -> int:
    """Index of the best validation pair accuracy (ties, and NaN = no validation problem with
    both a correct and an incorrect candidate: the fewest steps)."""
    acc = np.nan_to_num(np.asarray(valid_pair_accuracy, np.float64), nan=-np.inf)
    return int(np.argmax(acc))


def _texts(s: TaskSetting, tokens: np.ndarray) -> list[list[str]]:
    P, n, L = tokens.shape
    flat = s.tok.decode_batch(tokens.reshape(P * n, L))
    return [flat[i * n:(i + 1) * n] for i in range(P)]


def candidate_rows(s: TaskSetting, problems: list, tokens: np.ndarray) -> dict:
    """Evaluator rows "BOS problem SEP candidate EOS" for candidates tokens [P, N, L]."""
    texts = _texts(s, tokens)
    N = tokens.shape[1]
    return s.pack([p for p in problems for _ in range(N)], [t for ts in texts for t in ts])


def verdict_ids(config: MathRerankConfig, s: TaskSetting) -> tuple[int, int]:
    return tuple(s.tok.encode(config.verdict))


def sample(config: MathRerankConfig, s: TaskSetting, params, problems: list, n: int, key,
           greedy: bool = False, label: str = "sampling") -> Samples:
    return s.sample(params, problems, n, key, temperature=config.temperature,
                    top_k=config.top_k, batch_size=config.sample_batch, greedy=greedy,
                    description=label)


def greedy_pass1(config, s: TaskSetting, params, key, label: str) -> float:
    return float(sample(config, s, params, s.test, 1, key, greedy=True, label=label)
                 .correct.mean())


def selector_metrics(config: MathRerankConfig, answers, correct, targets, scores: dict,
                     seed: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Accuracy of every selector at every k (the same k-subsets for all of them), and
    at k = claim_k each selector's per-problem accuracy (for the paired bootstrap over test
    problems): ({"maj_4": ..., "top8_ce_64": ...}, {"maj": [P values], "top8_ce": ...})."""
    P, N = correct.shape
    out, per = {"sample_acc": float(correct.mean())}, {}
    for k in config.ks:
        kw = dict(max_subsets=config.vote_repeats, seed=seed * 1000 + k)
        sel = {"maj": functools.partial(maj_at_k, answers, targets, k, **kw)}
        for name, sc in scores.items():
            sel[f"all_{name}"] = functools.partial(rerank_at_k, answers, sc, targets, k,
                                                   aggregate="max", **kw)
            sel[f"weighted_{name}"] = functools.partial(rerank_at_k, answers, sc, targets, k,
                                                        aggregate="sum", **kw)
            for K in config.top_clusters:
                sel[f"top{K}_{name}"] = functools.partial(
                    rerank_at_k, answers, sc, targets, k, top_clusters=K,
                    aggregate=config.cluster_aggregate, **kw)
        out[f"passk_{k}"] = float(np.mean(pass_at_k(N, correct.sum(1), k)))
        for name, fn in sel.items():
            if k == config.claim_k:
                per[name] = np.round(fn(per_problem=True), 6).tolist()
                out[f"{name}_{k}"] = float(np.mean(per[name]))
            else:
                out[f"{name}_{k}"] = fn()
    for name, sc in scores.items():
        out[f"{name}_test_pair_accuracy"] = ranking_accuracy(sc, correct)
    return out, per


