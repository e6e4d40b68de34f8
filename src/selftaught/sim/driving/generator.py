"""Procedural driving scenarios: the embedded default data (deterministic by seed).

A scenario is a straight road, a curve or a four-way intersection with road edges
(directed so that the road lies on their left), lane centre lines, traffic lights and up
to `num_objects` vehicles. Vehicle logs are integrated with the exact invertible bicycle
model (so the expert is recovered by the dynamics inverse) under a controller that follows
each vehicle's route (pure pursuit), keeps a safe gap to the vehicle ahead (IDM) and stops
at red lights: vehicles interact through car following and the lights. Intersection lights
switch during the episode (green -> red for one road, then, after an all-red gap, red ->
green for the other), so waiting vehicles start moving and late ones stop.

Everything is NumPy on the host, seeded by `numpy.random.default_rng([seed, salt])`.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from selftaught.core.errors import ConfigError
from selftaught.sim.driving import datatypes as dt
from selftaught.sim.driving.datatypes import (
    DT,
    LIGHT_GO,
    LIGHT_STOP,
    NUM_TIMESTEPS,
    ObjectMetadata,
    Paths,
    RoadgraphPoints,
    SimulatorState,
    TrafficLights,
    Trajectory,
)

LANE_W = 3.7
KINDS = ("straight", "curve", "intersection")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    num_objects: int = 32
    num_points: int = 800
    num_paths: int = 3
    path_points: int = 200
    num_lights: int = 4
    num_timesteps: int = NUM_TIMESTEPS
    kinds: tuple[str, ...] = KINDS
    road_extent: float = 100.0
    edge_spacing: float = 2.0
    lane_spacing: float = 4.0
    num_pedestrians: int = 0
    """Pedestrians walking on the sidewalks (outside the road edges), filling free slots."""

    def validate(self) -> None:
        if self.num_objects < 1 or self.num_timesteps < dt.INIT_STEPS + 1:
            raise ConfigError("generator needs num_objects >= 1 and num_timesteps >= 12")
        for k in self.kinds:
            if k not in KINDS:
                from selftaught.core.errors import UnknownNameError

                raise UnknownNameError("scenario kind", k, KINDS)


# --------------------------------------------------------------------------- polylines
def resample(poly: np.ndarray, spacing: float) -> np.ndarray:
    """Points every `spacing` metres along a polyline [N, 2] (keeps the end)."""
    seg = np.linalg.norm(np.diff(poly, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(np.floor(s[-1] / spacing)) + 1, 2)
    q = np.linspace(0.0, s[-1], n) if s[-1] < spacing else np.arange(n) * spacing
    return np.stack([np.interp(q, s, poly[:, 0]), np.interp(q, s, poly[:, 1])], axis=1)


def arc_lengths(poly: np.ndarray) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(poly, axis=0), axis=1))])


def arc(center, radius, a0, a1, step=0.5) -> np.ndarray:
    n = max(int(abs(a1 - a0) * radius / step), 2)
    a = np.linspace(a0, a1, n)
    return np.stack([center[0] + radius * np.cos(a), center[1] + radius * np.sin(a)], axis=1)


def line(p0, p1, step=0.5) -> np.ndarray:
    n = max(int(np.linalg.norm(np.subtract(p1, p0)) / step), 2)
    return np.linspace(p0, p1, n)


def join(*parts) -> np.ndarray:
    out = [parts[0]]
    for p in parts[1:]:
        out.append(p[1:] if np.allclose(p[0], out[-1][-1], atol=1e-6) else p)
    return np.concatenate(out)


def offset(poly: np.ndarray, d: float) -> np.ndarray:
    """Offset a dense polyline by `d` to its LEFT."""
    t = np.gradient(poly, axis=0)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    return poly + d * np.stack([-t[:, 1], t[:, 0]], axis=1)


def rot(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


@dataclasses.dataclass
class Scene:
    lanes: list  # polylines (direction of travel)
    edges: list  # polylines (road on the left)
    routes: list  # dicts: poly, entry (lane index), stop_s (or None), kind
    lights: list  # dicts: xy, lane, red (bool [T])
    entries: list  # dicts: lane index, length available for placement, red ([T] bool or None)


# --------------------------------------------------------------------------- scenes
def road_scene(rng: np.random.Generator, kind: str, extent: float) -> Scene:
    if kind == "straight":
        center = line((-extent, 0.0), (extent, 0.0))
        lanes_per_dir = int(rng.integers(1, 3))
    else:
        radius = rng.uniform(50.0, 120.0)
        sweep = rng.uniform(np.pi / 4, np.pi / 2) * rng.choice([-1, 1])
        l0 = rng.uniform(30.0, 60.0)
        a = arc((0.0, np.sign(sweep) * radius), radius, -np.sign(sweep) * np.pi / 2,
                -np.sign(sweep) * np.pi / 2 + sweep)  # fmt: skip
        d_end = np.array([np.cos(sweep), np.sin(sweep)])
        center = join(line((-l0, 0.0), (0.0, 0.0)), a, line(a[-1], a[-1] + 2 * extent * d_end))
        center = resample(center, 0.5)
        lanes_per_dir = 1
    lanes, routes, entries = [], [], []
    for i in range(lanes_per_dir):
        fwd = offset(center, -(i + 0.5) * LANE_W)
        bwd = offset(center, (i + 0.5) * LANE_W)[::-1]
        for poly in (fwd, bwd):
            lanes.append(poly)
            routes.append({"poly": poly, "entry": len(lanes) - 1, "stop_s": None, "kind": "lane"})
            entries.append({"lane": len(lanes) - 1, "length": 0.55 * arc_lengths(poly)[-1],
                            "red": None})  # fmt: skip
    w = lanes_per_dir * LANE_W
    edges = [offset(center, -w), offset(center, w)[::-1]]
    return Scene(lanes, edges, routes, [], entries)


def intersection_scene(rng: np.random.Generator, extent: float, num_t: int) -> Scene:
    hw = LANE_W / 2
    r_right, r_left = 8.0, 10.0
    box = hw + r_right  # stop line / start of the turn arcs
    edge_r = r_right - hw
    lanes, edges, routes, lights, entries = [], [], [], [], []
    green_axis = int(rng.integers(0, 2))  # 0: east-west traffic has green first
    t_switch = int(rng.integers(30, 71))  # green -> red for the first road (3-7 s)
    all_red = 20
    steps = np.arange(num_t)
    for k in range(4):  # approach k comes from angle k*90 deg + 180 and heads rot(k*90) of east
        ang = k * np.pi / 2
        R = lambda p, a=ang: rot(np.atleast_2d(np.asarray(p, float)), a)  # noqa: E731
        incoming = R(line((-extent, -hw), (-box, -hw)))
        straight = R(line((-box, -hw), (box, -hw)))
        out_straight = R(line((box, -hw), (extent, -hw)))
        right = R(arc((-box, -box), r_right, np.pi / 2, 0.0))
        out_right = R(line((-hw, -box), (-hw, -extent)))
        left = R(arc((hw - r_left, -hw + r_left), r_left, -np.pi / 2, 0.0))
        out_left = R(line((hw, r_left - hw), (hw, extent)))
        base = len(lanes)
        lanes += [incoming, straight, right, left, out_straight]
        first = (k % 2) == green_axis
        red = steps >= t_switch if first else steps < t_switch + all_red
        stop_s = arc_lengths(incoming)[-1] - 1.0
        for kind, conn, out in (
            ("straight", straight, out_straight),
            ("right", right, out_right),
            ("left", left, out_left),
        ):
            routes.append({"poly": join(incoming, conn, out), "entry": base, "stop_s": stop_s,
                           "kind": kind})  # fmt: skip
        entries.append({"lane": base, "length": arc_lengths(incoming)[-1] - 25.0, "red": red})
        lights.append({"xy": incoming[-1], "lane": base, "red": red})
        corner = join(
            line((-extent, -LANE_W), (-box, -LANE_W)),
            arc((-box, -box), edge_r, np.pi / 2, 0.0),
            line((-LANE_W, -box), (-LANE_W, -extent)),
        )
        edges.append(R(corner))
    return Scene(lanes, edges, routes, lights, entries)


# --------------------------------------------------------------------------- controller
IDM_GEN = dict(s0=2.0, T=1.5, a_max=1.5, b=3.0, delta=4.0)


def idm_accel(v, v_des, gap, v_lead, s0, T, a_max, b, delta):
    """Intelligent Driver Model acceleration (NumPy or JAX arrays)."""
    s_star = s0 + np.maximum(0.0, v * T + v * (v - v_lead) / (2 * np.sqrt(a_max * b)))
    return a_max * (1 - (v / v_des) ** delta - (s_star / np.maximum(gap, 0.1)) ** 2)


def lead_gaps(x, y, yaw, speed, length, width, valid, lookahead=60.0):
    """Gap to and speed of the nearest object ahead in each object's lane band (NumPy)."""
    dx, dy = x[None, :] - x[:, None], y[None, :] - y[:, None]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    lon, lat = dx * c + dy * s, -dx * s + dy * c
    align = np.cos(yaw[None, :] - yaw[:, None])
    ahead = (
        (lon > 0) & (np.abs(lat) < (width[:, None] + width[None, :]) / 2 + 0.3)
        & (align > -0.7) & valid[None, :] & valid[:, None] & ~np.eye(len(x), dtype=bool)
    )  # fmt: skip
    gap = np.where(ahead, lon - (length[:, None] + length[None, :]) / 2, lookahead)
    j = np.argmin(gap, axis=1)
    g = gap[np.arange(len(x)), j]
    v_lead = np.where(g < lookahead, speed[j] * align[np.arange(len(x)), j], 0.0)
    return np.minimum(g, lookahead), v_lead


