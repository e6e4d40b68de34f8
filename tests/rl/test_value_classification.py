"""value-classification recipe: smoke end to end, resume, user errors."""

import dataclasses
import json

import numpy as np
import pytest

from selftaught.cli import main
from selftaught.core import config as cfglib
from selftaught.core import runner
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.rundir import RunDir
from selftaught.recipes import value_classification as vc
from selftaught.recipes.value_classification import config as vcc

SEEDS = 3
# Tiny: the recipe's real code path (a main grid, a width sweep, all three claims, report,
# plots, resume) at a size that checks mechanics, not the claims (those: the slow smoke test).
TINY_SEEDS = 2
TINY = dataclasses.replace(
    vc.RECIPE.preset("smoke"), envs=("CartPole-v1",), sweep_envs=("CartPole-v1",),
    sweep_widths=(1.0, 2.0), final_points=1,
    dqn=cfglib.replace(vc.RECIPE.preset("smoke").dqn, **{
        "loop.total_steps": 256, "loop.learning_starts": 64, "loop.batch_size": 16,
        "loop.buffer_size": 256, "loop.num_evals": 2, "loop.eval_episodes": 1,
        "loop.max_episode_steps": 50}),
)


def _curves(run_dir):
    ev = RunDir.open(run_dir).events("curve")
    return sorted(
        (e["env"], e["loss"], e["width"], e["seed"], tuple(e["eval_return"])) for e in ev
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("vc") / "tiny"
    _, summary = runner.execute(vc.RECIPE, TINY, preset="smoke", seeds=TINY_SEEDS, run_dir=path)
    return path, summary


def _check_run(path, summary, cfg, seeds):
    assert summary["recipe"] == "value-classification" and summary["seeds"] == seeds
    names = [c["name"] for c in summary["claims"]]
    assert names == ["hl_gauss_iqm_gt_mse", "p_hl_gauss_gt_mse", "hl_gauss_gains_more_from_width"]
    for c in summary["claims"]:
        assert c["ci_low"] <= c["value"] + 1e-9 and c["value"] <= c["ci_high"] + 1e-9
        assert c["holds"] == (c["ci_low"] > (0.5 if c["name"].startswith("p_") else 0.0))
    p = summary["claims"][1]
    assert 0.0 <= p["value"] <= 1.0
    ev = RunDir.open(path).events("curve")
    assert len(ev) == len(vcc.cells(cfg)) * seeds
    for e in ev:
        assert len(e["eval_return"]) == cfg.dqn.loop.num_evals
        assert np.isfinite(e["td_loss"]).all()
    cart = [e["eval_return"][-1] for e in ev if e["env"] == "CartPole-v1"]
    max_steps = cfg.dqn.loop.max_episode_steps or 500
    assert min(cart) >= 1 and max(cart) <= max_steps  # CartPole: +1 per step
    report = (path / "report.md").read_text()
    for section in ("## Final normalised return", "## Probability of improvement",
                    "## Width sweep", "plots/profiles.png"):
        assert section in report
    for png in ("iqm.png", "profiles.png", "width_sweep.png", "curves_CartPole-v1.png"):
        assert (path / "plots" / png).stat().st_size > 0
    # the report is rebuilt from metrics.jsonl alone
    again = runner.finalize(vc.RECIPE, RunDir.open(path))
    assert again["claims"] == summary["claims"]


def test_tiny_end_to_end(tiny_run):
    _check_run(*tiny_run, TINY, TINY_SEEDS)


@pytest.mark.slow  # the smoke preset: 6 cells x 3 seeds, ~55 s
def test_smoke_end_to_end(tmp_path):
    path = tmp_path / "smoke"
    cfg = vc.RECIPE.preset("smoke")
    _, summary = runner.execute(vc.RECIPE, cfg, preset="smoke", seeds=SEEDS, run_dir=path)
    _check_run(path, summary, cfg, SEEDS)


def test_resume_after_interruption_gives_same_metrics(tiny_run, tmp_path, killed_at):
    path_ref, summary_ref = tiny_run
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 3):
        runner.execute(vc.RECIPE, TINY, preset="smoke", seeds=TINY_SEEDS, run_dir=path)
    assert len(RunDir.open(path).done_phases()) == 2
    _, summary = runner.execute(vc.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert _curves(path) == _curves(path_ref)
    assert summary["claims"] == summary_ref["claims"]
    done = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "phase_done" for r in done) == len(vcc.cells(TINY))


def test_config_errors():
    cfg = vc.RECIPE.preset("smoke")
    with pytest.raises(UnknownNameError, match="unknown environment 'Pong'"):
        dataclasses.replace(cfg, envs=("Pong",)).validate()
    with pytest.raises(UnknownNameError, match="unknown value loss 'huber'"):
        dataclasses.replace(cfg, losses=("mse", "huber")).validate()
    with pytest.raises(ConfigError, match="final_points"):
        dataclasses.replace(cfg, final_points=99).validate()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--losses", "mse", "huber"], "unknown value loss 'huber'"),
        (["--envs", "Pong-v5"], "unknown environment 'Pong-v5'"),
        (["--dqn.v-min", "5", "--dqn.v-max", "5"], "v_min must be below v_max"),
        (["--dqn.num-bins", "0"], "num_bins must be at least 2, got 0"),
    ],
)
def test_cli_user_errors_exit_2(flags, message, tmp_path, capsys):
    rc = main(["run", "value-classification", "--preset", "smoke", "--run-dir",
               str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_loss_lrs_set_each_cells_learning_rate():
    cfg = dataclasses.replace(vc.RECIPE.preset("smoke"), loss_lrs=(1e-3, 3e-3))
    cfg.validate()
    assert vcc.cell_config(cfg, "CartPole-v1", "mse", 1.0).lr == 1e-3
    assert vcc.cell_config(cfg, "CartPole-v1", "hl_gauss", 2.0).lr == 3e-3
    base = vc.RECIPE.preset("smoke")
    assert vcc.cell_config(base, "CartPole-v1", "hl_gauss", 1.0).lr == base.dqn.lr
    with pytest.raises(ConfigError, match="--loss-lrs needs one positive rate per loss"):
        dataclasses.replace(base, loss_lrs=(1e-3,)).validate()
