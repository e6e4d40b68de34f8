"""Agents: pure-function actors (init, select_action) and sim agents.

An `Actor` produces an `Action` for every object in the dynamics model's action space
plus the mask of objects it controls; learned policies plug in through `policy_actor`.
Sim agents (constant speed, IDM route following) compute each object's desired next
state (a TrajectoryUpdate) that environments apply directly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from selftaught.sim.driving.datatypes import (
    DT,
    Action,
    SimulatorState,
    Trajectory,
    TrajectoryUpdate,
    fast_argmin,
)
from selftaught.sim.driving.dynamics import DynamicsModel, wrap_angle


@struct.dataclass
class ActorOutput:
    actor_state: Any
    action: Action
    is_controlled: jax.Array


@dataclasses.dataclass(frozen=True)
class Actor:
    """init(rng, state) -> actor_state; select_action(params, state, actor_state, rng)."""

    init: Callable
    select_action: Callable
    name: str = "actor"


def _cur(state: SimulatorState) -> Trajectory:
    return jax.tree.map(lambda a: a[..., 0], state.current_sim_trajectory)


def _sdc_mask(state: SimulatorState) -> jax.Array:
    return state.object_metadata.is_sdc


def merge_actions(outputs: list[ActorOutput]) -> Action:
    """One action for all objects: each object takes the action of the actor controlling it."""
    data, valid = outputs[0].action.data, outputs[0].action.valid
    for o in outputs[1:]:
        m = o.is_controlled[..., None]
        data = jnp.where(m, o.action.data, data)
        valid = jnp.where(m, o.action.valid, valid)
    return Action(data=data, valid=valid)


# --------------------------------------------------------------------------- actors
def expert_actor(dynamics: DynamicsModel, is_controlled=_sdc_mask) -> Actor:
    """Closed-loop log playback (Waymax's expert): the dynamics inverse from the simulated
    state at t to the logged state at t+1, so an object that drifted off its log is steered
    back toward it (within the action bounds). On a state that equals its log this is the
    open-loop log[t] -> log[t+1] action."""

    def select_action(params, state, actor_state, rng):
        nxt_log = state.log_trajectory.at(state.timestep + 1)
        action = dynamics.inverse_step(state.current_sim_trajectory, nxt_log)
        return ActorOutput(actor_state, action, is_controlled(state))

    return Actor(lambda rng, state: None, select_action, "expert")


def from_updates(dynamics: DynamicsModel, update_fn: Callable, name: str,
                 is_controlled=_sdc_mask) -> Actor:  # fmt: skip
    """An actor that reaches the desired next state `update_fn(state)` via the dynamics inverse."""

    def select_action(params, state, actor_state, rng):
        upd = update_fn(state)
        cur = state.current_sim_trajectory
        nxt = jax.tree.map(lambda a: a[..., None], _update_as_traj(cur, upd))
        action = dynamics.inverse_step(cur, nxt)
        return ActorOutput(actor_state, action, is_controlled(state))

    return Actor(lambda rng, state: None, select_action, name)


def _update_as_traj(cur: Trajectory, upd: TrajectoryUpdate) -> Trajectory:
    c = jax.tree.map(lambda a: a[..., 0], cur)
    return c.replace(x=upd.x, y=upd.y, yaw=upd.yaw, vel_x=upd.vel_x, vel_y=upd.vel_y,
                     valid=upd.valid & c.valid)  # fmt: skip


def policy_actor(dynamics: DynamicsModel, policy_fn: Callable, name: str = "policy") -> Actor:
    """A learned SDC policy: `policy_fn(params, state, rng) -> action data [D]` for the SDC."""

    def select_action(params, state, actor_state, rng):
        a = policy_fn(params, state, rng)
        n = state.num_objects
        data = jnp.broadcast_to(a, (n,) + a.shape)
        action = Action(data=data, valid=jnp.ones((n, 1), bool))
        return ActorOutput(actor_state, action, _sdc_mask(state))

    return Actor(lambda rng, state: None, select_action, name)


# --------------------------------------------------------------------------- sim agents
def constant_speed_update(state: SimulatorState) -> TrajectoryUpdate:
    """Every object keeps its current velocity and heading."""
    c = _cur(state)
    return TrajectoryUpdate(x=c.x + c.vel_x * DT, y=c.y + c.vel_y * DT, yaw=c.yaw,
                            vel_x=c.vel_x, vel_y=c.vel_y, valid=c.valid)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class IDMParams:
    desired_speed: float = 30.0  # v0
    min_gap: float = 2.0  # s0
    time_headway: float = 2.0  # T
    max_accel: float = 2.0  # a_max
    comfort_decel: float = 4.0  # b
    delta: float = 4.0
    lookahead: float = 50.0
    lane_half_width_margin: float = 0.5
    lookahead_points: int = 10  # Waymax IDM: boxes placed 1..10 m ahead (10 points over 10 m)
    lookahead_distance: float = 10.0


def idm_acceleration(v, gap, v_lead, p: IDMParams = IDMParams()):
    """a = a_max (1 - (v/v0)^delta - (s*/s)^2),
    s* = s0 + max(0, vT + v (v - v_lead) / (2 sqrt(a_max b)))."""
    s_star = p.min_gap + jnp.maximum(
        0.0, v * p.time_headway + v * (v - v_lead) / (2 * jnp.sqrt(p.max_accel * p.comfort_decel))
    )
    gap = jnp.maximum(gap, 0.1)
    return p.max_accel * (1 - (v / p.desired_speed) ** p.delta - (s_star / gap) ** 2)


def lead_vehicle(c: Trajectory, p: IDMParams = IDMParams()):
    """Gap [O] to and speed along heading [O] of the nearest object ahead in the lane band.

    `c` holds current-state fields [O]. An object ahead (longitudinal > 0 in the object's
    frame) counts when its lateral offset is below the mean width + margin and it does
    not drive head-on toward us. Without one, the gap is `lookahead` and v_lead = v.
    """
    dx, dy = c.x[None, :] - c.x[:, None], c.y[None, :] - c.y[:, None]
    cs, sn = jnp.cos(c.yaw)[:, None], jnp.sin(c.yaw)[:, None]
    lon, lat = dx * cs + dy * sn, -dx * sn + dy * cs
    align = jnp.cos(c.yaw[None, :] - c.yaw[:, None])
    n = c.x.shape[-1]
    ahead = (
        (lon > 0) & (jnp.abs(lat) < (c.width[:, None] + c.width[None, :]) / 2
                     + p.lane_half_width_margin)
        & (align > -0.7) & c.valid[None, :] & c.valid[:, None] & ~jnp.eye(n, dtype=bool)
    )  # fmt: skip
    gap = jnp.where(ahead, lon - (c.length[:, None] + c.length[None, :]) / 2, p.lookahead)
    j = fast_argmin(gap, axis=1)
    g = jnp.take_along_axis(gap, j[:, None], 1)[:, 0]
    speed = jnp.hypot(c.vel_x, c.vel_y)
    has = g < p.lookahead
    v_lead = jnp.where(has, speed[j] * jnp.take_along_axis(align, j[:, None], 1)[:, 0], speed)
    return jnp.minimum(g, p.lookahead), v_lead


def _polyline_arcs(xy, valid):
    seg = jnp.linalg.norm(jnp.diff(xy, axis=-2), axis=-1)
    seg = jnp.where(valid[..., 1:] & valid[..., :-1], seg, 0.0)
    return jnp.concatenate([jnp.zeros(seg.shape[:-1] + (1,)), jnp.cumsum(seg, -1)], -1)


def follow_route(c: Trajectory, route_xy, route_valid, gap, v_lead, p: IDMParams = IDMParams()):
    """IDM speed along a polyline route per object ([O, M, 2]); returns a TrajectoryUpdate."""
    arcs = _polyline_arcs(route_xy, route_valid)  # [O, M]
    end_s = jnp.max(jnp.where(route_valid, arcs, 0.0), -1)
    xy = jnp.stack([c.x, c.y], -1)
    d2 = jnp.where(route_valid, jnp.sum((route_xy - xy[:, None]) ** 2, -1), 1e12)
    k = fast_argmin(d2, -1)
    M = route_xy.shape[-2]
    k0 = jnp.clip(k, 0, M - 2)
    seg = jnp.take_along_axis(route_xy, (k0 + 1)[:, None, None], 1)[:, 0] - jnp.take_along_axis(
        route_xy, k0[:, None, None], 1
    )[:, 0]
    seg_len = jnp.linalg.norm(seg, axis=-1)
    base = jnp.take_along_axis(route_xy, k0[:, None, None], 1)[:, 0]
    proj = jnp.sum((xy - base) * seg, -1) / jnp.maximum(seg_len, 1e-6)
    s = jnp.take_along_axis(arcs, k0[:, None], 1)[:, 0] + jnp.clip(proj, 0.0, seg_len)
    s = jnp.minimum(s, end_s)
    v = jnp.hypot(c.vel_x, c.vel_y)
    end_gap = end_s - s - c.length / 2 + p.min_gap
    use_end = end_gap < gap
    gap, v_lead = jnp.where(use_end, end_gap, gap), jnp.where(use_end, 0.0, v_lead)
    a = idm_acceleration(v, gap, v_lead, p)
    a = jnp.maximum(a, -v / DT)
    v1 = v + a * DT
    s1 = jnp.minimum(s + v * DT + 0.5 * a * DT**2, end_s)

    def interp(arc, pts, valid, q):
        arc_m = jnp.where(valid, arc, jnp.max(arc) + 1e-3 + jnp.arange(arc.shape[0]) * 1e-3)
        i = jnp.searchsorted(arc_m, q, side="right", method="compare_all") - 1
        i = jnp.clip(i, 0, arc.shape[0] - 2)
        seg = pts[i + 1] - pts[i]
        length = jnp.maximum(arc_m[i + 1] - arc_m[i], 1e-6)
        w = jnp.clip((q - arc_m[i]) / length, 0.0, 1.0)
        heading = jnp.arctan2(seg[1], seg[0])
        return pts[i] + w * seg, heading, jnp.linalg.norm(seg) > 1e-3

    pos, heading, ok = jax.vmap(interp)(arcs, route_xy, route_valid, s1)
    moving = (end_s > 0.5) & ok
    yaw = jnp.where(moving, heading, c.yaw)
    x = jnp.where(moving, pos[:, 0], c.x)
    y = jnp.where(moving, pos[:, 1], c.y)
    v1 = jnp.where(moving, v1, 0.0)
    return TrajectoryUpdate(x=x, y=y, yaw=wrap_angle(yaw), vel_x=v1 * jnp.cos(yaw),
                            vel_y=v1 * jnp.sin(yaw), valid=c.valid)  # fmt: skip


def idm_lane_update(state: SimulatorState, p: IDMParams = IDMParams()) -> TrajectoryUpdate:
    """The earlier IDM sim agent ("idm_lane"): the leader is the nearest object up to
    `lookahead` (50 m) ahead in a lane band, the gap is bumper to bumper, and each object
    moves along its logged path by arc length. It sees leaders 5x farther than Waymax's
    10 m look-ahead; kept as an option, not the default."""
    c = _cur(state)
    gap, v_lead = lead_vehicle(c, p)
    log = state.log_trajectory
    return follow_route(c, log.xy, log.valid, gap, v_lead, p)


def lookahead_lead(c: Trajectory, p: IDMParams = IDMParams()):
    """Waymax's IDM leader search, exactly but without materialising the look-ahead boxes.

    Waymax places copies of each object's box at d_k = k * lookahead_distance /
    lookahead_points (k = 0..points) ahead along its heading and finds the first k whose box
    overlaps another valid object's current box (strict separating-axis test). A box moved
    by d along its heading projects on each separating axis u as p_u - d m_u, so "overlap at
    d" is an intersection of open intervals in d, one per axis; the first k inside it is
    computed per pair in closed form ([O, O] work instead of [O, O, points + 1]).

    Returns (lead distance [O] = d_k of the first hit, 0.1 for k = 0, -1 without a hit;
    lead speed [O] = the slowest object hit at that k, -1 without a hit)."""
    step = p.lookahead_distance / p.lookahead_points
    cs, sn = jnp.cos(c.yaw), jnp.sin(c.yaw)
    ca, sa, cb, sb = cs[:, None], sn[:, None], cs[None, :], sn[None, :]  # a: rows, b: columns
    dx, dy = c.x[None, :] - c.x[:, None], c.y[None, :] - c.y[:, None]
    m3 = ca * cb + sa * sb  # cos(yaw_b - yaw_a): rate of the projection on b's heading
    m4 = sa * cb - ca * sb  # rate on b's normal
    cd, sd = jnp.abs(m3), jnp.abs(m4)
    la, wa = (c.length / 2)[:, None], (c.width / 2)[:, None]
    lb, wb = (c.length / 2)[None, :], (c.width / 2)[None, :]
    # axis 1 (a's heading, rate 1) and axis 2 (a's normal, rate 0)
    p1, r1 = dx * ca + dy * sa, la + lb * cd + wb * sd
    p2, r2 = -dx * sa + dy * ca, wa + lb * sd + wb * cd
    lo, hi = p1 - r1, p1 + r1
    # axes 3, 4 (b's heading and normal): |p - d m| < r. With m = 0 the reciprocal is inf and
    # the bounds become (-inf, inf) when |p| < r and an empty interval otherwise.
    for proj, m, r in ((dx * cb + dy * sb, m3, lb + la * cd + wa * sd),
                       (-dx * sb + dy * cb, m4, wb + la * sd + wa * cd)):  # fmt: skip
        inv = 1.0 / m
        t1, t2 = (proj - r) * inv, (proj + r) * inv
        lo, hi = jnp.maximum(lo, jnp.minimum(t1, t2)), jnp.minimum(hi, jnp.maximum(t1, t2))
    k = jnp.where(lo < 0, 0.0, jnp.floor(lo * (1.0 / step)) + 1)  # first k with k step > lo
    n = c.x.shape[-1]
    ok = ((jnp.abs(p2) < r2) & (k <= p.lookahead_points) & (k * step < hi)
          & c.valid[:, None] & c.valid[None, :] & ~jnp.eye(n, dtype=bool))  # fmt: skip
    big = p.lookahead_points + 1.0
    k = jnp.where(ok, k, big)
    kmin = jnp.min(k, axis=1)
    speed = jnp.hypot(c.vel_x, c.vel_y)
    lead_v = jnp.min(jnp.where(k == kmin[:, None], speed[None, :], jnp.inf), axis=1)
    has = kmin < big
    dist = jnp.where(kmin == 0, 0.1, kmin * step)
    return jnp.where(has, dist, -1.0), jnp.where(has, lead_v, -1.0)


def idm_update(state: SimulatorState, p: IDMParams = IDMParams()) -> TrajectoryUpdate:
    """Waymax's IDM sim agent (IDMRoutePolicy with its defaults) for every object.

    Acceleration a = a_max (1 - (v/v0)^delta - (s*/s)^2) with s and the leader's speed
    from `lookahead_lead` (s* = 0 without a leader); v' = max(v + a dt, 0). The object
    moves (v + v')/2 dt along its current heading, is projected onto the line through its
    nearest valid logged point (heading = that point's yaw), and takes velocity v' along its
    current heading, or keeps its velocity once it reached its log's last point or is more
    than 5 m from its log."""
    c = _cur(state)
    lead_d, lead_v = lookahead_lead(c, p)
    v = jnp.hypot(c.vel_x, c.vel_y)
    s_star = p.min_gap + jnp.maximum(
        0.0, v * p.time_headway + v * (v - lead_v) / (2 * jnp.sqrt(p.max_accel * p.comfort_decel))
    )
    none = (lead_d == -1.0) | (lead_v == -1.0)
    s_star = jnp.where(none, 0.0, s_star)
    a = p.max_accel * (1 - (v / p.desired_speed) ** p.delta - (s_star / lead_d) ** 2)
    v1 = jnp.maximum(v + DT * a, 0.0)
    travel = (v1 + v) / 2 * DT
    nx, ny = c.x + travel * jnp.cos(c.yaw), c.y + travel * jnp.sin(c.yaw)
    log = state.log_trajectory
    d2 = jnp.where(log.valid, (log.x - nx[:, None]) ** 2 + (log.y - ny[:, None]) ** 2, jnp.inf)
    idx = fast_argmin(d2, axis=-1)
    take = lambda a: jnp.take_along_axis(a, idx[:, None], -1)[:, 0]  # noqa: E731
    sx, sy, syaw = take(log.x), take(log.y), take(log.yaw)
    steps = jnp.arange(log.num_timesteps)
    last = jnp.argmax(jnp.where(log.valid, steps, 0), axis=-1)
    lx = jnp.take_along_axis(log.x, last[:, None], -1)[:, 0]
    ly = jnp.take_along_axis(log.y, last[:, None], -1)[:, 0]
    reached = (jnp.hypot(lx - sx, ly - sy) < 0.05) | (jnp.sqrt(take(d2)) > 5.0)
    ux, uy = jnp.cos(syaw), jnp.sin(syaw)
    along = ux * (nx - sx) + uy * (ny - sy)
    return TrajectoryUpdate(
        x=sx + ux * along, y=sy + uy * along, yaw=syaw,
        vel_x=jnp.where(reached, c.vel_x, v1 * jnp.cos(c.yaw)),
        vel_y=jnp.where(reached, c.vel_y, v1 * jnp.sin(c.yaw)), valid=c.valid,
    )  # fmt: skip


def sdc_route_update(state: SimulatorState, p: IDMParams = IDMParams()) -> TrajectoryUpdate:
    """IDM route following for every object along the SDC's on-route path (use it for the SDC)."""
    c = _cur(state)
    gap, v_lead = lead_vehicle(c, p)
    paths = state.sdc_paths
    k = jnp.argmax(paths.on_route)
    n = c.x.shape[0]
    route_xy = jnp.broadcast_to(paths.xy[k], (n,) + paths.xy.shape[1:])
    route_valid = jnp.broadcast_to(paths.valid[k], (n,) + paths.valid.shape[1:])
    return follow_route(c, route_xy, route_valid, gap, v_lead, p)


SIM_AGENTS = {
    "log": None,  # objects follow the log
    "constant": constant_speed_update,
    "idm": idm_update,  # Waymax's IDMRoutePolicy
    "idm_lane": idm_lane_update,  # the earlier lane-band IDM (50 m look-ahead)
}
