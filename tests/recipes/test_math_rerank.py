"""math-rerank end to end on tiny settings: files and claims, resume after a kill, user errors
(exit 2, nothing half-written)."""

import dataclasses
import json

import jax
import numpy as np
import pytest
from recipe_checks import TINY_LM_FLAGS, check_failed_phase_left_behind, one_line_cli_error

from selftaught import recipes
from selftaught.core import ConfigError, RunDir, runner
from selftaught.core import config as cfglib
from selftaught.lm import TrainConfig
from selftaught.lm.model import ModelSize
from selftaught.recipes import math_rerank

RECIPE = recipes.get("math-rerank")

# Tiny: only checks mechanics (phases, resume, files), not the claims.
TINY = dataclasses.replace(
    RECIPE.preset("smoke"), num_seeds=1, task_args="steps=(1, 2), modulus=5",
    sft_problems=40, pool_problems=30, eval_problems=8, valid_problems=6,
    model=ModelSize(d_model=16, n_layers=1, n_heads=2),
    sft=TrainConfig(lr=1e-2, warmup_steps=5, total_steps=60, batch_size=16),
    pool_samples=4,
    evaluator=TrainConfig(lr=1e-3, warmup_steps=5, total_steps=20, batch_size=8),
    evaluator_checkpoints=(10, 20),
    candidates=4, claim_k=4, top_clusters=(2,), vote_repeats=4,  # k=1: all 4 subsets
    sample_batch=64,
    seq_ft=TrainConfig(lr=1e-3, warmup_steps=2, total_steps=10, batch_size=16),
    chunk_steps=10,
)


def _counted(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "seconds", "peak_rss_mib",
                                                      "resumed")}
            for r in lines if r["event"] in ("sft_eval", "samples", "evaluator_train",
                                             "rerank_eval", "sequential_eval", "gate")]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    run, ref = runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    assert {c["name"] for c in ref["claims"]} == {
        "top2_ce_beats_majority", "top2_ce_beats_rerank_all", "top2_margin_beats_majority",
        "top2_margin_beats_rerank_all", "weighted_ce_beats_majority",
        "margin_beats_ce_rerank_all", "sequential_not_worse_than_solution_ft",
        "detailed_beats_terse"}
    (ev,) = run.events("rerank_eval")
    for k in (1, 2, 4):  # every selector is a rate and never beats the oracle pass@k
        for name in ("maj", "all_ce", "weighted_ce", "top2_ce", "all_margin", "top2_margin"):
            assert 0.0 <= ev[f"{name}_{k}"] <= ev[f"passk_{k}"] + 1e-9
    for name in ("maj", "all_ce", "top2_margin", "passk"):  # one candidate: a random pick
        assert ev[f"{name}_1"] == pytest.approx(ev["sample_acc"])
    # per-problem accuracies at claim_k: one per test problem, averaging to the logged rate
    (per,) = run.events("rerank_problems")
    assert per["k"] == TINY.claim_k
    for name in ("maj", "all_ce", "weighted_margin", "top2_ce"):
        assert len(per[name]) == TINY.eval_problems
        assert np.mean(per[name]) == pytest.approx(ev[f"{name}_{TINY.claim_k}"])
    (sft,) = run.events("sft_eval")
    assert set(sft) >= {"pass1_detailed", "pass1_terse", "loss_detailed", "loss_terse"}
    (gate,) = run.events("gate")  # G_detailed: train vs fresh, before it samples the pool
    assert gate["phase"] == "seed0/sft"
    assert 0.0 <= gate["train_accuracy"] <= 1.0 and 0.0 <= gate["fresh_accuracy"] <= 1.0
    assert gate["train_problems"] == gate["fresh_problems"] == TINY.valid_problems
    md = (run.path / "report.md").read_text()
    assert "## Generalisation gate" in md and "## Preconditions" in md
    assert "## Resolution of the test set: paired bootstrap over the 8 test problems" in md
    (tr,) = run.events("evaluator_train")
    assert tr["labelled_samples"] == TINY.pool_problems * TINY.pool_samples
    assert 2 <= tr["paired_samples"] <= min(2 * tr["pairs"], tr["labelled_samples"])
    for png in ("rerank.png", "fine_tuning.png"):
        assert (run.path / "plots" / png).stat().st_size > 0
    assert "| 4 |" in (run.path / "report.md").read_text()

    real = math_rerank.train_evaluator
    calls = {"n": 0}

    def dying_train_evaluator(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # killed while training the margin evaluator
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(math_rerank, "train_evaluator", dying_train_evaluator)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "kill")
    assert RunDir.open(tmp_path / "kill").done_phases() == {"seed0/sft", "seed0/samples"}
    monkeypatch.setattr(math_rerank, "train_evaluator", real)
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")
    assert resumed["claims"] == ref["claims"]


def test_terse_style_is_the_final_line():
    assert math_rerank.terse("7+8=5 5*6=0\n=0") == "=0"
    assert math_rerank.terse("=3\n") == "=3"


