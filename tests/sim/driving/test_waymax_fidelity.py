"""Agreement with Waymax's semantics on hand-built scenarios (issue 18): object injection
and removal, the bicycle inverse, the closed-loop expert, IDM sim agents, route metrics and
edge conventions. Each expectation is worked out by hand from Waymax's public source."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.sim.driving import agents as ag
from selftaught.sim.driving import dynamics as dyn
from selftaught.sim.driving import env as envlib
from selftaught.sim.driving import generator as gen
from selftaught.sim.driving.datatypes import DT, Trajectory

T = 91
LIGHT = dict(metrics=("log_divergence",), reward_weights=())  # cheap rollouts for tests


def _line(x0, y0, yaw, speed, valid):
    """One object moving at constant speed along `yaw`, [T] fields."""
    t = np.arange(T) * DT
    return dict(
        x=x0 + speed * np.cos(yaw) * t, y=y0 + speed * np.sin(yaw) * t, yaw=np.full(T, yaw),
        vel_x=np.full(T, speed * np.cos(yaw)), vel_y=np.full(T, speed * np.sin(yaw)),
        valid=np.asarray(valid, bool),
    )


def _scenario(objects, types=None):
    """A generated scenario's map with hand-built object logs (list of _line dicts)."""
    n = len(objects)
    st = gen.generate(0, gen.GeneratorConfig(num_objects=n))
    tr = Trajectory(
        **{k: np.stack([o[k] for o in objects]).astype(np.float32 if k != "valid" else bool)
           for k in ("x", "y", "yaw", "vel_x", "vel_y", "valid")},
        z=np.zeros((n, T), np.float32), timestamp_micros=np.tile(np.arange(T) * 100_000,
                                                                  (n, 1)).astype(np.int32),
        length=np.full((n, T), 4.5, np.float32), width=np.full((n, T), 2.0, np.float32),
        height=np.full((n, T), 1.5, np.float32),
    )  # fmt: skip
    md = st.object_metadata
    md = md.replace(is_sdc=np.arange(n) == 0, is_valid=tr.valid.any(1),
                    object_types=np.asarray(types or [1] * n, np.int32))  # fmt: skip
    return jax.tree.map(jnp.asarray, st.replace(sim_trajectory=tr, log_trajectory=tr,
                                                object_metadata=md))  # fmt: skip


def _late_and_ending():
    steps = np.arange(T)
    return _scenario([
        _line(0.0, 0.0, 0.0, 10.0, np.ones(T)),  # SDC
        _line(0.0, 40.0, 0.0, 8.0, steps >= 30),  # appears at t = 30
        _line(0.0, -40.0, 0.0, 6.0, steps <= 50),  # its log ends at t = 50
    ])  # fmt: skip


def _roll(env, scen, actor):
    final, _, _ = jax.jit(lambda s: envlib.rollout(env, s, actor, None, jax.random.PRNGKey(0)))(
        scen
    )
    return final.sim_trajectory


@pytest.mark.parametrize("sim_agent", [pytest.param("log", marks=pytest.mark.slow),
                                       pytest.param("constant", marks=pytest.mark.slow), "idm"])
def test_late_object_is_injected_at_its_log_state(sim_agent):
    scen = _late_and_ending()
    bic = dyn.InvertibleBicycleModel()
    env = envlib.PlanningAgentEnv(bic, sim_agent, envlib.EnvConfig(**LIGHT))
    sim = _roll(env, scen, ag.expert_actor(bic))
    v = np.asarray(sim.valid)
    assert not v[1, :30].any() and v[1, 30:].all()
    np.testing.assert_allclose(sim.x[1, 30], scen.log_trajectory.x[1, 30], atol=1e-5)
    np.testing.assert_allclose(sim.y[1, 30], 40.0, atol=1e-5)
    if sim_agent == "log":  # an uncontrolled object leaves with its log
        assert v[2, :51].all() and not v[2, 51:].any()
    else:  # a controlled object that exists stays (Waymax: it is not invalidated)
        assert v[2].all()
        if sim_agent == "constant":
            np.testing.assert_allclose(sim.x[2, 90], 6.0 * 90 * DT, atol=1e-3)
            np.testing.assert_allclose(sim.x[1, 31], sim.x[1, 30] + 8.0 * DT, atol=1e-4)


