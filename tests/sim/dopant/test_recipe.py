"""The dopant-control recipe end to end (smoke preset), resume, and user errors."""

import json

import numpy as np
import pytest

from selftaught import cli
from selftaught.core import config as cfglib
from selftaught.core import runner
from selftaught.core.errors import ConfigError, DataError, UnknownNameError
from selftaught.recipes import dopant_control as dc
from selftaught.sim.dopant import control, data, metrics, rates


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
    assert set(claims) == {"learned_fewer_beam_seconds", "rate_map_recovered",
                           "learned_not_worse_where_prior_is_right"}
    for c in claims.values():
        assert c["ci_low"] <= c["value"] <= c["ci_high"]
        assert c["unit"] == "training seeds" and c["n"] == 2 and c.get("undetermined")
    # robust at smoke size: the learned model beats the human prior on beam seconds
    assert claims["learned_fewer_beam_seconds"]["value"] > 0
    episodes = run.events("episodes")
    assert {(e["world"], e["controller"]) for e in episodes} == {
        (w, c) for w in ("offaxis", "prior-like") for c in dc.CONTROLLERS}
    assert all(len(e["beam_time"]) == 12 for e in episodes)
    # the control-world claim: learned vs prior beam seconds in the prior-like world, in %
    # of the prior's, paired by seed
    ctrl = {(e["seed"], e["controller"]): np.mean(e["beam_time"]) for e in episodes
            if e["world"] == "prior-like"}
    rel = [100 * (ctrl[(s, "learned")] - ctrl[(s, "human-prior")]) / ctrl[(s, "human-prior")]
           for s in (0, 1)]
    c = claims["learned_not_worse_where_prior_is_right"]
    assert c["value"] == pytest.approx(np.mean(rel))
    assert f"{100 * dc.SMOKE.prior_world_margin:g}%" in c["statement"]
    # the map tolerance comes from the truth (its weakest lobe), not from a config number
    tol = metrics.missing_lobe_error(rates.ground_truth("offaxis"))
    assert f"{tol:.3g}" in claims["rate_map_recovered"]["statement"]
    assert "## Control world: prior-like" in (run.path / "report.md").read_text()
    oracle = [e for e in episodes if e["controller"] == "oracle"]
    assert all(all(e["success"]) for e in oracle)
    budget = run.events("budget")
    assert [(e["seed"], e["records"]) for e in budget] == [(0, 512), (1, 512)]
    assert all(0 < e["map_error"] < 2 and len(e["beam_time"]) == 12 for e in budget)
    for name in ("rate_maps", "beam_seconds", "beam_seconds_by_distance",
                 "success_by_distance", "training_loss", "beam_seconds_vs_data"):
        assert (run.plots / f"{name}.png").stat().st_size > 0
    assert (run.path / "data" / "seed0.jsonl").exists()
    assert (run.path / "data" / "prior-like" / "seed0.jsonl").exists()
    report = (run.path / "report.md").read_text()
    assert "| learned |" in report and "## Verdict" in report and "## Data efficiency" in report


def test_resume_after_a_kill_gives_the_same_metrics(smoke_run, tmp_path, monkeypatch):
    ref_run, ref_summary = smoke_run
    path = tmp_path / "run"
    calls = {"n": 0}
    original = control.sample_goals

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # inside seed 0's budget phase
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