def _simulate(rng, routes, s0, v0, v_des, length, width, num_t, red=None, spacing=0.5):
    """Integrate the bicycle model for all vehicles; returns x, y, yaw, v arrays [n, T]."""
    n = len(routes)
    polys = [resample(r["poly"], spacing) for r in routes]
    M = max(len(p) for p in polys)
    R = np.stack([np.concatenate([p, np.repeat(p[-1:], M - len(p), 0)]) for p in polys])
    n_pts = np.array([len(p) for p in polys])
    end_s = (n_pts - 1) * spacing
    stop_s = np.array([r["stop_s"] if r["stop_s"] is not None else np.inf for r in routes])
    rows = np.arange(n)
    xs, ys, yaws, vs = (np.zeros((n, num_t)) for _ in range(4))
    i0 = np.minimum(np.round(np.asarray(s0) / spacing).astype(int), n_pts - 2)
    xs[:, 0], ys[:, 0] = R[rows, i0, 0], R[rows, i0, 1]
    d = R[rows, i0 + 1] - R[rows, i0]
    yaws[:, 0] = np.arctan2(d[:, 1], d[:, 0])
    vs[:, 0] = v0
    valid = np.ones(n, bool)
    red = np.zeros((n, num_t), bool) if red is None else red
    committed = red[:, 0].copy()  # will stop at the line while the light is red
    for t in range(num_t - 1):
        x, y, yaw, v = xs[:, t], ys[:, t], yaws[:, t], vs[:, t]
        gap, v_lead = lead_gaps(x, y, yaw, v, length, width, valid)
        d2 = (R[..., 0] - x[:, None]) ** 2 + (R[..., 1] - y[:, None]) ** 2
        s_cur = np.argmin(d2, axis=1) * spacing
        stop_gap = stop_s - s_cur - length / 2
        turned_red = red[:, t] & ~red[:, max(t - 1, 0)]
        can_stop = stop_gap > v**2 / (2 * 3.0) + 1.0  # else: dilemma zone, drive through
        committed = np.where(turned_red, can_stop, committed)
        stopping = red[:, t] & committed
        end_gap = np.minimum(end_s, np.where(stopping, stop_s, np.inf)) - s_cur - length / 2
        use_end = end_gap < gap
        gap, v_lead = np.where(use_end, end_gap, gap), np.where(use_end, 0.0, v_lead)
        ld = np.maximum(6.0, 0.8 * v)
        j = np.minimum(np.round((s_cur + ld) / spacing).astype(int), n_pts - 1)
        tx, ty = R[rows, j, 0], R[rows, j, 1]
        alpha = np.arctan2(ty - y, tx - x) - yaw
        alpha = (alpha + np.pi) % (2 * np.pi) - np.pi
        kappa = 2 * np.sin(alpha) / np.maximum(np.hypot(tx - x, ty - y), 1.0)
        acc = idm_accel(v, v_des, gap, v_lead, **IDM_GEN)
        acc = np.clip(acc, -6.0, 6.0)
        acc = np.maximum(acc, -v / DT)  # never reverse
        v1 = v + acc * DT
        kappa = np.clip(kappa, -0.3, 0.3)
        kappa = np.where((v < 0.6) | (v1 < 0.6), 0.0, kappa)
        xs[:, t + 1] = x + v * np.cos(yaw) * DT + 0.5 * acc * np.cos(yaw) * DT**2
        ys[:, t + 1] = y + v * np.sin(yaw) * DT + 0.5 * acc * np.sin(yaw) * DT**2
        yaws[:, t + 1] = (yaw + kappa * (v * DT + 0.5 * acc * DT**2) + np.pi) % (2 * np.pi) - np.pi
        vs[:, t + 1] = v1
    return xs, ys, yaws, vs