def test_without_injection_late_objects_never_appear():
    scen = _late_and_ending()
    bic = dyn.InvertibleBicycleModel()
    cfg = envlib.EnvConfig(allow_new_objects_after_warmup=False, **LIGHT)
    sim = _roll(envlib.PlanningAgentEnv(bic, "log", cfg), scen, ag.expert_actor(bic))
    assert not np.asarray(sim.valid[1]).any()
    assert np.asarray(sim.valid[2, :51]).all() and not np.asarray(sim.valid[2, 51:]).any()
    env = envlib.MultiAgentEnv(bic, envlib.EnvConfig(controlled="all",
                                                     allow_new_objects_after_warmup=False))
    st = env.reset(scen)
    np.testing.assert_array_equal(st.object_metadata.is_controlled, [True, False, True])


def test_expert_controlled_object_coasts_after_its_log_ends():
    scen = _late_and_ending()
    bic = dyn.InvertibleBicycleModel()
    env = envlib.MultiAgentEnv(bic, envlib.EnvConfig(controlled="all", **LIGHT))
    actor = ag.expert_actor(bic, is_controlled=lambda s: s.object_metadata.is_valid)
    sim = _roll(env, scen, actor)
    v = np.asarray(sim.valid)
    assert v[0].all() and v[1, 30:].all() and v[2].all()
    # after t = 50 its action is invalid (zero): it keeps 6 m/s straight on
    np.testing.assert_allclose(sim.x[2, 90], 6.0 * 90 * DT, atol=1e-3)
    np.testing.assert_allclose(sim.x[1, 60], scen.log_trajectory.x[1, 60], atol=1e-3)


# --------------------------------------------------------------------------- dynamics
def _two_steps(x, y, yaw, vx, vy, valid=(True, True)):
    f = lambda a: np.asarray(a, np.float32)[None]  # noqa: E731 [1 object, 2 steps]
    return Trajectory(
        x=f(x), y=f(y), z=f([0, 0]), vel_x=f(vx), vel_y=f(vy), yaw=f(yaw),
        valid=np.asarray(valid, bool)[None], timestamp_micros=np.zeros((1, 2), np.int32),
        length=f([4.5, 4.5]), width=f([2.0, 2.0]), height=f([1.5, 1.5]),
    )  # fmt: skip


def test_bicycle_inverse_heads_along_the_next_velocity():
    # logged box yaw 0.30 at t+1, but the car moves along 0.10 (a crabbing / noisy box yaw)
    v0, v1, th = 10.0, 10.5, 0.10
    tr = _two_steps([0, 1], [0, 0.1], [0.0, 0.30], [v0, v1 * np.cos(th)], [0, v1 * np.sin(th)])
    a_exp = (v1 - v0) / DT
    k_vel = th / (v0 * DT + 0.5 * a_exp * DT**2)
    a, k = dyn.InvertibleBicycleModel().raw_inverse_step(tr.at(0), tr.at(1))
    np.testing.assert_allclose([a[0], k[0]], [a_exp, k_vel], rtol=1e-4)
    _, k_yaw = dyn.InvertibleBicycleModel(estimate_yaw_with_velocity=False).raw_inverse_step(
        tr.at(0), tr.at(1))
    np.testing.assert_allclose(k_yaw[0], 0.30 / (v0 * DT + 0.5 * a_exp * DT**2), rtol=1e-4)
    # yaw wrapping: a heading of 3.1 -> -3.1 is a 0.083 rad left turn, not -6.2
    tr = _two_steps([0, -1], [0, 0], [3.1, -3.1], [10 * np.cos(3.1), 10 * np.cos(-3.1)],
                    [10 * np.sin(3.1), 10 * np.sin(-3.1)])
    _, k = dyn.InvertibleBicycleModel().raw_inverse_step(tr.at(0), tr.at(1))
    np.testing.assert_allclose(k[0], (2 * np.pi - 6.2) / 1.0, rtol=1e-3)
    # an invalid pair gives a zero, invalid action
    tr = _two_steps([0, 50], [0, 0], [0, 0], [10, 90], [0, 0], valid=(True, False))
    act = dyn.InvertibleBicycleModel().inverse_step(tr.at(0), tr.at(1))
    assert not bool(act.valid[0, 0]) and float(jnp.abs(act.data).max()) == 0.0


