"""rl.loop helpers shared by the agent recipes, and the loop config nested in every agent's."""

import dataclasses
import json

import numpy as np
import pytest

from selftaught.core import config as cfglib
from selftaught.core.errors import ConfigError
from selftaught.rl import bbf, dqn, sac
from selftaught.rl.envs import make_env
from selftaught.rl.loop import LoopConfig, run_chunks, spec

AGENTS = {"dqn": dqn.DQNConfig(), "sac": sac.SACConfig(), "bbf": bbf.BBFConfig()}


def test_run_chunks_stacks_each_runs_metrics_into_a_curve():
    """run_chunks calls the chunk num_chunks times (with its index when asked) and returns
    the final carry and {metric: [runs, chunks]}."""
    def chunk(carry, i, scale):
        carry = carry + 1
        return carry, {"x": carry * scale * np.ones(3), "i": np.full(3, i)}

    carry, curves = run_chunks(chunk, 0, 4, "test", 2.0, index=True)
    assert carry == 4 and set(curves) == {"x", "i"}
    np.testing.assert_array_equal(curves["x"], np.tile([2.0, 4.0, 6.0, 8.0], (3, 1)))
    np.testing.assert_array_equal(curves["i"], np.tile([0, 1, 2, 3], (3, 1)))
    carry, curves = run_chunks(lambda c: (c * 2, {"y": np.array([c])}), 1, 3, "test")
    assert carry == 8 and curves["y"].tolist() == [[1, 2, 4]]


def test_run_chunks_observe_adds_measures_of_each_chunks_final_carry():
    """observe(carry) sees the carry after each chunk; its measures become curves too."""
    seen = []

    def observe(carry):
        seen.append(carry)
        return {"twice": np.array([2 * carry, -2 * carry])}

    carry, curves = run_chunks(lambda c: (c + 1, {"c": np.array([c, c])}), 10, 3, "test",
                               observe=observe)
    assert seen == [11, 12, 13] and carry == 13
    assert curves["c"].tolist() == [[10, 11, 12], [10, 11, 12]]
    assert curves["twice"].tolist() == [[22, 24, 26], [-22, -24, -26]]


def test_run_chunks_divergence_policy_names_where_step_and_lr():
    """`finite`: a non-finite mean of the last chunk's metric raises DivergedError naming
    the cell, the runs' last env step and a lower lr; a NaN elsewhere in the curve, or no
    `finite`, passes (an lr sweep keeps its diverged runs as data)."""
    import pytest

    from selftaught.core.errors import DivergedError

    def chunk(c):
        loss = np.array([1.0, np.nan if c >= 2 else 1.0])
        return c + 1, {"loss": loss, "env_steps": np.full(2, 100 * (c + 1))}

    with pytest.raises(DivergedError, match=r"loss became nan in cell A at step 300; "
                                            r"lower the learning rate \(now 0.003, try 0.001\)"):
        run_chunks(chunk, 0, 3, "test", finite="loss", where="cell A", lr=3e-3)
    _, curves = run_chunks(chunk, 0, 3, "test")  # no policy: the NaN is data
    assert np.isnan(curves["loss"][1, 2])
    run_chunks(chunk, 0, 2, "test", finite="loss", where="cell A", lr=3e-3)  # finite at the end
    with pytest.raises(DivergedError, match="in test at step 7;"):  # explicit step, default where
        run_chunks(chunk, 0, 3, "test", finite="loss", step=7)


def test_loop_config_schedule_by_hand():
    """4 envs, 10 random steps -> 3 warm-up vector steps (12 env steps); 250 - 3 = 247 vector
    steps left, 123 per evaluation, a multiple of train_every 3: 123 (41 phases of 3)."""
    c = LoopConfig(total_steps=1000, num_envs=4, learning_starts=10, train_every=3,
                   grad_steps=1, num_evals=2)
    assert (c.warmup_iters, c.chunk_iters, c.phases, c.steps_per_chunk) == (3, 123, 41, 492)
    assert c.curve_steps() == [12 + 492, 12 + 2 * 492]
    assert c.replay_ratio == 1 / 12
    # BBF's layout (one env, a gradient phase after every step): chunks of (T - L) / E
    one = LoopConfig(total_steps=700, learning_starts=300, train_every=1, num_evals=2)
    assert (one.warmup_iters, one.chunk_iters, one.curve_steps()) == (300, 200, [500, 700])


