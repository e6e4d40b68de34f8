"""Environments (truncation), replay buffers and networks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import UnknownNameError
from selftaught.rl import replay
from selftaught.rl.envs import ENVS, make_env, normalized_return
from selftaught.rl.networks import QNetwork, make_encoder, param_count


# ---------------------------------------------------------------- envs
def test_unknown_env_lists_known_names():
    with pytest.raises(UnknownNameError, match="unknown environment 'Pong'.*CartPole-v1"):
        make_env("Pong")
    with pytest.raises(UnknownNameError):
        normalized_return("Pong", 1.0)


def test_time_limit_is_truncation_not_termination():
    env = make_env("CartPole-v1", max_steps=5)
    obs, state = env.reset(jax.random.PRNGKey(0))

    # alternate actions keep the pole up for 5 steps from a near-upright start
    def body_alt(carry, xs):
        key, a = xs
        obs, state = carry
        st = env.step(key, state, a)
        return (st.obs, st.state), (st.terminated, st.truncated, st.obs, st.next_obs)

    acts = jnp.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    _, (term, trunc, obs_t, next_obs_t) = jax.lax.scan(
        body_alt, (obs, state), (jax.random.split(jax.random.PRNGKey(1), 10), acts)
    )
    term, trunc = np.asarray(term), np.asarray(trunc)
    assert not term.any()
    np.testing.assert_array_equal(np.nonzero(trunc)[0], [4, 9])  # every 5th step
    # on the truncated step `obs` is the reset observation, `next_obs` the true successor
    assert not np.allclose(obs_t[4], next_obs_t[4])
    np.testing.assert_allclose(obs_t[3], next_obs_t[3])
    assert np.abs(np.asarray(obs_t[4])).max() <= 0.05  # CartPole resets within +-0.05


def test_termination_is_not_truncation():
    env = make_env("CartPole-v1")
    obs, state = env.reset(jax.random.PRNGKey(0))

    def body(carry, key):
        st = env.step(key, carry, jnp.int32(1))  # always push right: falls quickly
        return st.state, (st.terminated, st.truncated)

    _, (term, trunc) = jax.lax.scan(body, state, jax.random.split(jax.random.PRNGKey(2), 40))
    assert np.asarray(term).any() and not np.asarray(trunc).any()


@pytest.mark.parametrize("name", ["Breakout-MinAtar", "SpaceInvaders-MinAtar"])
def test_minatar_shapes(name):
    env = make_env(name)
    obs, state = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == env.obs_shape and obs.dtype == jnp.float32 and env.is_image
    st = jax.jit(env.step)(jax.random.PRNGKey(1), state, jnp.int32(0))
    assert st.obs.shape == env.obs_shape and st.reward.shape == ()


def test_normalized_return_endpoints():
    _, lo, hi = ENVS["CartPole-v1"]
    np.testing.assert_allclose(normalized_return("CartPole-v1", np.array([lo, hi])), [0, 1])


# ---------------------------------------------------------------- replay
def _item(v):
    return {"x": jnp.full((2,), v, jnp.float32), "a": jnp.int32(v)}


def test_ring_buffer_wraps_and_counts():
    buf = replay.init(_item(0), capacity=4)
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *[_item(v) for v in range(1, 4)])
    buf = replay.add(buf, batch)
    assert int(buf.size) == 3 and int(buf.pos) == 3
    buf = jax.jit(replay.add)(buf, batch)  # 3 more: overwrite slots 3, 0, 1
    assert int(buf.size) == 4 and int(buf.pos) == 2
    np.testing.assert_array_equal(np.asarray(buf.data["a"]), [2, 3, 3, 1])
    sample, idx = replay.sample(buf, jax.random.PRNGKey(0), 256)
    assert set(np.asarray(sample["a"]).tolist()) == {1, 2, 3}
    np.testing.assert_array_equal(np.asarray(sample["x"])[:, 0], np.asarray(sample["a"]))


def test_uniform_sample_only_filled_slots():
    buf = replay.init(_item(0), capacity=100)
    buf = replay.add(buf, jax.tree.map(lambda x: x[None], _item(7)))
    s, idx = replay.sample(buf, jax.random.PRNGKey(0), 64)
    assert (np.asarray(idx) == 0).all() and (np.asarray(s["a"]) == 7).all()


def test_prioritized_sampling_frequencies_and_weights():
    buf = replay.init_prioritized(_item(0), capacity=8)
    items = jax.tree.map(lambda *xs: jnp.stack(xs), *[_item(v) for v in range(4)])
    buf = replay.add(buf, items)
    buf = replay.update_priorities(buf, jnp.arange(4), jnp.array([1.0, 1.0, 2.0, 4.0]), eps=0.0)
    _, idx, w = replay.sample_prioritized(buf, jax.random.PRNGKey(0), 40_000, alpha=1.0, beta=1.0)
    freq = np.bincount(np.asarray(idx), minlength=8) / 40_000
    np.testing.assert_allclose(freq[:4], [1 / 8, 1 / 8, 2 / 8, 4 / 8], atol=0.01)
    assert freq[4:].sum() == 0  # unfilled slots are never drawn
    # w = (N P)^-1 / max: P = 1/8 -> w 1, P = 1/2 -> w 1/4
    w = np.asarray(w)
    np.testing.assert_allclose(w[np.asarray(idx) == 3], 0.25, rtol=1e-5)
    np.testing.assert_allclose(w[np.asarray(idx) == 0], 1.0, rtol=1e-5)
    # new items get the max priority seen so far
    buf = replay.add(buf, jax.tree.map(lambda x: x[None], _item(9)))
    assert float(buf.priorities[4]) == pytest.approx(4.0)


# ---------------------------------------------------------------- networks
@pytest.mark.parametrize("encoder,shape", [("mlp", (4,)), ("minatar_cnn", (10, 10, 4)),
                                           ("impala", (6, 6, 2))])
def test_qnetwork_shapes_and_width_scaling(encoder, shape):
    x = jnp.zeros((3, *shape))
    net1 = QNetwork(encoder, num_actions=5, num_outputs=7, width=1)
    net2 = QNetwork(encoder, num_actions=5, num_outputs=7, width=2, dueling=True)
    p1 = net1.init(jax.random.PRNGKey(0), x)
    p2 = net2.init(jax.random.PRNGKey(0), x)
    assert net1.apply(p1, x).shape == (3, 5, 7)
    assert net2.apply(p2, x).shape == (3, 5, 7)
    assert param_count(p2) > 1.5 * param_count(p1)


def test_dueling_head_mean_advantage_is_value():
    net = QNetwork("mlp", num_actions=4, num_outputs=1, dueling=True)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 4))
    p = net.init(jax.random.PRNGKey(1), x)
    out = net.apply(p, x)
    z = net.apply(p, x, method=QNetwork.encode)
    v = net.apply(p, z, method=lambda m, z: m.val(z))
    np.testing.assert_allclose(np.asarray(out.mean(axis=1)), np.asarray(v), atol=1e-5)


def test_unknown_encoder():
    with pytest.raises(UnknownNameError, match="encoder"):
        make_encoder("resnet50")


@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv3x3_matches_lax_conv(padding):
    import flax.linen as nn

    from selftaught.rl.networks import Conv3x3

    x = jax.random.normal(jax.random.PRNGKey(0), (2, 6, 5, 3))
    ours = Conv3x3(4, padding=padding)
    p = ours.init(jax.random.PRNGKey(1), x)
    k = p["params"]["Dense_0"]["kernel"].reshape(3, 3, 3, 4)  # (i, j, c) patch order
    ref = nn.Conv(4, (3, 3), padding=padding)
    want = ref.apply({"params": {"kernel": k, "bias": p["params"]["Dense_0"]["bias"]}}, x)
    np.testing.assert_allclose(np.asarray(ours.apply(p, x)), np.asarray(want), atol=1e-5)