def test_kinematic_infeasibility_uses_velocity_heading_and_tolerance():
    from selftaught.sim.driving import metrics as mt

    scen = _late_and_ending()

    def flag(vx1, vy1, yaw1):
        sim = scen.sim_trajectory
        sim = sim.replace(vel_x=sim.vel_x.at[0, 21].set(vx1), vel_y=sim.vel_y.at[0, 21].set(vy1),
                          yaw=sim.yaw.at[0, 21].set(yaw1))  # fmt: skip
        st = scen.replace(sim_trajectory=sim, timestep=jnp.int32(21))
        return float(mt.kinematic_infeasibility(st).value[0])

    assert flag(10.0, 0.0, 0.5) == 0.0  # a jumpy box yaw alone is feasible (heading = velocity)
    th = 0.5  # turning the velocity by 0.5 rad in 0.1 s at 10 m/s needs k = 0.5 > 0.3
    assert flag(10 * np.cos(th), 10 * np.sin(th), 0.0) == 1.0
    assert flag(10.0 + 1.04005, 0.0, 0.0) == 0.0  # a = 10.4005 is within 10.4 + 1e-3
    assert flag(10.0 + 1.0420, 0.0, 0.0) == 1.0


def test_delta_inverse_clips_and_forward_applies_as_given():
    tr = _two_steps([0, 10], [0, -8], [0, 3.5], [0, 0], [0, 0])
    for model in (dyn.DeltaGlobal(), dyn.DeltaLocal()):
        act = model.inverse_step(tr.at(0), tr.at(1))
        np.testing.assert_allclose(act.data[0], [6.0, -6.0, 3.5 - 2 * np.pi], atol=1e-5)
    big = dyn.Action(data=jnp.array([[10.0, 0.0, 0.0]]), valid=jnp.ones((1, 1), bool))
    assert float(dyn.DeltaGlobal().compute_update(big, tr.at(0)).x[0]) == 10.0
    assert float(dyn.DeltaGlobal(clip_forward=True).compute_update(big, tr.at(0)).x[0]) == 6.0


def test_state_dynamics_inverse_validity_is_the_next_states():
    tr = _two_steps([0, 1], [0, 0], [0, 0], [0, 10], [0, 0], valid=(False, True))
    assert bool(dyn.StateDynamics().inverse_step(tr.at(0), tr.at(1)).valid[0, 0])
    assert not bool(dyn.InvertibleBicycleModel().inverse_step(tr.at(0), tr.at(1)).valid[0, 0])


def test_touching_boxes_do_not_overlap():
    from selftaught.sim.driving import metrics as mt

    hit = mt.boxes_overlap(jnp.array([0.0, 4.0, 0.0]), jnp.array([0.0, 0.0, 1.999]),
                           jnp.zeros(3), jnp.full(3, 4.0), jnp.full(3, 2.0))  # fmt: skip
    assert not bool(hit[0, 1]) and not bool(hit[1, 0])  # bumpers touch exactly
    assert bool(hit[0, 2])  # 1 mm of lateral overlap


