"""ReST^EM end to end on small presets: the claim's direction, resume, user errors."""

import dataclasses
import json

import numpy as np
import pytest

from selftaught import cli, recipes
from selftaught.core import ConfigError, UnknownNameError, runner
from selftaught.core import config as cfglib
from selftaught.core.rundir import RunDir
from selftaught.lm import TrainConfig
from selftaught.lm.model import ModelSize
from selftaught.recipes import rest_em
from selftaught.tasks import parse_task_args

RECIPE = recipes.get("rest-em")

# Tiny: only checks mechanics (phases, resume, files), not the claim.
TINY = dataclasses.replace(
    RECIPE.preset("smoke"),
    num_seeds=1, task_args="digits=(1, 2)", human_problems=40, train_problems=60, eval_problems=8,
    model=ModelSize(d_model=16, n_layers=1, n_heads=2),
    sft=TrainConfig(lr=1e-2, warmup_steps=5, total_steps=60, batch_size=16),
    mstep_steps=60, iterations=2, sft_candidates=2, num_samples=8, max_per_problem=1,
    eval_samples=2, eval_k=2, sample_batch=64, chunk_steps=10,
)


def _check_mechanics(run, summary, cfg):
    """What any complete run must show, whatever its numbers: an eval per (seed, iteration),
    the recipe's phase list done, E-steps that keep only verified samples (at most K per
    problem), metrics that are fractions, the claims with their CI around the value, plots."""
    claims = {c["name"]: c for c in summary["claims"]}
    assert set(claims) == {"rest_em_beats_selected_sft", "rest_em_beats_sft",
                           "gain_within_3_iterations"}
    for c in claims.values():
        assert c["ci_low"] <= c["value"] <= c["ci_high"], c
    assert 0.0 <= claims["gain_within_3_iterations"]["value"] <= 1.0
    evals = run.events("eval")
    assert sorted((e["seed"], e["iteration"]) for e in evals) == [
        (s, i) for s in range(cfg.num_seeds) for i in range(cfg.iterations + 1)]
    for e in evals:
        for key in ("test_pass1", "valid_pass1", "train_pass1", "test_sample_acc"):
            assert 0.0 <= e[key] <= 1.0, (key, e)
        # unbiased pass@k of the test samples is at least their pass@1, the sample accuracy
        assert e["test_sample_acc"] <= e[f"test_pass{cfg.eval_k}"] + 1e-12, e
    # the recipe's phase list is exactly what a complete run finishes
    assert run.done_phases() == set(RECIPE.phases(cfg, list(range(cfg.num_seeds))))
    assert "complete" not in summary
    estep = run.events("estep")
    assert sorted((e["seed"], e["iteration"]) for e in estep) == [
        (s, i) for s in range(cfg.num_seeds) for i in range(1, cfg.iterations + 1)]
    for e in estep:
        assert 0 <= e["kept"] <= cfg.train_problems * cfg.max_per_problem
        assert 1 <= e["distinct_per_solved"] <= cfg.max_per_problem or e["kept"] == 0
        assert 0.0 <= e["kept_reference_fraction"] <= 1.0
    restarts = run.events("sft_restart")
    assert sorted((e["seed"], e["restart"]) for e in restarts) == [
        (s, j) for s in range(cfg.num_seeds) for j in range(1, cfg.sft_candidates)]
    assert "Setting: " in (run.path / "report.md").read_text()
    assert (run.path / "plots" / "accuracy.png").stat().st_size > 0
    assert "| 0 |" in (run.path / "report.md").read_text()
    return claims


