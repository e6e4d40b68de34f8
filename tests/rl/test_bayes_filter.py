"""rl.bayes_filter: beliefs are distributions that keep the true prey in their support; a
seen prey is a point mass; the association update equals the brute-force joint posterior's
marginals; with one prey (where the factorisation is exact) the filter matches a Monte-Carlo
estimate of P(prey state | observations) from simulating `rl.gridworld` itself; out of view
the entropy grows from a point mass."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError
from selftaught.rl import bayes_filter as bf
from selftaught.rl import gridworld as gw


def _state(spec, agent, prey, params):
    n, k = spec.size, len(prey)
    return gw.WorldState(jnp.array(agent, jnp.int32), jnp.array(prey, jnp.int32),
                         jnp.ones(k, bool), jnp.zeros(2, jnp.int32), jnp.int32(0),
                         jnp.int32(0), jnp.int32(0), jnp.zeros((n, n), jnp.int32), params,
                         jnp.zeros(k, bool))


def _window(spec, agent, prey_cells):
    w = 2 * spec.view + 1
    obs = np.zeros((w, w, gw.NUM_CHANNELS), np.float32)
    for r, c in prey_cells:
        obs[r - agent[0] + spec.view, c - agent[1] + spec.view, bf.PREY_CHANNEL] = 1.0
    return jnp.asarray(obs)


def _true_state(spec, st):
    """[K] index of each prey's state (cell, or the cage once captured)."""
    cell = st.obj_pos[..., 0] * spec.size + st.obj_pos[..., 1]
    return jnp.where(st.captured, spec.size * spec.size, cell)


def test_beliefs_are_distributions_that_cover_the_true_prey():
    spec = gw.WorldSpec(task="capture", size=5, view=1, num_prey=2, cage=True)
    prm = gw.world_params(p_prey=0.5)
    obs, st = gw.reset(spec, jax.random.PRNGKey(3), prm)
    b = bf.initial(spec, st.agent, obs)
    stepf = jax.jit(lambda k, s, a: gw.step(spec, k, s, a))
    filt = jax.jit(lambda b, a, o: bf.step(spec, b, a, o, 0.5))
    caught = 0
    for i in range(80):
        k_a, k_e = jax.random.split(jax.random.PRNGKey(100 + i))
        obs, st, r, *_ = stepf(k_e, st, jax.random.randint(k_a, (), 0, gw.NUM_ACTIONS))
        caught += int(r)
        b = filt(b, st.agent, obs)
        assert b.shape == (2, bf.num_states(spec)) and float(b.min()) >= 0.0
        np.testing.assert_allclose(np.asarray(b.sum(1)), 1.0, atol=1e-5)
        mass = np.asarray(b.sum(0))  # prey are anonymous: some marginal holds each prey
        for s in np.asarray(_true_state(spec, st)):
            assert mass[s] > 0.0
        np.testing.assert_allclose(mass[-1], float(st.captured.sum()), atol=1e-5)
    assert caught >= 1  # the run exercised the cage


def test_a_seen_prey_is_a_point_mass_and_a_captured_one_sits_in_the_cage():
    spec = gw.WorldSpec(task="capture", size=5, view=1, num_prey=1, cage=True)
    b = bf.initial(spec, jnp.array([2, 2]), _window(spec, (2, 2), [(1, 3)]))
    np.testing.assert_allclose(np.asarray(b[0]), np.eye(26)[1 * 5 + 3], atol=1e-6)
    assert float(bf.entropy(b)[0]) == pytest.approx(0.0, abs=1e-5)
    # stepping onto it captures it: the belief collapses on the cage and stays there
    b = bf.step(spec, b, jnp.array([1, 3]), _window(spec, (1, 3), []), 0.5)
    np.testing.assert_allclose(np.asarray(b[0]), np.eye(26)[25], atol=1e-6)
    # nothing seen: the prey is out of view (uniform over the unseen cells at reset)
    b = bf.initial(spec, jnp.array([0, 0]), _window(spec, (0, 0), []))
    np.testing.assert_allclose(np.asarray(b[0, :25]).reshape(5, 5)[:2, :2], 0.0)
    np.testing.assert_allclose(np.asarray(b[0, :25]).reshape(5, 5)[2:], 1 / 21, rtol=1e-5)
    with pytest.raises(ConfigError, match="--world.cage"):
        bf.check_spec(gw.WorldSpec(task="capture"))


def _brute_force(spec, b, agent, seen):
    """The joint posterior prop. to b_1(s_1) b_2(s_2) 1[the window shows exactly the seen
    cells, no two prey on one seen cell], by enumerating every (s_1, s_2)."""
    n, S = spec.size, bf.num_states(spec)
    view = {(r, c) for r in range(n) for c in range(n)
            if abs(r - agent[0]) <= spec.view and abs(c - agent[1]) <= spec.view}
    post = np.zeros((S, S))
    for s1, s2 in itertools.product(range(S), repeat=2):
        cells = [divmod(s, n) for s in (s1, s2) if s < n * n]
        shown = [c for c in cells if c in view]
        if sorted(shown) == sorted(seen) and len(set(shown)) == len(shown):
            post[s1, s2] = b[0, s1] * b[1, s2]
    return post / post.sum()