# --------------------------------------------------------------------------- expert
def test_closed_loop_expert_corrects_a_drifted_sdc():
    scen = _late_and_ending()
    cfg = envlib.EnvConfig(**LIGHT)
    for model in (dyn.DeltaGlobal(), dyn.InvertibleBicycleModel()):
        env = envlib.PlanningAgentEnv(model, "log", cfg)
        st = env.reset(scen)
        t = int(st.timestep)
        sim = st.sim_trajectory  # drift: 1.5 m sideways, 0.4 m/s slow, heading off by 0.05
        th, v = 0.05, 9.6
        sim = sim.replace(y=sim.y.at[0, t].add(1.5), yaw=sim.yaw.at[0, t].set(th),
                          vel_x=sim.vel_x.at[0, t].set(v * np.cos(th)),
                          vel_y=sim.vel_y.at[0, t].set(v * np.sin(th)))  # fmt: skip
        st = st.replace(sim_trajectory=sim)
        out = ag.expert_actor(model).select_action(None, st, None, None)
        nxt = env.step(st, out.action).sim_trajectory
        if isinstance(model, dyn.DeltaGlobal):  # position is corrected in one step
            np.testing.assert_allclose([nxt.x[0, t + 1], nxt.y[0, t + 1]],
                                       [scen.log_trajectory.x[0, t + 1], 0.0], atol=1e-4)
        else:  # speed and heading are corrected in one step (a = 4, k = -0.05 / 0.98)
            np.testing.assert_allclose(nxt.yaw[0, t + 1], 0.0, atol=1e-5)
            np.testing.assert_allclose(jnp.hypot(nxt.vel_x[0, t + 1], nxt.vel_y[0, t + 1]),
                                       10.0, atol=1e-4)
            open_loop = model.inverse(scen.log_trajectory, t)  # log -> log: a = 0, k = 0
            np.testing.assert_allclose(open_loop.data[0], [0.0, 0.0], atol=1e-6)
            np.testing.assert_allclose(out.action.data[0], [4.0, -0.05 / 0.98], rtol=1e-3)


# --------------------------------------------------------------------------- IDM
def _corners(x, y, yaw, length, width):
    c, s = np.cos(yaw), np.sin(yaw)
    pts = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [length / 2, width / 2]
    return np.stack([x + pts[:, 0] * c - pts[:, 1] * s, y + pts[:, 0] * s + pts[:, 1] * c], 1)


def _sat_overlap(a, b):
    """Waymax's has_overlap: projections of both boxes' corners on each box's two axes must
    overlap with positive length."""
    ca, cb = _corners(*a), _corners(*b)
    for yaw in (a[2], b[2]):
        for u in ((np.cos(yaw), np.sin(yaw)), (-np.sin(yaw), np.cos(yaw))):
            pa, pb = ca @ u, cb @ u
            if min(pa.max(), pb.max()) - max(pa.min(), pb.min()) <= 0:
                return False
    return True


def _brute_force_lead(x, y, yaw, length, width, speed, valid, points=10, distance=10.0):
    """Waymax's IDM leader search written out: boxes at 0, 1, ..., 10 m ahead."""
    n = len(x)
    dist, vel = np.full(n, -1.0), np.full(n, -1.0)
    for i in range(n):
        if not valid[i]:
            continue
        for k in range(points + 1):
            d = k * distance / points
            box = (x[i] + d * np.cos(yaw[i]), y[i] + d * np.sin(yaw[i]), yaw[i], length[i],
                   width[i])  # fmt: skip
            hits = [j for j in range(n) if j != i and valid[j]
                    and _sat_overlap(box, (x[j], y[j], yaw[j], length[j], width[j]))]
            if hits:
                dist[i], vel[i] = (0.1 if k == 0 else d), min(speed[j] for j in hits)
                break
    return dist, vel


def test_lookahead_lead_equals_waymax_brute_force():
    rng = np.random.default_rng(0)
    n = 40
    x, y = rng.uniform(0, 35, n), rng.uniform(0, 35, n)
    yaw = rng.uniform(-np.pi, np.pi, n)
    yaw[:8] = 0.0  # axis-aligned pairs exercise the parallel-axis branch
    length, width = rng.uniform(1, 6, n), rng.uniform(0.8, 2.5, n)
    speed = rng.uniform(0, 15, n)
    valid = rng.uniform(size=n) > 0.1
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    c = Trajectory(x=f32(x), y=f32(y), z=f32(np.zeros(n)), vel_x=f32(speed * np.cos(yaw)),
                   vel_y=f32(speed * np.sin(yaw)), yaw=f32(yaw), valid=jnp.asarray(valid),
                   timestamp_micros=jnp.zeros(n, jnp.int32), length=f32(length),
                   width=f32(width), height=f32(np.ones(n)))  # fmt: skip
    d, v = ag.lookahead_lead(c)
    d_ref, v_ref = _brute_force_lead(x, y, yaw, length, width, speed, valid)
    assert (d_ref > 0).sum() >= 10 and (d_ref == -1).sum() >= 5  # both cases exercised
    np.testing.assert_allclose(np.asarray(d), d_ref, atol=1e-5)
    np.testing.assert_allclose(np.asarray(v), v_ref, atol=1e-4)


