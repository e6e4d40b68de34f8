import json

import pytest
import toy_recipe

from selftaught import cli, recipes
from selftaught.core import DivergedError, runner
from selftaught.core.errors import UnknownNameError


def test_execute_writes_the_run_directory(tmp_path, toy):
    run, summary = runner.execute(toy, toy.preset("smoke"), preset="smoke", seeds=2,
                                  run_dir=tmp_path / "r")
    assert set(summary) == {"recipe", "preset", "seeds", "claims", "wall_seconds"}
    assert summary["recipe"] == "toy" and summary["seeds"] == 2
    (claim,) = summary["claims"]
    # 2 seeds are below MIN_UNITS_FOR_CI: no CI, the claim is undetermined
    assert set(claim) == {"name", "statement", "value", "ci_low", "ci_high", "holds", "unit",
                          "n", "undetermined", "note"}
    assert claim["n"] == 2 and claim["unit"] == "training seeds" and not claim["holds"]
    assert claim["note"] == "too few training seeds for a CI (2 < 3)"
    assert claim["ci_low"] <= claim["value"] <= claim["ci_high"]
    assert json.loads((run.path / "summary.json").read_text()) == summary
    assert (run.path / "plots" / "final.png").stat().st_size > 0
    report = (run.path / "report.md").read_text()
    assert "| positive loss |" in report and "peak memory" in report
    assert "| too few training seeds for a CI (2 < 3) | undetermined |" in report
    assert len(list(run.checkpoints.glob("*.msgpack"))) == 4
    assert len(list(run.checkpoints.glob("*.msgpack.sha256"))) == 4


def test_resume_after_kill_gives_identical_metrics(tmp_path, toy, monkeypatch):
    cfg = toy.preset("default")
    _, ref = runner.execute(toy, cfg, preset="default", seeds=2, run_dir=tmp_path / "ref")
    ref_events = [e for e in (tmp_path / "ref" / "metrics.jsonl").read_text().splitlines()
                  if '"train"' in e]

    from selftaught.core.rundir import RunDir

    real_log = RunDir.log
    count = {"n": 0}

    def dying_log(self, event, phase=None, **fields):
        real_log(self, event, phase=phase, **fields)
        if event == "train":
            count["n"] += 1
            if count["n"] == 5:  # killed after logging, before the phase is marked done
                raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "log", dying_log)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(toy, cfg, preset="default", seeds=2, run_dir=tmp_path / "kill")
    monkeypatch.setattr(RunDir, "log", real_log)
    toy_recipe.CALLS.clear()
    _, resumed = runner.execute(toy, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert toy_recipe.CALLS[0] == "seed1/step0"  # finished phases were not redone
    got = [e for e in (tmp_path / "kill" / "metrics.jsonl").read_text().splitlines()
           if '"train"' in e]
    assert got == ref_events
    assert resumed["claims"] == ref["claims"]


def test_diverged_loss_names_step_and_lr(tmp_path, toy):
    cfg = toy_recipe.ToyConfig(lr=1000.0)
    with pytest.raises(DivergedError, match=r"at step 0; lower the learning rate \(now 1000"):
        runner.execute(toy, cfg, preset="default", seeds=1, run_dir=tmp_path / "r")


def test_cli_run_overrides_and_report(tmp_path, toy, capsys):
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--preset", "smoke", "--seeds", "1", "--run-dir", str(rd),
                     "--steps", "3", "--inner.width", "2"]) == 0
    meta = json.loads((rd / "config.json").read_text())
    assert meta["config"]["steps"] == 3 and meta["config"]["inner"]["width"] == 2
    assert meta["seeds"] == 1
    out = capsys.readouterr().out
    assert "run directory: " + str(rd) in out
    (rd / "summary.json").unlink()
    (rd / "report.md").unlink()
    assert cli.main(["report", str(rd)]) == 0
    assert (rd / "summary.json").exists() and (rd / "report.md").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "nope"], "unknown recipe 'nope'"),
        (["run", "toy", "--preset", "huge"], "unknown preset of recipe toy 'huge'"),
        (["run", "toy", "--steps", "0"], "steps must be positive, got 0"),
        (["run", "toy", "--seeds", "0"], "--seeds must be at least 1"),
        (["report", "/nonexistent/run"], "is not a run directory"),
    ],
)
def test_cli_user_errors_exit_2_with_one_line(argv, message, toy, capsys, tmp_path):
    if argv[0] == "run":
        argv = [*argv, "--run-dir", str(tmp_path / "r")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("selftaught: error: ") and message in err
    assert "\n" not in err and "Traceback" not in err


def test_cli_non_empty_run_dir_and_resume_rules(tmp_path, toy, capsys):
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(rd)]) == 0
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(rd)]) == 2
    assert f"finished phases; continue it with `selftaught run toy --resume {rd}`" in (
        capsys.readouterr().err)
    assert cli.main(["run", "toy", "--resume", str(rd), "--steps", "3"]) == 2
    assert "drop the overrides" in capsys.readouterr().err
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 0
    assert cli.main(["run", "--resume", str(rd)]) == 0  # the recipe is read from config.json
    assert cli.main(["run", "--resume", str(tmp_path / "nothing")]) == 2
    assert "holds no readable run (config.json); name its recipe" in capsys.readouterr().err


def test_cli_bad_flag_value_exits_2(toy, tmp_path):
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "toy", "--steps", "many", "--run-dir", str(tmp_path / "r")])
    assert exc.value.code == 2


def test_unknown_recipe_error_lists_known():
    with pytest.raises(UnknownNameError, match="choose one of"):
        recipes.get("definitely-not-a-recipe")
