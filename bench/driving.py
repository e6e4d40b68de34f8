"""Driving simulator throughput: the jitted, vmapped JAX simulator against a plain
NumPy / Python-loop implementation of the same step, measured in the same run.

Workload (the Waymax paper's): a batch of 64 generated scenarios with 128 objects each
(vehicles, the remaining slots filled with sidewalk pedestrians), 91 logged steps (reset
replays 11, 80 simulated), the SDC replays its log through the (closed-loop) bicycle
inverse, every other object is a Waymax IDM sim agent (10 m look-ahead boxes, projection
onto its log; objects that start overlapping replay the log), and every step computes
all metrics (overlap, off-road, log divergence, kinematic infeasibility,
route progress, off-route, wrong-way) and the reward.

The peer loops over objects in Python with NumPy inside (vectorised over road points and
route points); it skips invalid object slots, which a dense JAX step cannot. Its next
positions are checked against the JAX step before timing.

    .venv/bin/python bench/driving.py [--batch 64] [--objects 128] [--peer-steps 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.sim.driving import agents as ag
from selftaught.sim.driving import dynamics as dyn
from selftaught.sim.driving import env as envlib
from selftaught.sim.driving import generator as gen
from selftaught.sim.driving.datatypes import DT

P = ag.IDMParams()


# --------------------------------------------------------------------------- NumPy peer
def _np_sat_many(a, xs, ys, yaws, ls, ws):
    """Strict separating-axis test of box a = (x, y, yaw, length, width) against many boxes."""
    ca, sa, cb, sb = np.cos(a[2]), np.sin(a[2]), np.cos(yaws), np.sin(yaws)
    dx, dy = xs - a[0], ys - a[1]
    hit = np.ones(len(xs), bool)
    for ux, uy in ((ca, sa), (-sa, ca), (cb, sb), (-sb, cb)):
        ra = a[3] / 2 * np.abs(ux * ca + uy * sa) + a[4] / 2 * np.abs(-ux * sa + uy * ca)
        rb = ls / 2 * np.abs(ux * cb + uy * sb) + ws / 2 * np.abs(-ux * sb + uy * cb)
        hit &= np.abs(ux * dx + uy * dy) < ra + rb
    return hit


def _np_idm(s, t, i, x, y, yaw, speed, length, width, valid):
    """Waymax's IDM for object i: look-ahead boxes 0..10 m ahead, then projection on its log."""
    others = valid.copy()
    others[i] = False
    lead_d, lead_v = -1.0, -1.0
    for k in range(P.lookahead_points + 1):
        d = k * P.lookahead_distance / P.lookahead_points
        box = (x[i] + d * np.cos(yaw[i]), y[i] + d * np.sin(yaw[i]), yaw[i], length[i], width[i])
        hit = _np_sat_many(box, x[others], y[others], yaw[others], length[others],
                           width[others])  # fmt: skip
        if hit.any():
            lead_d, lead_v = (0.1 if k == 0 else d), speed[others][hit].min()
            break
    v = speed[i]
    s_star = 0.0
    if lead_d != -1.0:
        s_star = P.min_gap + max(0.0, v * P.time_headway + v * (v - lead_v)
                                 / (2 * np.sqrt(P.max_accel * P.comfort_decel)))
    a = P.max_accel * (1 - (v / P.desired_speed) ** P.delta - (s_star / lead_d) ** 2)
    v1 = max(v + DT * a, 0.0)
    travel = (v1 + v) / 2 * DT
    nx, ny = x[i] + travel * np.cos(yaw[i]), y[i] + travel * np.sin(yaw[i])
    lv = s["log_valid"][i]
    d2 = np.where(lv, (s["log_x"][i] - nx) ** 2 + (s["log_y"][i] - ny) ** 2, np.inf)
    j = int(np.argmin(d2))
    sx, sy, syaw = s["log_x"][i, j], s["log_y"][i, j], s["log_yaw"][i, j]
    last = int(np.max(np.where(lv, np.arange(len(lv)), 0)))
    reached = (np.hypot(s["log_x"][i, last] - sx, s["log_y"][i, last] - sy) < 0.05
               or np.sqrt(d2[j]) > 5.0)  # fmt: skip
    along = np.cos(syaw) * (nx - sx) + np.sin(syaw) * (ny - sy)
    vel = (s["vel_x"][i, t], s["vel_y"][i, t]) if reached else (v1 * np.cos(yaw[i]),
                                                                v1 * np.sin(yaw[i]))
    return sx + np.cos(syaw) * along, sy + np.sin(syaw) * along, syaw, vel


