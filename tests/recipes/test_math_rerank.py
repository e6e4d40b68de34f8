"""math-rerank end to end on tiny settings: files and claims, resume after a kill, user errors
(exit 2, nothing half-written)."""

import dataclasses
import json

import pytest

from selftaught import cli, recipes
from selftaught.core import ConfigError, RunDir, runner
from selftaught.core import config as cfglib
from selftaught.lm import TrainConfig
from selftaught.lm.model import ModelSize
from selftaught.recipes import math_rerank

RECIPE = recipes.get("math-rerank")

# Tiny: only checks mechanics (phases, resume, files), not the claims.
TINY = dataclasses.replace(
    RECIPE.preset("smoke"), num_seeds=1, task_args="steps=(1, 2), modulus=5",
    sft_problems=40, pool_problems=30, eval_problems=8,
    model=ModelSize(d_model=16, n_layers=1, n_heads=2),
    sft=TrainConfig(lr=1e-2, warmup_steps=5, total_steps=60, batch_size=16),
    pool_samples=4,
    evaluator=TrainConfig(lr=1e-3, warmup_steps=5, total_steps=20, batch_size=8),
    candidates=4, claim_k=4, top_clusters=2, vote_repeats=4, sample_batch=64,  # k=1: all 4 subsets
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
        "topk_ce_beats_majority", "topk_ce_beats_rerank_all", "topk_margin_beats_majority",
        "topk_margin_beats_rerank_all", "weighted_ce_beats_majority",
        "margin_beats_ce_rerank_all", "sequential_not_worse_than_solution_ft",
        "detailed_beats_terse"}
    (ev,) = run.events("rerank_eval")
    for k in (1, 2, 4):  # every selector is a rate and never beats the oracle pass@k
        for name in ("maj", "all_ce", "weighted_ce", "topk_ce", "all_margin", "topk_margin"):
            assert 0.0 <= ev[f"{name}_{k}"] <= ev[f"passk_{k}"] + 1e-9
    for name in ("maj", "all_ce", "topk_margin", "passk"):  # one candidate: a random pick
        assert ev[f"{name}_1"] == pytest.approx(ev["sample_acc"])
    (sft,) = run.events("sft_eval")
    assert set(sft) >= {"pass1_detailed", "pass1_terse", "loss_detailed", "loss_terse"}
    (gate,) = run.events("gate")  # G_detailed: train vs fresh, before it samples the pool
    assert gate["phase"] == "seed0/sft"
    assert 0.0 <= gate["train_accuracy"] <= 1.0 and 0.0 <= gate["fresh_accuracy"] <= 1.0
    assert gate["train_problems"] == gate["fresh_problems"] == TINY.eval_problems
    assert "## Generalisation gate" in (run.path / "report.md").read_text()
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
    ({"verdict": "1"}, "verdict must be two different characters"),
    ({"verdict": "yn"}, "verdict must be two different characters"),
    ({"task_args": "steps=(1, 2), modulus=1"}, "modulus must be an int"),
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
    argv = ["run", "math-rerank", "--preset", "smoke", "--seeds", "1", "--run-dir",
            str(run_dir), "--task-args", "steps=1, modulus=7", "--sft-problems", "6",
            "--pool-problems", "4", "--eval-problems", "2", "--model.d-model", "8",
            "--model.n-layers", "1", "--model.n-heads", "1", "--sft.total-steps", "1",
            "--sft.warmup-steps", "0", "--sft.lr", "1e-6", "--pool-samples", "1",
            "--chunk-steps", "1", "--sample-batch", "8", "--candidates", "2",
            "--claim-k", "2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "no pool problem has both a correct and an incorrect sample" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1
    run = RunDir.open(run_dir)
    assert run.done_phases() == {"seed0/sft", "seed0/samples"}  # finished phases stay
    assert not [e for e in run.events() if e.get("phase") == "seed0/evaluators"]
    assert sorted(p.name for p in run.checkpoints.iterdir()
                  if not p.name.endswith(".sha256")) == ["seed0__samples.msgpack",
                                                         "seed0__sft.msgpack"]
