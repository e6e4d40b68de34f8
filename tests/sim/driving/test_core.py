"""Datatypes, dynamics and metrics against hand-built references."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.sim.driving import datatypes as dtp
from selftaught.sim.driving import dynamics as dyn
from selftaught.sim.driving import generator as gen
from selftaught.sim.driving import metrics as mt


def _traj(x, y, yaw, speed, length=4.5, width=2.0):
    x, y, yaw, speed = (np.asarray(a, np.float32) for a in (x, y, yaw, speed))
    if x.ndim == 1:
        x, y, yaw, speed = x[None], y[None], yaw[None], speed[None]
    o, t = x.shape
    f = lambda v: np.full((o, t), v, np.float32)  # noqa: E731
    return dtp.Trajectory(
        x=x, y=y, z=f(0), vel_x=speed * np.cos(yaw), vel_y=speed * np.sin(yaw), yaw=yaw,
        valid=np.ones((o, t), bool), timestamp_micros=np.zeros((o, t), np.int32),
        length=f(length), width=f(width), height=f(1.5),
    )


def test_shape_validation_names_the_mismatch():
    t = _traj(np.zeros((2, 5)), np.zeros((2, 5)), np.zeros((2, 5)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="share shape"):
        dataclasses.replace(t, yaw=np.zeros((2, 4), np.float32))
    batched = jax.tree.map(lambda a: np.stack([a, a]), t)  # leading batch dim is fine
    assert batched.shape == (2, 2, 5) and batched.num_objects == 2
    with pytest.raises(ValueError, match="valid must be"):
        dtp.Action(data=np.zeros((3, 2)), valid=np.zeros((3, 2), bool))


def test_bicycle_forward_matches_formula():
    model = dyn.InvertibleBicycleModel()
    cur = _traj([[1.0]], [[2.0]], [[0.3]], [[5.0]])
    act = dtp.Action(data=jnp.array([[2.0, 0.1]]), valid=jnp.ones((1, 1), bool))
    u = model.compute_update(act, cur)
    t, v, yaw = 0.1, 5.0, 0.3
    np.testing.assert_allclose(u.x, 1 + v * np.cos(yaw) * t + 0.5 * 2 * np.cos(yaw) * t**2, 1e-5)
    np.testing.assert_allclose(u.y, 2 + v * np.sin(yaw) * t + 0.5 * 2 * np.sin(yaw) * t**2, 1e-5)
    yaw1 = yaw + 0.1 * (v * t + 0.5 * 2 * t**2)
    np.testing.assert_allclose(u.yaw, yaw1, 1e-5)
    np.testing.assert_allclose(u.vel_x, (v + 0.2) * np.cos(yaw1), 1e-5)
    # clipping to |a| <= 6, |k| <= 0.3
    big = dtp.Action(data=jnp.array([[50.0, 5.0]]), valid=jnp.ones((1, 1), bool))
    ub = model.compute_update(big, cur)
    np.testing.assert_allclose(jnp.hypot(ub.vel_x, ub.vel_y), v + 0.6, 1e-5)


def _arc_traj(radius=200.0, speed0=10.0, accel=0.5, steps=40):
    s = speed0 * np.arange(steps) * 0.1 + 0.5 * accel * (np.arange(steps) * 0.1) ** 2
    th = s / radius
    speed = speed0 + accel * np.arange(steps) * 0.1
    return _traj(radius * np.sin(th), radius * (1 - np.cos(th)), th, speed)


@pytest.mark.parametrize("source", ["arc", "straight", "generated"])
def test_bicycle_forward_inverse_recovers_log(source):
    if source == "arc":
        traj = _arc_traj()
    elif source == "straight":
        t = np.arange(40) * 0.1
        traj = _traj(3 + 8 * t + 0.5 * 1.5 * t**2, np.full(40, -2.0), np.zeros(40), 8 + 1.5 * t)
    else:
        traj = gen.generate(3).log_trajectory
    model = dyn.InvertibleBicycleModel()
    T = traj.num_timesteps

    def one(t):
        act = model.inverse(traj, t)
        u = model.compute_update(act, traj.at(t))
        nxt = jax.tree.map(lambda a: a[..., 0], traj.at(t + 1))
        return jnp.hypot(u.x - nxt.x, u.y - nxt.y), jnp.where(nxt.valid, 1.0, 0.0)

    err, valid = jax.vmap(one)(jnp.arange(T - 1))
    assert float(jnp.max(err * valid)) < 0.01


def test_bicycle_inverse_formula_and_low_speed():
    model = dyn.InvertibleBicycleModel()
    tr = _traj([[0.0, 1.0]], [[0.0, 0.1]], [[0.0, 0.05]], [[10.0, 10.5]])
    a, k = model.raw_inverse_step(tr.at(0), tr.at(1))
    np.testing.assert_allclose(a, 5.0, 1e-4)
    np.testing.assert_allclose(k, 0.05 / (10 * 0.1 + 0.5 * 5 * 0.01), 1e-4)
    slow = _traj([[0.0, 0.01]], [[0.0, 0.0]], [[0.0, 0.5]], [[0.5, 0.55]])
    _, k = model.raw_inverse_step(slow.at(0), slow.at(1))
    assert float(k[0]) == 0.0


@pytest.mark.parametrize("model", [dyn.DeltaGlobal(), dyn.DeltaLocal(), dyn.StateDynamics()])
def test_delta_and_state_models_invert_exactly(model):
    traj = _arc_traj(radius=30.0, steps=5)
    act = model.inverse(traj, 2)
    u = model.compute_update(act, traj.at(2))
    nxt = jax.tree.map(lambda a: a[..., 0], traj.at(3))
    np.testing.assert_allclose(u.x, nxt.x, atol=1e-4)
    np.testing.assert_allclose(u.yaw, nxt.yaw, atol=1e-5)


def test_delta_local_rotates_by_yaw():
    cur = _traj([[0.0]], [[0.0]], [[np.pi / 2]], [[0.0]])
    act = dtp.Action(data=jnp.array([[1.0, 0.0, 0.0]]), valid=jnp.ones((1, 1), bool))
    u = dyn.DeltaLocal().compute_update(act, cur)
    np.testing.assert_allclose([u.x[0], u.y[0]], [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(u.vel_y, 10.0, 1e-5)


def test_discretizer_bins_and_round_trip():
    model = dyn.DiscreteActionSpaceWrapper(dyn.InvertibleBicycleModel(), bins=(13, 31))
    assert model.action_spec().num_actions == 13 * 31
    cont = dtp.Action(data=jnp.array([[1.0, 0.02], [-6.0, 0.3]]), valid=jnp.ones((2, 1), bool))
    back = model.to_continuous(model.to_discrete(cont))
    np.testing.assert_allclose(back.data[:, 0], [1.0, -6.0], atol=0.5 + 1e-6)
    np.testing.assert_allclose(back.data[:, 1], [0.02, 0.3], atol=0.01 + 1e-6)
    np.testing.assert_allclose(back.data[1], [-6.0, 0.3], atol=1e-6)


def test_forward_moves_only_controlled_objects():
    state = gen.generate(1)
    model = dyn.InvertibleBicycleModel()
    log = state.log_trajectory
    act = dtp.Action(data=jnp.full((log.num_objects, 2), jnp.array([-3.0, 0.0])),
                     valid=jnp.ones((log.num_objects, 1), bool))
    ctrl = jnp.arange(log.num_objects) == 0
    out = model.forward(act, log, log, ctrl, 20)
    np.testing.assert_array_equal(out.x[1:, 21], log.x[1:, 21])
    assert not np.allclose(out.x[0, 21], log.x[0, 21])
    np.testing.assert_array_equal(out.x[:, :21], log.x[:, :21])


# --------------------------------------------------------------------------- metrics
def _state_with_boxes(x, y, yaw, length=4.0, width=2.0, edges=None):
    st = gen.generate(0, gen.GeneratorConfig(num_objects=len(x)))
    n, T = len(x), st.log_trajectory.num_timesteps
    rep = lambda a: np.repeat(np.asarray(a, np.float32)[:, None], T, 1)  # noqa: E731
    tr = _traj(rep(x), rep(y), rep(yaw), rep(np.zeros(n)), length, width)
    st = st.replace(sim_trajectory=tr, log_trajectory=tr, timestep=jnp.int32(11))
    if edges is not None:
        pts, dirs = edges
        P = st.roadgraph_points.x.shape[0]
        m = len(pts)
        pad = lambda a, v=0: np.concatenate([a, np.full(P - m, v, a.dtype)])  # noqa: E731
        rg = st.roadgraph_points.replace(
            x=pad(pts[:, 0].astype(np.float32)), y=pad(pts[:, 1].astype(np.float32)),
            dir_x=pad(dirs[:, 0].astype(np.float32)), dir_y=pad(dirs[:, 1].astype(np.float32)),
            types=pad(np.full(m, 15, np.int32)), valid=np.arange(P) < m,
        )
        st = st.replace(roadgraph_points=rg)
    return st


def test_overlap_hand_built_boxes():
    # A and B overlap (parallel, 3 m apart along x with length 4); C is far;
    # D is rotated 45 deg: it touches E's corner region only along the diagonal
    x = [0.0, 3.0, 50.0, 100.0, 103.2]
    y = [0.0, 0.0, 0.0, 0.0, 0.0]
    yaw = [0.0, 0.0, 0.0, np.pi / 4, np.pi / 4]
    st = _state_with_boxes(x, y, yaw)
    val = np.asarray(mt.overlap(st).value)
    np.testing.assert_array_equal(val, [1, 1, 0, 0, 0])
    # separating-axis case that bounding circles would call overlapping: two boxes
    # rotated 45 deg apart whose centres are 3.2 m apart along x
    hit = mt.boxes_overlap(jnp.array([0.0, 3.2]), jnp.zeros(2), jnp.array([0.0, np.pi / 2]),
                           jnp.array([4.0, 4.0]), jnp.array([2.0, 2.0]))
    assert not bool(hit[0, 1])  # 2 + 1 = 3 < 3.2: separated along x
    hit = mt.boxes_overlap(jnp.array([0.0, 2.9]), jnp.zeros(2), jnp.array([0.0, np.pi / 2]),
                           jnp.array([4.0, 4.0]), jnp.array([2.0, 2.0]))
    assert bool(hit[0, 1]) and bool(hit[1, 0])
    # diagonal: a corner-to-corner gap that only the box-normal axes of one box separate
    hit = mt.boxes_overlap(jnp.array([0.0, 3.0]), jnp.array([0.0, 3.0]), jnp.array([0.0, 0.0]),
                           jnp.array([4.0, 4.0]), jnp.array([2.0, 2.0]))
    assert not bool(hit[0, 1])


def test_offroad_signed_by_edge_direction():
    # one road edge along y = -3 heading +x: the road is on its left (y > -3)
    xs = np.arange(-50, 51, 1.0)
    pts = np.stack([xs, np.full_like(xs, -3.0)], 1)
    dirs = np.tile([1.0, 0.0], (len(xs), 1))
    # on road; straddling the edge (corner at y=-3.5); fully off road
    st = _state_with_boxes([0.0, 10.0, 20.0], [0.0, -2.5, -8.0], [0.0, 0.0, 0.0],
                           edges=(pts, dirs))
    np.testing.assert_array_equal(np.asarray(mt.offroad(st).value), [0, 1, 1])
    sd = mt.signed_distance_to_road_edge(jnp.array([[0.0, -1.0], [0.0, -5.0]]),
                                         st.roadgraph_points)
    np.testing.assert_allclose(sd, [-2.0, 2.0], atol=1e-5)
    # flipping the edge direction flips the sides
    st2 = _state_with_boxes([0.0], [-8.0], [0.0], edges=(pts, -dirs))
    assert float(mt.offroad(st2).value[0]) == 0.0


def test_log_divergence_and_infeasibility():
    st = jax.tree.map(jnp.asarray, gen.generate(2))
    assert float(jnp.max(mt.log_divergence(st.replace(timestep=jnp.int32(30))).value)) == 0.0
    sim = st.sim_trajectory
    moved = sim.replace(x=sim.x.at[0, 30].add(3.0), vel_x=sim.vel_x.at[0, 30].add(30.0))
    s2 = st.replace(sim_trajectory=moved, timestep=jnp.int32(30))
    ld = mt.log_divergence(s2)
    np.testing.assert_allclose(ld.value[0], 3.0, atol=1e-4)
    ki = mt.kinematic_infeasibility(s2)
    assert float(ki.value[0]) == 1.0 and float(jnp.sum(ki.value[1:])) == 0.0


def test_route_metrics_on_log_and_reversed_sdc():
    st = jax.tree.map(jnp.asarray, gen.generate(0))
    T = st.log_trajectory.num_timesteps
    end = st.replace(timestep=jnp.int32(T - 1))
    rp = mt.route_progress(end)
    np.testing.assert_allclose(rp.value[0], 1.0, atol=0.02)
    assert float(mt.off_route(end).value[0]) == 0.0
    assert float(mt.wrong_way(end).value[0]) == 0.0
    mid = st.replace(timestep=jnp.int32(40))
    sim = st.sim_trajectory
    far = sim.replace(x=sim.x.at[0, 40].add(20.0), y=sim.y.at[0, 40].add(20.0))
    assert float(mt.off_route(mid.replace(sim_trajectory=far)).value[0]) > 5.0
    assert float(mt.wrong_way(mid.replace(sim_trajectory=far)).value[0]) > 3.5


def test_reward_is_weighted_sum_for_controlled_only():
    st = _state_with_boxes([0.0, 3.0, 50.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    md = st.object_metadata.replace(is_controlled=np.array([True, False, True]))
    st = st.replace(object_metadata=md)
    r = mt.reward(st, weights=(("overlap", -2.0),))
    np.testing.assert_allclose(r, [-2.0, 0.0, 0.0])


def test_generated_logs_are_collision_free_and_on_road():
    for seed in range(6):
        st = gen.generate(seed)
        f = jax.jit(jax.vmap(lambda t, s=st: (mt.overlap(s.replace(timestep=t)).value,
                                              mt.offroad(s.replace(timestep=t)).value)))
        ov, off = f(jnp.arange(0, st.num_timesteps, 5))
        assert float(ov.max()) == 0.0, seed
        assert float(off.mean()) < 0.01, seed
