"""Gridworld: invariants over random lives, determinism, vmap == single, scripted task
completions, episodic vs reset-free, environment shaping, dynamism entropy, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.rl import gridworld as gw

SPEC = gw.WorldSpec(task="tool", size=5, view=2, num_resources=2, episode_steps=30)
HUNT = gw.WorldSpec(task="hunt", size=5, view=1, num_resources=1, num_prey=2,
                    episode_steps=30)
T = 300


@pytest.fixture(scope="module")
def lives():
    """4 random lives (vmapped) of the tool world with dynamism and reward shaping."""
    prm = gw.world_params(p=0.3, reward_bonus=0.1)
    fn = jax.jit(jax.vmap(lambda k: gw.random_rollout(SPEC, k, prm, T)))
    ks = jax.random.split(jax.random.PRNGKey(0), 4)
    return fn, ks, fn(ks)


def test_invariants_of_random_lives(lives):
    _, _, (final, tr) = lives
    pos = np.asarray(tr["obj_pos"])  # [W, T, K, 2]
    agent = np.asarray(tr["agent"])
    assert pos.min() >= 0 and pos.max() < SPEC.size and agent.min() >= 0
    assert agent.max() < SPEC.size
    alive = np.asarray(tr["alive"])
    for w in range(pos.shape[0]):
        for t in range(T):
            cells = [tuple(c) for c in pos[w, t][alive[w, t]]]
            assert len(set(cells)) == len(cells)  # objects on the grid never overlap
    assert (~alive).any() and alive.mean() > 0.5  # consumed objects come back (p = 0.3)
    # lifetime counters: one visit per step (plus the start), successes = rewarded steps
    np.testing.assert_array_equal(np.asarray(final.visits).sum((1, 2)), T + 1)
    np.testing.assert_array_equal(np.asarray(final.t), T)
    succ = np.asarray(tr["success"])
    np.testing.assert_array_equal(np.asarray(final.successes), succ.sum(1))
    # reward = success + 0.1 per pick-up, so reward - success is a multiple of 0.1
    bonus = np.asarray(tr["reward"]) - succ
    np.testing.assert_allclose(bonus * 10, np.round(bonus * 10), atol=1e-5)
    assert (bonus > 0).any() and succ.sum() > 0  # random agents pick up and succeed
    assert not np.asarray(tr["done"]).any()  # reset-free: no episode ever ends
    inv = np.asarray(final.inventory)
    assert set(np.unique(inv)) <= {0, 1}


def test_determinism_and_vmap_equals_single(lives):
    fn, ks, (final, tr) = lives
    again = fn(ks)[1]
    np.testing.assert_array_equal(np.asarray(again["obj_pos"]), np.asarray(tr["obj_pos"]))
    prm = gw.world_params(p=0.3, reward_bonus=0.1)
    single_final, single = jax.jit(lambda k: gw.random_rollout(SPEC, k, prm, T))(ks[2])
    for name in ("obj_pos", "agent", "reward", "obs"):
        np.testing.assert_array_equal(np.asarray(single[name]), np.asarray(tr[name])[2])
    np.testing.assert_array_equal(np.asarray(single_final.visits), np.asarray(final.visits)[2])


def _state(spec, agent, obj, inv=(0, 0), params=None):
    params = gw.world_params() if params is None else params
    n = spec.size
    return gw.WorldState(jnp.array(agent, jnp.int32), jnp.array(obj, jnp.int32),
                         jnp.ones(len(obj), bool), jnp.array(inv, jnp.int32), jnp.int32(0),
                         jnp.int32(0), jnp.int32(0),
                         jnp.zeros((n, n), jnp.int32), params, jnp.zeros(len(obj), bool))


def test_egocentric_observation_matches_numpy():
    st = _state(SPEC, (0, 1), [[0, 3], [1, 1], [4, 4], [2, 0]], inv=(1, 0))
    obs = np.asarray(gw.observe(SPEC, st))
    v, n = SPEC.view, SPEC.size
    ref = np.zeros((5, 5, 6), np.float32)
    for i in range(5):
        for j in range(5):
            r, c = 0 + i - v, 1 + j - v
            if not (0 <= r < n and 0 <= c < n):
                ref[i, j, 0] = 1.0
    for (r, c), k in zip([[0, 3], [1, 1], [4, 4], [2, 0]], SPEC.kinds, strict=True):
        i, j = r - 0 + v, c - 1 + v
        if 0 <= i < 5 and 0 <= j < 5:
            ref[i, j, 1 + k] = 1.0
    ref[:, :, 4] = 1.0
    np.testing.assert_array_equal(obs, ref)


def test_tool_task_needs_both_resources_then_use():
    spec = gw.WorldSpec(task="tool", size=5, num_resources=1)
    st = _state(spec, (2, 2), [[2, 3], [3, 3]])
    k = jax.random.PRNGKey(1)
    stepf = jax.jit(lambda k, s, a: gw.step(spec, k, s, a))
    _, st, r, *_ = stepf(k, st, 4)  # use with nothing held: nothing happens
    assert float(r) == 0.0
    _, st, r, *_ = stepf(k, st, 3)  # right onto the wood
    np.testing.assert_array_equal(np.asarray(st.inventory), [1, 0])
    np.testing.assert_array_equal(np.asarray(st.alive), [False, True])  # consumed (p = 0)
    _, st, r, *_ = stepf(k, st, 4)
    assert float(r) == 0.0  # one resource is not enough
    stone = np.asarray(st.obj_pos)[1]
    agent = np.asarray(st.agent)
    st = st.replace(obj_pos=st.obj_pos.at[1].set(agent + jnp.array([1, 0])))
    _, st, r, *_ = stepf(k, st, 1)  # down onto the stone
    np.testing.assert_array_equal(np.asarray(st.inventory), [1, 1])
    _, st, r, term, trunc, info = stepf(k, st, 4)
    assert float(r) == 1.0 and bool(info["success"]) and int(st.successes) == 1
    np.testing.assert_array_equal(np.asarray(st.inventory), [0, 0])
    assert not bool(term) and not bool(trunc)  # reset-free
    del stone


def test_hunt_needs_a_spear():
    prm = gw.world_params(p=0.0, p_prey=0.0)
    st = _state(HUNT, (2, 2), [[0, 0], [2, 3], [4, 4]], params=prm)
    stepf = jax.jit(lambda k, s, a: gw.step(HUNT, k, s, a))
    k = jax.random.PRNGKey(2)
    _, st, r, *_ = stepf(k, st, 3)  # onto the prey without a spear
    assert float(r) == 0.0 and int(st.successes) == 0
    st = st.replace(inventory=jnp.array([1, 0], jnp.int32), agent=jnp.array([2, 2]))
    _, st, r, *_ = stepf(k, st, 3)
    assert float(r) == 1.0
    np.testing.assert_array_equal(np.asarray(st.inventory), [0, 0])
    np.testing.assert_array_equal(np.asarray(st.alive), [True, False, True])  # prey eaten


def test_capture_stops_prey_for_good():
    spec = gw.WorldSpec(task="capture", size=5, view=1, num_prey=2)
    np.testing.assert_array_equal(spec.kinds, [gw.PREY, gw.PREY])
    prm = gw.world_params(p_prey=1.0)  # free prey move whenever they can
    st = _state(spec, (2, 2), [[2, 3], [0, 0]], params=prm)
    stepf = jax.jit(lambda k, s, a: gw.step(spec, k, s, a))
    obs, st, r, term, trunc, info = stepf(jax.random.PRNGKey(0), st, 3)  # onto prey 0
    assert float(r) == 1.0 and not bool(info["success"])  # one of two prey
    np.testing.assert_array_equal(np.asarray(st.captured), [True, False])
    np.testing.assert_array_equal(np.asarray(st.obj_pos[0]), [2, 3])
    # under the agent: captured prey in the kind-1 plane, not the prey plane
    assert obs[1, 1, 2] == 1.0 and obs[1, 1, 3] == 0.0
    path0, path1 = [], []
    for i in range(30):  # walk away; the captured prey stays, the free one keeps moving
        _, st, r, *_ = stepf(jax.random.PRNGKey(i + 1), st, i % 2)
        path0.append(np.asarray(st.obj_pos[0]).tolist())
        path1.append(np.asarray(st.obj_pos[1]).tolist())
    assert all(p == [2, 3] for p in path0)
    assert len({tuple(p) for p in path1}) > 3
    assert bool(st.alive.all()) and int(st.inventory.sum()) == 0  # nothing is consumed
    # capturing the last prey is a success
    st = st.replace(agent=jnp.asarray(st.obj_pos[1]) + jnp.array([0, -1]) * (
        st.obj_pos[1][1] > 0) + jnp.array([0, 1]) * (st.obj_pos[1][1] == 0))
    action = 3 if int(st.agent[1]) < int(st.obj_pos[1][1]) else 2
    st = st.replace(params=gw.world_params(p_prey=0.0))
    _, st, r, _, _, info = stepf(jax.random.PRNGKey(99), st, action)
    assert float(r) == 1.0 and bool(info["success"]) and bool(st.captured.all())


def test_cage_takes_captured_prey_off_the_grid_for_good():
    spec = gw.WorldSpec(task="capture", size=5, view=1, num_prey=2, cage=True)
    prm = gw.world_params(p_prey=1.0, p_regrow=1.0)  # a caged prey must not respawn
    st = _state(spec, (2, 2), [[2, 3], [2, 4]], params=prm)
    stepf = jax.jit(lambda k, s, a: gw.step(spec, k, s, a))
    obs, st, r, *_ = stepf(jax.random.PRNGKey(0), st, 3)  # onto prey 0
    assert float(r) == 1.0
    np.testing.assert_array_equal(np.asarray(st.captured), [True, False])
    np.testing.assert_array_equal(np.asarray(st.alive), [False, True])
    assert obs[1, 1, 2] == 0.0 and obs[1, 1, 3] == 0.0  # nothing shows under the agent
    cells = set()
    for i in range(40):  # the free prey may now cross the capture cell; prey 0 never returns
        _, st, r, *_ = stepf(jax.random.PRNGKey(i + 1), st, 4)
        assert float(r) == 0.0 and not bool(st.alive[0]) and bool(st.captured[0])
        cells.add(tuple(np.asarray(st.obj_pos[1]).tolist()))
    assert len(cells) > 3
    with pytest.raises(ConfigError, match="cage is an option of the capture task"):
        gw.WorldSpec(task="hunt", cage=True).validate()


def test_episodic_mode_truncates_and_keeps_lifetime_counters():
    prm = gw.world_params(p=0.0, episodic=True)
    spec = gw.WorldSpec(task="tool", size=6, num_resources=1, episode_steps=10)
    final, tr = jax.jit(lambda k: gw.random_rollout(spec, k, prm, 60))(jax.random.PRNGKey(3))
    done = np.asarray(tr["done"])
    succ = np.asarray(tr["success"])
    # an episode ends exactly at success or after 10 steps without one
    last = -1
    for t in np.flatnonzero(done):
        assert succ[t] or t - last == 10
        last = t
    assert done.sum() >= 5
    assert int(final.t) == 60 and int(np.asarray(final.visits).sum()) == 61
    assert int(final.ep_t) == 59 - last


def test_environment_shaping_spawns_near_the_agent():
    prm = gw.world_params(p=0.0, shaping_steps=1e6)
    spec = gw.WorldSpec(task="tool", size=9, num_resources=2)
    ks = jax.random.split(jax.random.PRNGKey(4), 32)
    _, st = jax.vmap(lambda k: gw.reset(spec, k, prm))(ks)
    agent = np.asarray(st.agent)
    d = np.abs(np.asarray(st.obj_pos) - agent[:, None]).max(-1)
    # as many of the 4 resources as there are free cells at distance 1 (3 in a corner)
    rows = np.minimum(agent[:, 0] + 1, 8) - np.maximum(agent[:, 0] - 1, 0) + 1
    cols = np.minimum(agent[:, 1] + 1, 8) - np.maximum(agent[:, 1] - 1, 0) + 1
    np.testing.assert_array_equal((d == 1).sum(1), np.minimum(4, rows * cols - 1))
    assert (d >= 1).all()
    _, st0 = jax.vmap(lambda k: gw.reset(spec, k, gw.world_params()))(ks)
    d0 = np.abs(np.asarray(st0.obj_pos) - np.asarray(st0.agent)[:, None]).max(-1)
    assert d0.max() > 2  # unshaped worlds spread out
    # the spawn radius grows linearly from 1 to the room size over shaping_steps
    radii = [float(gw._radius(spec, prm, t)) for t in (0, 5e5, 1e6, 2e6)]
    np.testing.assert_allclose(radii, [1.0, 5.0, 9.0, 9.0])


def test_transition_entropy_analytic_matches_measured():
    spec = gw.WorldSpec(task="hunt", size=41, num_resources=1, num_prey=1)
    prm = gw.world_params(p=0.3, p_prey=0.6)
    _, st = gw.reset(spec, jax.random.PRNGKey(5), prm)
    st = st.replace(agent=jnp.array([0, 0]), obj_pos=jnp.array([[20, 14], [20, 26]]))
    acts = jnp.full((1000,), 4)  # the agent stays in its corner, walls stay far
    _, tr = jax.jit(lambda k, s: gw.rollout(spec, k, s, acts))(jax.random.PRNGKey(6), st)
    measured = gw.empirical_transition_entropy(np.asarray(tr["obj_pos"]))
    assert abs(measured - gw.transition_entropy(spec, 0.3, 0.6)) < 0.08
    assert gw.transition_entropy(spec, 0.0, 0.0) == 0.0
    assert gw.transition_entropy(spec, 0.3, 0.0) < gw.transition_entropy(spec, 0.6, 0.0)


def test_visitation_entropy():
    v = jnp.zeros((4, 4)).at[0, 0].set(3).at[1, 1].set(1)
    q = np.array([0.75, 0.25])
    np.testing.assert_allclose(float(gw.visitation_entropy(v)), -(q * np.log(q)).sum(), 1e-6)
    np.testing.assert_allclose(float(gw.visitation_entropy(jnp.ones((4, 4)))), np.log(16), 1e-6)


def test_validation_of_a_random_policy():
    policy = lambda k, o: jax.random.randint(k, (o.shape[0],), 0, gw.NUM_ACTIONS)  # noqa
    spec = gw.WorldSpec(task="tool", size=4, num_resources=1, episode_steps=40)
    out = jax.jit(lambda k: gw.validate(spec, policy, k, 32))(jax.random.PRNGKey(7))
    s, h = np.asarray(out["success"]), np.asarray(out["hitting_time"])
    assert 0 < s.sum() < 32
    assert (h[s] < 40).all() and (h[s] >= 3).all() and (h[~s] == 40).all()


def test_test_worlds_are_other_worlds_than_the_validation_worlds():
    policy = lambda k, o: jax.random.randint(k, (o.shape[0],), 0, gw.NUM_ACTIONS)  # noqa
    spec = gw.WorldSpec(task="tool", size=4, num_resources=1, episode_steps=40)
    run = jax.jit(lambda k, seed: gw.validate(spec, policy, k, 32, seed=seed)["hitting_time"],
                  static_argnums=1)
    key = jax.random.PRNGKey(7)
    val = np.asarray(jax.jit(lambda k: gw.validate(spec, policy, k, 32)["hitting_time"])(key))
    np.testing.assert_array_equal(np.asarray(run(key, gw.VALIDATION_SEED)), val)
    # same policy key, other worlds: the episodes differ
    assert not np.array_equal(np.asarray(run(key, gw.TEST_SEED)), val)
    assert gw.TEST_SEED != gw.VALIDATION_SEED


@pytest.mark.parametrize("kwargs,match", [
    (dict(size=2, num_resources=2), "need 5 cells"),
    (dict(task="maze"), "unknown gridworld task"),
    (dict(view=0), "view must be at least 1"),
])
def test_impossible_specs_are_user_errors(kwargs, match):
    with pytest.raises((ConfigError, UnknownNameError), match=match):
        gw.WorldSpec(**kwargs).validate()


@pytest.mark.parametrize("kwargs,match", [
    (dict(p=1.5), r"p is a probability and must be in \[0, 1\], got 1.5"),
    (dict(p_prey=-0.1), "p_prey is a probability"),
    (dict(shaping_steps=-1), "shaping_steps must be >= 0"),
])
def test_impossible_params_are_user_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        gw.world_params(**kwargs)


def test_render_png_and_gif(tmp_path, lives):
    _, _, (final, tr) = lives
    st = gw.states_at(final, 0)
    frame = gw.render(SPEC, st, cell=8)
    assert frame.shape == (8 * (SPEC.size + 2) + 4, 8 * (SPEC.size + 2), 3)
    ar, ac = (np.asarray(st.agent) + 1) * 8 + np.array([4, 0])
    np.testing.assert_array_equal(frame[ar + 1, ac + 1], gw.COLORS["agent"])
    from PIL import Image

    png = gw.save_png(frame, tmp_path / "f.png")
    assert Image.open(png).size == (frame.shape[1], frame.shape[0])
    gif = gw.save_gif([frame, frame[::-1].copy()], tmp_path / "a.gif")
    assert Image.open(gif).n_frames == 2