def test_spec_carries_the_loop_fields():
    c = LoopConfig(total_steps=1000, num_envs=4, learning_starts=10, train_every=3,
                   grad_steps=2, num_evals=2, buffer_size=77, eval_episodes=5,
                   eval_epsilon=0.1)
    s = spec(c, make_env("CartPole-v1"), init_params=None, tx=None, grad_step=None,
             store=None)
    got = {k: getattr(s, k) for k in ("num_envs", "buffer_size", "warmup_iters",
                                       "train_every", "grad_steps", "phases", "num_evals",
                                       "eval_episodes", "eval_epsilon")}
    assert got == {"num_envs": 4, "buffer_size": 77, "warmup_iters": 3, "train_every": 3,
                   "grad_steps": 2, "phases": 41, "num_evals": 2, "eval_episodes": 5,
                   "eval_epsilon": 0.1}


def test_agent_configs_hold_no_loop_field_and_their_loops_validate():
    loop_fields = {f.name for f in dataclasses.fields(LoopConfig)}
    for name, cfg in AGENTS.items():
        own = {f.name for f in dataclasses.fields(cfg)}
        assert not own & loop_fields, (name, own & loop_fields)
        assert isinstance(cfg.loop, LoopConfig)
        cfglib.validate(cfg.loop)


@pytest.mark.parametrize("agent", list(AGENTS))
@pytest.mark.parametrize("change, message", [
    ({"total_steps": 0}, "total_steps must be at least 1, got 0"),
    ({"batch_size": 0}, "batch_size must be at least 1, got 0"),
    ({"eval_episodes": 0}, "eval_episodes must be at least 1, got 0"),
    ({"max_episode_steps": -1}, "max_episode_steps must be >= 0"),
    ({"eval_epsilon": 1.5}, "eval_epsilon must be in [0, 1], got 1.5"),
    ({"learning_starts": 0}, "raise loop.learning_starts"),
    ({"total_steps": 1001}, "leaves no training after learning_starts=1000"),
])
def test_every_agent_validates_its_loop_once_with_one_line(agent, change, message):
    cfg = cfglib.replace(AGENTS[agent], **{f"loop.{k}": v for k, v in change.items()})
    with pytest.raises(ConfigError) as err:
        cfglib.validate(cfg)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_old_flat_flags_are_refused_and_loop_flags_reach_the_loop(tmp_path, capsys):
    from selftaught.cli import main

    rc = main(["run", "value-classification", "--preset", "smoke", "--run-dir",
               str(tmp_path / "a"), "--dqn.loop.total-steps", "5"])
    err = capsys.readouterr().err
    assert rc == 2 and "raise loop.total_steps" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as exit_:  # tyro: unrecognized option, did you mean ...
        main(["run", "value-classification", "--preset", "smoke", "--run-dir",
              str(tmp_path / "b"), "--dqn.total-steps", "5"])
    assert exit_.value.code == 2 and not (tmp_path / "b").exists()
    assert "--dqn.loop.total-steps" in capsys.readouterr().err


def test_a_run_written_before_the_loop_config_fails_to_resume_with_one_line(tmp_path, capsys):
    """A config.json whose agent config holds the loop fields flat (the layout before
    LoopConfig) is refused on --resume with one line naming where the fields are now."""
    from selftaught.cli import main
    from selftaught.core.rundir import RunDir
    from selftaught.recipes import value_classification as vc

    new = cfglib.to_dict(vc.RECIPE.preset("smoke"))
    new["dqn"] = {**new["dqn"], **new["dqn"].pop("loop")}  # the flat, old layout
    RunDir.create(tmp_path / "r", recipe="value-classification", preset="smoke", seeds=2,
                  config=new, resume=False)
    assert "total_steps" in json.loads((tmp_path / "r" / "config.json").read_text())[
        "config"]["dqn"]
    rc = main(["run", "--resume", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "config.json" in err and "they are now under config.dqn.loop" in err
