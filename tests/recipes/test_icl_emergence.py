"""icl-emergence: the induction-head measure, mechanics and resume on a tiny config, the
smoke preset's claims, user errors."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from recipe_checks import check_claims, check_plots, check_resume_after_kill, run_smoke

from selftaught import cli, recipes
from selftaught.core import ConfigError
from selftaught.core import config as cfglib
from selftaught.lm.train import EvalSchedule, TrainConfig
from selftaught.recipes import icl_emergence
from selftaught.tasks import bursty
from selftaught.tasks.bursty import BurstySpec

RECIPE = recipes.get("icl-emergence")

# Tiny: checks mechanics (phases, resume, files, metric ranges), not the claims.
TINY = dataclasses.replace(
    RECIPE.preset("smoke"), num_seeds=1,
    data=BurstySpec(num_classes=20, num_novel=20, num_labels=10, dim=8, exemplars=4,
                    burstiness=2),
    model=icl_emergence.ModelSize(d_model=16, n_layers=2, n_heads=1, mlp_ratio=0),
    train=TrainConfig(lr=3e-3, warmup_steps=5, total_steps=60, batch_size=16),
    evals=EvalSchedule(every=20, batch=32, test_rounds=2), max_shots=3)


def test_induction_scores_on_handmade_attention():
    n, T = 3, 7
    match = jnp.array([[True, False, True]])
    att = jnp.zeros((2, 1, 2, T, T))
    # layer 2, head 1: the query puts 0.4 on each label after a matching exemplar (slots 1, 5)
    att = att.at[1, 0, 1, -1, 1].set(0.4).at[1, 0, 1, -1, 5].set(0.4).at[1, 0, 1, -1, 3].set(0.2)
    att = att.at[1, 0, 0, -1, :].set(1 / T)  # head 0: uniform
    # layer 1, head 0: each label slot 2i+1 on its item 2i with weight 0.9
    for i in range(n):
        att = att.at[0, 0, 0, 2 * i + 1, 2 * i].set(0.9)
    ind, prev = icl_emergence.induction_scores(att, match)
    np.testing.assert_allclose(float(ind), 0.8, atol=1e-6)
    np.testing.assert_allclose(float(prev), 0.9, atol=1e-6)


def _check_mechanics(run, summary, cfg):
    seeds = list(range(cfg.num_seeds))
    claims = check_claims(summary, {"icl_novel_far_above_chance", "icl_rises_with_shots",
                                    "flip_override_rises_with_shots", "in_weights_above_chance"},
                          cfg.num_seeds)
    assert run.done_phases() == set(RECIPE.phases(cfg, seeds))
    valid = run.events("valid")
    every = cfg.evals.every
    steps = [every * (i + 1) for i in range(cfg.train.total_steps // every)]
    assert sorted((e["seed"], e["step"]) for e in valid) == [(s, t) for s in seeds
                                                              for t in steps]
    for e in valid + run.events("test") + run.events("test_heads"):
        for k, x in e.items():
            if k in icl_emergence.VALID + icl_emergence.TEST and k != "loss":
                assert 0.0 <= x <= 1.0, (k, e)
    test = run.events("test")
    assert sorted((e["seed"], e["shots"]) for e in test) == [
        (s, k) for s in seeds for k in icl_emergence.shots_of(cfg)]
    for e in test:
        # a flipped query's label differs from its fixed one: the two answers exclude
        assert e["flip_follow"] + e["flip_prior"] <= 1.0 + 1e-9, e
    check_plots(run.path, ("emergence", "shots", "flip"))
    return claims


def test_tiny_run_and_resume_after_kill_match(tmp_path, killed_at):
    run, ref = check_resume_after_kill(  # killed in the 2nd training phase
        RECIPE, TINY, tmp_path, killed_at, (icl_emergence, "train_chunk", 2),
        ("valid", "test", "test_heads"))
    _check_mechanics(run, ref, TINY)


@pytest.mark.slow  # the smoke preset's claims (~20 s idle, ~50 s on a loaded 2-core machine)
def test_smoke_preset_learns_in_context(tmp_path):
    """The smoke preset (2 seeds: claims undetermined by design) learns in context: on novel
    classes at 1 shot it beats guessing among the context's labels (what the model scores on
    the plateau before the induction head forms), and flipped labels are followed more than
    the weights' labels. Directions only, no pinned number."""
    cfg, run, summary = run_smoke(RECIPE, tmp_path)
    _check_mechanics(run, summary, cfg)
    assert all(c["undetermined"] for c in summary["claims"])
    test = run.events("test")
    one = [e["novel_acc"] for e in test if e["shots"] == 1]
    assert np.mean(one) > bursty.context_guess(cfg.data, 1) + 0.1, test
    top = [e for e in test if e["shots"] == icl_emergence.shots_of(cfg)[-1]]
    assert np.mean([e["flip_follow"] - e["flip_prior"] for e in top]) > 0.3, top


@pytest.mark.parametrize("change, message", [
    ({"evals": EvalSchedule(every=7)}, "must be a multiple of evals.every=7"),
    ({"max_shots": 9}, "max_shots=9 must be in [2, exemplars=8]"),
    ({"far_above": 1.5}, "far_above=1.5 must be in (0, 1)"),
    ({"data": BurstySpec(exemplars=8, burstiness=4)}, "burstiness=4 must be <= max_shots=3"),
])
def test_config_errors(change, message):
    cfg = dataclasses.replace(RECIPE.preset("smoke"), max_shots=3) if "data" in change \
        else RECIPE.preset("smoke")
    with pytest.raises(ConfigError) as exc:
        cfglib.validate(dataclasses.replace(cfg, **change))
    assert message in str(exc.value)


def test_cli_bad_spec_exits_2(tmp_path, capsys):
    assert cli.main(["run", "icl-emergence", "--preset", "smoke", "--run-dir",
                     str(tmp_path / "a"), "--data.exemplars", "7"]) == 2
    err = capsys.readouterr().err
    assert "exemplars=7 must be a multiple of burstiness=2" in err


def test_emergence_steps():
    acc = np.array([[0.2, 0.7, 0.9], [0.1, 0.2, 0.3], [0.8, 0.1, 0.9]])
    np.testing.assert_array_equal(icl_emergence.emergence_steps(acc, np.array([10, 20, 30]),
                                                                0.6), [20, -1, 10])
