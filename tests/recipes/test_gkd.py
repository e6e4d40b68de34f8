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