def _np_box_overlap(a, b):
    """Separating-axis test for two boxes (x, y, yaw, length, width)."""
    def axes(bx):
        c, s = np.cos(bx[2]), np.sin(bx[2])
        return [np.array([c, s]), np.array([-s, c])]

    def radius(bx, u):
        h, n = axes(bx)
        return bx[3] / 2 * abs(u @ h) + bx[4] / 2 * abs(u @ n)

    d = np.array([b[0] - a[0], b[1] - a[1]])
    for u in axes(a) + axes(b):
        if abs(u @ d) >= radius(a, u) + radius(b, u):
            return False
    return True


def numpy_step(s: dict, t: int) -> dict:
    """One simulator step of one scenario (NumPy arrays) plus all metrics; returns new arrays."""
    x, y, yaw = s["x"][:, t], s["y"][:, t], s["yaw"][:, t]
    vx, vy, valid = s["vel_x"][:, t], s["vel_y"][:, t], s["valid"][:, t]
    length, width = s["length"][:, t], s["width"][:, t]
    speed = np.hypot(vx, vy)
    n = len(x)
    nx, ny, nyaw, nv = x.copy(), y.copy(), yaw.copy(), speed.copy()
    nvx, nvy = np.zeros(n), np.zeros(n)
    for i in range(n):
        if not valid[i]:
            continue
        if s["is_sdc"][i]:  # expert: bicycle inverse (heading from velocity) then forward
            lvx, lvy = s["log_vel_x"][i, t + 1], s["log_vel_y"][i, t + 1]
            v1 = np.hypot(lvx, lvy)
            a = np.clip((v1 - speed[i]) / DT, -6, 6)
            yaw1 = s["log_yaw"][i, t + 1] if v1 <= 0.6 else np.arctan2(lvy, lvx)
            dyaw = (yaw1 - yaw[i] + np.pi) % (2 * np.pi) - np.pi
            den = speed[i] * DT + 0.5 * a * DT**2
            k = 0.0 if speed[i] < 0.6 or v1 < 0.6 else np.clip(dyaw / den, -0.3, 0.3)
            nx[i] = x[i] + vx[i] * DT + 0.5 * a * np.cos(yaw[i]) * DT**2
            ny[i] = y[i] + vy[i] * DT + 0.5 * a * np.sin(yaw[i]) * DT**2
            nyaw[i] = yaw[i] + k * den
            nv[i] = speed[i] + a * DT
            nvx[i], nvy[i] = nv[i] * np.cos(nyaw[i]), nv[i] * np.sin(nyaw[i])
            continue
        if s["start_overlap"][i]:  # objects that start overlapping replay the log
            nx[i], ny[i] = s["log_x"][i, t + 1], s["log_y"][i, t + 1]
            nyaw[i] = s["log_yaw"][i, t + 1]
            nvx[i], nvy[i] = s["log_vel_x"][i, t + 1], s["log_vel_y"][i, t + 1]
            nv[i] = np.hypot(nvx[i], nvy[i])
            continue
        nx[i], ny[i], nyaw[i], (nvx[i], nvy[i]) = _np_idm(s, t, i, x, y, yaw, speed, length,
                                                          width, valid)  # fmt: skip
        nv[i] = np.hypot(nvx[i], nvy[i])
    out = {k: v.copy() for k, v in s.items() if k in ("x", "y", "yaw", "vel_x", "vel_y", "valid")}
    out["x"][:, t + 1], out["y"][:, t + 1], out["yaw"][:, t + 1] = nx, ny, nyaw
    out["vel_x"][:, t + 1], out["vel_y"][:, t + 1] = nvx, nvy
    out["valid"][:, t + 1] = valid
    # ---- metrics at t + 1
    boxes = [(nx[i], ny[i], nyaw[i], length[i], width[i]) for i in range(n)]
    overlap = np.zeros(n)
    for i in range(n):
        for j in range(i + 1, n):
            if valid[i] and valid[j] and _np_box_overlap(boxes[i], boxes[j]):
                overlap[i] = overlap[j] = 1.0
    edges = s["edge_xy"]
    offroad = np.zeros(n)
    for i in range(n):
        if not valid[i]:
            continue
        c, sn = np.cos(nyaw[i]), np.sin(nyaw[i])
        for sx, sy in ((1, 1), (-1, 1), (-1, -1), (1, -1)):
            lx, ly = sx * length[i] / 2, sy * width[i] / 2
            p = np.array([nx[i] + lx * c - ly * sn, ny[i] + lx * sn + ly * c])
            diff = p - edges
            j = np.argmin(np.sum(diff**2, 1))
            dxy = s["edge_dir"][j]
            if dxy[0] * diff[j, 1] - dxy[1] * diff[j, 0] < 0:
                offroad[i] = 1.0
    ade = np.where(valid, np.hypot(nx - s["log_x"][:, t + 1], ny - s["log_y"][:, t + 1]), 0.0)
    infeasible = np.zeros(n)
    for i in range(n):
        if valid[i]:
            a = (nv[i] - speed[i]) / DT
            dyaw = (nyaw[i] - yaw[i] + np.pi) % (2 * np.pi) - np.pi
            den = speed[i] * DT + 0.5 * a * DT**2
            k = 0.0 if speed[i] < 0.6 or nv[i] < 0.6 else dyaw / den
            infeasible[i] = float(abs(a) > 10.4 or abs(k) > 0.3)
    sdc = int(np.argmax(s["is_sdc"]))
    route = s["path_xy"][s["path_valid"]]
    d2 = np.sum((route - (nx[sdc], ny[sdc])) ** 2, 1)
    progress = s["path_arc"][s["path_valid"]][np.argmin(d2)]
    off_route = float(d2.min() > 25.0)
    reward = -overlap - offroad
    out["metrics"] = (overlap, offroad, ade, infeasible, progress, off_route, reward)
    return out