def test_waymax_idm_follower_brakes_and_projects_onto_its_log():
    # follower at 10 m/s, a 6 m/s leader 8 m ahead (centre to centre, both 4.5 m long):
    # the look-ahead box first overlaps the leader at k = 4 (8 - 4.5 = 3.5 < 4 m)
    scen = _scenario([
        _line(0.0, 50.0, 0.0, 0.0, np.ones(T)),  # SDC, parked elsewhere
        _line(0.0, 0.0, 0.0, 10.0, np.ones(T)),
        _line(8.0, 0.0, 0.0, 6.0, np.ones(T)),
    ])  # fmt: skip
    st = scen.replace(timestep=jnp.int32(0))
    upd = ag.idm_update(st)
    v, lead_v, s = 10.0, 6.0, 4.0
    s_star = 2.0 + max(0.0, v * 2.0 + v * (v - lead_v) / (2 * np.sqrt(8.0)))
    a = 2.0 * (1 - (v / 30.0) ** 4 - (s_star / s) ** 2)
    v1 = max(v + a * DT, 0.0)
    np.testing.assert_allclose(upd.vel_x[1], v1, rtol=1e-5)
    np.testing.assert_allclose(upd.x[1], (v + v1) / 2 * DT, atol=1e-5)
    # the leader has nobody ahead: free-road acceleration
    np.testing.assert_allclose(upd.vel_x[2], 6.0 + 2.0 * (1 - (6 / 30) ** 4) * DT, rtol=1e-5)
    # a car drifted 1 m sideways is projected back onto the line of its log
    sim = st.sim_trajectory
    st2 = st.replace(sim_trajectory=sim.replace(y=sim.y.at[2, 0].set(1.0)))
    np.testing.assert_allclose(ag.idm_update(st2).y[2], 0.0, atol=1e-6)


def test_objects_overlapping_at_the_start_replay_their_log():
    scen = _scenario([
        _line(0.0, 50.0, 0.0, 5.0, np.ones(T)),  # SDC
        _line(0.0, 0.0, 0.0, 3.0, np.ones(T)),  # these two start overlapping
        _line(2.0, 0.5, 0.3, 3.0, np.ones(T)),
        _line(0.0, -30.0, 0.0, 3.0, np.ones(T)),
    ])  # fmt: skip
    bic = dyn.InvertibleBicycleModel()
    env = envlib.PlanningAgentEnv(bic, "idm", envlib.EnvConfig(**LIGHT))
    np.testing.assert_array_equal(env.sim_agent_mask(scen), [False, False, False, True])

    @jax.jit
    def one_step(s):
        st = env.reset(s)
        return env.step(st, ag.expert_actor(bic).select_action(None, st, None, None).action)

    t = 11
    sim = one_step(scen).sim_trajectory
    np.testing.assert_allclose(sim.x[1:3, t], scen.log_trajectory.x[1:3, t], atol=1e-5)
    # the free IDM car accelerates at ~2 m/s^2: 1 cm ahead of its constant-speed log
    np.testing.assert_allclose(sim.x[3, t] - scen.log_trajectory.x[3, t], 0.5 * 2.0 * DT**2,
                               atol=2e-3)  # fmt: skip


# --------------------------------------------------------------------------- route metrics
def _with_paths(scen, lanes, on_route, length=120.0, spacing=1.0):
    """SDC paths: straight lanes y = const heading +x from x = 0 (arc length = x)."""
    xs = np.arange(0.0, length, spacing, dtype=np.float32)
    n, m = len(lanes), len(xs)
    paths = scen.sdc_paths.replace(
        x=np.tile(xs, (n, 1)), y=np.repeat(np.asarray(lanes, np.float32)[:, None], m, 1),
        z=np.zeros((n, m), np.float32), ids=np.repeat(np.arange(n, dtype=np.int32)[:, None],
                                                       m, 1),
        valid=np.ones((n, m), bool), arc_length=np.tile(xs, (n, 1)),
        on_route=np.asarray(on_route, bool),
    )  # fmt: skip
    return scen.replace(sdc_paths=jax.tree.map(jnp.asarray, paths))


