"""rest-em's curriculum arm: the schedule, the fresh pools, the gate, the data it trains on,
and a tiny end-to-end run (mechanics, gate stop, resume)."""

import dataclasses
import json

import numpy as np
import pytest

from selftaught import recipes
from selftaught.core import ConfigError, runner
from selftaught.core import config as cfglib
from selftaught.lm import TrainConfig
from selftaught.lm.generate import Samples
from selftaught.lm.model import ModelSize
from selftaught.recipes import rest_em
from selftaught.recipes.rest_em import curriculum as cur

RECIPE = recipes.get("rest-em")

# Tiny: only checks mechanics (phases, gate, resume, files), not the claim.
TINY = dataclasses.replace(
    RECIPE.preset("curriculum"),
    num_seeds=1, task_args="steps=(1, 2), human_skip_prob=0, human_loose_prob=0",
    target_length=3, human_problems=30, train_problems=12, eval_problems=8,
    model=ModelSize(d_model=16, n_layers=1, n_heads=2, pos_encoding="rope"),
    sft=TrainConfig(lr=1e-2, warmup_steps=5, total_steps=30, batch_size=16),
    mstep_steps=30, iterations=2, num_samples=4, gate_k=4, gate_min=0.0, max_per_problem=2,
    sample_batch=64, chunk_steps=10,
)


def test_round_length_schedule():
    assert [cur.round_length("curriculum", r, 2, 5) for r in range(1, 6)] == [3, 4, 5, 5, 5]
    assert [cur.round_length("flat", r, 2, 5) for r in range(1, 6)] == [5] * 5


def test_pool_slices_give_each_round_fresh_problems():
    # curriculum 2 -> 4 over 4 rounds: lengths 3, 4, 4, 4; the rounds at 4 take slices 0, 1, 2
    assert cur.pool_slices("curriculum", 4, 2, 4) == [(3, 0, 1), (4, 0, 1), (4, 1, 2),
                                                       (4, 2, 3)]
    flat = cur.pool_slices("flat", 3, 2, 4)
    assert flat == [(4, 0, 1), (4, 1, 2), (4, 2, 3)]


def test_gate_is_the_pool_pass_at_k_against_the_minimum():
    correct = np.array([0, 0, 16, 1])  # of 16 samples each
    assert cur.gate(correct, 16, 16, 0.5) == (0.5, True)  # pass@16: 0, 0, 1, 1
    value, ok = cur.gate(correct, 16, 1, 0.5)  # pass@1 = c / n
    assert value == pytest.approx((0 + 0 + 1 + 1 / 16) / 4) and not ok
    assert cur.gate(np.array([1, 0]), 4, 4, 0.5 + 1e-9) == (0.5, False)


def test_round_pools_are_fresh_of_their_length_and_not_eval_problems():
    s = cur.make_setting(TINY, 0)
    cfg = dataclasses.replace(TINY, iterations=3, target_length=3)
    n_ops = lambda p: (len(p.operands) - 1) // 2  # noqa: E731
    flat = [cur.round_pool(cfg, "flat", r, 0) for r in (1, 2, 3)]
    ids = [p.id for pool in flat for p in pool]
    assert len(ids) == len(set(ids)) == 3 * cfg.train_problems  # fresh every round
    assert all(n_ops(p) == 3 for pool in flat for p in pool)
    curr = [cur.round_pool(cfg, "curriculum", r, 0) for r in (1, 2)]
    assert {n_ops(p) for p in curr[0]} == {3} == {n_ops(p) for p in curr[1]}
    assert not {p.id for p in curr[1]} & {p.id for p in curr[0]}
    held_out = {p.id for p in s.valid + s.test}
    assert not held_out & set(ids)
    assert {n_ops(p) for p in s.train} <= {1, 2} and {n_ops(p) for p in s.test} == {3}
    # the model is sized for the target length
    assert s.task.steps == (1, 3)


def test_append_rows_writes_after_the_real_rows_and_keeps_the_capacity():
    s = cur.make_setting(TINY, 0)
    data = s.pack(s.train[:3], s.human[:3], 8)
    more = s.pack(s.train[3:5], s.human[3:5])
    out = cur.append_rows(data, more)
    assert out["tokens"].shape == data["tokens"].shape
    np.testing.assert_array_equal(out["weight"], [1] * 5 + [0] * 3)
    np.testing.assert_array_equal(out["tokens"][:5], s.pack(s.train[:5], s.human[:5])["tokens"])
    assert not np.any(out["tokens"][5:])
    with pytest.raises(ValueError, match="exceed the capacity 8"):
        cur.append_rows(out, s.pack(s.train[:4], s.human[:4]))


def test_verify_steps_rejects_a_right_answer_with_a_wrong_step():
    s = cur.make_setting(TINY, 0)
    p = s.train[0]
    ref = s.task.reference_solution(p)
    wrong_step = "9+9=9 " + ref  # an extra, wrong step; the final answer is still right
    texts = [[ref, wrong_step, "=" + p.answer]]
    correct = np.array([[s.task.verify(p, t) for t in texts[0]]])
    assert correct.all()
    z = np.zeros((1, 3, 1))
    samples = Samples(problems=[p], tokens=z, mask=z, logprobs=z, texts=texts,
                      answers=[[p.answer] * 3], correct=correct)
    answer = dataclasses.replace(TINY, verify="answer")
    np.testing.assert_array_equal(cur.verified(answer, s.task, samples), [[1, 1, 1]])
    steps = dataclasses.replace(TINY, verify="steps")
    # the bare answer has no wrong step: only the final line, which checks out
    np.testing.assert_array_equal(cur.verified(steps, s.task, samples), [[1, 0, 1]])


