"""non-episodic recipe: smoke end to end, resume after a kill, user errors (exit 2)."""

import dataclasses
import json

import numpy as np
import pytest

from selftaught.cli import main
from selftaught.core import runner
from selftaught.core.errors import ConfigError
from selftaught.core.rundir import RunDir
from selftaught.recipes import non_episodic as ne
from selftaught.rl import gridworld as gw

SEEDS = 2


def _curves(run_dir):
    ev = RunDir.open(run_dir).events("curve")
    return sorted((e["condition"], e["seed"], tuple(e["success"]), tuple(e["td_loss"]))
                  for e in ev)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("ne") / "smoke"
    _, summary = runner.execute(ne.RECIPE, ne.SMOKE, preset="smoke", seeds=SEEDS, run_dir=path)
    return path, summary


@pytest.mark.slow
def test_smoke_end_to_end(smoke_run):
    path, summary = smoke_run
    cfg = ne.SMOKE
    names = [c["name"] for c in summary["claims"]]
    assert names == ["episodic_gt_non_episodic", "dynamic_p0.1_gt_static",
                     "env_shaping_matches_reward_shaping"]
    for c in summary["claims"]:
        assert c["ci_low"] <= c["value"] + 1e-9 <= c["ci_high"] + 2e-9
    ev = RunDir.open(path).events("curve")
    assert len(ev) == len(ne.conditions(cfg)) * SEEDS
    for e in ev:
        assert len(e["success"]) == cfg.num_evals
        assert all(0.0 <= s <= 1.0 for s in e["success"])
        assert all(1 <= h <= cfg.world.episode_steps for h in e["hitting_time"])
        assert 0.0 < e["visitation_entropy"][-1] <= np.log(cfg.world.size ** 2) + 1e-6
        assert np.isfinite(e["td_loss"]).all()
        # lifetime successes never decrease
        assert np.all(np.diff(e["lifetime_successes"]) >= 0)
    report = (path / "report.md").read_text()
    assert "## Validation success, hitting time, visitation entropy" in report
    for png in ("success.png", "curves_static_vs_dynamic.png", "curves_shaping.png"):
        assert (path / "plots" / png).stat().st_size > 0
    again = runner.finalize(ne.RECIPE, RunDir.open(path))
    assert again["claims"] == summary["claims"]


@pytest.mark.slow
def test_resume_after_interruption_gives_same_metrics(smoke_run, tmp_path, killed_at):
    path_ref, summary_ref = smoke_run
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 3):
        runner.execute(ne.RECIPE, ne.SMOKE, preset="smoke", seeds=SEEDS, run_dir=path)
    assert len(RunDir.open(path).done_phases()) == 2
    _, summary = runner.execute(ne.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert _curves(path) == _curves(path_ref)
    assert summary["claims"] == summary_ref["claims"]
    done = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "phase_done" for r in done) == len(ne.conditions(ne.SMOKE))


def test_conditions_and_their_world_knobs():
    cfg = ne.SMOKE
    conds = ne.conditions(cfg)
    assert [c.name for c in conds] == ["episodic", "non-episodic", "dynamic p=0.1",
                                       "replaced (unshaped)", "env-shaped S=500",
                                       "reward-shaped b=0.1", "reward-shaped b=0.5"]
    prm = {c.name: c.params() for c in conds}
    assert bool(prm["episodic"].episodic) and not bool(prm["non-episodic"].episodic)
    assert float(prm["dynamic p=0.1"].p) == pytest.approx(0.1)
    assert float(prm["env-shaped S=500"].shaping_steps) == 500.0
    assert float(prm["reward-shaped b=0.5"].reward_bonus) == 0.5
    assert all(float(prm[n].p) == 0.0 for n in prm if not n.startswith("dynamic"))
    regrow = {n: float(prm[n].p_regrow) for n in prm}
    assert regrow["non-episodic"] == 0.0 and regrow["dynamic p=0.1"] == pytest.approx(0.1)
    assert all(regrow[c.name] == 1.0 for c in conds if "shaped" in c.name)


def test_bootstrap_helpers():
    a, b = np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0])
    assert ne._diff_ci(a, b) == (1.0, 1.0, 1.0)
    pt, lo, hi = ne._diff_ci(np.array([0.0, 1.0, 0.5, 0.7]), np.array([0.2, 0.1, 0.3]))
    assert lo <= pt <= hi and pt == pytest.approx(0.55 - 0.2)
    # spread: A = {0.1, 0.9} -> 0.8, B = {0.5, 0.6} -> 0.1
    g = lambda v: np.full(4, v)  # noqa: E731
    assert ne._spread_diff_ci([g(0.1), g(0.9)], [g(0.5), g(0.6)])[0] == pytest.approx(0.7)


def test_config_errors():
    with pytest.raises(ConfigError, match=r"p is a probability and must be in \[0, 1\]"):
        dataclasses.replace(ne.SMOKE, dynamism=(0.1, 1.5)).validate()
    with pytest.raises(ConfigError, match="final_points"):
        dataclasses.replace(ne.SMOKE, final_points=9).validate()
    with pytest.raises(ConfigError, match="gamma must be in"):
        dataclasses.replace(ne.SMOKE, gamma=1.0).validate()
    with pytest.raises(ConfigError, match="need 6 cells"):
        dataclasses.replace(ne.SMOKE, world=gw.WorldSpec(size=2, num_resources=2,
                                                         task="hunt", num_prey=3)).validate()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--world.size", "2", "--world.num-resources", "3"], "need 7 cells but a 2x2 room"),
        (["--dynamism", "0.1", "-0.2"], "p is a probability and must be in [0, 1], got -0.2"),
        (["--world.task", "maze"], "unknown gridworld task 'maze'"),
    ],
)
def test_cli_user_errors_exit_2(flags, message, tmp_path, capsys):
    rc = main(["run", "non-episodic", "--preset", "smoke", "--run-dir", str(tmp_path / "r"),
               *flags])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1