def _sdc_at(scen, t, x, y):
    sim = scen.sim_trajectory
    return scen.replace(sim_trajectory=sim.replace(x=sim.x.at[0, t].set(x),
                                                   y=sim.y.at[0, t].set(y)),
                        timestep=jnp.int32(t))  # fmt: skip


def test_off_route_distance_and_lane_change_margin():
    from selftaught.sim.driving import metrics as mt

    # on-route lane y = 0; an adjacent lane y = 3.7 that leaves the route
    scen = _with_paths(_late_and_ending(), [0.0, 3.7], [True, False])
    val = lambda y: mt.off_route(_sdc_at(scen, 20, 30.0, y))  # noqa: E731
    assert float(val(2.5).value[0]) == 0.0  # 2.5 vs 1.2: within the 2 m margin
    np.testing.assert_allclose(val(3.0).value[0], 3.0, atol=1e-5)  # 3.0 - 0.7 > 2: changed lane
    np.testing.assert_allclose(val(-6.0).value[0], 6.0, atol=1e-5)  # > 5 m from the route
    assert bool(val(-6.0).valid[0]) and not bool(val(-6.0).valid[1])
    only_on = _with_paths(_late_and_ending(), [0.0], [True])
    assert float(mt.off_route(_sdc_at(only_on, 20, 30.0, 3.0)).value[0]) == 0.0


def test_wrong_way_is_distance_from_every_sdc_path():
    from selftaught.sim.driving import metrics as mt

    # the SDC's legal lanes (y = 0 on route, y = 3.7 off route); the opposite-direction
    # lane at y = -3.7 is on no SDC path
    scen = _with_paths(_late_and_ending(), [0.0, 3.7], [True, False])
    ww = lambda y: float(mt.wrong_way(_sdc_at(scen, 20, 30.0, y)).value[0])  # noqa: E731
    assert ww(-3.0) == 0.0
    np.testing.assert_allclose(ww(-3.7), 3.7, atol=1e-5)
    assert ww(5.5) == 0.0  # 1.8 m from the off-route lane: still a legal lane


def test_route_progress_uses_log_first_and_last_positions():
    from selftaught.sim.driving import metrics as mt

    scen = _with_paths(_late_and_ending(), [0.0], [True])  # SDC log: x = 0 -> 90 m
    rp = mt.route_progress(_sdc_at(scen, 40, 45.0, 0.4))
    np.testing.assert_allclose(rp.value[0], 45.0 / 90.0, atol=1e-5)
    # the log's end points are steps 0 and T-1 even where the log is invalid
    log = scen.log_trajectory
    bad = scen.replace(log_trajectory=log.replace(valid=log.valid.at[0, 80:].set(False)))
    np.testing.assert_allclose(mt.route_progress(_sdc_at(bad, 40, 45.0, 0.0)).value[0], 0.5,
                               atol=1e-5)  # fmt: skip
    parked = scen.replace(log_trajectory=log.replace(x=log.x.at[0, -1].set(0.0)))
    assert float(mt.route_progress(_sdc_at(parked, 40, 45.0, 0.0)).value[0]) == 1.0


# --------------------------------------------------------------------------- offroad
def _waymax_signed_distance(q, rg, z_stretch=2.0):
    """Waymax's compute_signed_distance_to_nearest_road_edge_point, in NumPy."""
    edge = rg["valid"] & np.isin(rg["types"], (15, 16))
    d = np.stack([rg["x"], rg["y"], rg["z"]], 1)[None] - q[:, None]
    d2 = np.where(edge[None], np.sum((d * [1, 1, z_stretch]) ** 2, -1), np.inf)
    i = np.argmin(d2, -1)
    prev = np.maximum(i - 1, 0)
    diff = q[:, :2] - np.stack([rg["x"][i], rg["y"][i]], 1)
    cr = diff[:, 0] * rg["dir_y"][i] - diff[:, 1] * rg["dir_x"][i]
    crp = diff[:, 0] * rg["dir_y"][prev] - diff[:, 1] * rg["dir_x"][prev]
    sign = np.sign(np.where((rg["ids"][prev] == rg["ids"][i]) & (crp < cr), crp, cr))
    return np.linalg.norm(diff, axis=1) * sign


