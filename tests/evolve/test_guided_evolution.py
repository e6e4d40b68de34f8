import dataclasses
import json

import numpy as np
import pytest

from selftaught import cli
from selftaught.core import config as cfglib
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.runner import execute
from selftaught.recipes import guided_evolution as ge
from selftaught.recipes.guided_evolution import runs as ge_runs

RECIPE = ge.RECIPE


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("ge") / "run"
    run, summary = execute(RECIPE, RECIPE.preset("smoke"), preset="smoke", seeds=2,
                           run_dir=path)
    return run, summary


def test_smoke_summary_and_metrics(smoke):
    run, summary = smoke
    names = [c["name"] for c in summary["claims"]]
    assert names[0] == "evals_ratio_unguided_over_guided"
    ratio = summary["claims"][0]
    assert ratio["ci_low"] <= ratio["value"] <= ratio["ci_high"] and ratio["value"] > 0
    runs = run.events("run")
    cfg = RECIPE.preset("smoke")
    assert len(runs) == 2 * (3 + len(cfg.oracle_tpr))  # seeds x (3 arms + oracle cells)
    assert {r["arm"] for r in runs} == {"unguided", "guided", "tuned", *ge.oracle_cells(cfg)}
    for r in runs:
        # the ratio's inputs: evaluations to target never exceed the budget; success <=> less
        assert 1 <= r["evals_to_target"] <= cfg.max_evaluations
        assert r["reached"] == (r["best_fitness"] >= cfg.target_fitness)
        assert r["real_evaluations"] <= cfg.max_evaluations + cfg.batch_size
        assert np.all(np.diff(r["curve"]) >= 0) and len(r["curve"]) == cfg.curve_points
    by = {(r["seed"], r["arm"]): r["evals_to_target"] for r in runs}
    u = np.mean([by[(s, "unguided")] for s in (0, 1)])
    g = np.mean([by[(s, "guided")] for s in (0, 1)])
    np.testing.assert_allclose(ratio["value"], u / g)
    assert (run.path / "plots" / "nguyen1_best_fitness.png").exists()
    assert "evaluations to target" in (run.path / "report.md").read_text().lower()


def test_smoke_diagnostics_count_every_evaluated_child_once(smoke):
    run, summary = smoke
    cfg = RECIPE.preset("smoke")
    for r in run.events("run"):
        ev, ho = np.array(r["confusion_evaluated"]), np.array(r["confusion_holdout"])
        assert ev.shape == ho.shape == (cfg.diag_windows, 4)
        # each new (cache-miss) child after the initial population is one pair
        assert r["real_evaluations"] - cfg.population_size <= ev.sum() <= r["real_evaluations"]
        assert 0 < ho.sum() <= cfg.diag_holdout * ev.sum()  # at most diag_holdout per batch
        if r["arm"] == "unguided":  # no discriminator: it never says "better"
            assert ev[:, [0, 1]].sum() == 0 and ho[:, [0, 1]].sum() == 0
        tp, fp, fn, tn = ev.sum(0)
        np.testing.assert_allclose(r["p_evaluated"], (tp + fn) / ev.sum())
    names = [c["name"] for c in summary["claims"]]
    assert "oracle_speedup_tracks_precision_over_p" in names
    assert "guided_2x_where_precision_over_p_ge_3" in names
    assert "evals_ratio_unguided_over_tuned" in names
    for r in run.events("run"):  # the held-out P histogram: learned discriminators only
        h = np.array(r["holdout_prob_hist"])
        learned = r["arm"] in ("guided", "tuned")
        assert (h.sum() > 0) == learned
        if learned:  # one P per held-out pair scored once the discriminator was ready
            assert h.sum() <= np.array(r["confusion_holdout"]).sum()
    assert (run.path / "plots" / "precision_over_p.png").exists()
    assert "precision / p" in (run.path / "report.md").read_text()


