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


def test_smoke_end_to_end(smoke_run):
    path, summary = smoke_run
    cfg = ne.SMOKE
    names = [c["name"] for c in summary["claims"]]
    assert names == ["episodic_gt_non_episodic", "dynamic_p0.1_gt_regrowth_only",
                     "env_shaping_matches_reward_shaping"]
    for c in summary["claims"]:
        assert c["ci_low"] <= c["value"] + 1e-9 <= c["ci_high"] + 2e-9
        assert c["unit"] == "training seeds" and c["n"] == SEEDS and c["undetermined"]
        assert not c["holds"]
    rd = RunDir.open(path)
    ev = rd.events("curve")
    assert len(ev) == len(ne.conditions(cfg)) * SEEDS
    for e in ev:
        for key in ("success", "test_success"):
            assert len(e[key]) == cfg.num_evals
            assert all(0.0 <= s <= 1.0 for s in e[key])
        for key in ("hitting_time", "test_hitting_time"):
            assert all(1 <= h <= cfg.world.episode_steps for h in e[key])
        assert 0.0 < e["visitation_entropy"][-1] <= np.log(cfg.world.size ** 2) + 1e-6
        assert np.isfinite(e["td_loss"]).all()
        # lifetime successes never decrease
        assert np.all(np.diff(e["lifetime_successes"]) >= 0)
    # every condition's dynamism is measured: drift entropy 0 exactly where p = 0, all
    # worlds regrow (a random life consumes resources and sees them come back)
    dyn = {e["condition"]: e for e in rd.events("dynamism")}
    for c in ne.conditions(cfg):
        d = dyn[c.name]
        assert d["drift_entropy_analytic"] == pytest.approx(
            gw.transition_entropy(cfg.world, c.p, 0.5))
        assert (d["drift_entropy"] > 0) == (c.p > 0)
        assert d["regrowths_per_1k"] > 0
    report = (path / "report.md").read_text()
    assert "## Test success, hitting time, transition and visitation entropy" in report
    for png in ("success.png", "curves_static_vs_dynamic.png", "curves_shaping.png"):
        assert (path / "plots" / png).stat().st_size > 0
    again = runner.finalize(ne.RECIPE, RunDir.open(path))
    assert again["claims"] == summary["claims"]


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
    assert [c.name for c in conds] == ["episodic", ne.STATIC, "dynamic p=0.1",
                                       "env-shaped S=500", "reward-shaped b=0.1",
                                       "reward-shaped b=0.5"]
    prm = {c.name: c.params() for c in conds}
    # every world regrows at the same rate: a reset-free life cannot run out of resources
    assert all(float(prm[n].p_regrow) == pytest.approx(cfg.regrowth) for n in prm)
    # each family differs from the static regrowing world in one knob only
    base = prm[ne.STATIC]
    changed = {n: {f.name for f in dataclasses.fields(gw.WorldParams)
                   if f.name != "p_prey" and float(getattr(prm[n], f.name))
                   != float(getattr(base, f.name))} for n in prm}
    assert changed == {"episodic": {"episodic"}, ne.STATIC: set(), "dynamic p=0.1": {"p"},
                       "env-shaped S=500": {"shaping_steps"},
                       "reward-shaped b=0.1": {"reward_bonus"},
                       "reward-shaped b=0.5": {"reward_bonus"}}
    assert float(prm["dynamic p=0.1"].p) == pytest.approx(0.1)
    assert float(prm["env-shaped S=500"].shaping_steps) == 500.0
    assert float(prm["reward-shaped b=0.5"].reward_bonus) == 0.5


def _fake_run(path, cfg, seeds, test, val):
    """A run directory whose curve events carry the given final success per condition
    (constant curves; {name: [per-seed values]}) and no training."""
    rd = RunDir.create(path, recipe="non-episodic", preset="smoke", seeds=len(seeds),
                       config=dataclasses.asdict(cfg), resume=False)
    for c in ne.conditions(cfg):
        for i, s in enumerate(seeds):
            e = cfg.num_evals
            rd.log("curve", phase=c.name, condition=c.name, group=c.group, knob=c.knob,
                   seed=s, steps=list(range(e)), success=[val[c.name][i]] * e,
                   test_success=[test[c.name][i]] * e, hitting_time=[5.0] * e,
                   test_hitting_time=[5.0] * e, lifetime_successes=[1] * e,
                   visitation_entropy=[1.0] * e)
        rd.log("dynamism", phase=c.name, condition=c.name, drift_entropy_analytic=0.1,
               drift_entropy=0.1, regrowths_per_1k=2.0)
        rd.mark_phase_done(c.name, 0.0)
    return rd


