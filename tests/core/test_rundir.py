import json

import numpy as np
import pytest

from selftaught.core import DataError, RunDir, RunDirError
from selftaught.core.rundir import atomic_write_text


def make(tmp_path, **kw):
    args = dict(recipe="toy", preset="smoke", seeds=1, config={"a": 1}, resume=False)
    args.update(kw)
    return RunDir.create(tmp_path / "run", **args)


def test_config_json_written(tmp_path):
    run = make(tmp_path)
    meta = json.loads((run.path / "config.json").read_text())
    assert meta == {"recipe": "toy", "preset": "smoke", "seeds": 1, "config": {"a": 1}}


def test_dir_with_finished_phase_needs_resume(tmp_path):
    run = make(tmp_path)
    run.mark_phase_done("p1", 0.1)
    with pytest.raises(RunDirError, match="finished phases; continue it with `selftaught run toy "
                       "--resume "):
        make(tmp_path)


def test_resume_other_recipe_is_refused(tmp_path):
    make(tmp_path)
    with pytest.raises(RunDirError, match="holds a run of recipe 'toy', not 'other'"):
        make(tmp_path, recipe="other", resume=True)


def test_resume_without_config_is_refused(tmp_path):
    with pytest.raises(RunDirError, match="no config.json"):
        make(tmp_path, resume=True)


def test_events_of_unfinished_phases_do_not_count_and_are_dropped_on_resume(tmp_path):
    run = make(tmp_path)
    run.log("note", value=1)
    run.log("train", phase="p1", loss=np.float32(0.5))
    run.mark_phase_done("p1", 1.5)
    run.log("train", phase="p2", loss=0.25)  # p2 never finishes (killed)
    assert [e["loss"] for e in run.events("train")] == [0.5]
    assert run.wall_seconds() == 1.5
    resumed = make(tmp_path, resume=True)
    raw = [json.loads(line) for line in resumed.metrics_path.read_text().splitlines()]
    assert [r["event"] for r in raw] == ["note", "train", "phase_done"]
    assert resumed.done_phases() == {"p1"}


def test_truncated_last_line_is_ignored_but_corruption_is_reported(tmp_path):
    run = make(tmp_path)
    run.log("a", x=1)
    with open(run.metrics_path, "ab") as fh:
        fh.write(b'{"event": "b", "x"')  # a write cut by a kill
    assert [e["event"] for e in run.events()] == ["a"]
    atomic_write_text(run.metrics_path, '{"event": "a"}\nnot json\n')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        run.events()


def test_checkpoint_round_trip(tmp_path):
    run = make(tmp_path)
    tree = {"params": {"w": np.arange(6.0).reshape(2, 3)}, "step": np.int32(4)}
    path = run.save_checkpoint("seed0/iter1", tree)
    assert path.name == "seed0__iter1.msgpack"
    assert run.has_checkpoint("seed0/iter1")
    back = run.load_checkpoint("seed0/iter1")
    np.testing.assert_array_equal(back["params"]["w"], tree["params"]["w"])
    assert int(back["step"]) == 4
    assert not list(run.checkpoints.glob(".*tmp"))
    with pytest.raises(RunDirError, match="checkpoint 'nope' missing"):
        run.load_checkpoint("nope")


def test_open_requires_a_run_dir(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        RunDir.open(tmp_path)