@pytest.mark.parametrize("seen", [[], [(1, 2)], [(1, 2), (2, 3)]])
def test_update_equals_the_brute_force_posterior_over_unordered_prey(seen):
    """Two anonymous prey: the product of the filter's (canonically labelled) marginals is
    the brute-force joint posterior up to swapping the prey (both symmetrised), and a seen
    prey's marginal is a point mass."""
    spec = gw.WorldSpec(task="capture", size=4, view=1, num_prey=2, cage=True)
    rng = np.random.default_rng(len(seen))
    b = rng.dirichlet(np.full(bf.num_states(spec), 0.7), size=2).astype(np.float32)
    agent = (2, 2)
    b[:, agent[0] * 4 + agent[1]] = 0.0  # no prey under the agent
    b /= b.sum(1, keepdims=True)
    got = np.asarray(bf.update(spec, jnp.asarray(b), jnp.array(agent),
                               _window(spec, agent, seen)))
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    joint = np.outer(got[0], got[1])
    ref = _brute_force(spec, b, agent, seen)
    np.testing.assert_allclose(joint + joint.T, ref + ref.T, atol=2e-6)
    for j, (r, c) in enumerate(sorted(seen)):
        assert got[j, r * 4 + c] == pytest.approx(1.0, abs=1e-6)


def test_one_prey_matches_monte_carlo_of_the_world():
    """P(prey state at T | the T windows) by rejection sampling of `gridworld.step` (20k
    rollouts from a known start, fixed actions that walk past the prey) against the filter
    run on the same windows, for the most frequent window sequences; tolerance 0.03 per
    state (>= 4 binomial standard errors at >= 1000 accepted rollouts)."""
    spec = gw.WorldSpec(task="capture", size=5, view=1, num_prey=1, cage=True)
    prm = gw.world_params(p_prey=0.5)
    actions = jnp.array([4, 3, 3, 1, 1, 2, 4, 3])  # stay, right, right, down, down, left, ...
    st0 = _state(spec, (0, 0), [[2, 2]], prm)
    N = 20_000

    def sim(key):
        def body(st, xs):
            k, a = xs
            obs, st, *_ = gw.step(spec, k, st, a)
            return st, (obs[..., bf.PREY_CHANNEL], st.agent)
        st, (seen_T, agent_T) = jax.lax.scan(body, st0,
                                             (jax.random.split(key, len(actions)), actions))
        return seen_T, agent_T, _true_state(spec, st)[0]

    seen, agents, final = jax.jit(jax.vmap(sim))(jax.random.split(jax.random.PRNGKey(0), N))
    seen, final = np.asarray(seen).reshape(N, -1), np.asarray(final)
    agent_T = np.asarray(agents[0])  # the agent's path does not depend on the prey
    codes, inverse, counts = np.unique(seen, axis=0, return_inverse=True, return_counts=True)
    b0 = jnp.eye(bf.num_states(spec))[2 * 5 + 2][None]
    filt = jax.jit(lambda b, a, o: bf.step(spec, b, a, o, 0.5))
    checked = 0
    for i in np.argsort(-counts)[:4]:
        if counts[i] < 1000:
            continue
        w = codes[i].reshape(len(actions), 3, 3)
        b = b0
        for t in range(len(actions)):
            obs = jnp.zeros((3, 3, gw.NUM_CHANNELS)).at[..., bf.PREY_CHANNEL].set(w[t])
            b = filt(b, jnp.asarray(agent_T[t]), obs)
        mc = np.bincount(final[inverse.reshape(-1) == i], minlength=bf.num_states(spec))
        np.testing.assert_allclose(np.asarray(b[0]), mc / counts[i], atol=0.03)
        checked += 1
    assert checked >= 2


def test_out_of_view_entropy_grows_from_a_point_mass():
    spec = gw.WorldSpec(task="capture", size=7, view=1, num_prey=1, cage=True)
    b = jnp.eye(bf.num_states(spec))[4 * 7 + 4][None]
    agent, empty = jnp.array([0, 0]), _window(spec, (0, 0), [])
    h = [float(bf.entropy(b)[0])]
    for _ in range(8):
        b = bf.step(spec, b, agent, empty, 0.5)
        h.append(float(bf.entropy(b)[0]))
    assert h[0] == pytest.approx(0.0, abs=1e-6)
    assert all(b > a + 1e-3 for a, b in zip(h, h[1:], strict=False))
    assert h[-1] < np.log(7 * 7 - 4)  # bounded by uniform over the unseen cells


def test_cross_entropy_is_entropy_plus_kl():
    rng = np.random.default_rng(0)
    b, q = rng.dirichlet(np.ones(10), size=(2, 3))
    kl = np.sum(b * np.log(b / q), -1)
    np.testing.assert_allclose(np.asarray(bf.cross_entropy(jnp.asarray(b), jnp.asarray(q))),
                               -np.sum(b * np.log(b), -1) + kl, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(bf.entropy(jnp.asarray(b))),
                               -np.sum(b * np.log(b), -1), rtol=1e-5)