@pytest.mark.slow  # the smoke preset, ~55 s; the mechanics are checked on TINY in the default tier
def test_smoke_preset_shows_the_gain(tmp_path):
    """The recipe's claim at CI size: self-training beats SFT on the human data. (No number of
    this run is pinned: a training run's numbers differ in the last bits between CPUs, and a
    few hundred steps turn that into another answer on some problem.)"""
    cfg = RECIPE.preset("smoke")
    run, summary = runner.execute(RECIPE, cfg, preset="smoke", seeds=cfg.num_seeds,
                                  run_dir=tmp_path / "run")
    claims = _check_mechanics(run, summary, cfg)
    assert claims["rest_em_beats_sft"]["value"] > 0, summary
    assert all(e["kept"] > 0 for e in run.events("estep"))


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, killed_at):
    """TINY end to end (the recipe's real code path at a size that checks mechanics, not the
    claim), then killed in iteration 2 and resumed: the same metrics, the same claims."""
    run, ref = runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    _check_mechanics(run, ref, TINY)

    with killed_at(rest_em, "e_step", 2):  # killed inside iteration 2, after iteration 1 finished
        runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "kill")
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)

    def counted(path):
        lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
        return [{k: v for k, v in r.items() if k not in ("wall_seconds", "seconds",
                                                          "peak_rss_mib", "resumed")}
                for r in lines if r["event"] in ("eval", "estep", "train")]

    assert counted(tmp_path / "kill") == counted(tmp_path / "ref")
    assert resumed["claims"] == ref["claims"]


def test_best_iteration_uses_validation_and_upto():
    valid = np.array([[0.5, 0.6, 0.9, 0.7], [0.5, 0.8, 0.2, 0.95]])
    np.testing.assert_array_equal(rest_em.best_iteration(valid), [2, 3])
    np.testing.assert_array_equal(rest_em.best_iteration(valid, upto=2), [2, 1])


def test_parse_task_args():
    assert parse_task_args("digits=(1, 4), human_skip_prob=0.25") == {
        "digits": (1, 4), "human_skip_prob": 0.25}
    assert parse_task_args("  ") == {}
    with pytest.raises(ConfigError, match="name=value pairs"):
        parse_task_args("digits=open('x')")


@pytest.mark.parametrize("change, message", [
    ({"mstep_init": "middle"}, "mstep_init must be 'base' or 'last'"),
    ({"eval_k": 9}, "eval_k (9) must be <= eval_samples"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"task_args": "digits="}, "name=value pairs"),
    ({"human_problems": 61}, "human_problems (61) must be <= train_problems (60)"),
    ({"sft_candidates": 0}, "sft_candidates must be >= 1"),
])
def test_config_errors(change, message):
    with pytest.raises(ConfigError) as exc:
        cfglib.validate(dataclasses.replace(TINY, **change))
    assert message in str(exc.value)


def test_unknown_task_is_a_clear_error(tmp_path):
    with pytest.raises(UnknownNameError, match="unknown task 'subtraction'"):
        runner.execute(RECIPE, dataclasses.replace(TINY, task="subtraction"), preset="smoke",
                       seeds=1, run_dir=tmp_path / "r")