@pytest.mark.parametrize("change, message", [
    ({"claim_k": 8}, "claim_k (8) must be <= candidates (4)"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"margin": -1.0}, "margin must be >= 0"),
    ({"cluster_aggregate": "median"}, "cluster_aggregate must be sum, mean or max"),
    ({"top_clusters": (2, 2)}, "top_clusters must be distinct cluster counts >= 1"),
    ({"top_clusters": (0,)}, "top_clusters must be distinct cluster counts >= 1"),
    ({"top_clusters": ()}, "top_clusters must be distinct cluster counts >= 1"),
    ({"valid_problems": 0}, "valid_problems"),
    ({"verdict": "1"}, "verdict must be two different characters"),
    ({"verdict": "yn"}, "verdict must be two different characters"),
    ({"task_args": "steps=(1, 2), modulus=1"}, "modulus must be an int"),
    ({"evaluator_checkpoints": (10, 15)}, "evaluator_checkpoints must be increasing positive "
                                          "step counts ending at evaluator.total_steps (20)"),
    ({"evaluator_checkpoints": (20, 10, 20)}, "evaluator_checkpoints must be increasing"),
    ({"evaluator_checkpoints": (0, 20)}, "evaluator_checkpoints must be increasing"),
    ({"evaluator_checkpoints": ()}, "evaluator_checkpoints must be increasing"),
])
def test_config_errors(change, message):
    with pytest.raises(ConfigError) as exc:
        cfglib.validate(dataclasses.replace(TINY, **change))
    assert message in str(exc.value)
    assert dataclasses.replace(TINY, candidates=6).ks == [1, 2, 4, 6]


def test_no_evaluator_pairs_is_a_one_line_error_and_leaves_no_phase_behind(tmp_path, capsys,
                                                                          monkeypatch):
    """An untrained generator solves nothing: no correct sample, no pairs. (Training and the
    greedy evaluation are skipped to keep the test cheap: the generators stay at the random
    initialisation.)"""
    monkeypatch.setattr(math_rerank, "train_pair",
                        lambda cfg, s, inits, datas, *a: (inits, [0.0] * len(inits)))
    monkeypatch.setattr(math_rerank, "greedy_pass1", lambda *a: 0.0)
    run_dir = tmp_path / "r"
    one_line_cli_error(capsys, [
        "run", "math-rerank", *TINY_LM_FLAGS, "--run-dir", str(run_dir), "--sft-problems", "6",
        "--pool-problems", "4", "--eval-problems", "2", "--valid-problems", "2",
        "--pool-samples", "1", "--sample-batch", "8"],
        "no pool problem has both a correct and an incorrect sample")
    # the finished phases stay, resumable
    check_failed_phase_left_behind(run_dir, ["seed0/sft", "seed0/samples"], "seed0/evaluators")


def test_choose_checkpoint_takes_the_best_validation_score_fewest_steps_on_ties():
    assert math_rerank.choose_checkpoint([0.55, 0.61, 0.58]) == 1
    assert math_rerank.choose_checkpoint([0.6, 0.5, 0.6]) == 0
    assert math_rerank.choose_checkpoint([float("nan"), 0.4, 0.3]) == 1
    assert math_rerank.choose_checkpoint([float("nan")] * 3) == 0


def _candidates(s, problems, n, correct):
    """Candidate tokens [P, n, L] (the reference solution where `correct`, a wrong final
    line elsewhere), as the sampler returns them: completion ids, EOS, PAD."""
    texts = [[s.task.reference_solution(p) if c else "=" for c in cs]
             for p, cs in zip(problems, correct)]
    ids = [[s.tok.encode(x) + [s.tok.eos_id] for x in ts] for ts in texts]
    L = max(len(x) for row in ids for x in row)
    out = np.zeros((len(problems), n, L), np.int32)
    for i, row in enumerate(ids):
        for j, x in enumerate(row):
            out[i, j, :len(x)] = x
    return out