@pytest.mark.parametrize("change, message", [
    ({"verify": "both"}, "verify must be 'answer' or 'steps'"),
    ({"verify": "steps", "task": "addition", "task_args": "digits=(1, 2)",
      "length_arg": "digits"}, "verify='steps' needs a task with step_labels"),
    ({"length_arg": "digits"}, "length_arg='digits' must be one of the task_args"),
    ({"target_length": 2}, "target_length (2) must exceed"),
    ({"iterations": 0}, "iterations (0) must be >= target_length - 2 = 1"),
    ({"gate_k": 5}, "gate_k (5) must be in [1, num_samples=4]"),
    ({"gate_min": 1.5}, "gate_min must be in [0, 1]"),
    ({"mstep_init": "last"}, "retrains from the base model"),
])
def test_curriculum_config_errors(change, message):
    with pytest.raises(ConfigError) as exc:
        cfglib.validate(dataclasses.replace(TINY, **change))
    assert message in str(exc.value)


def test_preset_compares_the_arms_at_the_same_human_data():
    cfg = RECIPE.preset("curriculum")
    cfglib.validate(cfg)
    lo, start = cur.length_range(cfg)
    assert start < cfg.target_length and cfg.iterations >= cfg.target_length - start
    assert "human_skip_prob=0" in cfg.task_args and "human_loose_prob=0" in cfg.task_args
    assert cfg.num_samples >= cfg.gate_k == 16 and cfg.gate_min == 0.2
    assert cfg.max_per_problem == 4 and cfg.mstep_init == "base"


def _events(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "seconds",
                                                     "peak_rss_mib", "resumed")}
            for r in lines if r["event"] in ("eval", "estep", "train", "gate")]


def test_tiny_run_mechanics_and_resume(tmp_path, killed_at):
    """TINY end to end with the gate always passing: every phase, a gate and an E-step per
    round, training rows that only grow, the claims and files; then killed in the flat arm's
    second M-step and resumed: the same events, the same claims."""
    run, ref = runner.execute(RECIPE, TINY, preset="curriculum", seeds=1,
                              run_dir=tmp_path / "ref")
    assert run.done_phases() == set(RECIPE.phases(TINY, [0]))
    claims = {c["name"]: c for c in ref["claims"]}
    assert set(claims) == {"curriculum_beats_flat", "curriculum_beats_sft"}
    for c in claims.values():
        assert c["ci_low"] <= c["value"] <= c["ci_high"]
    gates = run.events("gate")
    assert sorted((e["arm"], e["round"], e["length"]) for e in gates) == [
        ("curriculum", 1, 3), ("curriculum", 2, 3), ("flat", 1, 3), ("flat", 2, 3)]
    assert all(e["passed"] for e in gates)
    for arm in cur.ARMS:
        rows = [e["rows"] for e in sorted(run.events("train", arm=arm), key=lambda e: e["round"])]
        assert rows == sorted(rows) and rows[0] >= TINY.human_problems
        kept = [e["kept"] for e in run.events("estep", arm=arm)]
        assert all(0 <= k <= TINY.train_problems * TINY.max_per_problem for k in kept)
    for e in run.events("eval"):
        assert 0 <= e["test_pass1"] <= 1 and e["test_len3_pass1"] == e["test_pass1"]
    text = (run.path / "report.md").read_text()
    assert "pool pass@4" in text and "| curriculum | 2 | 3 |" in text
    assert "seed 0: every round passed the gate" in text
    assert (run.path / "plots" / "curriculum.png").stat().st_size > 0

    with killed_at(rest_em, "train_model", 4):  # sft, curriculum 1, 2, flat 1 done; flat 2
        runner.execute(RECIPE, TINY, preset="curriculum", seeds=1, run_dir=tmp_path / "kill")
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert _events(tmp_path / "kill") == _events(tmp_path / "ref")
    assert resumed["claims"] == ref["claims"]


def test_a_failed_gate_stops_the_curriculum_but_not_the_flat_arm(tmp_path):
    cfg = dataclasses.replace(TINY, gate_min=1.0, num_samples=2, gate_k=2, iterations=2)
    run, _ = runner.execute(RECIPE, cfg, preset="curriculum", seeds=1, run_dir=tmp_path / "r")
    curr = run.events("gate", arm="curriculum")
    if curr[0]["pool_pass_k"] >= 1.0:
        pytest.skip("the tiny model solved every pool problem: the gate could not fail")
    assert [e["round"] for e in curr] == [1] and not curr[0]["passed"]
    assert not run.events("estep", arm="curriculum")
    stopped = {e["round"]: e for e in run.events("eval", arm="curriculum")}
    assert not stopped[0]["stopped"] and stopped[1]["stopped"] and stopped[2]["stopped"]
    assert stopped[2]["test_pass1"] == stopped[0]["test_pass1"]  # the SFT policy stays
    assert [e["round"] for e in run.events("gate", arm="flat")] == [1, 2]
    assert len(run.events("estep", arm="flat")) == 2
    text = (run.path / "report.md").read_text()
    assert "(0/1 pass)" in text and "seed 0: stopped at round 1 (pool pass@2 at steps=3" in text
