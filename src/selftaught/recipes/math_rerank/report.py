"""math-rerank's report: the tables, plots and claims from the logged events."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core import Report
from selftaught.lm.metrics import (
    GeneralisationGate,
    gate_verdict,
)
from selftaught.recipes.math_rerank.config import (
    EVALUATORS,
    MathRerankConfig,
)

EVENTS = ("sft_eval", "rerank_eval", "sequential_eval", "samples", "evaluator_train")


def _finished(run_dir, seeds: list[int]) -> tuple[list[int], dict]:
    """The seeds with every event (an unfinished run reports those: its claims are marked
    partial by the core), and {event: {field: array over those seeds}}."""
    done = list(seeds)
    for name in EVENTS:
        done = stats.collect(run_dir, name, by={"seed": done}, values=(), partial="seed")["seed"]
    return done, {name: stats.collect(run_dir, name, by={"seed": done}, values=None)
                  for name in EVENTS}


def _gate(config: MathRerankConfig, run_dir, seeds: list[int]) -> tuple[bool, str, list[str]]:
    """The generalisation gate of G_detailed: (passed, why not, report section)."""
    if not run_dir.events("gate"):  # a run from before the gate existed
        return False, ("no generalisation gate was logged for G_detailed (a run from before "
                       "the gate): whether the generator memorises was not measured"), []
    got = stats.collect(run_dir, "gate", by={"seed": seeds},
                        values=("train_accuracy", "fresh_accuracy"))
    return gate_verdict([GeneralisationGate(
        "G_detailed", (100 * got["train_accuracy"]).tolist(),
        (100 * got["fresh_accuracy"]).tolist(), config.max_generalisation_gap)], seeds)


def _selection_md(config: MathRerankConfig, records: dict, seeds: list[int]) -> list[str]:
    """The report section saying what was selected on what: each evaluator's step count,
    chosen per seed on the validation candidates."""
    if "ce_steps" not in records:  # a run from before the choice
        return ["## Evaluator steps", "", f"Fixed at {config.evaluator.total_steps} (a run "
                "from before the step count was chosen on validation)."]
    ck = config.evaluator_checkpoints

    def cell(kind, split, steps):
        x = records[f"{kind}_{split}_pair_accuracy_{steps}"]
        return stats.ci_cell(stats.bootstrap_ci(x), ".3f")

    chosen = {e: records[f"{e}_steps"].tolist() for e in EVALUATORS}
    return [
        "## Evaluator steps, chosen on validation", "",
        f"Each evaluator trains once for {ck[-1]} steps; at each checkpoint it scores "
        f"G_detailed's {config.candidates} candidates on each of the {config.valid_problems} "
        f"validation problems (disjoint from the {config.eval_problems} test problems), and "
        "the checkpoint with the best within-problem pair accuracy there re-ranks the test "
        "candidates (ties: the fewest steps). Chosen steps per seed: "
        + "; ".join(f"{e} {chosen[e]}" for e in EVALUATORS) + ". The test column is a "
        f"diagnostic on the first {min(config.valid_problems, config.eval_problems)} test "
        "problems, logged after the choice, never used for it. Every other choice of this "
        "recipe is fixed in the config; every claim is on the test problems.", "",
        stats.markdown_table(
            ["steps", *(f"{e}: {split} pair accuracy" for e in EVALUATORS
                        for split in ("validation", "test"))],
            [[steps, *(cell(e, split, steps) for e in EVALUATORS
                       for split in ("valid", "test"))] for steps in ck])]


def _per_problem(run_dir, seeds: list[int]) -> dict[int, dict]:
    """{seed: {selector: per-problem accuracy at claim_k}} from the rerank_problems events
    (absent in a run from before them: {})."""
    got = {e["seed"]: e for e in run_dir.events("rerank_problems")}
    return {sd: got[sd] for sd in seeds} if all(sd in got for sd in seeds) else {}


def _preconditions_md(config: MathRerankConfig, rr, kc: int) -> list[str]:
    """The preconditions of small-scale.md §2, measured: each evaluator's within-problem
    AUROC on the test candidates and the headroom pass@N - maj@N."""
    def cell(x, fmt):
        return stats.ci_cell(stats.bootstrap_ci(x), fmt)

    head = rr(f"passk_{kc}") - rr(f"maj_{kc}")
    rows = [[f"within-problem AUROC of the {e} evaluator (test candidates)",
             cell(rr(f"{e}_test_pair_accuracy"), ".3f"), f">= {config.min_auroc:g}",
             "met" if np.mean(rr(f"{e}_test_pair_accuracy")) >= config.min_auroc
             else "**not met**"] for e in EVALUATORS]
    rows.append([f"headroom pass@{kc} - maj@{kc} (points)", cell(head, ".1f"),
                 f">= {config.min_headroom:g}",
                 "met" if np.mean(head) >= config.min_headroom else "**not met**"])
    return ["## Preconditions for re-ranking to beat voting (small-scale.md §2; mean over "
            "seeds [95% CI])", "", stats.markdown_table(
                ["precondition", "measured", "needed", "verdict"], rows), "",
            "Diagnostics, not gates: where one is not met, it is the measured reason a "
            "re-ranking claim can fail."]


def report(config: MathRerankConfig, run_dir, seeds: list[int]) -> Report:
    ks, kc, Ks = config.ks, config.claim_k, config.top_clusters
    seeds, ev = _finished(run_dir, seeds)

    def col(event, name):
        return ev[event][name].astype(np.float64) * (
            1 if "pair_accuracy" in name or name in ("pairs", "labelled_samples",
                                                      "paired_samples") else 100)

    rr = lambda name: col("rerank_eval", name)  # noqa: E731
    curve = lambda fmt: np.stack([rr(fmt.format(k)) for k in ks], axis=1)  # noqa: E731
    curves = {
        "majority vote": curve("maj_{}"),
        "re-rank all (CE evaluator)": curve("all_ce_{}"),
        "weighted vote (CE evaluator)": curve("weighted_ce_{}"),
        **{f"top-{K} clusters re-ranked (CE evaluator)": curve(f"top{K}_ce_{{}}")
           for K in Ks},
        "re-rank all (margin evaluator)": curve("all_margin_{}"),
        f"top-{Ks[-1]} clusters re-ranked (margin evaluator)": curve(
            f"top{Ks[-1]}_margin_{{}}"),
        "pass@k (oracle upper bound)": curve("passk_{}"),
    }
    stats.plot_curves(
        run_dir.plots / "rerank.png", np.log2(ks), curves,
        hlines={"a random candidate": rr("sample_acc")},
        xlabel="log2 k (candidates per problem)", ylabel="test accuracy (%)",
        title=f"Selecting among k candidates on {config.task}, {len(seeds)} seed(s), 95% CI")
    sft = lambda name: col("sft_eval", name)  # noqa: E731
    seq = lambda name: col("sequential_eval", name)  # noqa: E731
    stats.plot_bars(
        run_dir.plots / "fine_tuning.png",
        {"terse FT": stats.bootstrap_ci(sft("pass1_terse")),
         "detailed FT": stats.bootstrap_ci(sft("pass1_detailed")),
         "detailed FT, continued": stats.bootstrap_ci(seq("pass1_continued")),
         "gen -> eval -> gen": stats.bootstrap_ci(seq("pass1_sequential"))},
        ylabel="greedy pass@1 on test (%)", title="Solution fine-tuning variants, 95% CI")

    pd = stats.paired_difference_ci
    gate_ok, gate_why, gate_md = _gate(config, run_dir, seeds)
    claims, compared = [], {}  # compared: claim name -> the two selectors at k = claim_k
    for e, ename in (("ce", "cross-entropy"), ("margin", "margin")):
        for K in Ks:
            compared[f"top{K}_{e}_beats_majority"] = (f"top{K}_{e}", "maj")
            compared[f"top{K}_{e}_beats_rerank_all"] = (f"top{K}_{e}", f"all_{e}")
            claims += [
                stats.claim_greater(
                    f"top{K}_{e}_beats_majority",
                    f"top-{K} cluster re-ranking ({ename} evaluator) beats majority vote at "
                    f"k = {kc} (points)", pd(rr(f"top{K}_{e}_{kc}"), rr(f"maj_{kc}")),
                    unit="training seeds"),
                stats.claim_greater(
                    f"top{K}_{e}_beats_rerank_all",
                    f"top-{K} cluster re-ranking ({ename} evaluator) beats re-ranking all "
                    f"{kc} candidates (points)",
                    pd(rr(f"top{K}_{e}_{kc}"), rr(f"all_{e}_{kc}")), unit="training seeds"),
            ]
    compared["weighted_ce_beats_majority"] = ("weighted_ce", "maj")
    compared["margin_beats_ce_rerank_all"] = ("all_margin", "all_ce")
    claims += [
        stats.claim_greater(
            "weighted_ce_beats_majority",
            f"the score-weighted vote (CE evaluator) beats majority vote at k = {kc} (points)",
            pd(rr(f"weighted_ce_{kc}"), rr(f"maj_{kc}")), unit="training seeds"),
        stats.claim_greater(
            "margin_beats_ce_rerank_all",
            f"the margin-loss evaluator re-ranks all {kc} candidates better than the "
            "cross-entropy one (points)", pd(rr(f"all_margin_{kc}"), rr(f"all_ce_{kc}")),
            unit="training seeds"),
        stats.claim_greater(
            "sequential_not_worse_than_solution_ft",
            f"multi-task sequential FT (generator -> evaluator -> generator) is no worse than "
            f"solution FT continued for as many steps: greedy pass@1 difference above "
            f"-{config.noninferiority:g} points",
            pd(seq("pass1_sequential"), seq("pass1_continued")), -config.noninferiority,
            unit="training seeds"),
    ]
    # every claim so far ranks with (or fine-tunes from) an evaluator trained on G_detailed's
    # samples: tested only when G_detailed passed the generalisation gate
    claims = [c.gated(gate_ok, gate_why) for c in claims]
    claims += [
        stats.claim_greater(
            "detailed_beats_terse",
            "solution FT on detailed step-by-step solutions beats FT on terse ones (greedy "
            "pass@1, points)", pd(sft("pass1_detailed"), sft("pass1_terse")),
            unit="training seeds"),
    ]

    def cell(x, digits=1):
        return stats.ci_cell(stats.bootstrap_ci(x), f".{digits}f")

    tr = lambda name: col("evaluator_train", name)  # noqa: E731
    per = _per_problem(run_dir, seeds)
    md = [*gate_md, "", *_preconditions_md(config, rr, kc), "",
          *_selection_md(config, ev["evaluator_train"], seeds), ""]
    if per:  # each seed's per-problem accuracies at k = claim_k, pooled
        n_problems = sum(len(per[sd]["maj"]) for sd in seeds)
        md += [*stats.resolution_md(claims, {
            name: stats.pooled_difference_ci([100 * np.asarray(per[sd][a]) for sd in seeds],
                                             [100 * np.asarray(per[sd][b]) for sd in seeds])
            for name, (a, b) in compared.items()},
            units=f"the {n_problems} test problems ({len(seeds)} seed(s) pooled), k = {kc}"),
            ""]
    md += [
          "## Solution fine-tuning (greedy pass@1 on test, %, mean over seeds [95% CI])", "",
          stats.markdown_table(["generator", "pass@1"], [
              ["terse solutions (final line only)", cell(sft("pass1_terse"))],
              ["detailed step-by-step solutions", cell(sft("pass1_detailed"))],
              [f"detailed, + {config.seq_ft.total_steps} more FT steps",
               cell(seq("pass1_continued"))],
              [f"sequential: detailed -> evaluator (CE) -> {config.seq_ft.total_steps} FT steps",
               cell(seq("pass1_sequential"))]]),
          "", f"## Selecting one answer among k candidates of G_detailed (test accuracy %; "
          f"top-K: the K largest clusters, scored by the {config.cluster_aggregate} of S)", "",
          stats.markdown_table(
              ["k", "majority", *(f"{sel} ({e})" for e in EVALUATORS for sel in (
                  "re-rank all", "weighted", *(f"top-{K}" for K in Ks))), "pass@k (oracle)"],
              [[k, *(cell(rr(f"{name}_{k}")) for name in (
                  "maj", *(f"{sel}_{e}" for e in EVALUATORS for sel in (
                      "all", "weighted", *(f"top{K}" for K in Ks))), "passk"))]
               for k in ks])]
    sm = lambda name: col("samples", name)  # noqa: E731
    md += ["", "## Data and evaluators (mean over seeds [95% CI])", "",
           f"- a random test candidate is correct: {cell(rr('sample_acc'))}%; some candidate "
           f"of a problem is correct: {cell(sm('test_solved'))}%",
           f"- pool samples correct: {cell(sm('pool_accuracy'))}%; pool problems with both "
           f"correct and incorrect samples: {cell(sm('pool_mixed'))}%; pairs: "
           f"{cell(tr('pairs'), 0)}"
           + (f" from {cell(tr('labelled_samples'), 0)} labelled samples, of which "
              f"{cell(tr('paired_samples'), 0)} distinct ones appear in a pair"
              if "labelled_samples" in ev["evaluator_train"] else ""),
           f"- the evaluators see {config.evaluator.total_steps * config.evaluator.batch_size}"
           f" pairs (with repeats) in their {config.evaluator.total_steps} steps",
           "", stats.markdown_table(
               ["evaluator", "pair accuracy, train (last 50 steps before the chosen "
                "checkpoint)", "pair accuracy, test"],
               [[e, cell(tr(f"{e}_train_pair_accuracy"), 3),
                 cell(rr(f"{e}_test_pair_accuracy"), 3)] for e in EVALUATORS])]
    md += ["", "Pair accuracy (the within-problem AUROC): the fraction of (correct, "
           "incorrect) candidates of one problem that the evaluator orders right (0.5 = "
           "chance). Every selector is averaged over "
           f"the same k-subsets (all, or {config.vote_repeats} random ones) of the N = "
           f"{config.candidates} candidates per problem.", "",
           "![re-ranking](plots/rerank.png)", "", "![fine-tuning](plots/fine_tuning.png)"]
    return Report(claims, "\n".join(md))