@pytest.mark.parametrize("valid_best, test_best", [(0, 2), (2, 0)])
def test_evaluator_steps_are_chosen_on_validation_not_test(monkeypatch, valid_best, test_best):
    """Three checkpoints: on validation the `valid_best` one ranks correct candidates first,
    on test the `test_best` one does (the others rank them last or tie). The choice, the
    evaluator handed on, and the test claims' scores follow validation."""
    config = dataclasses.replace(
        TINY, evaluator=TrainConfig(lr=1e-3, warmup_steps=5, total_steps=30, batch_size=8),
        evaluator_checkpoints=(10, 20, 30))
    s = math_rerank.make_setting(config, 0)
    N, rng = config.candidates, np.random.default_rng(0)
    pool = s.train[config.sft_problems:]
    correct = {name: rng.random((len(ps), N)) < 0.5
               for name, ps in (("pool", pool), ("cand", s.test), ("valid", s.valid))}
    saved = {f"{name}_tokens": _candidates(s, ps, N, correct[name])
             for name, ps in (("pool", pool), ("cand", s.test), ("valid", s.valid))}
    saved.update({f"{name}_correct": c.astype(np.uint8) for name, c in correct.items()})
    valid_rows = math_rerank.candidate_rows(s, s.valid, saved["valid_tokens"])["tokens"]
    test_rows = math_rerank.candidate_rows(s, s.test, saved["cand_tokens"])["tokens"]

    def scores(params, cfg, tokens, yes, no):
        if np.array_equal(tokens, valid_rows):
            right, c = params == valid_best, correct["valid"]
        else:  # every test candidate, or those of the first n_diag problems (diagnostic)
            assert np.array_equal(tokens, test_rows[:len(tokens)])
            right, c = params == test_best, correct["cand"][:len(tokens) // N]
        if params == 1:
            return np.zeros(c.size, np.float32)  # ties: pair accuracy 0.5
        return (c if right else ~c).reshape(-1).astype(np.float32)

    monkeypatch.setattr(math_rerank, "evaluator_scores", scores)
    monkeypatch.setattr(math_rerank, "train_evaluator", lambda config, s, pairs, init, kind, *a: (
        [0, 1, 2], {f"{kind}_{m}_{c}": 0.5 for m in ("loss", "train_pair_accuracy")
                    for c in config.evaluator_checkpoints}))
    logged = {}
    evals = math_rerank.evaluators(lambda event, **kw: logged.setdefault(event, kw), config, s,
                                   0, jax.random.PRNGKey(0), None, saved)
    assert evals == {"ce": valid_best, "margin": valid_best}
    tr, rr = logged["evaluator_train"], logged["rerank_eval"]
    for kind in math_rerank.EVALUATORS:
        assert tr[f"{kind}_steps"] == config.evaluator_checkpoints[valid_best]
        assert tr[f"{kind}_valid_pair_accuracy_{tr[f'{kind}_steps']}"] == 1.0
        assert tr[f"{kind}_test_pair_accuracy_{config.evaluator_checkpoints[test_best]}"] == 1.0
        assert tr[f"{kind}_valid_pair_accuracy_20"] == tr[f"{kind}_test_pair_accuracy_20"] == 0.5
        assert rr[f"{kind}_test_pair_accuracy"] == 0.0  # the validation choice, on test


def test_report_says_what_was_selected_on_what():
    ck = TINY.evaluator_checkpoints  # (10, 20)
    seeds = [0, 1, 2]  # the report's records: {field: array over seeds} (stats.collect)
    records = {"ce_steps": np.array([ck[sd % 2] for sd in seeds]),
               "margin_steps": np.array([ck[-1]] * 3),
               **{f"{e}_{split}_pair_accuracy_{c}": np.full(3, 0.5 + 0.1 * i + 0.01 * j)
                  for e in math_rerank.EVALUATORS
                  for j, split in enumerate(("valid", "test"))
                  for i, c in enumerate(ck)}}
    md = "\n".join(math_rerank._selection_md(TINY, records, [0, 1, 2]))
    assert "## Evaluator steps, chosen on validation" in md
    assert "ce [10, 20, 10]; margin [20, 20, 20]" in md
    assert (f"{TINY.valid_problems} validation problems (disjoint from the "
            f"{TINY.eval_problems} test problems)") in md
    row = next(x for x in md.splitlines() if x.startswith("| 20 |"))
    cells = [c.split(" [")[0] for c in row.strip("| ").split(" | ")]
    assert cells == ["20", "0.600", "0.610", "0.600", "0.610"]  # per evaluator: valid, test
    old = {"ce_train_pair_accuracy": np.full(3, 0.9)}  # a run from before the choice
    assert "Fixed at 20" in "\n".join(math_rerank._selection_md(TINY, old, [0, 1, 2]))


def test_preconditions_compare_the_seed_means_with_the_config_thresholds():
    from selftaught.recipes.math_rerank.report import _preconditions_md

    values = {"ce_test_pair_accuracy": [0.8, 0.7, 0.78], "margin_test_pair_accuracy": [0.6] * 3,
              "passk_8": [90.0, 95.0, 100.0], "maj_8": [80.0, 85.0, 80.0]}
    md = "\n".join(_preconditions_md(TINY, lambda n: np.asarray(values[n]), 8))
    ce = next(x for x in md.splitlines() if "of the ce evaluator" in x)
    margin = next(x for x in md.splitlines() if "of the margin evaluator" in x)
    head = next(x for x in md.splitlines() if "headroom" in x)
    assert ce.endswith("| met |") and "0.760" in ce  # mean 0.76 >= 0.75
    assert margin.endswith("**not met** |")
    assert "13.3" in head and head.endswith("**not met** |")  # mean 13.3 < 15
    md = "\n".join(_preconditions_md(dataclasses.replace(TINY, min_headroom=10.0),
                                     lambda n: np.asarray(values[n]), 8))
    assert next(x for x in md.splitlines() if "headroom" in x).endswith("| met |")
