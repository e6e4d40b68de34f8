"""DQN conditions of the HL-Gauss study: noisy training rewards (clean evaluation), the
replay ratio, and a learning rate traced per run (one compiled program per lr sweep)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core import config as cfglib
from selftaught.core.errors import ConfigError
from selftaught.core.seeding import keys
from selftaught.rl.dqn import DQNConfig, LoopConfig, make_agent, replay_ratio
from selftaught.rl.envs import make_env, noisy_rewards

TINY = DQNConfig(
    loop=LoopConfig(env="CartPole-v1", total_steps=480, learning_starts=64, batch_size=16,
                    buffer_size=512, train_every=4, num_evals=2, eval_episodes=2,
                    max_episode_steps=20),
    loss="mse", target_update_every=5, lr=1e-3,
)


def test_noisy_rewards_add_gaussian_noise_and_keep_the_dynamics():
    env = make_env("CartPole-v1")
    noisy = noisy_rewards(env, 2.0)
    n = 20_000
    ks = jax.random.split(jax.random.PRNGKey(0), n)
    obs, state = jax.vmap(env.reset)(ks)
    action = jnp.arange(n) % 2
    got = jax.vmap(noisy.step)(ks, state, action)
    ref = jax.vmap(env.step)(jax.vmap(lambda k: jax.random.split(k)[0])(ks), state, action)
    np.testing.assert_array_equal(np.asarray(got.obs), np.asarray(ref.obs))
    np.testing.assert_array_equal(np.asarray(got.terminated), np.asarray(ref.terminated))
    np.testing.assert_array_equal(np.asarray(got.next_obs), np.asarray(ref.next_obs))
    noise = np.asarray(got.reward - ref.reward, np.float64)
    # mean 0 (4 standard errors) and sd 2 (the sd of a sample sd is ~ sd / sqrt(2n))
    assert abs(noise.mean()) < 4 * 2.0 / np.sqrt(n)
    assert abs(noise.std() - 2.0) < 4 * 2.0 / np.sqrt(2 * n)
    assert noisy.num_actions == env.num_actions and noisy.max_steps == env.max_steps


def test_reward_noise_reaches_the_replay_buffer_but_not_evaluation():
    cfg = cfglib.replace(TINY, reward_noise=1.0, reward_scale=0.5, **{"loop.num_evals": 3})
    agent = make_agent(cfg)
    carry = jax.jit(agent.init)(jax.random.PRNGKey(0))
    n = int(carry.buffer.size)
    r = np.asarray(carry.buffer.data["reward"][:n], np.float64)
    # CartPole pays exactly 1 per step: stored = 0.5 * (1 + N(0, 1))
    assert abs(r.mean() - 0.5) < 4 * 0.5 / np.sqrt(n)
    assert 0.3 < r.std() < 0.7  # sd 0.5 (a loose band: n = 64)
    curves = jax.jit(agent.train)(jax.random.PRNGKey(1))
    ev = np.asarray(curves["eval_return"])
    # greedy evaluation on the clean reward: whole episode lengths, as without noise
    n_ep = cfg.loop.eval_episodes
    np.testing.assert_array_equal(ev * n_ep, np.round(ev * n_ep))
    clean = jax.jit(make_agent(dataclasses.replace(cfg, reward_noise=0.0)).init)(
        jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(clean.buffer.data["reward"][:n]), 0.5)
    with pytest.raises(ConfigError, match="reward_noise must be a non-negative sd"):
        cfglib.validate(dataclasses.replace(TINY, reward_noise=-1.0))


@pytest.mark.parametrize("train_every,grad_steps,num_envs", [(1, 4, 4), (2, 3, 2)])
def test_updates_per_env_step_match_the_replay_ratio(train_every, grad_steps, num_envs):
    cfg = cfglib.replace(TINY, **{"loop.train_every": train_every, "loop.grad_steps": grad_steps,
                                  "loop.num_envs": num_envs, "loop.num_evals": 1})
    agent = make_agent(cfg)
    carry = jax.jit(agent.chunk)(jax.jit(agent.init)(jax.random.PRNGKey(0)))[0]
    learning_steps = int(carry.env_steps) - cfg.loop.warmup_iters * num_envs
    assert learning_steps > 0
    assert int(carry.grad_steps) == learning_steps * replay_ratio(cfg)
    assert replay_ratio(cfg) == grad_steps / (train_every * num_envs)


def test_traced_lr_reproduces_the_configured_lr_and_sweeps_in_one_program():
    agent = make_agent(TINY)

    def run(key, lr=None):
        carry = agent.init(key, lr)
        return agent.chunk(carry)[0].params

    key = jax.random.PRNGKey(3)
    const = jax.jit(run)(key)  # config.lr, a constant
    # a vmapped sweep (row 0: config.lr traced) equals one program per configured lr
    swept = jax.jit(jax.vmap(run))(keys([3, 3]), np.array([TINY.lr, 3e-3], np.float32))
    own = make_agent(dataclasses.replace(TINY, lr=3e-3))
    other = jax.jit(lambda k: own.chunk(own.init(k))[0].params)(key)
    for i, ref in enumerate((const, other)):
        for a, b in zip(jax.tree.leaves(swept), jax.tree.leaves(ref)):
            np.testing.assert_allclose(np.asarray(a)[i], np.asarray(b), rtol=1e-4, atol=1e-5)
    moved = [not np.allclose(np.asarray(a)[0], np.asarray(a)[1]) for a in jax.tree.leaves(swept)]
    assert any(moved)


def test_mse_and_hl_gauss_store_the_same_noisy_rewards_for_a_seed():
    # the noise is drawn per transition at collection from the env step key, so the two
    # losses compared under "noisy targets" see the same noise draws (here: the random
    # warm-up, before their policies differ)
    cfg = dataclasses.replace(TINY, reward_noise=1.0, v_min=-5.0, v_max=5.0)
    bufs = [jax.jit(make_agent(dataclasses.replace(cfg, loss=loss)).init)(
        jax.random.PRNGKey(5)).buffer for loss in ("mse", "hl_gauss")]
    n = int(bufs[0].size)
    assert n == int(bufs[1].size) > 0
    r = [np.asarray(b.data["reward"][:n]) for b in bufs]
    np.testing.assert_array_equal(r[0], r[1])
    assert np.std(r[0]) > 0.5  # noisy: CartPole's clean reward is exactly 1


def test_per_sample_reward_noise_keeps_the_buffer_clean_and_noises_each_replay():
    cfg = cfglib.replace(TINY, reward_noise=1.0, reward_noise_per_sample=True,
                         reward_scale=0.5, **{"loop.num_evals": 1})
    agent = make_agent(cfg)
    carry = jax.jit(agent.init)(jax.random.PRNGKey(0))
    n = int(carry.buffer.size)
    # stored clean (0.5 x CartPole's 1 per step): the noise is drawn at replay instead
    np.testing.assert_array_equal(np.asarray(carry.buffer.data["reward"][:n]), 0.5)
    after = jax.jit(agent.chunk)(carry)[0]
    # the update differs from the noise-free one and from the stored-noise one
    clean = make_agent(dataclasses.replace(cfg, reward_noise=0.0))
    stored = make_agent(dataclasses.replace(cfg, reward_noise_per_sample=False))
    for other in (clean, stored):
        p = jax.jit(lambda k, a=other: a.chunk(a.init(k))[0].params)(jax.random.PRNGKey(0))
        assert not all(np.allclose(np.asarray(a), np.asarray(b)) for a, b in
                       zip(jax.tree.leaves(after.params), jax.tree.leaves(p)))
    # without noise the flag changes nothing
    same = [jax.jit(lambda k, a=a: a.chunk(a.init(k))[0].params)(jax.random.PRNGKey(0))
            for a in (clean, make_agent(dataclasses.replace(cfg, reward_noise=0.0,
                                                            reward_noise_per_sample=False)))]
    for a, b in zip(*(jax.tree.leaves(p) for p in same)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
