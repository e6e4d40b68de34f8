"""v-star's report: the tables, plots and claims from the logged events."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core import Report
from selftaught.core.errors import ConfigError
from selftaught.lm.metrics import (
    GeneralisationGate,
    gate_verdict,
)
from selftaught.recipes.v_star.config import (
    VStarConfig,
)


def _evals(run_dir, seeds: list[int], iterations: int) -> dict[tuple[int, int], dict]:
    evals = {(e["seed"], e["iteration"]): e for e in run_dir.events("eval")}
    missing = [(sd, i) for sd in seeds for i in range(iterations + 1) if (sd, i) not in evals]
    if missing:
        raise ConfigError(f"{run_dir.path}: no evaluation for (seed, iteration) {missing[:3]}; "
                          "the run is unfinished: continue it with --resume")
    return evals


def _gate(config: VStarConfig, run_dir, seeds: list[int]) -> tuple[bool, str, list[str]]:
    """The generalisation gate of every generator that sampled verifier data (G_0..G_{T-1}):
    (passed, why not, report section)."""
    got = {(e["seed"], e["iteration"]): e for e in run_dir.events("gate")}
    gates = []
    for t in range(config.iterations):
        if not all((sd, t) in got for sd in seeds):  # a run from before the gate existed
            return False, (f"no generalisation gate was logged for G_{t} (a run from before "
                           "the gate): whether the generator memorises was not measured"), []
        gates.append(GeneralisationGate(
            "G_sft" if t == 0 else f"G_{t}",
            [100 * got[(sd, t)]["train_accuracy"] for sd in seeds],
            [100 * got[(sd, t)]["fresh_accuracy"] for sd in seeds],
            config.max_generalisation_gap))
    return gate_verdict(gates, seeds)


def _resolution(config: VStarConfig, run_dir, seeds: list[int], claims: list) -> list[str]:
    """The report section that puts, beside each Best-of-k / maj@k / DPO-vs-ORM / iteration
    claim's CI over training seeds, the paired bootstrap over the test problems of every seed
    pooled (`stats.pooled_difference_ci` on the `test_problems` events: each problem's own
    accuracy; none in a run from before them: no section)."""
    T, kc = config.iterations, config.claim_k
    got = {(e["seed"], e["iteration"]): e for e in run_dir.events("test_problems")}
    if not all((sd, t) in got for sd in seeds for t in range(1, T + 1)):
        return []
    compared = {f"vstar_beats_maj_at_{kc}": ((T, f"bok_dpo_{kc}"), (T, f"maj_{kc}")),
                f"maj_at_{kc}_beats_pass1": ((T, f"maj_{kc}"), (T, "pass1")),
                **{f"dpo_beats_orm_at_{k}": ((T, f"bok_dpo_{k}"), (T, f"bok_orm_{k}"))
                   for k in config.ks},
                f"iteration_{T}_beats_1": ((T, f"bok_dpo_{kc}"), (1, f"bok_dpo_{kc}"))}
    names = {c.name for c in claims}

    def blocks(t, name):
        return [100 * np.asarray(got[(sd, t)][name], np.float64) for sd in seeds]

    pooled = {name: stats.pooled_difference_ci(blocks(*a), blocks(*b))
              for name, (a, b) in compared.items() if name in names}
    n = sum(len(got[(sd, T)]["pass1"]) for sd in seeds)
    return stats.resolution_md(claims, pooled, units=f"the {n} test problems ({len(seeds)} "
                               "seed(s) pooled; each seed has its own test candidates)")


def report(config: VStarConfig, run_dir, seeds: list[int]) -> Report:
    T, ks, kc = config.iterations, config.ks, config.claim_k
    ev = _evals(run_dir, seeds, T)
    oracle = all("auroc_oracle" in ev[(sd, T)] for sd in seeds)
    col = lambda name, t: np.array([ev[(sd, t)][name] for sd in seeds]) * 100  # noqa: E731
    curve = lambda fmt, t: np.stack([col(fmt.format(k), t) for k in ks], axis=1)  # noqa: E731
    curves = {
        f"V-STaR (DPO verifier), iteration {T}": curve("bok_dpo_{}", T),
        f"ORM verifier (BCE), iteration {T}": curve("bok_orm_{}", T),
        "majority vote maj@k": curve("maj_{}", T),
        **({f"oracle verifier (true step labels), iteration {T}": curve("bok_oracle_{}", T)}
           if oracle else {}),
        "generator only (random candidate)": np.repeat(col("sample_acc", T)[:, None],
                                                       len(ks), 1),
        "pass@k (oracle upper bound)": curve("passk_{}", T),
    }
    if T > 1:
        curves["V-STaR, iteration 1"] = curve("bok_dpo_{}", 1)
    stats.plot_curves(
        run_dir.plots / "best_of_k.png", np.log2(ks), curves,
        hlines={f"greedy pass@1 (G_{T})": col("pass1", T)},
        xlabel="log2 k (candidates the selector picks from)", ylabel="test accuracy (%)",
        title=f"Best-of-k on {config.task}, {len(seeds)} seed(s), 95% CI",
    )
    pd = stats.paired_difference_ci
    gate_ok, gate_why, gate_md = _gate(config, run_dir, seeds)
    claims = [
        stats.claim_greater(
            f"vstar_beats_maj_at_{kc}",
            f"V-STaR Best-of-{kc} beats majority vote maj@{kc} (points, iteration {T})",
            pd(col(f"bok_dpo_{kc}", T), col(f"maj_{kc}", T)), unit="training seeds"
        ).gated(gate_ok, gate_why),
        stats.claim_greater(
            f"maj_at_{kc}_beats_pass1",
            f"majority vote maj@{kc} beats greedy pass@1 of the same generator (points)",
            pd(col(f"maj_{kc}", T), col("pass1", T)), unit="training seeds"),
    ]
    for k in sorted({k for k in (8, max(ks)) if k in ks}):
        claims.append(stats.claim_greater(
            f"dpo_beats_orm_at_{k}",
            f"the DPO verifier's Best-of-{k} beats the ORM's (BCE, same data; points)",
            pd(col(f"bok_dpo_{k}", T), col(f"bok_orm_{k}", T)), unit="training seeds"
        ).gated(gate_ok, gate_why))
    if oracle:  # the upper bound (not a paper claim): can this architecture check steps?
        claims.append(stats.claim_greater(
            "oracle_auroc_beats_dpo",
            f"upper bound, not a paper claim: the oracle verifier trained on true step labels "
            f"ranks test candidates better than the DPO verifier (within-problem AUROC x 100, "
            f"iteration {T})",
            pd(col("auroc_oracle", T), col("auroc_dpo", T)), unit="training seeds"
        ).gated(gate_ok, gate_why))
    if T > 1:
        claims.append(stats.claim_greater(
            f"iteration_{T}_beats_1",
            f"iteration {T}'s generator + verifier beat iteration 1's (Best-of-{kc}, points)",
            pd(col(f"bok_dpo_{kc}", T), col(f"bok_dpo_{kc}", 1)), unit="training seeds"
        ).gated(gate_ok, gate_why))

    def cell(x):
        return stats.ci_cell(stats.bootstrap_ci(x))

    md = [*gate_md, "", *_resolution(config, run_dir, seeds, claims), "",
          f"## Per iteration (test accuracy %, mean over seeds [95% CI]; k = {kc})", "",
          stats.markdown_table(
              ["iteration", "greedy pass@1", "random candidate", "maj@k", "V-STaR Best-of-k",
               "pass@k (oracle)"],
              [["0 (G_sft)", cell(col("pass1", 0)), "", "", "", ""]]
              + [[t, *(cell(col(name, t)) for name in (
                  "pass1", "sample_acc", f"maj_{kc}", f"bok_dpo_{kc}", f"passk_{kc}"))]
                 for t in range(1, T + 1)]),
          "", f"## Best-of-k at iteration {T} (test accuracy %)", "",
          stats.markdown_table(
              ["k", "V-STaR (DPO)", "ORM (BCE)",
               *(["oracle verifier (step labels)"] if oracle else []), "maj@k",
               "pass@k (oracle)"],
              [[k, *(cell(col(name, T)) for name in (
                  f"bok_dpo_{k}", f"bok_orm_{k}", *([f"bok_oracle_{k}"] if oracle else []),
                  f"maj_{k}", f"passk_{k}"))] for k in ks])]
    samples = {(e["seed"], e["iteration"]): e for e in run_dir.events("sample")}
    trains = {(e["seed"], e["iteration"]): e for e in run_dir.events("train")}

    def sm(t, k):
        return np.mean([samples[(sd, t)][k] for sd in seeds])

    md += ["", "## Data and verifiers (mean over seeds)", "",
           stats.markdown_table(
               ["iteration", "sample accuracy (train)", "D_gen", "D_ver", "DPO pairs",
                "DPO pair accuracy (train)"],
               [[t, f"{100 * sm(t, 'sample_accuracy'):.1f}%", f"{sm(t, 'd_gen'):.0f}",
                 f"{sm(t, 'd_ver'):.0f}", f"{sm(t, 'pairs'):.0f}",
                 f"{100 * np.mean([trains[(sd, t)]['dpo_reward_accuracy'] for sd in seeds]):.1f}%"]
                for t in range(1, T + 1)])]
    auroc = [[t, *(stats.ci_cell(stats.bootstrap_ci(a), ".3f") if np.isfinite(a).all()
                   else "-" for a in (
                       np.array([ev[(sd, t)].get(f"auroc_{v}", np.nan) for sd in seeds])
                       for v in ("dpo", "orm", "oracle")))] for t in range(1, T + 1)]
    md += ["", "## Verifier ranking quality on the test candidates", "",
           "Within-problem AUROC: the fraction of (correct, incorrect) candidate pairs of one "
           "test problem that the verifier's score orders right (ties 1/2; 0.5 = chance), "
           "pooled over problems, mean [95% CI] over seeds. Best-of-k can beat a random "
           "candidate only as far as this is above 0.5 (the ORM is trained at the last "
           "iteration only). The oracle verifier has the ORM's architecture and "
           "data but learns from the TRUE correctness of every written step (an upper bound "
           "on what this architecture can learn to check, not part of V-STaR).", "",
           stats.markdown_table(["iteration", "V-STaR (DPO)", "ORM (BCE)",
                                 "oracle (step labels)"], auroc)]
    if oracle:
        tr = lambda k: 100 * np.mean([trains[(sd, T)][k] for sd in seeds])  # noqa: E731
        md += ["", f"Oracle verifier at iteration {T} (mean over seeds): written steps wrong "
               f"in D_ver {tr('step_error_rate'):.1f}%, its step accuracy on them (train) "
               f"{tr('oracle_step_accuracy'):.1f}%.", "",
               "What limits any step checker on the test candidates (mean [95% CI] over "
               "seeds): the share of correct candidates that are right by luck (a written "
               "step is wrong, so no step checker can tell them from wrong ones), the AUROC of "
               "the TRUE step labels (the ceiling of a perfect step checker), and how well the "
               "oracle classifies the written steps of these unseen candidates.", "",
               stats.markdown_table(
                   ["lucky correct (%)", "AUROC of the true step labels",
                    "oracle step accuracy (test, %)", "oracle step AUROC (test)"],
                   [[cell(col("lucky_correct", T)),
                     stats.ci_cell(stats.bootstrap_ci(col("auroc_true_steps", T) / 100), ".3f"),
                     cell(col("oracle_step_accuracy_test", T)),
                     stats.ci_cell(stats.bootstrap_ci(col("oracle_step_auroc_test", T) / 100),
                                   ".3f")]])]
    md += ["", "Best-of-k uses the unbiased estimator over N candidates (lm.md §2); maj@k "
           f"averages the vote over all k-subsets (or {config.vote_repeats} random ones) per "
           "problem; the generator-only "
           "line is a random candidate (the STaR/ReST^EM-style generator without verifier).",
           "", "![best of k](plots/best_of_k.png)"]
    return Report(claims, "\n".join(md))
