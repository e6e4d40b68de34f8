"""The dopant-control recipe end to end (smoke preset), resume, and user errors."""

import json

import pytest

from selftaught import cli
from selftaught.core import config as cfglib
from selftaught.core import runner
from selftaught.core.errors import ConfigError, DataError, UnknownNameError
from selftaught.recipes import dopant_control as dc
from selftaught.sim.dopant import control


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("dopant") / "run"
    run, summary = runner.execute(dc.RECIPE, dc.SMOKE, preset="smoke", seeds=2, run_dir=path)
    return run, summary


def _counted(run):
    """Every counted event except timings (which differ between sessions)."""
    out = []
    for e in run.events():
        if e["event"] in ("phase_done", "session_end"):
            continue
        out.append(json.dumps(e, sort_keys=True))
    return out


def test_smoke_end_to_end(smoke_run):
    run, summary = smoke_run
    assert summary["recipe"] == "dopant-control" and summary["seeds"] == 2
    assert run.done_phases() == set(dc.phases(dc.SMOKE, [0, 1])) and "complete" not in summary
    claims = {c["name"]: c for c in summary["claims"]}
    assert set(claims) == {"learned_fewer_beam_seconds", "rate_map_recovered"}
    for c in claims.values():
        assert c["ci_low"] <= c["value"] <= c["ci_high"]
    # robust at smoke size: the learned model beats the human prior on beam seconds
    assert claims["learned_fewer_beam_seconds"]["value"] > 0
    episodes = run.events("episodes")
    assert {e["controller"] for e in episodes} == set(dc.CONTROLLERS)
    assert all(len(e["beam_time"]) == 12 for e in episodes)
    oracle = [e for e in episodes if e["controller"] == "oracle"]
    assert all(all(e["success"]) for e in oracle)
    budget = run.events("budget")
    assert [(e["seed"], e["records"]) for e in budget] == [(0, 512), (1, 512)]
    assert all(0 < e["map_error"] < 2 and len(e["beam_time"]) == 12 for e in budget)
    for name in ("rate_maps", "beam_seconds", "beam_seconds_by_distance",
                 "success_by_distance", "training_loss", "beam_seconds_vs_data"):
        assert (run.plots / f"{name}.png").stat().st_size > 0
    assert (run.path / "data" / "seed0.jsonl").exists()
    report = (run.path / "report.md").read_text()
    assert "| learned |" in report and "## Verdict" in report and "## Data efficiency" in report


def test_resume_after_a_kill_gives_the_same_metrics(smoke_run, tmp_path, monkeypatch):
    ref_run, ref_summary = smoke_run
    path = tmp_path / "run"
    calls = {"n": 0}
    original = control.sample_goals

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # inside seed 1's control phase
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(control, "sample_goals", dying)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(dc.RECIPE, dc.SMOKE, preset="smoke", seeds=2, run_dir=path)
    monkeypatch.setattr(control, "sample_goals", original)
    run, summary = runner.execute(dc.RECIPE, None, preset="", seeds=0, run_dir=path,
                                  resume=True)
    assert _counted(run) == _counted(ref_run)
    assert summary["claims"] == ref_summary["claims"]


def test_corrupt_data_file_on_resume_names_the_line(smoke_run, tmp_path):
    ref_run, _ = smoke_run
    path = tmp_path / "run"
    cli_args = ["run", "dopant-control", "--preset", "smoke", "--seeds", "1",
                "--run-dir", str(path)]
    # a run killed after collecting: keep only the collect phase, then break line 3
    assert cli.main(cli_args) == 0
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    kept = [x for x in lines if x.get("phase", "").endswith("/collect")]
    (path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in kept))
    data_file = path / "data" / "seed0.jsonl"
    text = data_file.read_text().splitlines()
    text[2] = text[2].replace('"dwell_s": ', '"dwell_s": -')
    data_file.write_text("\n".join(text) + "\n")
    # its checksum no longer matches: the error names the file and the phase to recompute
    with pytest.raises(DataError, match=f"{data_file} is damaged.*phase 'seed0/collect'"):
        runner.execute(dc.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    # a file edited on purpose (its checksum removed) is validated line by line
    (path / "data" / "seed0.jsonl.sha256").unlink()
    with pytest.raises(DataError, match=f"{data_file}:3: 'dwell_s' must be"):
        runner.execute(dc.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)


@pytest.mark.parametrize(
    ("flags", "error", "message"),
    [
        (["--truth", "nope"], UnknownNameError, "offaxis"),
        (["--learned-model", "best"], UnknownNameError, "distilled"),
        (["--learn.members", "0"], ConfigError, "learn.members must be >= 1"),
        (["--dwell-range", "2", "1"], ConfigError, "--dwell-range needs 0 < low <= high"),
        (["--distances", "0", "3"], ConfigError, "--distances must be jump counts"),
        (["--data-budgets", "99999"], ConfigError, "--data-budgets must be exposure counts"),
        (["--learned-model", "distilled", "--learn.distill-steps", "0"], ConfigError,
         "needs --learn.distill-steps >= 1"),
    ],
)
def test_cli_user_errors_exit_2(tmp_path, capsys, flags, error, message):
    args = ["run", "dopant-control", "--preset", "smoke", "--run-dir", str(tmp_path / "r"),
            *flags]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("selftaught: error:") and message in err
    assert not (tmp_path / "r").exists()


def test_config_validation_direct():
    with pytest.raises(ConfigError, match="--max-steps must be >= 1"):
        cfglib.validate(cfglib.replace(dc.SMOKE, max_steps=0))
    with pytest.raises(ConfigError, match="--current-range"):
        cfglib.validate(cfglib.replace(dc.SMOKE, current_range=(5.0, 1.0)))
    assert cli.main(["run", "dopant-control", "--preset", "huge"]) == 2


def test_checkpoint_rebuilds_the_logged_models(smoke_run):
    """The controller's models come from the checkpoint; re-scoring them reproduces the
    logged map errors (distilled network and symmetrised ensemble)."""
    run, _ = smoke_run
    ckpt = run.load_checkpoint("seed0/model")
    logged = run.events("learn", seed=0)[0]["map_error"]
    truth = dc.rates.ground_truth("offaxis")
    distilled = dc._learned_model(
        cfglib.replace(dc.SMOKE, learned_model="distilled", symmetrize=False), ckpt)
    assert dc.metrics.rate_map_error(distilled, truth) == pytest.approx(logged["distilled"])
    learned = dc._learned_model(dc.SMOKE, ckpt)
    assert dc.metrics.rate_map_error(learned, truth) == pytest.approx(logged["learned"])


@pytest.mark.slow
def test_smoke_with_varying_voltage_and_current(tmp_path):
    cfg = cfglib.replace(dc.SMOKE, vary_settings=True)
    run, summary = runner.execute(dc.RECIPE, cfg, preset="smoke", seeds=1, run_dir=tmp_path)
    records = dc.data.read_experiments(tmp_path / "data" / "seed0.jsonl")
    assert records.context[:, 2].std() > 1 and records.context[:, 3].std() > 1
    assert {c["name"] for c in summary["claims"]} == {"learned_fewer_beam_seconds",
                                                      "rate_map_recovered"}