def to_numpy_scenario(state) -> dict:
    st = jax.tree.map(np.asarray, state)
    sim, log, rg, pa = st.sim_trajectory, st.log_trajectory, st.roadgraph_points, st.sdc_paths
    k = int(np.argmax(pa.on_route))
    edge = rg.valid & np.isin(rg.types, (15, 16))
    return {
        "x": sim.x.astype(np.float64), "y": sim.y.astype(np.float64),
        "yaw": sim.yaw.astype(np.float64), "vel_x": sim.vel_x.astype(np.float64),
        "vel_y": sim.vel_y.astype(np.float64), "valid": sim.valid.copy(),
        "length": sim.length, "width": sim.width, "log_x": log.x, "log_y": log.y,
        "log_yaw": log.yaw, "log_vel_x": log.vel_x, "log_vel_y": log.vel_y,
        "log_valid": log.valid, "is_sdc": st.object_metadata.is_sdc,
        "types": st.object_metadata.object_types,
        "edge_xy": np.stack([rg.x[edge], rg.y[edge]], 1),
        "edge_dir": np.stack([rg.dir_x[edge], rg.dir_y[edge]], 1),
        "path_xy": np.stack([pa.x[k], pa.y[k]], 1), "path_valid": pa.valid[k],
        "path_arc": pa.arc_length[k], "start_overlap": _np_start_overlap(log),
    }  # fmt: skip


def _np_start_overlap(log) -> np.ndarray:
    x, y, yaw, ln, wd, v = (a[:, 0] for a in (log.x, log.y, log.yaw, log.length, log.width,
                                              log.valid))  # fmt: skip
    out = np.zeros(len(x), bool)
    for i in range(len(x)):
        if v[i]:
            others = v.copy()
            others[i] = False
            out[i] = _np_sat_many((x[i], y[i], yaw[i], ln[i], wd[i]), x[others], y[others],
                                  yaw[others], ln[others], wd[others]).any()  # fmt: skip
    return out


