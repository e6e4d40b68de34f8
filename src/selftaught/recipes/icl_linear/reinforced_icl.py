"""icl-linear experiment 2: reinforced and unsupervised ICL on the trained model (the
many-shot ICL paper's reinforced / unsupervised ICL, issue 26 item 3): evaluation only, no
training; see the package docstring. And its report."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.core import programs as programs_lib
from selftaught.core.seeding import stream_keys
from selftaught.lm.model import Transformer
from selftaught.recipes.icl_linear.config import IclLinearConfig, model_config
from selftaught.tasks.icl import context_inputs, shot_baselines

ARMS = ("ground_truth", "self_labelled", "reinforced", "unsupervised")
LABELLED = ARMS[:3]  # the arms with labels (logistic regression fits their shots)


def query_logits(params, cfg, x_NxkxD, y_Nxk, q_NxMxD, carry: bool):
    """Label logits [N, M, 2] of M queries, each after the same k shots of its row, in one
    forward of k + M tokens: the query tokens are masked as keys (no query sees another;
    each attends the k shots and itself) and all sit at position k, so each equals the last
    token of a k + 1-token sequence [shots, query] (tests check it)."""
    (N, k), M = y_Nxk.shape, q_NxMxD.shape[1]
    inputs = context_inputs(x_NxkxD, y_Nxk, q_NxMxD, carry)
    mask = jnp.broadcast_to(jnp.arange(k + M) < k, (N, k + M))
    pos = jnp.broadcast_to(jnp.minimum(jnp.arange(k + M), k), (N, k + M))
    logits = Transformer(cfg).apply(params, jnp.zeros((N, k + M), jnp.int32), pos, mask,
                                    vectors_BxTxI=inputs)
    return logits[:, k:, :2]


def verify_and_select(own_BxP, true_BxP, k: int):
    """The verification filter of reinforced ICL: a pool input is kept when the model's own
    label equals the true one. -> (kept [B, P] bool, idx [B, k] the first k kept inputs in
    pool order, count [B] kept per row). A row with fewer than k kept inputs repeats them
    cyclically; a row with none repeats pool input 0 (unverified). Both are reported (the
    run logs the fraction of rows short of k and the fewest kept)."""
    kept = own_BxP == true_BxP
    order = jnp.argsort(jnp.logical_not(kept).astype(jnp.int32), axis=-1, stable=True)
    count = kept.sum(-1)
    slot = jnp.arange(k)[None] % jnp.maximum(count, 1)[:, None]
    return kept, jnp.take_along_axis(order, slot, -1), count


@programs_lib.cached(maxsize=4)
def reinforced_program(config: IclLinearConfig):
    """measure(params, keys), jitted and vmapped over seeds: `ricl_batch` held-out w each
    with a seed context (`seed_shots` labelled), a pool (`pool` inputs) and `queries`
    query points; the model labels the pool after the seed context, the four arms build
    max_shots-shot contexts from the pool, and each is scored at every shot count
    (0, *shots) on the same queries. -> {acc [B, arms, 1 + len(shots)], yield_ [B], count
    [B], margin [B, 2, len(shots)] (ground truth, reinforced), align [B, 3, len(shots)]
    (the labelled arms), x / y {arm: [B, max_shots, ...]} the labelled arms' shots, q_x / q_y
    the queries (for the host's logistic regression), and w, seed_x, pool_x, own (the
    model's labels of the pool) for checks}."""
    cfg, carry = model_config(config), config.carry
    B, P, Q, K, S, D = (config.ricl_batch, config.pool, config.queries, config.max_shots,
                        config.seed_shots, config.dim)

    def predict(params, x_NxkxD, y_Nxk, q_NxMxD):
        """The model's label (+-1) [N, M] of each of M queries after its row's k shots."""
        logits = query_logits(params, cfg, x_NxkxD, y_Nxk, q_NxMxD, carry)
        return jnp.where(logits[..., 1] > logits[..., 0], 1.0, -1.0)

    def measure(params, key):
        k_w, k_s, k_p, k_q = jax.random.split(key, 4)
        w_BxD = jax.random.normal(k_w, (B, D))
        label = lambda x: jnp.where(jnp.einsum("b...d,bd->b...", x, w_BxD) > 0, 1.0, -1.0)
        seed_x, pool_x = jax.random.normal(k_s, (B, S, D)), jax.random.normal(k_p, (B, P, D))
        q_x = jax.random.normal(k_q, (B, Q, D))
        pool_y, q_y = label(pool_x), label(q_x)
        own = predict(params, seed_x, label(seed_x), pool_x)   # the model labels the pool
        kept, idx, count = verify_and_select(own, pool_y, K)
        take = lambda a: jnp.take_along_axis(a, idx.reshape(idx.shape + (1,) * (a.ndim - 2)),
                                             1)
        shots = {"ground_truth": (pool_x[:, :K], pool_y[:, :K]),
                 "self_labelled": (pool_x[:, :K], own[:, :K]),
                 "reinforced": (take(pool_x), take(own)),  # = true labels when kept
                 "unsupervised": (pool_x[:, :K], jnp.zeros((B, K)))}
        # the arms stacked on the batch axis: one forward per shot count
        x_AxB = jnp.concatenate([x for x, _ in shots.values()])
        y_AxB = jnp.concatenate([y for _, y in shots.values()])
        q_AxB, qy_AxB = jnp.tile(q_x, (len(ARMS), 1, 1)), jnp.tile(q_y, (len(ARMS), 1))
        zero = (predict(params, pool_x[:, :0], pool_y[:, :0], q_x) == q_y).mean(-1)
        acc = jnp.stack([(predict(params, x_AxB[:, :k], y_AxB[:, :k], q_AxB) == qy_AxB)
                         .mean(-1).reshape(len(ARMS), B) for k in config.shots], -1)
        acc = jnp.concatenate([jnp.broadcast_to(zero[:, None, None], (B, len(ARMS), 1)),
                               acc.transpose(1, 0, 2)], -1)
        dist = lambda x: jnp.abs(jnp.einsum("bkd,bd->bk", x, w_BxD)) / jnp.linalg.norm(
            w_BxD, axis=-1, keepdims=True)
        margin = jnp.stack([jnp.stack([dist(shots[a][0])[:, :k].mean(-1) for k in config.shots],
                                      -1) for a in ("ground_truth", "reinforced")], 1)
        unit = lambda v: v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-12)
        align = jnp.stack([jnp.stack([  # cos(w, sum_i y_i x_i) over the first k shots
            jnp.sum(unit(jnp.einsum("bk,bkd->bd", shots[a][1][:, :k], shots[a][0][:, :k]))
                    * unit(w_BxD), -1) for k in config.shots], -1) for a in LABELLED], 1)
        return {"acc": acc, "yield_": kept.mean(-1), "count": count, "margin": margin,
                "align": align,
                "x": {a: shots[a][0] for a in LABELLED}, "y": {a: shots[a][1] for a in LABELLED},
                "q_x": q_x, "q_y": q_y, "w": w_BxD, "seed_x": seed_x, "pool_x": pool_x,
                "own": own}

    return measure


def logistic_on_shots(x_NxKxD, y_NxK, q_NxQxD, qy_NxQ, shots, l2: float) -> np.ndarray:
    """Accuracy [len(shots)] of L2-penalised logistic regression fitted on the first k shots
    of each row (labels +-1) and scored on that row's queries, averaged over rows."""
    x, y = np.asarray(x_NxKxD, np.float64), np.asarray(y_NxK) > 0
    q, qy = np.asarray(q_NxQxD, np.float64), np.asarray(qy_NxQ) > 0
    return np.array([np.mean([shot_baselines(x[n, :k], y[n, :k], q[n], qy[n], l2=l2)["logistic"]
                              for n in range(len(x))]) for k in shots])


def reinforced(log, config: IclLinearConfig, seeds: list[int], params):
    """The four arms vs shots on fresh held-out w (stream 5: neither validation nor the test
    above), logistic regression on each labelled arm's shots, the yield and the margins."""
    measure, shots = reinforced_program(config), list(config.shots)
    acc, yld, count, margin, align, logit = [], [], [], [], [], []
    for r in range(config.ricl_rounds):
        m = jax.device_get(measure(params, stream_keys(seeds, 5, r)))
        acc.append(m["acc"].mean(1))
        yld.append(m["yield_"].mean(1))
        count.append(m["count"])
        margin.append(m["margin"].mean(1))
        align.append(m["align"].mean(1))
        logit.append([[logistic_on_shots(m["x"][a][j], m["y"][a][j], m["q_x"][j], m["q_y"][j],
                                         shots, config.l2) for a in LABELLED]
                      for j in range(len(seeds))])
    acc, margin, align = np.mean(acc, 0), np.mean(margin, 0), np.mean(align, 0)
    logit = np.mean(logit, 0)
    count = np.concatenate(count, 1)
    for j, seed in enumerate(seeds):
        log("ricl_pool", seed=seed, yield_=float(np.mean([y[j] for y in yld])),
            short=float((count[j] < config.max_shots).mean()), min_kept=int(count[j].min()))
        for c, k in enumerate((0, *shots)):
            log("ricl", seed=seed, shots=k, **{a: float(acc[j, i, c]) for i, a in enumerate(ARMS)})
        for c, k in enumerate(shots):
            log("ricl_ref", seed=seed, shots=k,
                **{f"logistic_{a}": float(logit[j, i, c]) for i, a in enumerate(LABELLED)},
                **{f"align_{a}": float(align[j, i, c]) for i, a in enumerate(LABELLED)},
                margin_ground_truth=float(margin[j, 0, c]),
                margin_reinforced=float(margin[j, 1, c]))
    hi = shots.index(config.claim_shots) + 1
    log.headline(**{f"reinforced@{config.claim_shots}": float(acc[:, 2, hi].mean()),
                    f"ground_truth@{config.claim_shots}": float(acc[:, 0, hi].mean()),
                    "yield": float(np.mean(yld))})


def report_reinforced(config: IclLinearConfig, run_dir, seeds: list[int]):
    """The reinforced / unsupervised experiment's claims, table and plots/reinforced.png."""
    shots, n_seeds, k = list(config.shots), len(seeds), config.claim_shots
    r = stats.collect(run_dir, "ricl", by={"seed": seeds, "shots": [0, *shots]}, values=ARMS)
    ref = stats.collect(run_dir, "ricl_ref", by={"seed": seeds, "shots": shots},
                        values=[*(f"logistic_{a}" for a in LABELLED), "margin_ground_truth",
                                "margin_reinforced", *(f"align_{a}" for a in LABELLED)])
    pool = stats.collect(run_dir, "ricl_pool", by={"seed": seeds},
                         values=["yield_", "short", "min_kept"])
    hi = 1 + shots.index(k)
    names = {"ground_truth": "ground truth (true labels)",
             "self_labelled": "self-labelled, unverified",
             "reinforced": "reinforced (own labels, verified)",
             "unsupervised": "unsupervised (inputs only)"}
    stats.plot_curves(
        run_dir.plots / "reinforced.png", np.asarray([0, *shots]),
        {f"ICL, {names[a]}": r[a] for a in ARMS}
        | {f"logistic, {names[a].split(' (')[0]} shots": np.c_[np.full(n_seeds, 0.5),
                                                              ref[f"logistic_{a}"]]
           for a in ("ground_truth", "reinforced")},
        hlines={"chance": np.full(n_seeds, 0.5)}, xlabel="shots in context",
        ylabel="accuracy on fresh queries (held-out w)",
        title=f"Reinforced / unsupervised ICL, d={config.dim}, {n_seeds} seed(s), 95% CI")
    claims = [
        stats.claim_greater(
            "reinforced_tracks_ground_truth",
            f"at {k} shots, ICL on the model's own verified shots (labelled after "
            f"{config.seed_shots} ground-truth shots) is non-inferior to ICL on {k} random "
            f"pool inputs with their true labels (reinforced minus ground truth, paired; holds "
            f"when the CI clears -{config.margin})",
            stats.paired_difference_ci(r["reinforced"][:, hi], r["ground_truth"][:, hi]),
            threshold=-config.margin, unit="training seeds"),
        stats.claim_less(
            "unsupervised_no_gain",
            f"control: {k} unlabelled shots (label slot 0) give no gain over 0 shots "
            f"(unsupervised at {k} minus 0 shots, paired; holds when the CI stays below "
            f"+{config.margin}; expected: x is drawn independently of w, so unlabelled "
            "inputs carry no information about it)",
            stats.paired_difference_ci(r["unsupervised"][:, hi], r["unsupervised"][:, 0]),
            threshold=config.margin, unit="training seeds"),
    ]
    cell = lambda x: stats.ci_cell(stats.bootstrap_ci(100 * np.asarray(x)))
    num = lambda x: stats.ci_cell(stats.bootstrap_ci(np.asarray(x)), ".2f")
    rows = [[s, *(cell(r[a][:, c]) for a in ARMS),
             *((cell(ref[f"logistic_{a}"][:, c - 1]) if c else "") for a in LABELLED)]
            for c, s in enumerate([0, *shots])]
    diag = [[s, *(num(ref[f"margin_{a}"][:, c]) for a in ("ground_truth", "reinforced")),
             *(num(ref[f"align_{a}"][:, c]) for a in LABELLED)] for c, s in enumerate(shots)]
    md = ["## Reinforced and unsupervised ICL (%, mean over seeds [95% bootstrap CI])", "",
          f"Fresh held-out w ({config.ricl_rounds * config.ricl_batch} per seed), "
          f"{config.queries} query points each, the same for every arm. The model labels a "
          f"pool of {config.pool} inputs after {config.seed_shots} ground-truth shots; "
          f"yield (own label verified correct): {cell(pool['yield_'])}%; rows with fewer "
          f"than {config.max_shots} verified: {cell(pool['short'])}% (fewest kept in a row: "
          f"{int(pool['min_kept'].min())}).", "",
          stats.markdown_table(["shots", *ARMS, *(f"logistic {a}" for a in LABELLED)], rows),
          "", "Selection diagnostics of the first k shots (mean over seeds [95% CI]): margin = "
          "mean |w.x| / |w| (distance to the boundary; random x: sqrt(2/pi) = 0.80); align = "
          "cos(w, sum_i y_i x_i), how well the shots' mean estimator points at w (1 = "
          "exactly).", "",
          stats.markdown_table(["shots", "margin ground truth", "margin reinforced",
                                *(f"align {a}" for a in LABELLED)], diag), "",
          "![reinforced](plots/reinforced.png)"]
    return claims, md
