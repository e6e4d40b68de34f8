"""The simulator's Poisson process, and the controllers."""

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.sim.dopant import control, lattice, rates, sim


def test_exploration_outcomes_follow_the_poisson_process():
    """P(moved) = 1 − exp(−Λ·Δt) and P(neighbour k | moved) = λₖ/Λ, checked on the
    recorded contexts of 8192 simulated exposures."""
    truth = rates.ground_truth("offaxis")
    obs = jax.jit(lambda k: sim.explore(truth, k, num_sessions=32, steps=256, radius=2.2,
                                        dwell_range=(0.3, 3.0)))(jax.random.PRNGKey(0))
    assert obs.context.shape == (8192, 4) and obs.neighbour.shape == (8192,)
    lam = np.asarray(rates.evaluate(truth, obs.context))
    p_move = 1 - np.exp(-lam.sum(-1) * np.asarray(obs.dwell))
    moved = np.asarray(obs.moved)
    se = np.sqrt(np.sum(p_move * (1 - p_move)))
    assert abs(moved.sum() - p_move.sum()) < 4 * se
    nbr = np.asarray(obs.neighbour)
    np.testing.assert_array_equal(nbr < 0, ~moved)
    probs = lam / lam.sum(-1, keepdims=True)
    # expected vs observed counts per neighbour among the moves
    for k in range(3):
        expected = probs[moved, k].sum()
        assert abs((nbr == k).sum() - expected) < 4 * np.sqrt(expected) + 1


def test_step_recanonicalises_after_a_jump():
    """From a B site, a beam at the lab position whose canonical coordinates are the
    strongest lobe toward neighbour 0 moves the Si to lab direction −x (A site, same cell)."""
    truth = rates.ground_truth("offaxis")
    state = sim.reset((0, 0), 1)
    beam_lab = lattice.to_lab(jnp.array([1.05, 0.35]), 1)
    np.testing.assert_allclose(beam_lab, [-1.05, -0.35])
    steps = jax.jit(jax.vmap(lambda k: sim.step(truth, state, beam_lab, 20.0, k)))
    new, obs = steps(jax.random.split(jax.random.PRNGKey(1), 200))
    assert bool(jnp.all(obs.moved))
    np.testing.assert_allclose(obs.context[0, :2], [1.05, 0.35], atol=1e-6)
    to_zero = (obs.neighbour == 0)
    assert to_zero.mean() > 0.95
    np.testing.assert_array_equal(new.ij[to_zero], np.zeros((int(to_zero.sum()), 2)))
    np.testing.assert_array_equal(new.s[to_zero], 0)
    np.testing.assert_allclose(new.beam_time, 20.0)


def test_greedy_neighbour_choice_always_gets_one_jump_closer():
    dist = lattice.hop_distances(7)
    sites = np.array([k for k, d in dist.items() if 0 < d <= 7], np.int32)
    goal = lattice.site_position(jnp.zeros(2, jnp.int32), 0)

    def choice(site):
        state = sim.reset(site[:2], site[2])
        k = control.nearest_neighbour_to(state, goal)
        ij, s = lattice.neighbour_site(state.ij, state.s, k)
        return jnp.concatenate([ij, s[None]])

    nxt = np.asarray(jax.jit(jax.vmap(choice))(jnp.asarray(sites)))
    for site, n in zip(sites, nxt):
        assert dist[tuple(n)] == dist[tuple(site)] - 1


def test_beam_table_of_the_truth_is_its_peak_rotated_per_neighbour():
    table = control.beam_table(rates.ground_truth("offaxis"))
    for k in range(3):
        back = lattice.group_matrix(-k % 3, 0) @ table[k]  # rotate neighbour k onto +x
        np.testing.assert_allclose(np.abs(back), [1.05, 0.35], atol=0.051)
    # the human prior peaks at 0.85 bond lengths (putting-dune's prior, issue 17), in Angstrom
    np.testing.assert_allclose(control.beam_table(rates.human_prior())[0],
                               [0.85 * lattice.BOND, 0.0], atol=0.03)


def test_episodes_deterministic_limit_and_baselines():
    goals = control.sample_goals(np.random.default_rng(0), (1, 3, 5), 4)
    dist = lattice.hop_distances(5)
    assert all(dist[tuple(g[:3])] == g[3] for g in goals)
    run = jax.jit(lambda truth, table, k, r: control.run_episodes(
        truth, table, goals[:, :3], k, max_steps=60, dwell_s=1.0, random_radius=r))
    # a very fast, sharply peaked truth: every exposure jumps where the controller aims,
    # so an episode takes exactly as many exposures as the goal is jumps away
    sharp = rates.mixture([(1.0, 0.0)], [0.15], [1e4])
    res = run(sharp, control.beam_table(sharp), jax.random.PRNGKey(0), 0.0)
    np.testing.assert_array_equal(res.steps, goals[:, 3])
    assert bool(jnp.all(res.success))
    truth = rates.ground_truth("offaxis")
    oracle = run(truth, control.beam_table(truth), jax.random.PRNGKey(1), 0.0)
    random = run(truth, control.beam_table(truth), jax.random.PRNGKey(1), 2.0)
    assert float(oracle.success.mean()) == 1.0
    assert np.all(np.asarray(oracle.steps) >= goals[:, 3])
    assert float(random.beam_time.mean()) > float(oracle.beam_time.mean())
    np.testing.assert_allclose(random.beam_time[~random.success], 60.0)
