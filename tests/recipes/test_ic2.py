"""ic2 recipe: intrinsic rewards and measures against NumPy, smoke end to end, resume after
a kill, determinism, user errors (exit 2)."""

import dataclasses
import json

import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.cli import main
from selftaught.core import runner
from selftaught.core.errors import ConfigError
from selftaught.core.rundir import RunDir
from selftaught.recipes import ic2
from selftaught.rl import bayes_filter as bf
from selftaught.rl import gridworld as gw
from selftaught.rl import rssm as rs

SEEDS = 3


def _curves(run_dir):
    ev = RunDir.open(run_dir).events("curve")
    return sorted((e["agent"], e["seed"], tuple(e["captures"]), tuple(e["elbo_loss"]),
                   tuple(e["state_entropy"])) for e in ev)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("ic2") / "smoke"
    _, summary = runner.execute(ic2.RECIPE, ic2.SMOKE, preset="smoke", seeds=SEEDS,
                                run_dir=path)
    return path, summary


@pytest.mark.slow
def test_smoke_end_to_end(smoke_run):
    path, summary = smoke_run
    cfg = ic2.SMOKE
    names = [c["name"] for c in summary["claims"]]
    assert names == ["ic2_captures_more_than_random", "ic2_lower_state_entropy_than_random",
                     "ic2_captures_more_than_belief_entropy",
                     "ic2_lower_state_entropy_than_belief_entropy"]
    for c in summary["claims"]:
        assert c["ci_low"] <= c["value"] + 1e-9 <= c["ci_high"] + 2e-9
        assert c["n"] == SEEDS and c["unit"] == "training seeds"
    ev = RunDir.open(path).events("curve")
    assert len(ev) == len(cfg.agents) * SEEDS
    for e in ev:
        assert len(e["captures"]) == cfg.num_evals
        assert all(0.0 <= c <= cfg.world.num_prey for c in e["captures"])
        assert all(0.0 <= h <= np.log(cfg.world.episode_steps) + 1e-5
                   for h in e["state_entropy"])
        assert np.isfinite(e["elbo_loss"]).all() and np.isfinite(e["kl"]).all()
        # H(b, q) = H(b) + KL(b || q) >= H(b)
        assert all(x >= y - 1e-4 for x, y in zip(e["latent_cross_entropy"],
                                                   e["belief_entropy"], strict=True))
    rand = [e for e in ev if e["agent"] == "random"]
    assert all(abs(p - np.log(gw.NUM_ACTIONS)) < 1e-4 for e in rand for p in e["policy_entropy"])
    report = (path / "report.md").read_text()
    assert "## Prey captured and visitation entropy" in report
    for f in ("captures.png", "state_entropy.png", ic2.GIF):
        assert (path / "plots" / f).stat().st_size > 0
    assert (path / "plots" / ic2.GIF).read_bytes()[:6] == b"GIF89a"
    again = runner.finalize(ic2.RECIPE, RunDir.open(path))
    assert again["claims"] == summary["claims"]


@pytest.mark.slow
def test_resume_after_interruption_gives_same_metrics(smoke_run, tmp_path, killed_at):
    path_ref, summary_ref = smoke_run
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 2):
        runner.execute(ic2.RECIPE, ic2.SMOKE, preset="smoke", seeds=SEEDS, run_dir=path)
    assert RunDir.open(path).done_phases() == {"ic2"}
    _, summary = runner.execute(ic2.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    # identical to the uninterrupted run (and so deterministic given the seeds)
    assert _curves(path) == _curves(path_ref)
    assert summary["claims"] == summary_ref["claims"]
    done = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "phase_done" for r in done) == len(ic2.SMOKE.agents)


