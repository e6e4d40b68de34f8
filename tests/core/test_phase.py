"""RunDir.phase: resume or run, events tagged with the phase, checkpoint, done-marker, plan."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core import DataError, RunDir, progress


def make(tmp_path, resume=False):
    return RunDir.create(tmp_path / "run", recipe="toy", preset="smoke", seeds=1, config={},
                         resume=resume)


def params(scale=1.0):
    return {"dense": {"w": jnp.arange(6.0).reshape(2, 3) * scale, "b": jnp.zeros(3)},
            "step": jnp.int32(7)}


def test_result_is_the_same_tree_computed_or_restored(tmp_path):
    calls = []

    def work(log):
        calls.append(log.phase)
        log("train", loss=0.5)
        return params(2.0)

    run = make(tmp_path)
    computed = run.phase("seed0/sft", work, restore=params())
    resumed = make(tmp_path, resume=True)
    restored = resumed.phase("seed0/sft", work, restore=params())
    assert calls == ["seed0/sft"]  # not run again
    assert jax.tree_util.tree_structure(restored) == jax.tree_util.tree_structure(computed)
    for a, b in zip(jax.tree_util.tree_leaves(computed), jax.tree_util.tree_leaves(restored)):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # without a restore target a tree of dicts comes back as saved
    again = resumed.phase("seed0/sft", work)
    np.testing.assert_array_equal(again["dense"]["w"], np.asarray(computed["dense"]["w"]))


def test_events_are_tagged_and_the_phase_is_marked_done_with_its_time(tmp_path, capsys,
                                                                      monkeypatch):
    monkeypatch.delenv("SELFTAUGHT_QUIET", raising=False)
    run = make(tmp_path)

    def work(log):
        log("eval", seed=0, acc=np.float32(0.25))
        log.headline(acc=0.25, kept=3)
        return None  # a phase without a checkpoint

    assert run.phase("seed0/eval", work) is None
    raw = [json.loads(x) for x in run.metrics_path.read_text().splitlines()]
    assert raw[0] == {"event": "eval", "phase": "seed0/eval", "seed": 0, "acc": 0.25}
    done = raw[1]
    assert done["event"] == "phase_done" and done["phase"] == "seed0/eval"
    assert done["wall_seconds"] >= 0 and (done["acc"], done["kept"]) == (0.25, 3)
    assert "files" not in done and not run.has_checkpoint("seed0/eval")
    assert capsys.readouterr().out.startswith("[toy] seed0/eval done in ")
    assert "(acc=0.25, kept=3)" in run.log_path.read_text()
    # resumed, a phase without a checkpoint gives None again and logs nothing
    resumed = make(tmp_path, resume=True)
    assert resumed.phase("seed0/eval", lambda log: pytest.fail("ran again")) is None
    assert len(resumed.metrics_path.read_text().splitlines()) == 2


def test_events_of_a_killed_phase_are_dropped_and_it_runs_again(tmp_path):
    run = make(tmp_path)
    run.phase("p1", lambda log: log("train", loss=1.0))

    def killed(log):
        log("train", loss=2.0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run.phase("p2", killed)
    assert not run.has_checkpoint("p2") and run.done_phases() == {"p1"}
    resumed = make(tmp_path, resume=True)
    assert [e["loss"] for e in resumed.events("train")] == [1.0]
    resumed.phase("p2", lambda log: log("train", loss=3.0))
    assert [e["loss"] for e in resumed.events("train")] == [1.0, 3.0]
    assert resumed.done_phases() == {"p1", "p2"}


def test_a_phase_outside_the_plan_is_an_internal_error(tmp_path):
    run = make(tmp_path)
    with run.planned(["seed0/a", "seed0/b"]):
        run.phase("seed0/a", lambda log: None)
        with pytest.raises(RuntimeError, match="phase 'seed0/c' is not in the recipe's plan "
                           r"\(seed0/a, seed0/b\)"):
            run.phase("seed0/c", lambda log: None)
    assert run.done_phases() == {"seed0/a"}
    run.phase("seed0/c", lambda log: None)  # no plan given: no check
    assert run.plan is None


def test_the_plan_bar_advances_once_per_phase_run_or_restored(tmp_path, monkeypatch):
    bars = []

    class FakeBar:
        def __init__(self, description, total):
            self.description, self.total, self.n = description, total, 0
            bars.append(self)

        def advance(self, n=1):
            self.n += n

    import contextlib

    @contextlib.contextmanager
    def fake_bar(description, total):
        yield FakeBar(description, total)

    monkeypatch.setattr(progress, "bar", fake_bar)
    plan = ["a", "b", "c"]
    run = make(tmp_path)
    with run.planned(plan, "toy phases"):
        pass
    assert bars == []  # no phase ran: no bar
    seen = []
    with run.planned(plan, "toy phases"):
        run.phase("a", lambda log: seen.append(len(bars)) or {"w": np.ones(2)})
        run.phase("b", lambda log: None)
    assert seen == [1]  # the plan's bar is open before the first work (its bars nest in it)
    resumed = make(tmp_path, resume=True)
    with resumed.planned(plan, "toy phases"):
        for name in plan:
            resumed.phase(name, lambda log: None)
    assert [(b.description, b.total, b.n) for b in bars] == [("toy phases", 3, 2),
                                                             ("toy phases", 3, 3)]


def test_a_result_that_could_not_be_restored_is_refused_when_computed(tmp_path):
    run = make(tmp_path)
    with pytest.raises(RuntimeError, match="not a tree of dicts and arrays"):
        run.phase("tuple", lambda log: (np.ones(2), np.zeros(3)))
    with pytest.raises(RuntimeError, match="not shaped like its `restore` target"):
        run.phase("shape", lambda log: {"w": np.ones(2)}, restore={"w": np.ones(3)})
    assert run.done_phases() == set() and not run.has_checkpoint("tuple")
    # a tuple with its restore target is fine, computed and restored
    like = (np.ones(2), np.zeros(3))
    got = run.phase("tuple", lambda log: (np.full(2, 5.0), np.arange(3.0)), restore=like)
    back = make(tmp_path, resume=True).phase("tuple", None, restore=like)
    assert isinstance(back, tuple)
    np.testing.assert_array_equal(back[1], got[1])


def test_a_checkpoint_that_does_not_fit_restore_is_a_one_line_error(tmp_path):
    run = make(tmp_path)
    run.phase("seed0/sft", lambda log: {"w": np.ones((2, 3))}, restore={"w": np.ones((2, 3))})
    resumed = make(tmp_path, resume=True)
    with pytest.raises(DataError) as exc:
        resumed.phase("seed0/sft", None, restore={"w": np.ones((4, 3))})
    msg = str(exc.value)
    assert "\n" not in msg and "does not fit the model of this config" in msg
    assert "rm " in msg and "phase 'seed0/sft'" in msg and "--resume" in msg


def test_the_runner_hands_the_recipe_plan_to_the_run_directory(tmp_path):
    import dataclasses

    import toy_recipe

    from selftaught.core import runner

    toy = toy_recipe.RECIPE
    cfg = toy.preset("smoke")
    run, summary = runner.execute(toy, cfg, preset="smoke", seeds=1, run_dir=tmp_path / "ok")
    assert run.done_phases() == set(toy.phases(cfg, [0])) and "complete" not in summary
    forgetful = dataclasses.replace(toy, phases=lambda config, seeds: ["seed0/step0"])
    with pytest.raises(RuntimeError, match="phase 'seed0/step1' is not in the recipe's plan"):
        runner.execute(forgetful, cfg, preset="smoke", seeds=1, run_dir=tmp_path / "bad")
