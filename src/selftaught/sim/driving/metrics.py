"""Per-object, per-step metrics of a SimulatorState (at its current timestep) and a reward.

Each metric returns `MetricResult(value [..., O], valid [..., O])` for one (unbatched)
scenario; vmap over scenarios. Conventions:
- road edges are directed so that the drivable surface lies on their LEFT; a point is
  off-road when it lies on the right of its nearest road-edge point (cross product < 0).
- route metrics concern the SDC only (valid only at the SDC's index).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from selftaught.sim.driving.datatypes import SimulatorState, Trajectory, fast_argmin
from selftaught.sim.driving.dynamics import InvertibleBicycleModel

MAX_ACCEL_FEASIBLE = 10.4
MAX_CURV_FEASIBLE = 0.3
OFF_ROUTE_DISTANCE = 5.0
BIG = 1e9


@struct.dataclass
class MetricResult:
    value: jax.Array
    valid: jax.Array


def _cur(state: SimulatorState) -> Trajectory:
    return jax.tree.map(lambda a: a[..., 0], state.current_sim_trajectory)


# --------------------------------------------------------------------------- geometry
def boxes_overlap(x, y, yaw, length, width) -> jax.Array:
    """[N, N] bool: box i intersects box j (separating-axis test on the 4 box axes).

    On box i's heading axis h_i its own half-extent is l_i/2 and box j's is
    l_j/2 |cos(yaw_j - yaw_i)| + w_j/2 |sin(yaw_j - yaw_i)|; likewise for the other 3 axes.
    The boxes are disjoint iff the centre distance projected on some axis exceeds the sum."""
    dx, dy = x[None, :] - x[:, None], y[None, :] - y[:, None]  # [i, j]
    ci, si = jnp.cos(yaw)[:, None], jnp.sin(yaw)[:, None]
    cj, sj = jnp.cos(yaw)[None, :], jnp.sin(yaw)[None, :]
    c = jnp.abs(ci * cj + si * sj)  # |cos(yaw_j - yaw_i)|
    s = jnp.abs(ci * sj - si * cj)  # |sin(yaw_j - yaw_i)|
    li, wi = (length / 2)[:, None], (width / 2)[:, None]
    lj, wj = (length / 2)[None, :], (width / 2)[None, :]
    sep = (
        (jnp.abs(dx * ci + dy * si) > li + lj * c + wj * s)
        | (jnp.abs(-dx * si + dy * ci) > wi + lj * s + wj * c)
        | (jnp.abs(dx * cj + dy * sj) > lj + li * c + wi * s)
        | (jnp.abs(-dx * sj + dy * cj) > wj + li * s + wi * c)
    )
    return ~sep


def overlap(state: SimulatorState) -> MetricResult:
    """1 where an object's box intersects any other valid object's box."""
    c = _cur(state)
    hit = boxes_overlap(c.x, c.y, c.yaw, c.length, c.width)
    n = c.x.shape[-1]
    both = c.valid[:, None] & c.valid[None, :] & ~jnp.eye(n, dtype=bool)
    value = jnp.any(hit & both, axis=-1) & c.valid
    return MetricResult(value.astype(jnp.float32), c.valid)


def signed_distance_to_road_edge(points_xy: jax.Array, roadgraph) -> jax.Array:
    """Signed distance [...] of points [..., 2] to the nearest road-edge point (>0 off-road).

    The nearest point comes from an elementwise [N, P] squared distance (no [N, P, 2]
    tensor) and a two-reduction argmin; distance and side are then computed for that point."""
    edge = roadgraph.is_road_edge
    rxy = roadgraph.xy  # [P, 2]
    pts = points_xy.reshape(-1, 2)
    q = rxy
    d2 = (pts[:, 0:1] - q[None, :, 0]) ** 2 + (pts[:, 1:2] - q[None, :, 1]) ** 2
    i = fast_argmin(jnp.where(edge[None, :], d2, BIG), axis=-1)
    diff = pts - q[i]
    dxy = roadgraph.dir_xy[i]
    cross = dxy[:, 0] * diff[:, 1] - dxy[:, 1] * diff[:, 0]
    dist = jnp.sqrt(jnp.sum(diff**2, -1))
    sd = jnp.where(cross < 0, dist, -dist)
    return jnp.where(jnp.any(edge), sd, -BIG).reshape(points_xy.shape[:-1])


OFFROAD_CANDIDATES = 16


def offroad(state: SimulatorState, candidates: int = OFFROAD_CANDIDATES) -> MetricResult:
    """1 where any corner of the object's box lies on the off-road side of a road edge.

    Each corner's nearest road-edge point is searched among the `candidates` edge points
    nearest the box centre (an [O, P] top-k instead of an [O, 4, P] search; with edge points
    a few metres apart the corner's nearest point is among them)."""
    c = _cur(state)
    corners = Trajectory.bbox_corners(c)  # [O, 4, 2]
    rg = jax.tree.map(jnp.asarray, state.roadgraph_points)
    edge = rg.is_road_edge
    k = min(candidates, rg.x.shape[-1])
    d2c = (c.x[:, None] - rg.x[None, :]) ** 2 + (c.y[:, None] - rg.y[None, :]) ** 2
    _, idx = jax.lax.top_k(-jnp.where(edge[None, :], d2c, BIG), k)  # [O, K]
    ok = edge[idx]
    dx = corners[..., 0][:, :, None] - rg.x[idx][:, None, :]  # [O, 4, K]
    dy = corners[..., 1][:, :, None] - rg.y[idx][:, None, :]
    j = fast_argmin(jnp.where(ok[:, None, :], dx**2 + dy**2, BIG), axis=-1)  # [O, 4]
    take = lambda a: jnp.take_along_axis(a, j[..., None], -1)[..., 0]  # noqa: E731
    ux = take(jnp.broadcast_to(rg.dir_x[idx][:, None, :], dx.shape))
    uy = take(jnp.broadcast_to(rg.dir_y[idx][:, None, :], dx.shape))
    cross = ux * take(dy) - uy * take(dx)
    off = jnp.any((cross < 0) & jnp.any(ok, -1)[:, None], axis=-1)
    return MetricResult((off & c.valid).astype(jnp.float32), c.valid)


def log_divergence(state: SimulatorState) -> MetricResult:
    """Distance between simulated and logged position (ADE = mean over steps)."""
    s, lg = _cur(state), jax.tree.map(lambda a: a[..., 0], state.current_log_trajectory)
    d = jnp.sqrt((s.x - lg.x) ** 2 + (s.y - lg.y) ** 2)
    valid = s.valid & lg.valid
    return MetricResult(jnp.where(valid, d, 0.0), valid)


def kinematic_infeasibility(state: SimulatorState) -> MetricResult:
    """1 where the bicycle inverse of the last step needs |a| > 10.4 m/s^2 or |k| > 0.3."""
    t = state.timestep
    prev = state.sim_trajectory.at(jnp.maximum(t - 1, 0))
    cur = state.sim_trajectory.at(t)
    a, k = InvertibleBicycleModel().raw_inverse_step(prev, cur)
    bad = (jnp.abs(a) > MAX_ACCEL_FEASIBLE) | (jnp.abs(k) > MAX_CURV_FEASIBLE + 1e-3)
    valid = (prev.valid & cur.valid)[..., 0] & (t > 0)
    return MetricResult(jnp.where(valid, bad, False).astype(jnp.float32), valid)


# --------------------------------------------------------------------------- routes
def _project_on_paths(xy: jax.Array, paths) -> tuple:
    """Squared distance [N, L] of a point to each path point."""
    d2 = jnp.sum((paths.xy - xy) ** 2, -1)
    return jnp.where(paths.valid, d2, BIG)


def _route_arc(xy, paths, path_idx):
    d2 = _project_on_paths(xy, paths)[path_idx]
    i = fast_argmin(d2)
    return paths.arc_length[path_idx, i], d2[i], i


def _sdc_xy(traj: Trajectory, sdc, t):
    return jnp.stack([traj.x[sdc, t], traj.y[sdc, t]])


def _sdc_only(state: SimulatorState, value, valid) -> MetricResult:
    is_sdc = state.object_metadata.is_sdc
    return MetricResult(
        jnp.where(is_sdc, value, 0.0).astype(jnp.float32), is_sdc & valid & _cur(state).valid
    )


def _closest_on_route_path(state: SimulatorState, xy):
    d2 = _project_on_paths(xy, state.sdc_paths)  # [N, L]
    d2 = jnp.where(state.sdc_paths.on_route[:, None], d2, BIG)
    best = jnp.min(d2, axis=-1)
    return fast_argmin(best), jnp.min(best)


def route_progress(state: SimulatorState) -> MetricResult:
    """Arc length the SDC gained along its closest on-route path, relative to the log's
    gain over the whole episode (1.0 = as far as the expert got)."""
    sdc, t = state.sdc_index, state.timestep
    paths, log = state.sdc_paths, state.log_trajectory
    xy = _sdc_xy(state.sim_trajectory, sdc, t)
    p, _ = _closest_on_route_path(state, xy)
    valid_t = log.valid[sdc]
    first = jnp.argmax(valid_t)
    last = log.num_timesteps - 1 - jnp.argmax(valid_t[::-1])
    s_sim, _, _ = _route_arc(xy, paths, p)
    s0, _, _ = _route_arc(_sdc_xy(log, sdc, first), paths, p)
    s1, _, _ = _route_arc(_sdc_xy(log, sdc, last), paths, p)
    gain = s1 - s0
    ok = jnp.any(paths.on_route) & (gain > 1.0)
    return _sdc_only(state, jnp.where(ok, (s_sim - s0) / jnp.where(ok, gain, 1.0), 0.0), ok)


def off_route(state: SimulatorState) -> MetricResult:
    """1 when the SDC is farther than 5 m from every on-route path."""
    sdc, t = state.sdc_index, state.timestep
    _, d2 = _closest_on_route_path(state, _sdc_xy(state.sim_trajectory, sdc, t))
    ok = jnp.any(state.sdc_paths.on_route)
    return _sdc_only(state, d2 > OFF_ROUTE_DISTANCE**2, ok)


def wrong_way(state: SimulatorState) -> MetricResult:
    """1 when the moving SDC heads against the direction of its nearest on-route path."""
    sdc, t = state.sdc_index, state.timestep
    paths = state.sdc_paths
    xy = _sdc_xy(state.sim_trajectory, sdc, t)
    p, _ = _closest_on_route_path(state, xy)
    _, _, i = _route_arc(xy, paths, p)
    n = paths.x.shape[-1]
    nxt_ok = (i + 1 < n) & paths.valid[p, jnp.minimum(i + 1, n - 1)]
    j0 = jnp.where(nxt_ok, i, jnp.maximum(i - 1, 0))
    j1 = jnp.where(nxt_ok, i + 1, i)
    dx = paths.x[p, j1] - paths.x[p, j0]
    dy = paths.y[p, j1] - paths.y[p, j0]
    traj = state.sim_trajectory
    yaw = traj.yaw[sdc, t]
    speed = jnp.hypot(traj.vel_x[sdc, t], traj.vel_y[sdc, t])
    against = (dx * jnp.cos(yaw) + dy * jnp.sin(yaw)) < 0
    ok = jnp.any(paths.on_route)
    return _sdc_only(state, against & (speed > 1.0), ok)


METRICS = {
    "overlap": overlap,
    "offroad": offroad,
    "log_divergence": log_divergence,
    "kinematic_infeasibility": kinematic_infeasibility,
    "route_progress": route_progress,
    "off_route": off_route,
    "wrong_way": wrong_way,
}
DEFAULT_REWARD_WEIGHTS = (("overlap", -1.0), ("offroad", -1.0))


def run_metrics(state: SimulatorState, names=tuple(METRICS)) -> dict[str, MetricResult]:
    return {n: METRICS[n](state) for n in names}


def reward(state: SimulatorState, weights=DEFAULT_REWARD_WEIGHTS, metrics=None) -> jax.Array:
    """Weighted sum of metrics [O], zero for objects that are not controlled. Pass already
    computed `metrics` to reuse them."""
    metrics = metrics or {}
    total = jnp.zeros(state.num_objects, jnp.float32)
    for name, w in weights:
        m = metrics[name] if name in metrics else METRICS[name](state)
        total = total + w * jnp.where(m.valid, m.value, 0.0)
    return jnp.where(state.object_metadata.is_controlled, total, 0.0)