def test_empirical_entropy_and_state_code():
    rng = np.random.default_rng(1)
    for T in (1, 40):
        codes = rng.integers(0, 6, T).astype(np.uint32)
        _, c = np.unique(codes, return_counts=True)
        p = c / T
        assert float(ic2.empirical_entropy(jnp.asarray(codes))) == pytest.approx(
            -(p * np.log(p)).sum(), abs=1e-5)
    # the code is injective on a small world: all distinct states get distinct codes
    spec = gw.WorldSpec(task="capture", size=3, view=1, num_prey=2)
    a, p0, cap = (x.ravel() for x in np.meshgrid(np.arange(9), np.arange(9), np.arange(2),
                                                 indexing="ij"))
    n = len(a)
    ws = gw.WorldState(
        jnp.stack([a // 3, a % 3], -1),
        jnp.stack([jnp.stack([p0 // 3, p0 % 3], -1), jnp.full((n, 2), 2)], 1),
        jnp.ones((n, 2), bool), jnp.zeros((n, 2), jnp.int32), 0, 0, 0,
        jnp.zeros((n, 3, 3), jnp.int32), gw.world_params(),
        jnp.stack([cap.astype(bool), np.zeros(n, bool)], -1))
    codes = np.asarray(ic2.state_code(spec, ws))
    assert len(set(codes.tolist())) == 9 * 9 * 2


def test_intrinsic_rewards_match_their_definitions():
    rng = np.random.default_rng(2)
    T, B, Z, D = 5, 2, 3, 4
    mean, std = rng.normal(size=(T, B, Z)), rng.uniform(0.2, 1.0, (T, B, Z))
    obs = (rng.uniform(size=(T, B, D)) < 0.4).astype(np.float32)
    theta = rng.uniform(0.1, 0.9, D)
    r = np.asarray(ic2.intrinsic_rewards(jnp.asarray(mean), jnp.asarray(std),
                                         jnp.asarray(obs), jnp.asarray(theta)))
    assert r.shape == (4, T - 1, B)
    t, b = 3, 1  # the reward of a_{t-1}, read at step t
    m, s = (np.asarray(x) for x in rs.moment_match(jnp.asarray(mean), jnp.asarray(std)))
    ce = np.sum(0.5 * np.log(2 * np.pi * s[t, b] ** 2)
                + (std[t, b] ** 2 + (mean[t, b] - m[t, b]) ** 2) / (2 * s[t, b] ** 2))
    assert r[0, t - 1, b] == pytest.approx(-ce, rel=1e-5)
    assert r[1, t - 1, b] == pytest.approx(
        -np.sum(0.5 * np.log(2 * np.pi * np.e * std[t, b] ** 2)), rel=1e-5)
    th = (1 + obs[:t + 1, b].sum(0)) / (2 + t + 1)  # Laplace-smoothed, steps 0..t
    ll = np.sum(obs[t, b] * np.log(th) + (1 - obs[t, b]) * np.log(1 - th))
    assert r[2, t - 1, b] == pytest.approx(ll, rel=1e-5)
    nov = -np.sum(obs[t, b] * np.log(theta) + (1 - obs[t, b]) * np.log(1 - theta))
    assert r[3, t - 1, b] == pytest.approx(nov, rel=1e-5)


def test_exact_reward_is_the_belief_log_of_the_running_mean_belief():
    rng = np.random.default_rng(3)
    T, B, K, S = 6, 2, 2, 5
    b = rng.dirichlet(np.ones(S), size=(T, B, K))
    r = np.asarray(ic2.exact_reward(jnp.asarray(b)))
    assert r.shape == (T, B)
    t, j = 4, 1
    q = b[:t + 1, j].mean(0)  # [K, S]: the episode's beliefs so far
    h = -np.sum(b[t, j] * np.log(b[t, j]))
    kl = np.sum(b[t, j] * np.log(b[t, j] / q))
    assert r[t, j] == pytest.approx(-h - kl, rel=1e-5)
    # a belief that never changes is its own running mean: the reward is -H(b)
    const = np.broadcast_to(b[:1], b.shape)
    np.testing.assert_allclose(np.asarray(ic2.exact_reward(jnp.asarray(const)))[3],
                               -np.sum(-b[0] * np.log(b[0]), (-1, -2)), rtol=1e-5)


def test_out_of_view_measures_count_what_they_say():
    spec = gw.WorldSpec(task="capture", size=4, view=1, num_prey=2, cage=True)
    seen = np.array([[0], [0], [1], [0], [0]])  # prey in view at step 2 only
    free = np.array([[2], [2], [2], [2], [1]])  # a capture between steps 3 and 4
    agent = np.array([[[0, 1]], [[1, 1]], [[1, 2]], [[3, 2]], [[2, 2]]])
    h_ex = np.array([[1.0], [1.5], [0.0], [0.4], [0.9]])
    h_le = np.array([[0.0], [0.1], [0.3], [0.2], [0.0]])
    m = {k: float(v) for k, v in ic2.out_of_view_measures(
        spec, *(jnp.asarray(x) for x in (seen, free, agent, h_ex, h_le))).items()}
    assert m["oov_steps"] == 4 and m["hiding_steps"] == 2  # steps 0 and 3 on a wall
    assert m["inview_steps"] == 1
    assert m["exact_entropy_oov"] == pytest.approx(1.0 + 1.5 + 0.4 + 0.9)
    assert m["learned_entropy_oov"] == pytest.approx(0.0 + 0.1 + 0.2 + 0.0)
    assert m["exact_entropy_inview"] == 0.0 and m["learned_entropy_inview"] == pytest.approx(0.3)
    assert m["oov_pairs"] == 1  # (0, 1); (3, 4) has a capture between them
    assert m["exact_growth"] == pytest.approx(0.5) and m["learned_growth"] == pytest.approx(0.1)
    assert m["entropy_corr"] == pytest.approx(np.corrcoef(h_ex[:, 0], h_le[:, 0])[0, 1],
                                              abs=1e-5)


SMOKE_EXACT = dataclasses.replace(
    ic2.SMOKE, world=gw.WorldSpec(task="capture", size=4, view=1, num_prey=2, episode_steps=8,
                                  cage=True),
    agents=("ic2-exact", "ic2", "visitation-obs", "random"), exact_filter=True)


def _exact_curves(run_dir):
    return sorted((e["agent"], e["seed"], tuple(e["captures"]), tuple(e["exact_growth"]),
                   tuple(e["learned_growth"]), tuple(e["hiding_steps"]))
                  for e in RunDir.open(run_dir).events("curve"))


@pytest.mark.slow
def test_exact_filter_study_end_to_end(tmp_path, killed_at):
    _, summary = runner.execute(ic2.RECIPE, SMOKE_EXACT, preset="smoke", seeds=SEEDS,
                                run_dir=tmp_path / "run")
    # killed after its second agent, resumed: the same curves and claims
    with killed_at(RunDir, "mark_phase_done", 2):
        runner.execute(ic2.RECIPE, SMOKE_EXACT, preset="smoke", seeds=SEEDS,
                       run_dir=tmp_path / "killed")
    assert RunDir.open(tmp_path / "killed").done_phases() == {"ic2-exact"}
    _, resumed = runner.execute(ic2.RECIPE, None, preset="", seeds=0,
                                run_dir=tmp_path / "killed", resume=True)
    assert _exact_curves(tmp_path / "killed") == _exact_curves(tmp_path / "run")
    assert resumed["claims"] == summary["claims"]
    names = [c["name"] for c in summary["claims"]]
    assert names == ["ic2_exact_captures_more_than_ic2",
                     "ic2_exact_captures_more_than_visitation_obs",
                     "ic2_exact_captures_more_than_random",
                     "exact_filter_entropy_grows_out_of_view",
                     "learned_filter_entropy_grows_out_of_view",
                     "exact_filter_entropy_higher_out_of_view",
                     "learned_filter_entropy_higher_out_of_view",
                     "learned_filter_entropy_tracks_exact"]
    assert all(c["n"] == SEEDS and c["unit"] == "training seeds" for c in summary["claims"])
    T, K, S = 8, 2, bf.num_states(SMOKE_EXACT.world)
    ev = RunDir.open(tmp_path / "run").events("curve")
    assert len(ev) == 4 * SEEDS
    for e in ev:
        for i in range(SMOKE_EXACT.num_evals):
            assert 0 <= e["hiding_steps"][i] <= e["oov_steps"][i] <= T
            assert 0 <= e["exact_entropy_oov"][i] <= e["oov_steps"][i] * K * np.log(S) + 1e-4
            assert e["exact_reward"][i] <= 0 and abs(e["entropy_corr"][i]) <= 1 + 1e-6
    rand = [e for e in ev if e["agent"] == "random"]
    assert all(abs(p - np.log(gw.NUM_ACTIONS)) < 1e-4 for e in rand for p in e["policy_entropy"])
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Hiding and the filters' belief entropy" in report
    assert (tmp_path / "run" / "plots" / ic2.GIF).read_bytes()[:6] == b"GIF89a"


def test_agent_weights_cover_every_agent():
    assert set(ic2._WEIGHTS) == set(ic2.AGENTS)
    assert all(sum(w) == 1 for w in ic2._WEIGHTS.values())
    # the exact-input flag: only with the exact filter, never for the learned-filter rewards
    for agent in ic2.AGENTS:
        assert float(ic2._weights(ic2.SMOKE, agent)[-1]) == 0.0
        assert float(ic2._weights(SMOKE_EXACT, agent)[-1]) == float(agent not in ic2.LEARNED)
    np.testing.assert_array_equal(ic2._weights(SMOKE_EXACT, "ic2-exact-input")[:-1],
                                  ic2._WEIGHTS["ic2"])


def test_config_errors():
    with pytest.raises(ConfigError, match="capture world"):
        dataclasses.replace(ic2.SMOKE, world=gw.WorldSpec(task="hunt")).validate()
    with pytest.raises(ConfigError, match="multiple of num_evals"):
        dataclasses.replace(ic2.SMOKE, iterations=5).validate()
    with pytest.raises(ConfigError, match=r"p_prey is a probability and must be in \[0, 1\]"):
        dataclasses.replace(ic2.SMOKE, p_prey=1.5).validate()
    with pytest.raises(ConfigError, match="repeat"):
        dataclasses.replace(ic2.SMOKE, agents=("ic2", "ic2")).validate()


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--world.size", "2", "--world.num-prey", "4"], "need 5 cells but a 2x2 room"),
        (["--p-prey", "-0.5"], "p_prey is a probability and must be in [0, 1], got -0.5"),
        (["--agents", "ic2", "curiosity"], "unknown ic2 agent 'curiosity'"),
        (["--world.task", "tool"], "ic2 needs the capture world"),
        (["--agents", "ic2-exact"], "the ic2-exact agent needs the exact filter"),
        (["--exact-filter"], "needs the capture world with a cage"),
        (["--ppo.gamma", "1.0"], "gamma must be in [0, 1), got 1.0"),
        (["--ppo.num-minibatches", "3"], "ppo.num_minibatches (3) must divide the 32 steps"),
    ],
)
def test_cli_user_errors_exit_2(flags, message, tmp_path, capsys):
    rc = main(["run", "ic2", "--preset", "smoke", "--run-dir", str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and len(err.strip().splitlines()) == 1
