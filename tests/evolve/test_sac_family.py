"""The continuous SAC-loss family (MetaPG's second search space): SAC is the point
SAC_POINT (losses and gradients to 1e-6 on random inputs), each parameter moves the term it
names (hand formulas), the TD clipping is a Huber loss, mutation stays in the box and is
rounded to its key, points round-trip through dicts."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import DataError
from selftaught.evolve import sac_family as sf
from selftaught.rl import sac

CRITIC = ("q1", "q2", "q1_next", "q2_next", "logp_next", "reward", "discount", "alpha")
ACTOR = ("q1_pi", "q2_pi", "logp_pi", "alpha")


def _inputs(names, seed, b=64):
    rng = np.random.default_rng(seed)
    x = {n: jnp.asarray(rng.normal(scale=3.0, size=b), jnp.float32) for n in names}
    x["alpha"] = jnp.asarray(rng.uniform(0.01, 1.0, b), jnp.float32)
    if "discount" in x:
        x["discount"] = jnp.asarray(rng.choice([0.0, 0.99], size=b), jnp.float32)
    return x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_sac_point_reproduces_sacs_losses_and_gradients(seed):
    theta = jnp.asarray(sf.SAC_POINT, jnp.float32)
    for mine, ref, names, wrt in [(sf.critic_loss, sac.sac_critic_loss, CRITIC, ("q1", "q2")),
                                  (sf.actor_loss, sac.sac_actor_loss, ACTOR,
                                   ("q1_pi", "q2_pi", "logp_pi"))]:
        x = _inputs(names, seed)
        np.testing.assert_allclose(mine(theta, x), ref(x), rtol=1e-6, atol=1e-6)
        def g(f, x=x, wrt=wrt):
            return jax.grad(lambda v: f({**x, **v}).mean())({k: x[k] for k in wrt})

        got, want = g(lambda z, mine=mine: mine(theta, z)), g(ref)
        for k in wrt:
            np.testing.assert_allclose(got[k], want[k], rtol=1e-6, atol=1e-6)


def test_each_parameter_moves_its_term():
    x = _inputs(CRITIC, 3)
    k, b, ka, ba, u = 0.3, 0.5, 0.2, 1.7, 0.0
    theta = jnp.asarray([k, b, ka, ba, u], jnp.float32)
    agg = k * np.minimum(x["q1_next"], x["q2_next"]) + (1 - k) * (x["q1_next"] + x["q2_next"]) / 2
    y = x["reward"] + x["discount"] * (agg - b * x["alpha"] * x["logp_next"])
    np.testing.assert_allclose(sf.critic_loss(theta, x),
                               (x["q1"] - y) ** 2 + (x["q2"] - y) ** 2, rtol=1e-5, atol=1e-4)
    xa = _inputs(ACTOR, 4)
    agg_a = ka * np.minimum(xa["q1_pi"], xa["q2_pi"]) + (1 - ka) * (xa["q1_pi"] + xa["q2_pi"]) / 2
    np.testing.assert_allclose(sf.actor_loss(theta, xa), ba * xa["alpha"] * xa["logp_pi"] - agg_a,
                               rtol=1e-5, atol=1e-5)
    # the target is a constant: no gradient reaches q1_next
    g = jax.grad(lambda v: sf.critic_loss(theta, {**x, "q1_next": v}).sum())(x["q1_next"])
    assert float(jnp.abs(g).max()) == 0.0


def test_td_clip_is_a_huber_loss_with_threshold_one_over_u():
    e = jnp.linspace(-5.0, 5.0, 101)
    for u in (0.0, 0.5, 1.0):
        delta = np.inf if u == 0 else 1 / u
        a = np.abs(np.asarray(e))
        want = np.where(a <= delta, a**2, 2 * delta * a - delta**2)
        np.testing.assert_allclose(sf.clipped_square(e, u), want, rtol=1e-6, atol=1e-5)
        grad = jax.vmap(jax.grad(lambda z, u=u: sf.clipped_square(z, u)))(e)
        np.testing.assert_allclose(grad, 2 * np.clip(np.asarray(e), -delta, delta), atol=1e-5)
        assert np.isfinite(np.asarray(grad)).all()


def test_mutation_stays_in_the_box_moves_something_and_is_rounded_to_its_key():
    rng = np.random.default_rng(0)
    p = sf.sac_point()
    seen = np.zeros(len(sf.NAMES))
    for _ in range(300):
        c = sf.mutate(p, rng, sigma=0.5, p_gene=0.3)
        v = np.asarray(c.values)
        assert (v >= sf.LOW).all() and (v <= sf.HIGH).all()
        np.testing.assert_array_equal(v, np.round(v, sf.DECIMALS))
        assert sf.Point(tuple(float(t) for t in c.key().split(","))) == c
        seen += v != np.asarray(p.values)
        p = c
    assert (seen > 0).all()  # every coordinate moves sometimes
    # at least one coordinate is drawn every time: interior points always change
    mid = sf.Point(tuple((sf.LOW + sf.HIGH) / 2))
    assert all(sf.mutate(mid, rng, sigma=0.1, p_gene=0.0) != mid for _ in range(50))


def test_points_round_trip_and_bad_dicts_are_data_errors():
    p = sf.mutate(sf.sac_point(), np.random.default_rng(1))
    assert sf.point_from_dict(p.as_dict()) == p
    with pytest.raises(DataError, match="expected an object with keys"):
        sf.point_from_dict({"target_min": 1.0})
    with pytest.raises(DataError, match="outside the box"):
        sf.point_from_dict({**p.as_dict(), "td_clip": 3.0})
    assert sf.sac_point().formulas()["critic"].startswith("squared(q - y)")


def test_the_task_pickles_for_the_pool_and_ray_backends():
    import pickle

    from selftaught.rl.sac import SACConfig

    task = sf.SACFamilyTask(SACConfig(), (("l", 0.5), ("l", 2.0)), seeds=2, batch=4)
    assert pickle.loads(pickle.dumps(task)) == task
    assert pickle.loads(pickle.dumps(sf.sac_point())) == sf.sac_point()