# --------------------------------------------------------------------------- scenario
def _sample_points(polys, spacing, types, ids):
    xy, dirs, ty, idl = [], [], [], []
    for poly, t, i in zip(polys, types, ids):
        p = resample(poly, spacing)
        d = np.diff(p, axis=0)
        d = np.concatenate([d, d[-1:]])
        d /= np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-9)
        xy.append(p)
        dirs.append(d)
        ty.append(np.full(len(p), t))
        idl.append(np.full(len(p), i))
    return np.concatenate(xy), np.concatenate(dirs), np.concatenate(ty), np.concatenate(idl)


def generate(seed: int, config: GeneratorConfig = GeneratorConfig(), salt: int = 0):
    """One scenario as an unbatched SimulatorState (timestep 0, sim == log)."""
    rng = np.random.default_rng([seed, salt, 7919])
    cfg, T, O = config, config.num_timesteps, config.num_objects  # noqa: E741
    kind = cfg.kinds[int(rng.integers(0, len(cfg.kinds)))]
    scene = (
        intersection_scene(rng, cfg.road_extent, T)
        if kind == "intersection"
        else road_scene(rng, kind, cfg.road_extent)
    )
    # ---- place vehicles along entry lanes, back to front
    routes, s0, v0, v_des, lengths, widths, entry_of = [], [], [], [], [], [], []
    by_entry = {}
    for r in scene.routes:
        by_entry.setdefault(r["entry"], []).append(r)
    entry_order = rng.permutation(len(scene.entries))
    for e_idx in entry_order:
        e = scene.entries[e_idx]
        opts = [r for r in by_entry[e["lane"]] if r["kind"] in ("lane", "straight", "right")]
        s = rng.uniform(0.0, 15.0)
        while s < e["length"] and len(routes) < O:
            L = rng.uniform(4.0, 5.2)
            r = opts[int(rng.integers(0, len(opts)))]
            routes.append(r)
            s0.append(s + L / 2)
            lengths.append(L)
            widths.append(rng.uniform(1.8, 2.1))
            vd = rng.uniform(6.0, 14.0)
            v_des.append(vd)
            red0 = e["red"] is not None and e["red"][0]
            v0.append(vd * rng.uniform(0.5, 1.0) * (0.6 if red0 else 1.0))
            entry_of.append(e_idx)
            s += L + rng.uniform(8.0, 30.0)
    n = len(routes)
    lengths, widths = np.array(lengths), np.array(widths)
    red = np.array([scene.entries[e]["red"] if scene.entries[e]["red"] is not None
                    else np.zeros(T, bool) for e in entry_of]).reshape(n, T)  # fmt: skip
    xs, ys, yaws, vs = _simulate(
        rng, routes, np.array(s0), np.array(v0), np.array(v_des), lengths, widths, T, red
    )
    # ---- choose the SDC: a vehicle with a green light that moves, preferring mid-lane ones
    travelled = np.hypot(xs[:, -1] - xs[:, 0], ys[:, -1] - ys[:, 0])
    moving = ~red[:, 0] & (travelled > 30.0)
    cand = np.flatnonzero(moving) if moving.any() else np.arange(n)
    sdc = int(cand[rng.integers(0, len(cand))])
    # ---- pedestrians on the sidewalks: straight walks at constant speed
    m = min(cfg.num_pedestrians, O - n)
    if m > 0:
        steps = np.arange(T) * DT
        pxs, pys, pyaws, pvs = (np.zeros((m, T)) for _ in range(4))
        for k in range(m):
            e = scene.edges[int(rng.integers(0, len(scene.edges)))]
            j = int(rng.integers(0, len(e) - 1))
            d = e[j + 1] - e[j]
            d = d / max(np.linalg.norm(d), 1e-9)
            base = e[j] + rng.uniform(1.5, 4.0) * np.array([d[1], -d[0]])  # right = off road
            if rng.random() < 0.5:
                d = -d
            v = rng.uniform(0.8, 1.6)
            pxs[k], pys[k] = base[0] + v * steps * d[0], base[1] + v * steps * d[1]
            pyaws[k], pvs[k] = np.arctan2(d[1], d[0]), v
        xs, ys = np.concatenate([xs, pxs]), np.concatenate([ys, pys])
        yaws, vs = np.concatenate([yaws, pyaws]), np.concatenate([vs, pvs])
        lengths = np.concatenate([lengths, np.full(m, 0.6)])
        widths = np.concatenate([widths, np.full(m, 0.6)])
    types = np.array([dt.VEHICLE] * n + [dt.PEDESTRIAN] * m, np.int32)
    order = [sdc] + [i for i in range(n) if i != sdc] + list(range(n, n + m))  # SDC is object 0
    n = n + m
    # ---- trajectories [O, T]
    def pad(a, fill=0.0):
        out = np.full((O,) + a.shape[1:], fill, np.float32)
        out[:n] = np.asarray(a)[order]
        return out

    valid = np.zeros((O, T), bool)
    valid[:n] = True
    ts = np.broadcast_to((np.arange(T) * DT * 1e6).astype(np.int32), (O, T)).copy()
    log = Trajectory(
        x=pad(xs), y=pad(ys), z=np.zeros((O, T), np.float32),
        vel_x=pad(vs * np.cos(yaws)), vel_y=pad(vs * np.sin(yaws)), yaw=pad(yaws),
        valid=valid, timestamp_micros=ts,
        length=pad(np.repeat(lengths[:, None], T, 1)), width=pad(np.repeat(widths[:, None], T, 1)),
        height=pad(np.full((n, T), 1.6)),
    )  # fmt: skip
    ids = np.arange(O, dtype=np.int32)
    meta = ObjectMetadata(
        ids=ids, object_types=pad(types.astype(np.float32)).astype(np.int32),
        is_sdc=ids == 0, is_modeled=ids < n, is_valid=ids < n, objects_of_interest=ids == 0,
        is_controlled=ids == 0,
    )  # fmt: skip
    # ---- roadgraph
    lane_ids = list(range(len(scene.lanes)))
    edge_ids = [len(lane_ids) + i for i in range(len(scene.edges))]
    exy, edir, ety, eid = _sample_points(
        scene.edges, cfg.edge_spacing, [dt.ROAD_EDGE_BOUNDARY] * len(scene.edges), edge_ids
    )
    lxy, ldir, lty, lid = _sample_points(
        scene.lanes, cfg.lane_spacing, [dt.LANE_SURFACE] * len(scene.lanes), lane_ids
    )
    xy = np.concatenate([exy, lxy])[: cfg.num_points]
    dirs = np.concatenate([edir, ldir])[: cfg.num_points]
    types = np.concatenate([ety, lty])[: cfg.num_points]
    rids = np.concatenate([eid, lid])[: cfg.num_points]
    P, m = cfg.num_points, len(xy)

    def padp(a, fill=0):
        out = np.full((P,), fill, dtype=np.asarray(a).dtype)
        out[:m] = a
        return out

    rg = RoadgraphPoints(
        x=padp(xy[:, 0].astype(np.float32)), y=padp(xy[:, 1].astype(np.float32)),
        z=np.zeros(P, np.float32), dir_x=padp(dirs[:, 0].astype(np.float32)),
        dir_y=padp(dirs[:, 1].astype(np.float32)), dir_z=np.zeros(P, np.float32),
        types=padp(types.astype(np.int32)), ids=padp(rids.astype(np.int32)),
        valid=np.arange(P) < m,
    )  # fmt: skip
    # ---- SDC paths: its route (on route) and the other routes from its entry lane
    r_sdc = routes[sdc]
    alts = [r for r in by_entry[r_sdc["entry"]] if r is not r_sdc]
    NP, LP = cfg.num_paths, cfg.path_points
    px, py = np.zeros((NP, LP), np.float32), np.zeros((NP, LP), np.float32)
    pvalid, parc = np.zeros((NP, LP), bool), np.zeros((NP, LP), np.float32)
    pids, on_route = np.zeros((NP, LP), np.int32), np.zeros(NP, bool)
    start = max(s0[sdc] - 5.0, 0.0)
    for k, r in enumerate(([r_sdc] + alts)[:NP]):
        a_ = arc_lengths(r["poly"])
        q = np.arange(start, a_[-1], 1.0)[:LP]
        px[k, : len(q)] = np.interp(q, a_, r["poly"][:, 0])
        py[k, : len(q)] = np.interp(q, a_, r["poly"][:, 1])
        pvalid[k, : len(q)] = True
        parc[k, : len(q)] = q - start
        pids[k, : len(q)] = k
        on_route[k] = k == 0
    paths = Paths(
        x=px, y=py, z=np.zeros_like(px), ids=pids, valid=pvalid, arc_length=parc,
        on_route=on_route,
    )  # fmt: skip
    # ---- traffic lights [L, T]
    NL = cfg.num_lights
    lx, ly = np.zeros((NL, T), np.float32), np.zeros((NL, T), np.float32)
    lstate, llane = np.zeros((NL, T), np.int32), np.zeros((NL, T), np.int32)
    lvalid = np.zeros((NL, T), bool)
    for k, li in enumerate(scene.lights[:NL]):
        lx[k], ly[k] = li["xy"][0], li["xy"][1]
        lstate[k] = np.where(li["red"], LIGHT_STOP, LIGHT_GO)
        llane[k], lvalid[k] = li["lane"], True
    lights = TrafficLights(
        x=lx, y=ly, z=np.zeros_like(lx), state=lstate, lane_ids=llane, valid=lvalid
    )
    # ---- random rigid transform of the whole scene (rotation + translation)
    theta, shift = rng.uniform(-np.pi, np.pi), rng.uniform(-50.0, 50.0, size=2)
    state = SimulatorState(
        sim_trajectory=log, log_trajectory=log, log_traffic_light=lights,
        object_metadata=meta, timestep=np.int32(0), roadgraph_points=rg, sdc_paths=paths,
    )  # fmt: skip
    return transform(state, theta, shift)