# --------------------------------------------------------------------------- main
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--objects", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-scenarios", type=int, default=2)
    ap.add_argument("--peer-steps", type=int, default=3)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    cfg = gen.GeneratorConfig(num_objects=args.objects, num_pedestrians=args.objects)
    scen = jax.tree.map(jnp.asarray, gen.generate_batch(range(args.batch), cfg, salt=5))
    n_valid = int(np.asarray(scen.object_metadata.is_valid).sum())
    print(f"generated {args.batch} scenarios x {args.objects} object slots "
          f"({n_valid / args.batch:.1f} valid objects per scenario) in "
          f"{time.perf_counter() - t0:.1f}s")

    bic = dyn.InvertibleBicycleModel()
    env = envlib.PlanningAgentEnv(bic, "idm")
    actor = ag.expert_actor(bic)
    T = scen.log_trajectory.x.shape[-1]
    num_steps = T - env.config.init_steps

    def one(s, key):
        final, m, r = envlib.rollout(env, s, actor, None, key)
        return final.sim_trajectory.x, jnp.sum(r)

    fn = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.PRNGKey(0), args.batch)
    t0 = time.perf_counter()
    jax.block_until_ready(fn(scen, keys))
    compile_s = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(scen, keys))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    jax_s, jax_cpu = min(times), min(cpu)
    jax_rate = args.batch * num_steps / jax_s

    # ---- peer: check one step agrees, then time it
    step_fn = jax.jit(jax.vmap(lambda s: env.step(env.reset(s), actor.select_action(
        None, env.reset(s), None, jax.random.PRNGKey(0)).action)))
    ref = jax.tree.map(np.asarray, step_fn(jax.tree.map(lambda a: a[:1], scen)).sim_trajectory)
    s0 = to_numpy_scenario(jax.tree.map(lambda a: a[0], jax.vmap(env.reset)(scen)))
    t = env.config.init_steps - 1
    out = numpy_step(s0, t)
    err = np.max(np.where(s0["valid"][:, t], np.hypot(out["x"][:, t + 1] - ref.x[0, :, t + 1],
                                                      out["y"][:, t + 1] - ref.y[0, :, t + 1]), 0))
    assert err < 1e-3, f"NumPy peer disagrees with the JAX step by {err:.3g} m"
    peer_steps, peer_s, peer_cpu = 0, 0.0, 0.0
    reset = jax.vmap(env.reset)(scen)
    for b in range(args.peer_scenarios):
        s = to_numpy_scenario(jax.tree.map(lambda a, b=b: a[b], reset))  # not timed
        tick, ctick = time.perf_counter(), time.process_time()
        for k in range(args.peer_steps):
            out = numpy_step(s, t + k)
            s.update({f: out[f] for f in ("x", "y", "yaw", "vel_x", "vel_y", "valid")})
            peer_steps += 1
        peer_s += time.perf_counter() - tick
        peer_cpu += time.process_time() - ctick
    peer_rate = peer_steps / peer_s

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    print(f"JAX  (jit+vmap+scan): {args.batch} scenarios x {num_steps} steps in {jax_s:.3f}s "
          f"(best of {args.repeats}; compile {compile_s:.1f}s) -> {jax_rate:,.0f} scenario-steps/s")
    print(f"NumPy peer (Python loop over objects): {peer_steps} steps in {peer_s:.3f}s -> "
          f"{peer_rate:,.1f} scenario-steps/s (agrees with JAX to {err:.1e} m)")
    print(f"speed-up: {jax_rate / peer_rate:,.1f}x wall-clock; per CPU-second (all threads): "
          f"{(args.batch * num_steps / jax_cpu) / (peer_steps / peer_cpu):,.1f}x "
          f"(JAX {jax_cpu:.1f} CPU-s, peer {peer_cpu:.2f} CPU-s; on a shared machine the "
          "CPU-second ratio is the steadier number)")


if __name__ == "__main__":
    main()