def test_cli_bad_task_and_diverged_lr_exit_2(tmp_path, capsys):
    assert cli.main(["run", "rest-em", "--preset", "smoke", "--run-dir", str(tmp_path / "a"),
                     "--task", "no.such.module:factory"]) == 2
    assert "no.such.module:factory" in capsys.readouterr().err
    argv = ["run", "rest-em", "--preset", "smoke", "--seeds", "1", "--run-dir",
            str(tmp_path / "b"), "--human-problems", "40", "--train-problems", "40",
            "--eval-problems", "20",
            "--model.d-model", "16", "--model.n-heads", "2", "--sft.lr", "1e30",
            "--sft.total-steps", "20", "--sft.warmup-steps", "1", "--chunk-steps", "10"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "lower the learning rate" in err and "step" in err


def test_gain_share():
    share = rest_em.gain_share(np.array([10.0, 5, -1, 3, 30]), np.array([20.0, 5, 4, 0, 20]))
    np.testing.assert_allclose(share, [0.5, 1.0, 0.0, 0.0, 1.0])


def test_a_sample_that_never_wrote_eos_still_fits_a_training_row():
    """The sampler may use its whole budget (max_new tokens) without an EOS; the M-step's
    row (BOS prompt SEP text EOS) must still fit max_len (it crashed the M-step before)."""
    s = rest_em.make_setting(TINY, 0)
    problems = s.train[:2]
    full = ["1" * s.max_new, s.human[0]]  # one sample as long as the sampling budget
    data = rest_em.sft_data(s, problems, full, capacity=4)
    assert data["tokens"].shape == (4, s.model_cfg.max_len)
    np.testing.assert_array_equal(data["weight"], [1, 1, 0, 0])
    # the normal-length solution is packed unchanged
    ref = rest_em.sft_data(s, problems[1:], full[1:], capacity=1)
    np.testing.assert_array_equal(data["tokens"][1], ref["tokens"][0])


def test_kept_diversity_counts_distinct_texts_and_reference_copies():
    s = rest_em.make_setting(TINY, 0)
    a, b = s.train[:2]
    ref_a, ref_b = s.task.reference_solution(a), s.task.reference_solution(b)
    out = rest_em.kept_diversity(s, [a, a, b], [ref_a, ref_a, "=" + b.answer])
    assert out == {"distinct_per_solved": 1.0, "kept_reference_fraction": 2 / 3}
    out = rest_em.kept_diversity(s, [a, a, b], [ref_a, "=" + a.answer, ref_b])
    assert out == {"distinct_per_solved": 1.5, "kept_reference_fraction": 2 / 3}
    assert rest_em.kept_diversity(s, [], []) == {"distinct_per_solved": 0.0,
                                                 "kept_reference_fraction": 0.0}


def test_setting_text_names_pool_and_human_data():
    paper = rest_em.setting_text(RECIPE.preset("default"))
    assert "same problems for both arms" in paper and "correct and complete" in paper
    pool = rest_em.setting_text(RECIPE.preset("large-pool"))
    assert "6.7x the 300 human-solved" in pool and "degraded (skip steps with p=0.5" in pool
    assert "same problems" in rest_em.setting_text(RECIPE.preset("degraded-human"))


def test_ablation_presets_change_only_their_knob():
    """The named ablations differ from the default in the human data (degraded-human) and
    then also in the pool size (large-pool), nothing else."""
    default, degraded, pool = (RECIPE.preset(n) for n in ("default", "degraded-human",
                                                          "large-pool"))
    assert default.train_problems == default.human_problems
    assert "human_skip_prob=0" in default.task_args and "human_loose_prob=0" in default.task_args
    assert dataclasses.replace(degraded, task_args=default.task_args) == default
    assert dataclasses.replace(pool, train_problems=default.train_problems) == degraded


def test_selected_sft_baseline_is_chosen_on_validation_not_test(tmp_path):
    """A synthetic run (events only): the selection-matched claim compares ReST^EM's
    validation-best iteration with the validation-best SFT candidate, never the test-best
    one; the unmatched claim compares with the first SFT run."""
    cfg = dataclasses.replace(TINY, num_seeds=3, iterations=2, sft_candidates=3)
    run = RunDir(tmp_path)
    k = cfg.eval_k
    # (test, valid) per SFT candidate: 0 = iteration 0, 1 = best on valid, 2 = best on test
    sft = [(0.5, 0.5), (0.7, 0.9), (0.9, 0.6)]
    rest = [(0.8, 0.8), (0.6, 0.7)]  # iterations 1, 2: iteration 1 is best on valid
    for sd in range(3):
        for i, (te, va) in enumerate([sft[0], *rest]):
            run.log("eval", seed=sd, iteration=i, test_pass1=te, valid_pass1=va,
                    train_pass1=1.0, **{f"test_pass{k}": te, f"test_maj{k}": te},
                    test_sample_acc=te)
            if i:
                run.log("estep", seed=sd, iteration=i, kept=10, distinct_per_solved=1.0,
                        kept_reference_fraction=1.0)
        for j in (1, 2):
            run.log("sft_restart", seed=sd, restart=j, test_pass1=sft[j][0],
                    valid_pass1=sft[j][1])
    claims = {c.name: c for c in rest_em.report(cfg, run, [0, 1, 2]).claims}
    assert claims["rest_em_beats_selected_sft"].value == pytest.approx(10.0)  # 80 - 70
    assert claims["rest_em_beats_sft"].value == pytest.approx(30.0)  # 80 - 50
