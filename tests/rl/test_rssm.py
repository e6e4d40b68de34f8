"""rl.rssm: Gaussian measures against NumPy / Monte Carlo, the running visitation fit, the
filter's shapes and first-step convention, and that the ELBO trains."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from selftaught.rl import rssm as rs


def test_entropy_cross_entropy_and_kl_match_closed_forms_and_monte_carlo():
    rng = np.random.default_rng(0)
    mu, sd = rng.normal(size=4), rng.uniform(0.2, 1.5, 4)
    qm, qs = rng.normal(size=4), rng.uniform(0.5, 2.0, 4)
    h = float(rs.gaussian_entropy(jnp.asarray(sd)))
    assert h == pytest.approx(np.sum(0.5 * np.log(2 * np.pi * np.e * sd ** 2)), rel=1e-5)
    ce = float(rs.gaussian_cross_entropy(mu, sd, qm, qs))
    z = mu + sd * rng.normal(size=(200_000, 4))
    log_q = -0.5 * (np.log(2 * np.pi * qs ** 2) + ((z - qm) / qs) ** 2)
    assert ce == pytest.approx(-log_q.sum(-1).mean(), rel=5e-3)
    kl = float(rs.kl_gaussian(rs.Gaussian(jnp.asarray(mu), jnp.asarray(sd)),
                              rs.Gaussian(jnp.asarray(qm), jnp.asarray(qs))))
    assert ce == pytest.approx(h + kl, rel=1e-5)  # H(b, q) = H(b) + KL(b || q)
    assert float(rs.kl_gaussian(rs.Gaussian(jnp.asarray(mu), jnp.asarray(sd)),
                                rs.Gaussian(jnp.asarray(mu), jnp.asarray(sd)))) == pytest.approx(
        0.0, abs=1e-6)


def test_moment_match_is_the_running_mixture_moments():
    rng = np.random.default_rng(1)
    mean, std = rng.normal(size=(6, 3, 2)), rng.uniform(0.1, 1.0, (6, 3, 2))
    m, s = rs.moment_match(jnp.asarray(mean), jnp.asarray(std))
    for t in range(6):
        # mixture of N(0, 1) (weight 1) and the beliefs 0..t
        mus = np.concatenate([np.zeros((1, 3, 2)), mean[:t + 1]])
        var = np.concatenate([np.ones((1, 3, 2)), std[:t + 1] ** 2])
        ref_m = mus.mean(0)
        ref_v = (var + mus ** 2).mean(0) - ref_m ** 2
        np.testing.assert_allclose(np.asarray(m[t]), ref_m, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(s[t]) ** 2, ref_v, rtol=1e-4, atol=1e-6)


@pytest.mark.slow  # ~18 CPU-s; the non-recurrent filter test exercises the filter in CI
def test_filter_shapes_and_first_step():
    T, B, D, A = 6, 4, 10, 3
    model = rs.RSSM(obs_dim=D, num_actions=A, deter=8, stoch=3, hidden=16)
    params = model.init_params(jax.random.PRNGKey(0))
    # a deterministic world: the observation is the one-hot of the previous action
    actions = jax.random.randint(jax.random.PRNGKey(1), (T, B), 0, A)
    obs = jnp.concatenate([jnp.zeros((1, B, D)),
                           jax.nn.one_hot(actions[:-1], D)]).astype(jnp.float32)
    out = rs.rollout_filter(model, params, obs, actions, jax.random.PRNGKey(2))
    assert out["post"].mean.shape == (T, B, 3) and out["logits"].shape == (T, B, D)
    assert float(out["post"].std.min()) >= model.min_std
    # the first step sees "no action": same as filtering from the initial state with -1
    st, post, _ = model.apply(params, model.initial(B), jnp.full((B,), -1), obs[0],
                              jax.random.PRNGKey(0), method=model.filter)
    np.testing.assert_allclose(np.asarray(post.mean), np.asarray(out["post"].mean[0]),
                               rtol=1e-5, atol=1e-6)


def test_filter_learner_is_clipped_adam_on_the_elbo_and_trains():
    T, B, D, A = 6, 4, 10, 3
    model = rs.RSSM(obs_dim=D, num_actions=A, deter=8, stoch=3, hidden=16)
    params = model.init_params(jax.random.PRNGKey(0))
    actions = jax.random.randint(jax.random.PRNGKey(1), (T, B), 0, A)
    obs = jnp.concatenate([jnp.zeros((1, B, D)),
                           jax.nn.one_hot(actions[:-1], D)]).astype(jnp.float32)
    keys = jax.random.split(jax.random.PRNGKey(3), 60)
    init, fit = rs.make_filter_learner(model, lr=1e-2, kl_weight=0.5, clip_norm=1.0)
    (p1, _), (loss, parts) = jax.jit(fit)(params, init(params), obs, actions, keys)
    # the same steps written out: clip to norm 1, Adam, the ELBO at kl_weight 0.5
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-2))
    p, o, ref = params, tx.init(params), []
    step = jax.jit(lambda p, k: jax.value_and_grad(
        lambda q: rs.elbo_loss(model, q, obs, actions, k, 0.5), has_aux=True)(p))
    for k in keys:
        (lv, _), g = step(p, k)
        u, o = tx.update(g, o, p)
        p = optax.apply_updates(p, u)
        ref.append(float(lv))
    np.testing.assert_allclose(np.asarray(loss), ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
    assert set(parts) == {"recon", "kl"} and parts["kl"].shape == (60,)
    # starts near O * log 2 (random logits), learns the action -> observation map
    assert loss[:5].mean() > 5.0 and loss[-10:].mean() < 0.5 * loss[:5].mean()


def test_non_recurrent_filter_remembers_only_through_the_belief():
    model = rs.RSSM(obs_dim=5, num_actions=3, deter=8, stoch=3, hidden=16, recurrent=False)
    params = model.init_params(jax.random.PRNGKey(0))
    assert "gru" not in params["params"]
    obs, a, k = jnp.ones((2, 5)), jnp.array([0, 2]), jax.random.PRNGKey(1)
    st = model.initial(2)
    st1, post1, _ = model.apply(params, st, a, obs, k, method=model.filter)
    other = st.replace(h=jnp.full_like(st.h, 3.0))  # a different h changes nothing
    st2, post2, _ = model.apply(params, other, a, obs, k, method=model.filter)
    np.testing.assert_allclose(np.asarray(post1.mean), np.asarray(post2.mean), rtol=1e-6)
    st3, post3, _ = model.apply(params, st.replace(z=st.z + 1.0), a, obs, k,
                                method=model.filter)
    assert not np.allclose(np.asarray(post1.mean), np.asarray(post3.mean))
