"""value-classification conditions study (issue 27): clean / noisy / high replay ratio,
each loss's lr chosen on held-out seeds, LR-sensitivity areas, resume, user errors."""

import dataclasses
import json

import numpy as np
import pytest
from scipy.stats import trim_mean

from selftaught.cli import main
from selftaught.core import config as cfglib
from selftaught.core import runner
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.rundir import RunDir
from selftaught.recipes import value_classification as vc
from selftaught.recipes.value_classification import config as vcc
from selftaught.recipes.value_classification.report import lr_choice, sensitivity_area
from selftaught.rl.dqn import replay_ratio
from selftaught.rl.envs import normalized_return

SEEDS = 3
SMOKE = vc.RECIPE.preset("conditions-smoke")  # mechanics, not the claims


def _events(path):
    return sorted((e["condition"], e["loss"], e["lr"], e["seed"], tuple(e["eval_return"]))
                  for e in RunDir.open(path).events("cond_curve"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("vcc") / "tiny"
    _, summary = runner.execute(vc.RECIPE, SMOKE, preset="conditions-smoke", seeds=SEEDS,
                                run_dir=path)
    return path, summary


def test_tiny_conditions_end_to_end(tiny_run):
    path, summary = tiny_run
    names = [c["name"] for c in summary["claims"]]
    assert names == ["hl_gauss_gt_mse_noisy", "hl_gauss_gt_mse_high_rr",
                     "hl_gauss_flatter_lr_curve"]
    for c in summary["claims"]:
        assert c["unit"] == "training seeds" and c["n"] == SEEDS
        assert c["ci_low"] <= c["value"] + 1e-9 <= c["ci_high"] + 2e-9
        assert c["holds"] == (c["ci_low"] > 0.0)
    ev = RunDir.open(path).events("cond_curve")
    runs = len(SMOKE.tune_seeds) + SEEDS
    assert len(ev) == len(vcc.cond_cells(SMOKE)) * runs
    assert {e["seed"] for e in ev} == {*SMOKE.tune_seeds, *range(SEEDS)}
    report = (path / "report.md").read_text()
    for section in ("### Learning-rate choice", "### LR-sensitivity curves",
                    "### IQM(HL-Gauss) - IQM(MSE)", "### Diagnostics",
                    "plots/lr_curve_noisy.png"):
        assert section in report
    assert (path / "plots" / "lr_curve_high_rr.png").stat().st_size > 0
    again = runner.finalize(vc.RECIPE, RunDir.open(path))  # rebuilt from metrics.jsonl
    assert again["claims"] == summary["claims"]


def test_lr_is_chosen_on_tuning_seeds_and_scored_on_reported_seeds(tiny_run):
    path, summary = tiny_run
    ev = RunDir.open(path).events("cond_curve")

    def score(cond, loss, lr, seeds):
        rows = [e for e in ev if (e["condition"], e["loss"], e["lr"]) == (cond, loss, lr)
                and e["seed"] in seeds]
        r = normalized_return("CartPole-v1", np.array([e["eval_return"] for e in rows]))
        return r[:, -SMOKE.final_points:].mean(axis=1)

    tune, rep = set(SMOKE.tune_seeds), set(range(SEEDS))
    chosen = {}
    for loss in ("hl_gauss", "mse"):
        iqm = {lr: trim_mean(score("noisy", loss, lr, tune), 0.25) for lr in SMOKE.lr_grid}
        chosen[loss] = max(sorted(iqm), key=iqm.get)
    want = (trim_mean(score("noisy", "hl_gauss", chosen["hl_gauss"], rep), 0.25)
            - trim_mean(score("noisy", "mse", chosen["mse"], rep), 0.25))
    assert summary["claims"][0]["value"] == pytest.approx(want, abs=1e-9)
    # the area claim: mean over conditions of mean-over-lrs IQM, HL-Gauss minus MSE
    area = np.mean([np.mean([trim_mean(score(c, "hl_gauss", lr, rep), 0.25)
                             - trim_mean(score(c, "mse", lr, rep), 0.25)
                             for lr in SMOKE.lr_grid]) for c in SMOKE.conditions])
    assert summary["claims"][2]["value"] == pytest.approx(area, abs=1e-9)


def test_resume_after_interruption_gives_same_metrics(tiny_run, tmp_path, killed_at):
    path_ref, summary_ref = tiny_run
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 3):
        runner.execute(vc.RECIPE, SMOKE, preset="conditions-smoke", seeds=SEEDS, run_dir=path)
    assert len(RunDir.open(path).done_phases()) == 2
    _, summary = runner.execute(vc.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert _events(path) == _events(path_ref)
    assert summary["claims"] == summary_ref["claims"]
    done = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "phase_done" for r in done) == len(vcc.cond_cells(SMOKE))


def test_condition_configs():
    cfg = vc.RECIPE.preset("conditions")
    clean = vcc.condition_config(cfg, "Breakout-MinAtar", "clean", "mse")
    assert clean == cfglib.replace(cfg.dqn, **{"loop.env": "Breakout-MinAtar"}, loss="mse")
    noisy = vcc.condition_config(cfg, "Breakout-MinAtar", "noisy", "hl_gauss")
    assert noisy.reward_noise == cfg.noise_std and noisy.loss == "hl_gauss"
    assert replay_ratio(noisy) == replay_ratio(clean) == 1 / 16
    high = vcc.condition_config(cfg, "Breakout-MinAtar", "high_rr", "mse")
    assert replay_ratio(high) == cfg.high_replay_ratio and high.reward_noise == 0.0
    one = dataclasses.replace(cfg, high_replay_ratio=1.0)
    assert replay_ratio(vcc.condition_config(one, "Breakout-MinAtar", "high_rr", "mse")) == 1.0
    assert set(cfg.tune_seeds).isdisjoint(range(cfg.seed, cfg.seed + cfg.num_seeds))


def test_high_rr_preset_is_the_conditions_agent_at_one_update_per_env_step():
    """`--preset high-rr` is data: the conditions study's high_rr code path (covered by
    conditions-smoke) on the conditions preset's DQN, at a replay ratio of 1 and fewer
    steps; its lrs are still chosen on held-out seeds over the full grid."""
    cfg, base = vc.RECIPE.preset("high-rr"), vc.RECIPE.preset("conditions")
    cfg.validate()
    assert cfg.conditions == ("high_rr",) and cfg.losses == ("mse", "hl_gauss")
    high = vcc.condition_config(cfg, "Breakout-MinAtar", "high_rr", "hl_gauss")
    assert replay_ratio(high) == 1.0 and high.reward_noise == 0.0
    clean = vcc.condition_config(base, "Breakout-MinAtar", "clean", "hl_gauss")
    assert high == dataclasses.replace(clean, loop=dataclasses.replace(
        clean.loop, train_every=1, grad_steps=high.loop.num_envs,
        total_steps=cfg.dqn.loop.total_steps))
    assert cfg.dqn.loop.total_steps < base.dqn.loop.total_steps
    assert cfg.lr_grid == base.lr_grid and cfg.tune_seeds == base.tune_seeds
    assert set(cfg.tune_seeds).isdisjoint(range(cfg.seed, cfg.seed + cfg.num_seeds))


def test_lr_choice_and_sensitivity_area():
    assert lr_choice({1e-3: 0.2, 3e-4: 0.5, 3e-3: 0.5}) == 3e-4  # ties: the smaller rate
    s = np.array([[0.0, 1.0], [4.0, 1.0], [8.0, 2.0], [100.0, 3.0]])  # runs x lrs
    # IQM of 4 runs = mean of the middle two: (4 + 8) / 2 and (1 + 2) / 2
    assert sensitivity_area(s) == pytest.approx((6.0 + 1.5) / 2)


def test_config_errors():
    with pytest.raises(UnknownNameError, match="unknown condition 'sticky'"):
        dataclasses.replace(SMOKE, conditions=("sticky",)).validate()
    with pytest.raises(ConfigError, match="whole number of updates per vector step"):
        dataclasses.replace(SMOKE, high_replay_ratio=0.5).validate()  # x 1 env
    with pytest.raises(ConfigError, match="--lr-grid needs positive"):
        dataclasses.replace(SMOKE, lr_grid=(1e-3, -1.0)).validate()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--tune-seeds", "1"], "--tune-seeds (1,) overlap the reported seeds [0, 1, 2]"),
        (["--conditions", "clean", "sticky"], "unknown condition 'sticky'"),
        (["--noise-std", "0"], "--noise-std must be positive"),
    ],
)
def test_cli_user_errors_exit_2(flags, message, tmp_path, capsys):
    rc = main(["run", "value-classification", "--preset", "conditions-smoke", "--run-dir",
               str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1

