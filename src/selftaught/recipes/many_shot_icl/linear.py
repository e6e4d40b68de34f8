"""Many-shot ICL experiment 4: linear classification in context against kNN and
logistic regression on the same shots, and its report."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.lm import BOS
from selftaught.lm.tokenizer import NUM_SPECIAL
from selftaught.lm.train import fit
from selftaught.recipes.many_shot_icl.config import ManyShotConfig, _cells, linear_shots_for
from selftaught.recipes.many_shot_icl.reasoning import _left_pad
from selftaught.recipes.many_shot_icl.rules import _score_seeds, meta_trainer
from selftaught.tasks.icl import LinearClassFamily, shot_baselines


@functools.lru_cache(maxsize=8)
def make_linear_train(config: ManyShotConfig, d: int):
    family = LinearClassFamily(d, config.linear_levels)
    cfg = config.linear_model.config(NUM_SPECIAL + len(family.alphabet), config.linear_context)
    (trainer,) = meta_trainer(family, cfg, config.linear_train,
                              [(config.linear_train.batch_size, config.linear_context)])
    return family, cfg, trainer


def evaluate_linear(config: ManyShotConfig, d: int, params_S, seeds: list[int]) -> dict:
    """-> {k: dict(icl, knn, logistic) accuracies [seeds]} on held-out planes."""
    family, cfg, _ = make_linear_train(config, d)
    shots, Q = linear_shots_for(config, d), config.linear_queries
    bucket = min(256, config.linear_context)
    tid = lambda p: NUM_SPECIAL + family.alphabet.index(p.answer)
    arrays = {k: [] for k in shots}
    base = {k: {"knn": [], "logistic": []} for k in shots}
    for s in seeds:
        rows = {k: [] for k in shots}
        for k in shots:
            for m in base[k].values():
                m.append([])
        for i, task in enumerate(family.instances("test", config.linear_eval_tasks, s)):
            train = task.problems("train", max(shots), seed=10_000 * s + i)
            test = task.problems("test", Q, seed=10_000 * s + i)
            xq = task.features(test)
            yq = np.array([int(p.answer) for p in test])
            query = np.array([list(p.operands) for p in test]) + NUM_SPECIAL
            for k in shots:
                row = [BOS] + [t for p in train[:k]
                               for t in [*(np.array(p.operands) + NUM_SPECIAL), tid(p)]]
                rows[k].append((row, query, [tid(p) for p in test]))
                x, y = task.features(train[:k]), np.array([int(p.answer) for p in train[:k]])
                acc = shot_baselines(x, y, xq, yq, l2=config.linear_l2, knn=config.linear_knn)
                for m in base[k]:
                    base[k][m][-1].append(acc[m])
        for k in shots:
            P = -(-(1 + (d + 1) * k) // bucket) * bucket
            prefix, _ = _left_pad([r[0] for r in rows[k]], P)
            arrays[k].append((prefix, np.stack([r[1] for r in rows[k]]),
                              np.array([r[2] for r in rows[k]], np.int32)))
    out = {}
    for k in shots:
        prefix, queries, target = (np.stack([a[j] for a in arrays[k]]) for j in range(3))
        pred, _ = jax.device_get(_score_seeds(cfg)(params_S, prefix_IxP=prefix,
                                                   pmask_IxP=prefix != 0,
                                                   query_IxQxL=queries.astype(np.int32),
                                                   target_IxQ=target))
        out[k] = dict(icl=(pred == target).mean((1, 2)),
                      **{m: np.mean(v, 1) for m, v in base[k].items()})
    return out


def run_linear(config: ManyShotConfig, run_dir, seeds: list[int]) -> None:
    """Experiment 4: per dimension, meta-train on linear classification, then evaluate
    against kNN and logistic regression on the same shots."""
    for d in config.linear_dims:
        _, _, trainer = make_linear_train(config, d)
        state = jax.vmap(trainer.init)(jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), d)
                                          for s in seeds]))
        state = run_dir.phase(f"linear/d{d}/train", linear_meta_train, config, d, state, seeds,
                              restore=state)
        run_dir.phase(f"linear/d{d}/eval", linear_eval, config, d, state.params, seeds)


def linear_meta_train(log, config: ManyShotConfig, d: int, state, seeds: list[int]):
    _, _, trainer = make_linear_train(config, d)
    state, losses = fit(trainer, state, {}, config.linear_train.total_steps, seeds=True,
                        description=f"linear meta-training (d={d})")
    for i, s in enumerate(seeds):
        log("linear_train", seed=s, d=d, loss=float(losses[i, -20:].mean()),
            first_loss=float(losses[i, 0]))
    return state


def linear_eval(log, config: ManyShotConfig, d: int, params_S, seeds: list[int]) -> None:
    for k, r in evaluate_linear(config, d, params_S, seeds).items():
        for i, s in enumerate(seeds):
            log("linear_eval", seed=s, d=d, shots=k, **{m: float(v[i]) for m, v in r.items()})


def report_linear(config: ManyShotConfig, run_dir, seeds: list[int]):
    methods = ("icl", "knn", "logistic")
    md = ["## 4. Linear classification in context vs kNN and logistic regression "
          "(test accuracy %)", "",
          f"{config.linear_eval_tasks} held-out planes x {config.linear_queries} test points "
          f"per seed; kNN k = min({config.linear_knn}, shots), logistic L2 = "
          f"{config.linear_l2}; all fitted on the same shots.", ""]
    last = {m: [] for m in methods}
    first_icl = []
    for d in config.linear_dims:
        shots = linear_shots_for(config, d)
        t = stats.collect(run_dir, "linear_eval", by={"seed": seeds, "shots": shots},
                          values=methods, where={"d": d})
        acc = {m: t[m] * 100 for m in methods}
        for m in methods:
            last[m].append(acc[m][:, -1])
        first_icl.append(acc["icl"][:, 0])
        stats.plot_curves(run_dir.plots / f"linear_d{d}.png", np.arange(len(shots)),
                          {m: acc[m] for m in methods}, xlabel="shot count index",
                          ylabel="test accuracy (%)",
                          title=f"d={d}, {len(seeds)} seed(s), 95% CI; x = shots {list(shots)}")
        md += [f"d = {d}:", "", stats.markdown_table(
            ["shots", *methods],
            [[k, *(_cells(acc[m][:, j]) for m in methods)] for j, k in enumerate(shots)])]
        md += ["", f"![d={d}](plots/linear_d{d}.png)", ""]
    last = {m: np.mean(v, 0) for m, v in last.items()}  # [seeds], mean over d
    claims = [stats.claim_greater(
        "linear_icl_rises_with_shots",
        "in-context linear classification: accuracy at each d's most shots exceeds its "
        "fewest (points, mean over d)",
        stats.paired_difference_ci(last["icl"], np.mean(first_icl, 0)),
        unit="training seeds")]
    for m in ("knn", "logistic"):
        claims.append(stats.claim_greater(
            f"linear_icl_matches_{m}",
            f"at each d's most shots in-context accuracy is within 5 points of {m} fitted on "
            "the same shots or above it (value: ICL - baseline, points, mean over d; holds "
            "if the CI is above -5)", stats.paired_difference_ci(last["icl"], last[m]), -5.0,
            unit="training seeds"))
    return claims, md