def transform(state: SimulatorState, theta: float, shift) -> SimulatorState:
    """Rotate a scenario by theta about the origin, then translate by shift (NumPy)."""
    c, s = np.cos(theta), np.sin(theta)

    def pts(obj, fx="x", fy="y"):
        x, y = np.asarray(getattr(obj, fx)), np.asarray(getattr(obj, fy))
        return (c * x - s * y), (s * x + c * y)

    def move(obj, valid_field="valid"):
        x, y = pts(obj)
        v = np.asarray(getattr(obj, valid_field))
        return obj.replace(
            x=np.where(v, x + shift[0], 0.0).astype(np.float32),
            y=np.where(v, y + shift[1], 0.0).astype(np.float32),
        )

    def traj(tr):
        tr = move(tr)
        vx, vy = pts(tr, "vel_x", "vel_y")
        yaw = (np.asarray(tr.yaw) + theta + np.pi) % (2 * np.pi) - np.pi
        v = np.asarray(tr.valid)
        return tr.replace(
            vel_x=np.where(v, vx, 0).astype(np.float32),
            vel_y=np.where(v, vy, 0).astype(np.float32),
            yaw=np.where(v, yaw, 0).astype(np.float32),
        )  # fmt: skip

    log = traj(state.log_trajectory)
    rg = move(state.roadgraph_points)
    dx, dy = pts(state.roadgraph_points, "dir_x", "dir_y")
    rg = rg.replace(dir_x=dx.astype(np.float32), dir_y=dy.astype(np.float32))
    return state.replace(
        sim_trajectory=log, log_trajectory=log, roadgraph_points=rg,
        sdc_paths=move(state.sdc_paths), log_traffic_light=move(state.log_traffic_light),
    )  # fmt: skip


def generate_batch(seeds, config: GeneratorConfig = GeneratorConfig(), salt: int = 0):
    """Scenarios for each seed, stacked along a leading batch axis (NumPy leaves)."""
    states = [generate(int(s), config, salt) for s in seeds]
    return jax.tree.map(lambda *xs: np.stack(xs), *states)