def test_a_missing_event_is_the_one_line_unfinished_run_error(tmp_path, capsys):
    """A run whose phases are all done but whose log lacks one curve event (a damaged log):
    `selftaught report` names the missing cell and the resume command, exit 2; an
    unfinished run (one condition not done) reports its finished conditions, marked
    partial."""
    cfg = ne.SMOKE
    seeds = runner.seed_list(cfg.seed, 3)
    flat = {c.name: [0.5] * 3 for c in ne.conditions(cfg)}
    rd = _fake_run(tmp_path / "r", cfg, seeds, flat, flat)
    rd.log("session_end", seconds=1.0, peak_rss_mib=1.0, resumed=False)
    lines = rd.metrics_path.read_text().splitlines(True)
    last = ne.conditions(cfg)[-1].name
    drop = [i for i, ln in enumerate(lines) if '"curve"' in ln and f'"{last}"' in ln][-1]
    rd.metrics_path.write_text("".join(lines[:drop] + lines[drop + 1:]))
    assert main(["report", str(rd.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert (f"is an unfinished run: no 'curve' event for condition={last}, seed={seeds[-1]}; "
            f"finish it with `selftaught run non-episodic --resume {rd.path}`") in err
    # the last condition's phase not done: the report covers the others, marked partial
    rd.metrics_path.write_text("".join(ln for ln in lines if '"phase_done"' not in ln
                                       or f'"{last}"' not in ln))
    summary = runner.finalize(ne.RECIPE, RunDir.open(rd.path))
    assert summary["missing_phases"] == [last] and all(c["partial"] for c in summary["claims"])
    assert f"| {last} |" not in (rd.path / "report.md").read_text()


@pytest.mark.parametrize("unshaped_val,saturated", [(0.85, True), (0.5, False)])
def test_shaping_claims_are_not_tested_where_the_unshaped_world_saturates(
        tmp_path, unshaped_val, saturated):
    cfg = dataclasses.replace(ne.SMOKE, env_shaping=(500.0, 900.0))
    seeds = [0, 1, 2, 3]
    names = [c.name for c in ne.conditions(cfg)]
    jitter = np.array([-0.01, 0.02, -0.02, 0.01])  # mean 0
    test = {n: list(0.6 + jitter) for n in names}
    test["episodic"] = list(0.9 + jitter)
    val = {n: list(0.9 + jitter) for n in names}
    val[ne.STATIC] = list(unshaped_val + jitter)
    rd = _fake_run(tmp_path / "r", cfg, seeds, test, val)
    claims = {c.name: c for c in ne.report(cfg, rd, seeds).claims}
    assert claims["episodic_gt_non_episodic"].holds  # 0.9 vs 0.6 on the test worlds
    assert claims["episodic_gt_non_episodic"].value == pytest.approx(0.3)
    assert not claims["dynamic_p0.1_gt_regrowth_only"].holds  # equal
    shaping = claims["env_shaping_matches_reward_shaping"]
    assert shaping.value == pytest.approx(0.0) and shaping.ci_low > -cfg.shaping_margin
    assert shaping.holds is (not saturated)
    assert shaping.untested.startswith("saturated: ") is saturated
    if saturated:
        assert f"validation success {unshaped_val:.3f}" in shaping.untested
        assert shaping.as_dict()["note"].startswith("not tested: saturated: ")
    assert bool(claims["env_shaping_more_robust"].untested) is saturated


def test_saturation_is_decided_on_validation_success():
    cfg = ne.SMOKE
    f = lambda v: np.full(3, v)  # noqa: E731
    assert ne.saturation(cfg, {"episodic": f(0.8), ne.STATIC: f(0.65)}) == ""
    msg = ne.saturation(cfg, {"episodic": f(0.8), ne.STATIC: f(0.75)})
    assert msg.startswith("saturated: ") and "0.750" in msg and "0.800" in msg
    assert ne.saturation(cfg, {ne.STATIC: f(0.75)}) == ""  # nothing to compare with


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
    with pytest.raises(ConfigError, match=r"regrowth is a probability per step and must be in "
                                          r"\(0, 1\]"):
        dataclasses.replace(ne.SMOKE, regrowth=0.0).validate()
    with pytest.raises(ConfigError, match="p = 0 always runs as the regrowth-only world"):
        dataclasses.replace(ne.SMOKE, dynamism=(0.0, 0.1)).validate()
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
        (["--regrowth", "0"], "regrowth is a probability per step and must be in (0, 1]"),
    ],
)
def test_cli_user_errors_exit_2(flags, message, tmp_path, capsys):
    rc = main(["run", "non-episodic", "--preset", "smoke", "--run-dir", str(tmp_path / "r"),
               *flags])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1
