"""rl.returns: GAE against a hand-written NumPy recursion (with episode ends), its lambda = 0
and lambda = 1 special cases, jit/vmap pass-through; n-step targets against a NumPy loop."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.rl import returns


def _gae_reference(r, v, last, dones, gamma, lam):
    """The GAE recursion written out step by step (T x B), episode ends cut both the
    bootstrap and the accumulation."""
    T = r.shape[0]
    adv = np.zeros_like(r)
    acc = np.zeros_like(last)
    for t in reversed(range(T)):
        nv = last if t == T - 1 else v[t + 1]
        live = 1.0 - dones[t]
        delta = r[t] + gamma * live * nv - v[t]
        acc = delta + gamma * lam * live * acc
        adv[t] = acc
    return adv, adv + v


@pytest.fixture
def segment():
    rng = np.random.default_rng(0)
    T, B = 9, 4
    r, v, last = rng.normal(size=(T, B)), rng.normal(size=(T, B)), rng.normal(size=B)
    dones = np.zeros((T, B))
    dones[2, 0] = dones[5, 0] = 1.0  # two episode ends in column 0
    dones[8, 1] = 1.0  # column 1 ends at the segment's last step: no bootstrap
    dones[0, 2] = 1.0  # column 2 ends right away
    return r, v, last, dones


@pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
def test_gae_matches_numpy_recursion_with_episode_ends(segment, lam):
    r, v, last, dones = segment
    g = 0.9
    adv, ret = returns.gae(*(jnp.asarray(x) for x in (r, v, last)), g, lam, jnp.asarray(dones))
    ref_adv, ref_ret = _gae_reference(r, v, last, dones, g, lam)
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), ref_ret, rtol=1e-5, atol=1e-5)


def test_gae_without_dones_is_the_uncut_recursion(segment):
    r, v, last, _ = segment
    zeros = np.zeros_like(r)
    adv, ret = returns.gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(last), 0.9, 0.8)
    ref_adv, ref_ret = _gae_reference(r, v, last, zeros, 0.9, 0.8)
    np.testing.assert_allclose(np.asarray(adv), ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), ref_ret, rtol=1e-5, atol=1e-5)
    adv0, _ = returns.gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(last), 0.9, 0.8,
                          jnp.asarray(zeros))
    np.testing.assert_allclose(np.asarray(adv0), np.asarray(adv), rtol=1e-6, atol=1e-6)


def test_gae_special_cases(segment):
    r, v, last, dones = segment
    g, T = 0.9, r.shape[0]
    # lambda = 0: the one-step TD error, cut at episode ends
    adv0, _ = returns.gae(*(jnp.asarray(x) for x in (r, v, last)), g, 0.0, jnp.asarray(dones))
    nv = np.concatenate([v[1:], last[None]])
    np.testing.assert_allclose(np.asarray(adv0), r + g * (1 - dones) * nv - v, rtol=1e-5,
                               atol=1e-5)
    # lambda = 1: the discounted return to the episode's end (or the bootstrapped tail)
    _, ret1 = returns.gae(*(jnp.asarray(x) for x in (r, v, last)), g, 1.0, jnp.asarray(dones))
    ret1 = np.asarray(ret1)
    col3 = sum(g ** k * r[k, 3] for k in range(T)) + g ** T * last[3]  # no episode end
    assert ret1[0, 3] == pytest.approx(col3, rel=1e-5)
    assert ret1[0, 0] == pytest.approx(r[0, 0] + g * r[1, 0] + g ** 2 * r[2, 0], rel=1e-5)
    assert ret1[3, 0] == pytest.approx(r[3, 0] + g * r[4, 0] + g ** 2 * r[5, 0], rel=1e-5)
    assert ret1[T - 1, 1] == pytest.approx(r[T - 1, 1], rel=1e-5)  # done at the last step
    assert ret1[0, 2] == pytest.approx(r[0, 2], rel=1e-5)


def test_gae_jits_and_vmaps_over_a_leading_axis(segment):
    r, v, last, dones = segment
    stack = lambda x: jnp.stack([jnp.asarray(x), 2 * jnp.asarray(x)])  # noqa: E731
    f = jax.jit(jax.vmap(lambda a, b, c, d: returns.gae(a, b, c, 0.95, 0.9, d)))
    adv, _ = f(stack(r), stack(v), stack(last), jnp.stack([jnp.asarray(dones)] * 2))
    for i, s in enumerate((1, 2)):
        ref, _ = _gae_reference(s * r, s * v, s * last, dones, 0.95, 0.9)
        np.testing.assert_allclose(np.asarray(adv[i]), ref, rtol=1e-5, atol=1e-5)


def test_n_step_targets_match_a_numpy_loop():
    rng = np.random.default_rng(1)
    B, W, n, g = 6, 5, 3, 0.8
    r = rng.normal(size=(B, W))
    done = (rng.uniform(size=(B, W)) < 0.3).astype(np.float32)
    term = done * (rng.uniform(size=(B, W)) < 0.5)  # some ends are truncations
    ret, last, disc = returns.n_step_targets(*(jnp.asarray(x) for x in (r, term, done)),
                                             jnp.int32(n), g)
    for b in range(B):
        acc, k = 0.0, 0
        while k < n:
            acc += g ** k * r[b, k]
            k += 1
            if done[b, k - 1]:
                break
        assert float(ret[b]) == pytest.approx(acc, rel=1e-5, abs=1e-6)
        assert int(last[b]) == k - 1
        assert float(disc[b]) == pytest.approx(g ** k * (1 - term[b, k - 1]), rel=1e-6)