def test_signed_distance_matches_waymax_with_z_and_corner_rule():
    from selftaught.sim.driving import metrics as mt

    st = gen.generate(3, gen.GeneratorConfig(num_objects=4))
    rg = jax.tree.map(np.asarray, st.roadgraph_points)
    edge = np.flatnonzero(rg.is_road_edge)
    assert len(edge) > 50
    # an overpass: a copy of 40 edge points shifted 2 m sideways and raised 6 m (free slots)
    free = np.flatnonzero(~rg.valid)[:40]
    src = edge[:40]
    f = {k: getattr(rg, k).copy() for k in ("x", "y", "z", "dir_x", "dir_y", "dir_z", "types",
                                            "ids", "valid")}  # fmt: skip
    for k in f:
        f[k][free] = f[k][src]
    f["y"][free] += 2.0
    f["z"][free] += 6.0
    f["ids"][free] += 10_000
    rg2 = rg.replace(**f)
    rng = np.random.default_rng(1)
    q = np.concatenate([np.stack([f["x"][src], f["y"][src] + 1.5, np.zeros(40)], 1),
                        np.stack([rng.uniform(rg.x[edge].min(), rg.x[edge].max(), 400),
                                  rng.uniform(rg.y[edge].min(), rg.y[edge].max(), 400),
                                  rng.choice([0.0, 6.0], 400)], 1)]).astype(np.float32)
    ref = _waymax_signed_distance(q, {k: np.asarray(v) for k, v in f.items()})
    got = mt.signed_distance_to_road_edge(jnp.asarray(q[:, :2]), jax.tree.map(jnp.asarray, rg2),
                                          jnp.asarray(q[:, 2]))  # fmt: skip
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-4)
    assert 0.1 < float((ref > 0).mean()) < 0.9
    # without z the overpass edge 1 m away would decide for the 40 ground points
    flat = _waymax_signed_distance(q[:40] * [1, 1, 0], {k: np.asarray(v) for k, v in
                                                         f.items()}, z_stretch=0.0)  # fmt: skip
    assert np.any(np.sign(flat) != np.sign(ref[:40]))


def test_offroad_metric_equals_waymax_on_jittered_boxes():
    from selftaught.sim.driving import metrics as mt

    st = jax.tree.map(jnp.asarray, gen.generate(4, gen.GeneratorConfig(num_objects=32,
                                                                        num_pedestrians=32)))
    sim = st.sim_trajectory
    jitter = jax.random.uniform(jax.random.PRNGKey(0), (2,) + sim.x.shape, minval=-3.0,
                                maxval=3.0)  # fmt: skip
    yaw = jax.random.uniform(jax.random.PRNGKey(1), sim.x.shape, minval=-3.14, maxval=3.14)
    st = st.replace(sim_trajectory=sim.replace(x=sim.x + jitter[0], y=sim.y + jitter[1],
                                               yaw=yaw), timestep=jnp.int32(30))  # fmt: skip
    got = np.asarray(mt.offroad(st).value)
    c = jax.tree.map(lambda a: np.asarray(a[:, 30]), st.sim_trajectory)
    corners = np.asarray(Trajectory.bbox_corners(c)).reshape(-1, 2)
    q = np.concatenate([corners, np.repeat(c.z, 4)[:, None]], 1)
    rg = {k: np.asarray(getattr(st.roadgraph_points, k)) for k in
          ("x", "y", "z", "dir_x", "dir_y", "types", "ids", "valid")}  # fmt: skip
    ref = np.any(_waymax_signed_distance(q, rg).reshape(-1, 4) > 0, -1) & c.valid
    assert 0.05 < ref.mean() < 0.95
    np.testing.assert_array_equal(got, ref.astype(np.float32))
