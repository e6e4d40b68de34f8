"""Atari-100k host loop (ale-py): preprocessing, protocol, scores, the recipe's paper preset
shrunk to a few hundred steps. Tests that need ale-py skip without it."""

import dataclasses
import importlib.util
import time

import numpy as np
import pytest

from selftaught.core.errors import UnknownNameError
from selftaught.rl import atari


def test_area_resize_preserves_constant_and_mean():
    np.testing.assert_array_equal(atari.resize(np.full((210, 160), 77, np.uint8)), 77)
    img = np.random.default_rng(0).integers(0, 256, (210, 160)).astype(np.uint8)
    assert atari.resize(img).shape == (84, 84)
    assert abs(atari.resize(img).astype(float).mean() - img.mean()) < 1.0
    # a 2x downscale averages 2x2 blocks exactly
    small = np.arange(16, dtype=np.uint8).reshape(4, 4) * 10
    np.testing.assert_array_equal(atari.resize(small, 2), [[25, 45], [105, 125]])


def test_human_normalized_scores_and_game_names():
    assert len(atari.ATARI_100K) == 26
    np.testing.assert_allclose(atari.human_normalized("ALE/Pong", [-20.7, 14.6, -3.05]),
                               [0.0, 1.0, 0.5])
    with pytest.raises(UnknownNameError, match="unknown Atari-100k game 'ALE/Tetris'"):
        atari.check_game("ALE/Tetris")


def test_missing_ale_py_is_one_line_exit_2(tmp_path, capsys, monkeypatch):
    from selftaught.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ale_py" else real(name, *a))
    rc = main(["run", "bbf", "--preset", "paper", "--run-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "pip install 'selftaught[atari]'" in err


def test_paper_preset_is_the_atari_100k_protocol():
    from selftaught.recipes import bbf as recipe

    cfg = recipe.RECIPE.preset("paper")
    assert cfg.envs == tuple(f"ALE/{g}" for g in atari.ATARI_100K)
    b = cfg.bbf
    assert (b.loop.total_steps, b.loop.grad_steps, b.width, b.latent) == (100_000, 8, 4.0, 2048)
    assert (b.reset_every, b.anneal_steps, b.n_max, b.n_min) == (20_000, 10_000, 10, 3)
    assert b.loop.max_episode_steps * 4 == 108_000  # evaluation games capped at 108k frames
    progs = recipe.programs(cfg, "ALE/Pong")
    assert list(progs) == [f"ALE/Pong/{v}" for v in recipe.VARIANTS]


def test_atari_env_protocol():
    pytest.importorskip("ale_py")
    env = atari.AtariEnv("Breakout", seed=0, training=True)
    obs = env.reset()
    assert obs.shape == (84, 84, 4) and obs.dtype == np.uint8
    assert env.ale.getFloat("repeat_action_probability") == 0.0  # no sticky actions
    starts = {env.ale.getEpisodeFrameNumber()}
    for _ in range(5):
        env.reset()
        starts.add(env.ale.getEpisodeFrameNumber())
    assert min(starts) >= 1 and max(starts) <= 30 and len(starts) > 1  # random no-op starts
    obs = env.reset()
    lives0, lost = env.lives, False
    for t in range(2000):
        obs, r, learn_term, over, trunc = env.step(t % env.num_actions)
        if learn_term and not over:  # a lost life ends the learning episode only
            lost = True
            assert env.lives < lives0
            break
    assert lost


@pytest.mark.slow
def test_paper_preset_smoke_few_hundred_steps(tmp_path):
    """The Atari-100k preset through the recipe, shrunk to 300 agent steps on Pong with a
    tiny network (CPU): host loop, learning after 100 steps, a reset, one evaluation game.
    Slow: ~55 CPU-s (XLA compiles of the learner ~30 s, then ~50 ms per agent step)."""
    pytest.importorskip("ale_py")
    from selftaught.core import runner
    from selftaught.recipes import bbf as recipe

    paper = recipe.RECIPE.preset("paper")
    cfg = dataclasses.replace(
        paper, envs=("ALE/Pong",), variants=("full",), num_seeds=1,
        bbf=dataclasses.replace(
            paper.bbf, width=0.25, latent=16, spr_steps=2, n_max=3, anneal_steps=50,
            reset_every=200, reset_until=201, loop=dataclasses.replace(
                paper.bbf.loop, total_steps=300, learning_starts=100, buffer_size=400,
                grad_steps=1, batch_size=4, eval_episodes=1, max_episode_steps=200)))
    start = time.perf_counter()
    run, summary = runner.execute(recipe.RECIPE, cfg, preset="paper", seeds=1,
                                  run_dir=tmp_path / "r")
    print(f"Atari smoke: {time.perf_counter() - start:.1f} s")
    (curve,) = run.events("curve")
    assert curve["env"] == "ALE/Pong" and curve["steps"] == [300]
    assert -21 <= curve["eval_return"][0] <= 21  # one Pong game (capped at 200 steps)
    assert np.isfinite(curve["td_loss"][0])  # the learner ran (loss sampled at step 300)
    assert summary["claims"] == []  # no ablation to compare with
    assert "## Ablation table" in (tmp_path / "r" / "report.md").read_text()