def test_a_missing_event_is_the_one_line_unfinished_run_error(smoke_run, tmp_path, capsys):
    """A finished run whose log lost one episodes event: `selftaught report` names the
    missing cell and the resume command (exit 2). The run with its last seed's control undone
    instead is unfinished: its report covers the other seed, marked partial."""
    import shutil

    ref_run, _ = smoke_run
    path = shutil.copytree(ref_run.path, tmp_path / "run")
    lines = (path / "metrics.jsonl").read_text().splitlines(True)
    recs = [json.loads(ln) for ln in lines]
    drop = [i for i, r in enumerate(recs) if r["event"] == "episodes"][-1]
    (path / "metrics.jsonl").write_text("".join(lines[:drop] + lines[drop + 1:]))
    assert cli.main(["report", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    r = recs[drop]
    assert err.endswith(
        f"{path} is an unfinished run: no 'episodes' event (world={r['world']}) for "
        f"seed={r['seed']}, controller={r['controller']}; finish it with `selftaught run "
        f"dopant-control --resume {path}`")
    last = recs[drop]["seed"]
    undone = [i for i, r in enumerate(recs) if r["event"] == "phase_done"
              and r["phase"].startswith(f"seed{last}/") and r["phase"].endswith("control")]
    (path / "metrics.jsonl").write_text("".join(
        ln for i, ln in enumerate(lines) if i not in undone))
    assert cli.main(["report", str(path)]) == 0
    summary = json.loads((path / "summary.json").read_text())
    assert summary["complete"] is False and all(c["partial"] for c in summary["claims"])
    assert {c["n"] for c in summary["claims"]} == {1}


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
        (["--control-truth", "offaxis"], ConfigError, "--control-truth must be prior-like"),
        (["--prior-world-margin", "1.5"], ConfigError, "--prior-world-margin must be"),
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
    ckpt = run.load_checkpoint("seed0/learn")
    logged = run.events("learn", seed=0, world="offaxis")[0]["map_error"]
    truth = rates.ground_truth("offaxis")
    distilled = dc._learned_model(
        cfglib.replace(dc.SMOKE, learned_model="distilled", symmetrize=False), ckpt)
    assert metrics.rate_map_error(distilled, truth) == pytest.approx(logged["distilled"])
    learned = dc._learned_model(dc.SMOKE, ckpt)
    assert metrics.rate_map_error(learned, truth) == pytest.approx(logged["learned"])


def test_control_world_can_be_skipped_or_coincide_with_the_truth():
    with_control = dc.phases(dc.SMOKE, [0])
    assert "seed0/prior-like/learn" in with_control
    assert "seed0/prior-like/budget" not in with_control
    for cfg in (cfglib.replace(dc.SMOKE, control_truth=""),
                cfglib.replace(dc.SMOKE, truth="prior-like")):
        assert dc.worlds(cfg) == [(cfg.truth, "")]
        assert dc.phases(cfg, [0]) == ["seed0/collect", "seed0/learn", "seed0/control",
                                       "seed0/budget"]


def test_missing_lobe_tolerance_follows_the_weakest_lobe():
    """The rate-map tolerance is the error of the truth without its weakest lobe: it shrinks
    with that lobe's weight and equals dropping that lobe by hand."""
    truth = rates.ground_truth("offaxis")
    means, sigmas = np.asarray(truth.means_Mx2), np.asarray(truth.sigmas_M)
    weights = np.asarray(truth.weights_M)
    weakest = int(np.argmin(weights * sigmas**2))
    keep = np.arange(len(weights)) != weakest
    by_hand = rates.mixture(means[keep], sigmas[keep], weights[keep], float(truth.background))
    tol = metrics.missing_lobe_error(truth)
    assert tol == pytest.approx(metrics.rate_map_error(by_hand, truth))
    fainter = weights.copy()
    fainter[weakest] /= 4
    weaker = rates.mixture(means, sigmas, fainter, float(truth.background))
    assert metrics.missing_lobe_error(weaker) < tol
    # the human prior (right family, wrong place) is far outside it on this truth
    prior = rates.human_prior(metrics.fitted_scale(rates.human_prior(), truth))
    assert metrics.rate_map_error(prior, truth) > 2 * tol


@pytest.mark.slow
def test_smoke_with_varying_voltage_and_current(tmp_path):
    cfg = cfglib.replace(dc.SMOKE, vary_settings=True)
    run, summary = runner.execute(dc.RECIPE, cfg, preset="smoke", seeds=1, run_dir=tmp_path)
    records = data.read_experiments(tmp_path / "data" / "seed0.jsonl")
    assert records.context[:, 2].std() > 1 and records.context[:, 3].std() > 1
    assert {c["name"] for c in summary["claims"]} == {
        "learned_fewer_beam_seconds", "rate_map_recovered",
        "learned_not_worse_where_prior_is_right"}
