"""GKD recipe: config errors (fast); smoke mechanics and resume after kill (slow)."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from selftaught import recipes
from selftaught.core import ConfigError, runner
from selftaught.core import config as cfglib
from selftaught.core.errors import DataError
from selftaught.lm.distill import load_teacher
from selftaught.lm.model import ModelSize, TransformerConfig, init_params
from selftaught.recipes import gkd

RECIPE = recipes.get("gkd")
SMOKE = RECIPE.preset("smoke")
TINY = dataclasses.replace(SMOKE, methods=("sft", "supervised_kd", "gkd_beta0.5"))


def test_bad_configs_raise_config_error():
    for bad in (dict(methods=("sft", "kd")), dict(distill_temperature=0.0),
                dict(train_problems=0)):
        with pytest.raises(ConfigError):
            cfglib.validate(dataclasses.replace(SMOKE, **bad))


def test_gain_multiple():
    assert gkd.gain_multiple(np.array([4.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(2.0)
    assert np.isnan(gkd.gain_multiple(np.array([1.0]), np.array([0.0])))


def test_teacher_checkpoint_of_another_shape_is_a_data_error(tmp_path):
    from flax import serialization

    cfg = TransformerConfig(vocab_size=20, max_len=16, d_model=16, n_layers=1, n_heads=2)
    other = dataclasses.replace(cfg, d_model=8)
    path = tmp_path / "teacher.msgpack"
    path.write_bytes(serialization.msgpack_serialize(serialization.to_state_dict(
        init_params(other, jax.random.key(0)))))
    like = init_params(cfg, jax.random.key(1))
    with pytest.raises(DataError, match="does not match the config's model"):
        load_teacher(str(path), like)
    with pytest.raises(DataError, match="does not exist"):
        load_teacher(str(tmp_path / "missing.msgpack"), like)
    path.write_bytes(serialization.msgpack_serialize(serialization.to_state_dict(like)))
    restored = load_teacher(str(path), like)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, restored, like))


def _counted(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "seconds", "peak_rss_mib",
                                                      "resumed")}
            for r in lines if r["event"] == "eval"]


@pytest.mark.slow
def test_smoke_run_and_resume_after_kill(tmp_path, killed_at):
    _, ref = runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    names = {c["name"] for c in ref["claims"]}
    assert names == {"gkd_beats_supervised_kd", "gkd_beats_seqkd",
                     "gain_multiple_vs_supervised_kd"} or names == set()
    assert (tmp_path / "ref" / "plots" / "accuracy.png").stat().st_size > 0
    # teacher, init, sft done; killed while evaluating supervised_kd
    with killed_at(gkd, "evaluate", 4):
        runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "kill")
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")
    assert resumed["claims"] == ref["claims"]
    assert {e["model"] for e in _counted(tmp_path / "ref")} == {
        "teacher", "init", "sft", "supervised_kd", "gkd_beta0.5"}
    # the teacher of one run can be reused by another (same shape and task)
    cfg = dataclasses.replace(TINY, methods=("sft",),
                              teacher_checkpoint=str(tmp_path / "ref/checkpoints/teacher.msgpack"))
    run, _ = runner.execute(RECIPE, cfg, preset="smoke", seeds=1, run_dir=tmp_path / "reuse")
    t_ref = [e for e in _counted(tmp_path / "ref") if e["model"] == "teacher"][0]
    t_new = [e for e in _counted(tmp_path / "reuse") if e["model"] == "teacher"][0]
    assert t_new["greedy_acc"] == t_ref["greedy_acc"]
    bad = dataclasses.replace(cfg, teacher=ModelSize(d_model=8, n_layers=1, n_heads=2))
    with pytest.raises(DataError, match="does not match"):
        runner.execute(RECIPE, bad, preset="smoke", seeds=1, run_dir=tmp_path / "bad")


def test_validation_and_test_problems_are_disjoint():
    st = gkd.make_setting(SMOKE)
    key = lambda ps: {st.s.task.prompt(p) for p in ps}  # noqa: E731
    assert not key(st.s.valid) & key(st.s.test)
    assert not (key(st.s.valid) | key(st.s.test)) & key(st.s.train)


def _synthetic_run(tmp_path, val, test, seeds=(0, 1, 2)):
    """A run directory holding only evaluation events: per model, (greedy, t1) accuracy on
    validation and on test, identical across seeds except a small seed offset."""
    from selftaught.core.rundir import RunDir

    rd = RunDir(tmp_path)
    for sd in seeds:
        for m in ("init", *val):
            (vg, vt), (tg, tt) = val[m], test[m]
            rd.log("eval", model=m, seed=sd, greedy_acc=tg + 0.01 * sd, t1_acc=tt + 0.01 * sd,
                   val_greedy_acc=vg + 0.01 * sd, val_t1_acc=vt + 0.01 * sd)
    return rd


def test_report_selects_beta_on_validation_not_test(tmp_path):
    """Validation prefers gkd_beta0 (greedy) / gkd_beta1 (T=1), test prefers gkd_beta1 /
    gkd_beta0: the report must pick by validation and report the picked arm's test numbers."""
    val = {"init": (0.1, 0.1), "sft": (0.3, 0.3), "supervised_kd": (0.3, 0.3),
           "seqkd": (0.3, 0.3), "gkd_beta0": (0.8, 0.2), "gkd_beta1": (0.2, 0.8)}
    test = {"init": (0.1, 0.1), "sft": (0.3, 0.3), "supervised_kd": (0.4, 0.3),
            "seqkd": (0.2, 0.3), "gkd_beta0": (0.5, 0.9), "gkd_beta1": (0.9, 0.5)}
    cfg = dataclasses.replace(SMOKE, methods=tuple(val.keys() - {"init"}))
    rep = gkd.report(cfg, _synthetic_run(tmp_path, val, test), [0, 1, 2])
    claims = {c.name: c for c in rep.claims}
    beats_kd = claims["gkd_beats_supervised_kd"]
    assert "gkd_beta0" in beats_kd.statement and "gkd_beta1" not in beats_kd.statement
    # the estimate is gkd_beta0's test accuracy minus supervised KD's: 50 - 40 points
    assert beats_kd.value == pytest.approx(10.0)
    assert claims["gkd_beats_seqkd"].value == pytest.approx(30.0)
    assert "temperature-1 sampling gkd_beta1 (on validation" in rep.markdown
    # had the test split chosen, greedy would be gkd_beta1 (+50 over supervised KD)
    swapped = gkd.report(cfg, _synthetic_run(tmp_path / "swap", test, val), [0, 1, 2])
    assert "gkd_beta1" in {c.name: c for c in swapped.claims}[
        "gkd_beats_supervised_kd"].statement


def test_report_refuses_a_run_without_validation_numbers(tmp_path):
    from selftaught.core.rundir import RunDir

    rd = RunDir(tmp_path)
    for m in ("init", "sft"):
        rd.log("eval", model=m, seed=0, greedy_acc=0.5, t1_acc=0.5)
    with pytest.raises(ConfigError, match="predates the validation split"):
        gkd.report(dataclasses.replace(SMOKE, methods=("sft",)), rd, [0])