def test_resume_after_interruption_gives_same_metrics(smoke, tmp_path, monkeypatch):
    _, summary = smoke
    calls = {"n": 0}
    real = ge_runs._run_one

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated kill")
        return real(*a, **k)

    monkeypatch.setattr(ge_runs, "_run_one", flaky)
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        execute(RECIPE, RECIPE.preset("smoke"), preset="smoke", seeds=2, run_dir=path)
    monkeypatch.setattr(ge_runs, "_run_one", real)
    run, resumed = execute(RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert len(run.events("run")) == 2 * (3 + len(RECIPE.preset("smoke").oracle_tpr))
    assert json.dumps(resumed["claims"]) == json.dumps(summary["claims"])


def test_user_errors():
    base = RECIPE.preset("smoke")
    with pytest.raises(UnknownNameError, match="unknown Nguyen equation 'nguyen99'"):
        cfglib.validate(cfglib.replace(base, equations=("nguyen99",)))
    with pytest.raises(UnknownNameError, match="unknown evaluation backend 'gpu'"):
        cfglib.validate(cfglib.replace(base, backend="gpu"))
    with pytest.raises(ConfigError, match="tournament_size"):
        cfglib.validate(cfglib.replace(base, tournament_size=0))
    with pytest.raises(ConfigError, match="max_evaluations"):
        cfglib.validate(cfglib.replace(base, max_evaluations=4))
    with pytest.raises(ConfigError, match="oracle arm needs"):
        cfglib.validate(cfglib.replace(base, oracle_tpr=(), oracle_fpr=()))
    with pytest.raises(ConfigError, match="give one FPR per TPR"):
        cfglib.validate(cfglib.replace(base, oracle_tpr=(0.9, 0.5), oracle_fpr=(0.1,)))
    with pytest.raises(ConfigError, match=r"\(TPR, FPR\) in \[0, 1\]"):
        cfglib.validate(cfglib.replace(base, oracle_tpr=(1.5,), oracle_fpr=(0.1,)))
    with pytest.raises(ConfigError, match="tuned arm needs 1 <= tune_pairs < batch_size"):
        cfglib.validate(cfglib.replace(base, tune_pairs=8))


def test_cli_exit_code_2_on_bad_flag(tmp_path, capsys):
    rc = cli.main(["run", "guided-evolution", "--preset", "smoke", "--run-dir",
                   str(tmp_path / "r"), "--equations", "nguyen42"])
    assert rc == 2
    assert "unknown Nguyen equation 'nguyen42'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def optimizer_smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("ge_opt") / "run"
    return execute(RECIPE, RECIPE.preset("optimizer-smoke"), preset="optimizer-smoke",
                   seeds=3, run_dir=path)


def test_optimizer_domain_end_to_end(optimizer_smoke):
    from selftaught.evolve.optimizer import REFERENCE, OptimizerTask

    run, summary = optimizer_smoke
    cfg = RECIPE.preset("optimizer-smoke")
    names = [c["name"] for c in summary["claims"]]
    assert names[:4] == ["evals_ratio_unguided_over_guided",
                         "evals_ratio_unguided_over_regression",
                         "evals_ratio_unguided_over_tuned",
                         "evals_ratio_regression_over_pairwise"]
    runs = run.events("run")
    assert len(runs) == 3 * len(cfg.arms) == 3 * (len(ge.LEARNED_ARMS) + 1)
    best = max(OptimizerTask(cfg.num_nodes, seed=0, steps=cfg.opt_steps).build()(
        list(REFERENCE.values())))
    for r in runs:  # the target: the best reference program's fitness plus target_gain
        assert r["target"] == pytest.approx(best + cfg.target_gain)
        assert r["reached"] == (r["best_fitness"] >= r["target"])
        assert 1 <= r["evals_to_target"] <= cfg.max_evaluations
        if r["arm"] != "unguided" and np.isfinite(r["accept_rate"]):
            assert 0.0 <= r["accept_rate"] <= 1.0
    text = (run.path / "report.md").read_text()
    assert "best reference program" in text and "accepted proposals" in text
    assert "tuned: threshold over runs" in text


def test_tuned_validation_pairs_are_counted_once_at_both_operating_points(smoke):
    """The tuned arm's validation pairs (unscreened children): each counted once at the
    threshold in force and once at P > 0.5, with the same truth (TP + FN) in both rows; at
    most `tune_pairs` per batch; the other arms have none."""
    run, _ = smoke
    cfg = RECIPE.preset("smoke")
    batches = int(np.ceil((cfg.max_evaluations - cfg.population_size) / cfg.batch_size)) + 1
    for r in run.events("run"):
        c = np.array(r["confusion_validation"])
        assert c.shape == (2, 4)
        if r["arm"] != "tuned":
            assert c.sum() == 0 and r["validation_pairs"] == 0
            continue
        assert c[0].sum() == c[1].sum() == r["validation_pairs"] > 0
        assert c[0, 0] + c[0, 2] == c[1, 0] + c[1, 2]  # same children, same outcomes
        assert r["validation_pairs"] <= cfg.tune_pairs * batches
        assert 0.0 <= r["threshold_final"] <= 1.0


def test_tuned_redraws_turn_known_validation_children_into_pairs():
    """A validation child whose function is already known is no pair: without re-draws
    the pairs are at most the novel first draws (a child new at its evaluation was not
    known when drawn); with re-draws almost every drawn child becomes one."""
    cfg = cfglib.replace(RECIPE.preset("smoke"), arms=("unguided", "tuned"), oracle_tpr=(),
                         oracle_fpr=(), target_fitness=-1e-9)
    (_, task), = ge.tasks(cfg)
    out = {r: ge_runs._run_one(cfglib.replace(cfg, tune_redraws=r), task, task.build(), 0,
                               "tuned", cfg.target_fitness) for r in (0, 20)}
    for r in out.values():
        assert 0 < r["validation_pairs"] <= r["validation_drawn"]
    assert out[0]["validation_pairs"] <= out[0]["validation_first_novel"]
    assert out[20]["validation_pairs"] > out[20]["validation_first_novel"]
    assert out[20]["validation_pairs"] >= 0.8 * out[20]["validation_drawn"]


def test_tuned_arm_screens_with_the_filter_rule_in_any_guide_mode(monkeypatch):
    """Its threshold is chosen for the filter rule's predicted gain, so the tuned arm
    screens with filter even where the preset's guided arm uses adaptive mutation."""
    modes = {}
    real = ge_runs.guided_mutation

    def spy(*a, mode, threshold=None, **k):
        modes["tuned" if threshold is not None else "guided"] = mode
        return real(*a, mode=mode, threshold=threshold, **k)

    monkeypatch.setattr(ge_runs, "guided_mutation", spy)
    cfg = cfglib.replace(RECIPE.preset("smoke"), guide_mode="adaptive", max_evaluations=40)
    (_, task), = ge.tasks(cfg)
    for arm in ("guided", "tuned"):
        ge_runs._run_one(cfg, task, task.build(), 0, arm, cfg.target_fitness)
    assert modes == {"guided": "adaptive", "tuned": "filter"}


def test_domain_and_arm_errors():
    base = RECIPE.preset("smoke")
    with pytest.raises(UnknownNameError, match="unknown domain 'chess'"):
        cfglib.validate(cfglib.replace(base, domain="chess"))
    with pytest.raises(ConfigError, match="--arms needs unguided"):
        cfglib.validate(cfglib.replace(base, arms=("guided", "regression")))
    with pytest.raises(UnknownNameError, match="unknown guided mutation mode"):
        cfglib.validate(cfglib.replace(base, guide_mode="greedy"))
    # the reference program (whose score sets the target) must fit the program size
    rl = RECIPE.preset("rl-loss-smoke")
    with pytest.raises(ConfigError, match="reference program \\(6 nodes\\).*at least 6"):
        cfglib.validate(cfglib.replace(rl, num_nodes=5))
    cfglib.validate(cfglib.replace(rl, num_nodes=6))


def test_rl_loss_domain_target_is_the_td_losss_chain_score():
    cfg = RECIPE.preset("rl-loss-smoke")
    cfg.validate()
    (name, task), = ge.tasks(cfg)
    evaluate = task.build()
    td = float(evaluate([task.reference()])[0])
    assert name == "chain0" and td > 0.9  # the TD loss passes the hurdle it was built for
    assert ge.target_of(cfg, evaluate) == pytest.approx(td + cfg.target_gain)
    # the rl-loss preset's target: the myopic loss, which passes the length-1 chains only
    myopic = dataclasses.replace(task, reference_loss="myopic")
    score = float(evaluate([myopic.reference()])[0])
    assert 0.4 < score < td - 0.2
    cfg = cfglib.replace(cfg, rl_target="myopic")
    assert ge.target_of(cfg, evaluate) == pytest.approx(score + cfg.target_gain)
    with pytest.raises(UnknownNameError, match="unknown rl_target reference loss 'sarsa'"):
        cfglib.validate(cfglib.replace(cfg, rl_target="sarsa"))
