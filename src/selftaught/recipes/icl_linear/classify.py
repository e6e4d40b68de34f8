"""icl-linear experiment 1: train the transformer on in-context linear classification
(all seeds in one vmapped program, a phase per `evals.every` steps), test it against
logistic regression and kNN fitted on the same shots, and its report."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.core import programs as programs_lib
from selftaught.core.seeding import stream_keys
from selftaught.lm.model import Transformer
from selftaught.lm.train import check_losses, label_xent, make_trainer
from selftaught.recipes.icl_linear.config import (
    IclLinearConfig,
    d_eff,
    in_dim,
    label_logits,
    model_config,
)
from selftaught.tasks.icl import linear_pairs, shot_baselines


@programs_lib.cached(vmap=(0, programs_lib.AS_IS, 0), maxsize=4)
def programs(config: IclLinearConfig):
    """(init, chunk, measure), each jitted and vmapped over a leading seed axis:
    init(keys) -> states; chunk(states) -> (states, losses [seeds, evals.every]);
    measure(params, keys) -> {correct, nll [seeds, evals.batch, T], x, y}."""
    cfg, tcfg, T = model_config(config), config.train, config.max_shots + 1

    def xent(params, batch):
        logits = label_logits(params, cfg, batch["inputs"])
        return label_xent(logits, (batch["y"] > 0).astype(jnp.int32)), logits

    def batch_fn(key, step, _):
        return linear_pairs(key, tcfg.batch_size, T, config.dim, d_eff(config, step),
                            config.carry)

    trainer = make_trainer(lambda p, batch, rng: (xent(p, batch)[0].mean(), {}), tcfg,
                           batch_fn=batch_fn)

    def init(key):
        params = Transformer(cfg).init(jax.random.fold_in(key, 0), jnp.zeros((1, T), jnp.int32),
                                       vectors_BxTxI=jnp.zeros((1, T, in_dim(config))))
        return trainer.init_from(params, jax.random.fold_in(key, 2))

    def measure(params, key):
        batch = linear_pairs(key, config.evals.batch, T, config.dim, config.dim, config.carry)
        nll, logits = xent(params, batch)
        pred = jnp.where(logits[..., 1] > logits[..., 0], 1.0, -1.0)
        return {"correct": pred == batch["y"], "nll": nll, "x": batch["x"], "y": batch["y"]}

    return init, lambda states: trainer.run_seeds(states, {}, config.evals.every), measure


def baselines(x_NxTxD, y_NxT, shots, knn: int, l2: float) -> dict:
    """Accuracy of logistic regression and kNN fitted on pairs 0..k-1 of each sequence and
    tested on pair k (the pair the ICL model predicts with k shots), for each k in shots.
    -> {"logistic": [len(shots)], "knn": [len(shots)]}."""
    x, y = np.asarray(x_NxTxD, np.float64), (np.asarray(y_NxT) > 0).astype(int)
    out = {"logistic": np.zeros(len(shots)), "knn": np.zeros(len(shots))}
    for j, k in enumerate(shots):
        for n in range(len(x)):
            acc = shot_baselines(x[n, :k], y[n, :k], x[n, k:k + 1], y[n, k:k + 1], l2=l2,
                                 knn=knn)
            for m in out:
                out[m][j] += acc[m]
    return {m: v / len(x) for m, v in out.items()}


def train_chunk(log, config: IclLinearConfig, seeds: list[int], i: int, state):
    """`evals.every` steps of every seed, then the validation accuracy at every shot count."""
    _, chunk, measure = programs(config)
    state, losses = chunk(state)
    losses = np.asarray(losses)
    check_losses(losses, start_step=i * config.evals.every, lr=config.train.lr,
                 where="icl-linear training")
    m = jax.device_get(measure(state.params, stream_keys(seeds, 3, i)))
    acc_SxT, nll_S = m["correct"].mean(1), m["nll"].mean((1, 2))
    step = (i + 1) * config.evals.every
    for j, seed in enumerate(seeds):
        log("train", seed=seed, step=step, loss=float(losses[j, -50:].mean()),
            d_eff=int(d_eff(config, step - 1)), valid_nll=float(nll_S[j]))
        for k in (0, *config.shots):
            log("valid", seed=seed, step=step, shots=k, acc=float(acc_SxT[j, k]))
    log.headline(step=step, loss=float(losses[:, -50:].mean()),
                 **{f"acc@{config.claim_shots}": float(acc_SxT[:, config.claim_shots].mean())})
    return state


def test(log, config: IclLinearConfig, seeds: list[int], params):
    """ICL, logistic regression and kNN accuracy vs shots on the test stream
    (evals.test_rounds x evals.batch sequences per seed; the baselines see the same shots as
    the model)."""
    _, _, measure = programs(config)
    shots = list(config.shots)
    icl, base = [], []
    for r in range(config.evals.test_rounds):
        m = jax.device_get(measure(params, stream_keys(seeds, 4, r)))
        icl.append(m["correct"].mean(1)[:, shots])
        base.append([baselines(m["x"][j], m["y"][j], shots, config.knn, config.l2)
                     for j in range(len(seeds))])
    icl = np.mean(icl, 0)
    for j, seed in enumerate(seeds):
        for c, k in enumerate(shots):
            log("test", seed=seed, shots=k, icl=float(icl[j, c]),
                **{b: float(np.mean([rb[j][b][c] for rb in base])) for b in ("logistic", "knn")})
    log.headline(**{f"icl@{config.claim_shots}": float(
        icl[:, shots.index(config.claim_shots)].mean())})


METHODS = ("icl", "logistic", "knn")


def report_classify(config: IclLinearConfig, run_dir, seeds: list[int]):
    """Experiment 1's claims, its tables and plots/shots.png, plots/training.png."""
    shots, n_seeds = list(config.shots), len(seeds)
    steps = config.evals.steps(config.train)
    t = stats.collect(run_dir, "test", by={"seed": seeds, "shots": shots}, values=METHODS)
    v = stats.collect(run_dir, "valid", by={"seed": seeds, "step": steps,
                                            "shots": [0, *shots]}, values=["acc"])["acc"]
    tr = stats.collect(run_dir, "train", by={"seed": seeds, "step": steps},
                       values=["loss", "valid_nll", "d_eff"])
    hi, lo = shots.index(config.claim_shots), shots.index(config.low_shots)
    stats.plot_curves(
        run_dir.plots / "shots.png", np.asarray(shots),
        {"in-context (transformer)": t["icl"], "logistic regression (same shots)":
         t["logistic"], f"kNN, k={config.knn} (same shots)": t["knn"]},
        hlines={"chance": np.full(n_seeds, 0.5)}, xlabel="labelled shots in context",
        ylabel="test accuracy (held-out w)",
        title=f"Linear classification in context, d={config.dim}, {n_seeds} seed(s), 95% CI")
    col, picked = [0, *shots].index, sorted({config.low_shots, config.claim_shots, shots[-1]})
    stats.plot_curves(
        run_dir.plots / "training.png", np.asarray(steps),
        {f"{k} shots": v[:, :, col(k)] for k in picked}
        | {"validation NLL / ln 2 (1 = chance)": tr["valid_nll"] / np.log(2)},
        hlines={"chance": np.full(n_seeds, 0.5)}, xlabel="training step",
        ylabel=f"validation accuracy (d = {config.dim})",
        title=f"Validation during training, {n_seeds} seed(s), 95% CI")
    k = config.claim_shots
    claims = [
        stats.claim_greater(
            "icl_rises_with_shots",
            f"in-context test accuracy rises with shots ({k} minus {config.low_shots} shots, "
            "paired)",
            stats.paired_difference_ci(t["icl"][:, hi], t["icl"][:, lo]),
            unit="training seeds"),
        stats.claim_greater(
            "icl_tracks_logistic",
            f"at {k} shots ICL is non-inferior to logistic regression fitted on the same "
            f"shots (ICL minus logistic, paired; holds when the CI clears -{config.margin})",
            stats.paired_difference_ci(t["icl"][:, hi], t["logistic"][:, hi]),
            threshold=-config.margin, unit="training seeds"),
        stats.claim_greater(
            "icl_beats_knn",
            f"at {k} shots ICL beats kNN (k={config.knn}) on the same shots (paired)",
            stats.paired_difference_ci(t["icl"][:, hi], t["knn"][:, hi]),
            unit="training seeds"),
    ]
    cell = lambda x: stats.ci_cell(stats.bootstrap_ci(100 * np.asarray(x)))
    rows = [[s, *(cell(t[m][:, i]) for m in METHODS)] for i, s in enumerate(shots)]
    picks = sorted({0, 1, len(steps) // 4, len(steps) // 2, len(steps) - 1} & set(
        range(len(steps))))
    curve = [[steps[i], int(tr["d_eff"][0, i]), f"{tr['loss'][:, i].mean():.3f}",
              f"{tr['valid_nll'][:, i].mean():.3f}", *(cell(v[:, i, col(s)]) for s in picked)]
             for i in picks]
    md = ["## Test accuracy vs shots (%, mean over seeds [95% bootstrap CI])", "",
          stats.markdown_table(["shots", *METHODS], rows), "",
          f"Held-out w, d = {config.dim}; the baselines are fitted on the same shots of the "
          f"same sequences (logistic: Newton, L2 = {config.l2}, with bias).", "",
          f"## Validation curve (selected steps; accuracy % at d = {config.dim}; losses in "
          f"nats, mean over seeds; ln 2 = {np.log(2):.3f})", "",
          stats.markdown_table(["step", "d_eff", "train loss", "valid nll",
                                *(f"acc@{s}" for s in picked)], curve), "",
          "![shots](plots/shots.png)", "", "![training](plots/training.png)", ""]
    return claims, md
