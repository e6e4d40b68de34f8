"""rest-em's report: the tables, plots and claims from the logged events."""

from __future__ import annotations

import numpy as np

from selftaught import stats, tasks
from selftaught.core import Report
from selftaught.recipes.rest_em.config import (
    RestEMConfig,
)
from selftaught.tasks import parse_task_args


def eval_metrics(config: RestEMConfig) -> list[str]:
    """The metrics of an `eval` event reported per iteration."""
    k = config.eval_k
    return sorted({"test_pass1", "valid_pass1", "train_pass1", f"test_pass{k}", f"test_maj{k}",
                   "test_sample_acc"})


def _table(config: RestEMConfig, run_dir, seeds: list[int]) -> dict[str, np.ndarray]:
    """metric -> array [seeds, iterations + 1] (iteration 0 = SFT on human data)."""
    return stats.collect(run_dir, "eval", values=eval_metrics(config),
                         by={"seed": seeds, "iteration": range(config.iterations + 1)})


def sft_candidates_table(config: RestEMConfig, run_dir, seeds: list[int],
                         t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """test/valid pass@1 of the SFT candidates, [seeds, sft_candidates]: column 0 is
    iteration 0 (the first SFT run), the others the restarts."""
    out = {k: t[k][:, :1] for k in ("test_pass1", "valid_pass1")}
    if config.sft_candidates > 1:
        more = stats.collect(run_dir, "sft_restart", values=list(out),
                             by={"seed": seeds, "restart": range(1, config.sft_candidates)})
        out = {k: np.concatenate([v, more[k]], axis=1) for k, v in out.items()}
    return out


def setting_text(config: RestEMConfig) -> str:
    """One line naming the comparison's setting (pool vs human problems, human data)."""
    t = tasks.get(config.task, **parse_task_args(config.task_args))
    skip, loose = (getattr(t, k, None) for k in ("human_skip_prob", "human_loose_prob"))
    if skip is None or loose is None:
        data = "as the task's human_solution writes them"
    elif skip == loose == 0:
        data = "correct and complete (no skipped steps, canonical notation)"
    else:
        data = f"degraded (skip steps with p={skip:g}, loose notation with p={loose:g})"
    pool = ("= the human-solved problems (same problems for both arms, as in the paper)"
            if config.train_problems == config.human_problems else
            f"{config.train_problems} problems, {config.train_problems / config.human_problems:.1f}"
            f"x the {config.human_problems} human-solved ones")
    return (f"Setting: {config.task} ({config.task_args}); E-step pool {pool}; "
            f"{config.human_problems} human solutions, {data}.")


def best_iteration(valid_SxI: np.ndarray, upto: int | None = None) -> np.ndarray:
    """Per seed, the iteration >= 1 (up to `upto`) with the best validation pass@1."""
    cols = valid_SxI[:, 1: (upto + 1) if upto else None]
    return 1 + np.argmax(cols, axis=1)


def gain_share(early_gain: np.ndarray, best_gain: np.ndarray) -> np.ndarray:
    """Per seed, early_gain / best_gain clipped to [0, 1]; 0 where there is no gain."""
    early, best = np.asarray(early_gain, float), np.asarray(best_gain, float)
    ratio = np.divide(early, best, out=np.zeros_like(best), where=best > 0)
    return np.clip(ratio, 0.0, 1.0)


def report(config: RestEMConfig, run_dir, seeds: list[int]) -> Report:
    n_iter = config.iterations
    t = _table(config, run_dir, seeds)
    test, train, valid = t["test_pass1"] * 100, t["train_pass1"] * 100, t["valid_pass1"] * 100
    iters = np.arange(n_iter + 1)
    stats.plot_curves(
        run_dir.plots / "accuracy.png", iters[1:] if n_iter else iters,
        {"test pass@1 (held out)": test[:, 1:] if n_iter else test,
         "train reward (greedy)": train[:, 1:] if n_iter else train},
        hlines={"SFT on human data (test)": test[:, 0]},
        xlabel="ReST^EM iteration", ylabel="greedy pass@1 (%)",
        title=f"ReST^EM on {config.task}, {len(seeds)} seed(s), 95% CI",
    )
    claims = []
    rows = np.arange(len(seeds))
    sft = sft_candidates_table(config, run_dir, seeds, t)
    sft_test, sft_valid = sft["test_pass1"] * 100, sft["valid_pass1"] * 100
    best_sft = np.argmax(sft_valid, axis=1)  # iteration 0 is candidate 0
    if n_iter:
        best = best_iteration(valid)
        claims.append(stats.claim_greater(
            "rest_em_beats_selected_sft",
            f"ReST^EM beats SFT on human data when both pick their model on validation "
            f"(held-out greedy pass@1, points: the validation-chosen iteration of "
            f"{n_iter} minus the validation-chosen SFT run of {config.sft_candidates} "
            f"training keys)",
            stats.paired_difference_ci(test[rows, best], sft_test[rows, best_sft]),
            unit="training seeds"))
        gain = stats.paired_difference_ci(test[rows, best], test[:, 0])
        claims.append(stats.claim_greater(
            "rest_em_beats_sft",
            "ReST^EM beats SFT on human data (held-out greedy pass@1, points, "
            "validation-chosen iteration minus the first SFT run, no selection on the SFT "
            "side)", gain, unit="training seeds"))
        early = best_iteration(valid, upto=min(3, n_iter))
        share = gain_share(test[rows, early] - test[:, 0], test[rows, best] - test[:, 0])
        claims.append(stats.claim_greater(
            "gain_within_3_iterations",
            "most of the gain arrives within 3 iterations (share of the best iteration's "
            "gain over SFT already reached by the best of iterations 1-3; holds above 0.5)",
            stats.bootstrap_ci(share), threshold=0.5, unit="training seeds"))
    cols = [k for k in t if k != "test_sample_acc"]
    est = stats.collect(run_dir, "estep", by={"seed": seeds, "iteration": range(1, n_iter + 1)},
                        values=["kept", "distinct_per_solved", "kept_reference_fraction"])
    per_iter = [[i, *(stats.ci_cell(stats.bootstrap_ci(t[k][:, i] * 100)) for k in cols),
                 *((f"{est['kept'][:, i - 1].mean():.0f}",
                    f"{est['distinct_per_solved'][:, i - 1].mean():.2f}",
                    f"{est['kept_reference_fraction'][:, i - 1].mean():.3f}") if i else
                   (f"{config.human_problems} (human)", "1", "-"))]
                for i in iters]
    sft_rows = [[j, stats.ci_cell(stats.bootstrap_ci(sft_test[:, j])),
                 stats.ci_cell(stats.bootstrap_ci(sft_valid[:, j]))]
                for j in range(config.sft_candidates)]
    selection = stats.bootstrap_ci(sft_test[rows, best_sft] - sft_test[:, 0])
    md = [setting_text(config), "",
          "## Per iteration (mean over seeds [95% bootstrap CI]; iteration 0 = SFT on human "
          "data)", "", stats.markdown_table(
              ["iteration", *cols, "kept samples", "distinct kept per solved problem",
               "kept = reference solution"], per_iter),
          "", "## SFT on the human data, one run per training key (candidate 0 = iteration 0)",
          "", stats.markdown_table(["candidate", "test_pass1 (%)", "valid_pass1 (%)"],
                                   sft_rows),
          "", f"Validation-chosen SFT candidate per seed: {best_sft.tolist()}; its test "
          f"pass@1 minus the first run's (the gain of selection alone): "
          f"{stats.ci_cell(selection)} points."]
    if n_iter:
        mean_test, mean_train = test.mean(0), train.mean(0)
        peak = int(np.argmax(mean_test))
        overfit = peak < n_iter and mean_train[-1] > mean_train[peak]
        md += ["", f"Validation-chosen iteration per seed: {best.tolist()}.",
               f"Overfitting (the paper's small-pool effect: train reward rising while test "
               f"pass@1 falls after iteration {peak}): {'seen' if overfit else 'not seen'} "
               "in this run.",
               "", "![accuracy](plots/accuracy.png)"]
    return Report(claims, "\n".join(md))
