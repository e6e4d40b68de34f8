"""rl.ppo: the clipped surrogate against hand-computed values (ratio inside and outside the
clip range, both signs of the advantage), its gradient, the loss terms, reward scaling, user
errors, and PPO learning a 2-armed bandit (all seeds in one jit(vmap))."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError
from selftaught.rl import ppo

# (ratio, advantage) -> min(rho A, clip(rho, 0.8, 1.2) A)
CASES = [
    (1.1, 2.0, 2.2),    # inside the clip range: rho A
    (1.5, 2.0, 2.4),    # above, A > 0: clipped, 1.2 A
    (1.5, -1.0, -1.5),  # above, A < 0: the unclipped term is the smaller one
    (0.5, 1.0, 0.5),    # below, A > 0: unclipped
    (0.5, -1.0, -0.8),  # below, A < 0: clipped, 0.8 A
]


def test_clipped_surrogate_matches_hand_computed_values():
    rho, adv, want = (np.array(c) for c in zip(*CASES, strict=True))
    old = np.log(np.array([0.2, 0.3, 0.1, 0.6, 0.4]))
    loss = ppo.clipped_surrogate(jnp.asarray(old + np.log(rho)), jnp.asarray(old),
                                 jnp.asarray(adv), 0.2)
    assert float(loss) == pytest.approx(-want.mean(), rel=1e-5)
    for (r, a, w) in CASES:  # one sample at a time
        one = ppo.clipped_surrogate(jnp.log(jnp.array([r])), jnp.zeros(1), jnp.array([a]), 0.2)
        assert float(one) == pytest.approx(-w, rel=1e-5)


def test_clipped_surrogate_gradient_vanishes_where_clipped():
    rho, adv, _ = (np.array(c) for c in zip(*CASES, strict=True))
    g = jax.grad(lambda lp: ppo.clipped_surrogate(lp, jnp.zeros(5), jnp.asarray(adv), 0.2))(
        jnp.log(jnp.asarray(rho)))
    # d/dlogp of -rho A / n = -rho A / n where the unclipped term is active, 0 where clipped
    active = np.array([True, False, True, True, False])
    np.testing.assert_allclose(np.asarray(g), np.where(active, -rho * adv / 5, 0.0),
                               rtol=1e-5, atol=1e-7)


def test_ppo_loss_terms():
    cfg = ppo.PPOConfig(entropy_coef=0.1, value_coef=0.5, clip=0.2)
    logits = jnp.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    values = jnp.array([0.5, -1.0])

    def apply_fn(params, obs):
        return logits, values

    logp_all = np.asarray(jax.nn.log_softmax(logits))
    batch = {"obs": jnp.zeros((2, 1)), "action": jnp.array([1, 2]),
             "logp": jnp.asarray([logp_all[0, 1], logp_all[1, 2]])}  # ratio 1
    adv, ret = jnp.array([1.0, -3.0]), jnp.array([1.5, 0.0])
    loss, m = ppo.ppo_loss(cfg, apply_fn, None, batch, adv, ret)
    ent = -np.mean(np.sum(np.exp(logp_all) * logp_all, -1))
    assert float(m["entropy"]) == pytest.approx(ent, rel=1e-5)
    assert ent < np.log(3) and float(m["pg_loss"]) == pytest.approx(1.0, rel=1e-5)  # -mean A
    assert float(m["value_loss"]) == pytest.approx(0.5 * (1.0 + 1.0) / 2, rel=1e-5)
    assert float(loss) == pytest.approx(1.0 + 0.5 * 0.5 - 0.1 * ent, rel=1e-5)


def _bandit_train(cfg: ppo.PPOConfig, iterations: int = 20, T: int = 4, B: int = 16):
    """train(key) -> P(arm 1) after each update: a 2-armed Bernoulli bandit (arm 0 pays
    with p 0.3, arm 1 with p 0.7), every step a one-step episode."""
    net = ppo.ActorCritic(2, hidden=16)
    learner = ppo.make_ppo(cfg, net.apply)
    obs = jnp.ones((T, B, 1))

    def train(key):
        k_init, k_run = jax.random.split(key)
        state = learner.init(net.init(k_init, obs[0]))

        def it(state, k):
            k_a, k_r, k_u = jax.random.split(k, 3)
            a, logp, v = ppo.sample_action(net.apply, state.params, obs, k_a)
            pay = jax.random.uniform(k_r, a.shape) < jnp.where(a == 1, 0.7, 0.3)
            batch = {"obs": obs, "action": a, "logp": logp, "value": v,
                     "last_value": jnp.zeros(B), "dones": jnp.ones((T, B))}
            state, m = learner.update(state, batch, pay.astype(jnp.float32), k_u)
            p1 = jax.nn.softmax(net.apply(state.params, obs[0, :1])[0])[0, 1]
            return state, (p1, m["entropy"])

        _, (p1, ent) = jax.lax.scan(it, state, jax.random.split(k_run, iterations))
        return p1, ent

    return jax.jit(jax.vmap(train))


@pytest.mark.parametrize("minibatches", [1, 4])
def test_ppo_learns_the_better_arm_of_a_bandit(minibatches):
    cfg = ppo.PPOConfig(lr=1e-2, epochs=4, num_minibatches=minibatches, entropy_coef=0.0)
    p1, ent = _bandit_train(cfg)(jax.random.split(jax.random.PRNGKey(0), 3))
    p1, ent = np.asarray(p1), np.asarray(ent)
    assert np.all(p1[:, 0] < 0.8)  # not solved by the first update
    assert np.all(p1[:, -1] > 0.95), p1[:, -1]
    assert np.all(ent[:, -1] < ent[:, 0])  # the policy became more certain


def test_reward_scaling_makes_the_update_invariant_to_the_reward_scale():
    cfg = ppo.PPOConfig(scale_rewards=True, epochs=2)
    net = ppo.ActorCritic(3, hidden=8)
    T, B = 5, 3
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(T, B, 2)), jnp.float32)
    params = net.init(jax.random.PRNGKey(1), obs[0])
    learner = ppo.make_ppo(cfg, net.apply)
    a, logp, v = ppo.sample_action(net.apply, params, obs, jax.random.PRNGKey(2))
    batch = {"obs": obs, "action": a, "logp": logp, "value": v, "last_value": jnp.zeros(B)}
    r = jnp.asarray(rng.normal(size=(T, B)), jnp.float32)
    s1, _ = learner.update(learner.init(params), batch, r)
    s2, _ = learner.update(learner.init(params), batch, 100.0 * r)
    for x, y in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-6)
    # without scaling the same rewards give a different update
    s3, _ = ppo.make_ppo(dataclasses.replace(cfg, scale_rewards=False), net.apply).update(
        learner.init(params), batch, 100.0 * r)
    assert not all(np.allclose(x, y) for x, y in zip(jax.tree.leaves(s1.params),
                                                    jax.tree.leaves(s3.params), strict=True))


def test_user_errors():
    with pytest.raises(ConfigError, match="epochs"):
        ppo.PPOConfig(epochs=0).validate()
    with pytest.raises(ConfigError, match=r"gamma must be in \[0, 1\)"):
        ppo.PPOConfig(gamma=1.0).validate()
    with pytest.raises(ConfigError, match="clip must be positive"):
        ppo.make_ppo(ppo.PPOConfig(clip=0.0), None)
    net = ppo.ActorCritic(2, hidden=4)
    params = net.init(jax.random.PRNGKey(0), jnp.ones((1, 1)))
    batch = {"obs": jnp.ones((3, 2, 1)), "action": jnp.zeros((3, 2), jnp.int32),
             "logp": jnp.zeros((3, 2)), "value": jnp.zeros((3, 2)), "last_value": jnp.zeros(2)}
    learner = ppo.make_ppo(ppo.PPOConfig(num_minibatches=4), net.apply)
    with pytest.raises(ConfigError, match=r"num_minibatches \(4\) must divide the 6 samples"):
        learner.update(learner.init(params), batch, jnp.zeros((3, 2)), jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="needs a key"):
        learner.update(learner.init(params), batch, jnp.zeros((3, 2)))
