"""Agents and environments: IDM against its formula, expert replay, reset/step/rollout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import UnknownNameError
from selftaught.sim.driving import agents as ag
from selftaught.sim.driving import dynamics as dyn
from selftaught.sim.driving import env as envlib
from selftaught.sim.driving import generator as gen
from selftaught.sim.driving.datatypes import DT, INIT_STEPS, Trajectory


def _jnp(tree):
    return jax.tree.map(jnp.asarray, tree)


def test_idm_acceleration_matches_formula():
    p = ag.IDMParams()
    v, gap, v_lead = 12.0, 25.0, 9.0
    s_star = 2.0 + max(0.0, v * 2.0 + v * (v - v_lead) / (2 * np.sqrt(2.0 * 4.0)))
    expected = 2.0 * (1 - (v / 30.0) ** 4 - (s_star / gap) ** 2)
    np.testing.assert_allclose(ag.idm_acceleration(v, gap, v_lead, p), expected, rtol=1e-6)
    # free road: only the (v/v0)^delta term
    np.testing.assert_allclose(ag.idm_acceleration(15.0, 1e9, 15.0, p), 2.0 * (1 - 0.5**4), 1e-5)


def test_idm_two_cars_on_a_line():
    """The follower's IDM acceleration uses the bumper gap and the leader's speed."""
    n = 2
    f = lambda *v: jnp.asarray(v, jnp.float32)  # noqa: E731
    c = Trajectory(
        x=f(0.0, 30.0), y=f(0.0, 0.0), z=f(0.0, 0.0), vel_x=f(10.0, 6.0), vel_y=f(0.0, 0.0),
        yaw=f(0.0, 0.0), valid=jnp.ones(n, bool), timestamp_micros=jnp.zeros(n, jnp.int32),
        length=f(4.0, 5.0), width=f(2.0, 2.0), height=f(1.5, 1.5),
    )
    gap, v_lead = ag.lead_vehicle(c)
    np.testing.assert_allclose(gap[0], 30.0 - 4.5, 1e-5)
    np.testing.assert_allclose(v_lead[0], 6.0, 1e-5)
    assert float(gap[1]) == ag.IDMParams().lookahead  # nobody ahead of the leader
    route = jnp.stack([jnp.linspace(-10, 500, 511), jnp.zeros(511)], -1)
    upd = ag.follow_route(c, jnp.stack([route, route]), jnp.ones((2, 511), bool), gap, v_lead)
    a = ag.idm_acceleration(10.0, 25.5, 6.0)
    np.testing.assert_allclose(upd.x[0], 10.0 * DT + 0.5 * a * DT**2, atol=1e-4)
    np.testing.assert_allclose(upd.vel_x[0], 10.0 + a * DT, atol=1e-4)


@pytest.fixture(scope="module")
def scenarios():
    return _jnp(gen.generate_batch(range(4), gen.GeneratorConfig(num_objects=16)))


def test_reset_replays_history_and_masks_future(scenarios):
    env = envlib.MultiAgentEnv(dyn.InvertibleBicycleModel())
    s = env.reset(jax.tree.map(lambda a: a[0], scenarios))
    assert int(s.timestep) == INIT_STEPS - 1
    assert bool(jnp.all(~s.sim_trajectory.valid[:, INIT_STEPS:]))
    np.testing.assert_array_equal(s.sim_trajectory.x[:, :INIT_STEPS],
                                  s.log_trajectory.x[:, :INIT_STEPS])
    assert int(s.object_metadata.is_controlled.sum()) == 1
    with pytest.raises(UnknownNameError, match="sim agent"):
        envlib.PlanningAgentEnv(dyn.InvertibleBicycleModel(), "teleport")


def test_expert_rollout_has_zero_ade_vmapped(scenarios):
    bic = dyn.InvertibleBicycleModel()
    env = envlib.MultiAgentEnv(bic, envlib.EnvConfig(controlled="all"))
    actor = ag.expert_actor(bic, is_controlled=lambda s: s.object_metadata.is_valid)

    def one(s, k):
        final, m, r = envlib.rollout(env, s, actor, None, k)
        ld = m["log_divergence"]
        return jnp.max(jnp.where(ld.valid, ld.value, 0.0)), final.timestep, jnp.sum(r)

    err, t, ret = jax.jit(jax.vmap(one))(scenarios, jax.random.split(jax.random.PRNGKey(0), 4))
    assert float(jnp.max(err)) < 0.01  # every object, every step, through the bicycle inverse
    assert np.all(np.asarray(t) == scenarios.log_trajectory.x.shape[-1] - 1)
    assert float(jnp.max(jnp.abs(ret))) == 0.0  # logs are collision free and on road


def test_planning_env_sim_agents_and_summary(scenarios):
    bic = dyn.InvertibleBicycleModel()
    s = jax.tree.map(lambda a: a[1], scenarios)
    out = {}
    for agent in ("log", "constant", "idm"):
        env = envlib.PlanningAgentEnv(bic, agent)
        final, m, r = jax.jit(lambda s, env=env: envlib.rollout(
            env, s, ag.expert_actor(bic), None, jax.random.PRNGKey(0), num_steps=30))(s)
        summ = envlib.summarize(m, r, s.object_metadata.is_sdc)
        out[agent] = final
        np.testing.assert_allclose(summ["ade"], 0.0, atol=0.01)  # the SDC replays its log
    t = 10 + 30
    others = np.asarray(s.object_metadata.is_valid) & ~np.asarray(s.object_metadata.is_sdc)
    log_x = s.log_trajectory.x[others, t]
    np.testing.assert_allclose(out["log"].sim_trajectory.x[others, t], log_x)
    # constant speed agents moved in a straight line at their step-10 velocity
    v = s.log_trajectory.vel_x[others, 10]
    np.testing.assert_allclose(out["constant"].sim_trajectory.x[others, t],
                               s.log_trajectory.x[others, 10] + v * 30 * DT, atol=1e-3)
    assert not np.allclose(out["idm"].sim_trajectory.x[others, t], s.log_trajectory.x[others, t])


def test_constant_speed_and_route_actors(scenarios):
    bic = dyn.InvertibleBicycleModel()
    s = jax.tree.map(lambda a: a[2], scenarios)
    env = envlib.PlanningAgentEnv(bic, "log")
    final, m, r = envlib.rollout(
        env, s, ag.from_updates(bic, ag.constant_speed_update, "cs"), None,
        jax.random.PRNGKey(0), num_steps=5)
    sdc = 0
    v0 = np.hypot(s.log_trajectory.vel_x[sdc, 10], s.log_trajectory.vel_y[sdc, 10])
    v5 = np.hypot(final.sim_trajectory.vel_x[sdc, 15], final.sim_trajectory.vel_y[sdc, 15])
    np.testing.assert_allclose(v5, v0, rtol=1e-4)
    final, m, r = envlib.rollout(
        env, s, ag.from_updates(bic, ag.sdc_route_update, "idm"), None,
        jax.random.PRNGKey(0), num_steps=40)
    summ = envlib.summarize(m, r, s.object_metadata.is_sdc)
    assert float(summ["off_route"]) == 0.0 and float(summ["offroad"]) == 0.0
