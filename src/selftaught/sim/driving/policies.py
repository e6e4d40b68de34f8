"""Learned planning policies for the SDC: observation features, behaviour cloning (delta and
discretised-bicycle actions) and a simple RL planner (CEM policy search over the
parameters of a route-following IDM controller). Everything acts on one scenario and is
vmapped over batches; training loops are lax.scan chunks.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from selftaught.sim.driving import agents as ag
from selftaught.sim.driving import dynamics as dyn
from selftaught.sim.driving import env as envlib
from selftaught.sim.driving.datatypes import SimulatorState

K_ROUTE, ROUTE_STRIDE, K_OBJ, K_EDGE = 10, 3, 6, 8
OBS_DIM = 3 + 2 * K_ROUTE + 7 * K_OBJ + 2 * K_EDGE + 3


def observe(state: SimulatorState, use_route: bool = True) -> jax.Array:
    """SDC-centric features [OBS_DIM]: ego speed/accel/yaw-rate, the on-route path ahead
    (zeros when use_route is False), the nearest objects, the nearest road-edge points and
    the nearest traffic light ahead (position, red or not)."""
    traj, t = state.sim_trajectory, state.timestep
    sdc = jnp.argmax(state.object_metadata.is_sdc)
    x0, y0, yaw0 = traj.x[sdc, t], traj.y[sdc, t], traj.yaw[sdc, t]
    cs, sn = jnp.cos(yaw0), jnp.sin(yaw0)

    def local(px, py):
        dx, dy = px - x0, py - y0
        return dx * cs + dy * sn, -dx * sn + dy * cs

    speed = jnp.hypot(traj.vel_x[sdc, t], traj.vel_y[sdc, t])
    tp = jnp.maximum(t - 1, 0)
    speed_p = jnp.hypot(traj.vel_x[sdc, tp], traj.vel_y[sdc, tp])
    yaw_rate = dyn.wrap_angle(yaw0 - traj.yaw[sdc, tp])
    ego = jnp.stack([speed / 10.0, (speed - speed_p) / 0.1 / 5.0, yaw_rate * 10.0])
    # route ahead
    paths = state.sdc_paths
    k = jnp.argmax(paths.on_route)
    px, py, pv = paths.x[k], paths.y[k], paths.valid[k]
    i = jnp.argmin(jnp.where(pv, (px - x0) ** 2 + (py - y0) ** 2, 1e12))
    last = jnp.max(jnp.where(pv, jnp.arange(px.shape[0]), 0))
    idx = jnp.minimum(i + ROUTE_STRIDE * jnp.arange(1, K_ROUTE + 1), last)
    rx, ry = local(px[idx], py[idx])
    route = jnp.concatenate([rx, ry]) / 20.0
    route = route * (1.0 if use_route else 0.0)
    # nearest objects
    ox, oy = local(traj.x[:, t], traj.y[:, t])
    ovx = traj.vel_x[:, t] * cs + traj.vel_y[:, t] * sn
    ovy = -traj.vel_x[:, t] * sn + traj.vel_y[:, t] * cs
    dyaw = traj.yaw[:, t] - yaw0
    ok = traj.valid[:, t] & (jnp.arange(traj.x.shape[0]) != sdc)
    d2 = jnp.where(ok, ox**2 + oy**2, 1e12)
    _, j = jax.lax.top_k(-d2, K_OBJ)
    okj = ok[j] & (d2[j] < 60.0**2)
    objs = jnp.stack([ox[j] / 30, oy[j] / 30, ovx[j] / 10, ovy[j] / 10, jnp.cos(dyaw[j]),
                      jnp.sin(dyaw[j]), okj.astype(jnp.float32)], -1)  # fmt: skip
    objs = jnp.where(okj[:, None], objs, 0.0).reshape(-1)
    # nearest road-edge points
    rg = state.roadgraph_points
    ex, ey = local(rg.x, rg.y)
    e2 = jnp.where(rg.is_road_edge, ex**2 + ey**2, 1e12)
    _, je = jax.lax.top_k(-e2, K_EDGE)
    edges = jnp.where((e2[je] < 1e11)[:, None], jnp.stack([ex[je], ey[je]], -1) / 20.0, 0.0)
    # nearest traffic light ahead (within 60 m, in front)
    tl = state.log_traffic_light
    lx, ly = local(tl.x[:, t], tl.y[:, t])
    l2 = jnp.where(tl.valid[:, t] & (lx > -2.0), lx**2 + ly**2, 1e12)
    jl = jnp.argmin(l2)
    has = l2[jl] < 60.0**2
    red = jnp.isin(tl.state[jl, t], jnp.array([1, 4, 7]))
    light = jnp.where(has, jnp.stack([lx[jl] / 30, ly[jl] / 30, red.astype(jnp.float32)]), 0.0)
    return jnp.concatenate([ego, route, objs, edges.reshape(-1), light])


class MLP(nn.Module):
    hidden: int
    out: int

    @nn.compact
    def __call__(self, obs_BxD):
        h = nn.relu(nn.Dense(self.hidden)(obs_BxD))
        h = nn.relu(nn.Dense(self.hidden)(h))
        return nn.Dense(self.out)(h)


# --------------------------------------------------------------------------- behaviour cloning
@dataclasses.dataclass(frozen=True)
class BCSpec:
    """What a BC policy predicts: 'delta' (DeltaLocal dx, dy, dyaw regression) or 'bicycle'
    (discretised acceleration x curvature bins, classification)."""

    kind: str = "bicycle"
    use_route: bool = True
    accel_bins: int = 13
    curvature_bins: int = 41
    hidden: int = 128

    def dynamics(self) -> dyn.DynamicsModel:
        if self.kind == "delta":
            return dyn.DeltaLocal()
        return dyn.DiscreteActionSpaceWrapper(
            dyn.InvertibleBicycleModel(), (self.accel_bins, self.curvature_bins)
        )

    @property
    def out_dim(self) -> int:
        return 3 if self.kind == "delta" else self.accel_bins + self.curvature_bins


DELTA_SCALE = jnp.array([2.0, 0.2, 0.1])


def expert_targets(spec: BCSpec, state: SimulatorState) -> jax.Array:
    """The SDC's expert action at state.timestep in the policy's action space."""
    sdc = jnp.argmax(state.object_metadata.is_sdc)
    if spec.kind == "delta":
        a = dyn.DeltaLocal().inverse(state.log_trajectory, state.timestep)
        return a.data[sdc] / DELTA_SCALE
    a = dyn.InvertibleBicycleModel().inverse(state.log_trajectory, state.timestep)
    disc = spec.dynamics().to_discrete(a).data[sdc, 0]
    ia, ik = jnp.unravel_index(disc, (spec.accel_bins, spec.curvature_bins))
    return jnp.stack([ia, ik]).astype(jnp.float32)


def bc_dataset(spec: BCSpec, scenarios: SimulatorState, init_steps: int = 11):
    """(obs [N, D], target [N, k]) at every logged step t in [init_steps-1, T-2]."""
    T = scenarios.log_trajectory.x.shape[-1]
    ts = jnp.arange(init_steps - 1, T - 1)

    def one(s, t):
        st = s.replace(sim_trajectory=s.log_trajectory, timestep=t)
        valid = s.log_trajectory.valid[jnp.argmax(s.object_metadata.is_sdc), t + 1]
        return observe(st, spec.use_route), expert_targets(spec, st), valid

    f = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))
    obs, tgt, valid = f(scenarios, ts)
    return obs.reshape(-1, OBS_DIM), tgt.reshape(obs.shape[0] * obs.shape[1], -1), valid.reshape(-1)


def bc_loss(spec: BCSpec, model: MLP, params, obs, tgt, w):
    out = model.apply(params, obs)
    if spec.kind == "delta":
        per = jnp.sum((out - tgt) ** 2, -1)
    else:
        la, lk = out[:, : spec.accel_bins], out[:, spec.accel_bins :]
        ia, ik = tgt[:, 0].astype(jnp.int32), tgt[:, 1].astype(jnp.int32)
        per = optax.softmax_cross_entropy_with_integer_labels(la, ia)
        per = per + optax.softmax_cross_entropy_with_integer_labels(lk, ik)
    return jnp.sum(per * w) / jnp.maximum(jnp.sum(w), 1.0)


def make_bc_train(spec: BCSpec, obs, tgt, valid, *, steps: int, batch: int, lr: float):
    """Returns (model, init(rng), train_chunk(params, opt_state, rng), chunk): each call of
    the jitted train_chunk runs `chunk` Adam steps as one lax.scan (a progress-bar tick)."""
    model = MLP(spec.hidden, spec.out_dim)
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, 0.05))
    w_all = valid.astype(jnp.float32)

    def init(rng):
        params = model.init(rng, jnp.zeros((1, OBS_DIM)))
        return params, opt.init(params)

    def step(carry, key):
        params, opt_state = carry
        i = jax.random.randint(key, (batch,), 0, obs.shape[0])
        loss, g = jax.value_and_grad(lambda p: bc_loss(spec, model, p, obs[i], tgt[i],
                                                       w_all[i]))(params)  # fmt: skip
        upd, opt_state = opt.update(g, opt_state, params)
        return (optax.apply_updates(params, upd), opt_state), loss

    chunk = max(1, steps // 10)

    @jax.jit
    def train_chunk(params, opt_state, rng):
        keys = jax.random.split(rng, chunk)
        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), keys)
        return params, opt_state, losses

    return model, init, train_chunk, chunk


def bc_policy_fn(spec: BCSpec, model: MLP):
    """policy_fn(params, state, rng) -> SDC action data in spec.dynamics()'s space."""

    def policy(params, state, rng):
        out = model.apply(params, observe(state, spec.use_route)[None])[0]
        if spec.kind == "delta":
            return out * DELTA_SCALE
        ia = jnp.argmax(out[: spec.accel_bins])
        ik = jnp.argmax(out[spec.accel_bins :])
        return (ia * spec.curvature_bins + ik)[None].astype(jnp.int32)

    return policy


# --------------------------------------------------------------------------- RL planner
RL_LOW = jnp.array([3.0, 0.5, 1.0, 0.5, 1.0])  # v0, T, s0, a_max, b
RL_HIGH = jnp.array([20.0, 3.0, 8.0, 4.0, 8.0])


def rl_params_to_idm(theta) -> ag.IDMParams:
    """theta in [0, 1]^5 -> IDM parameters (a pytree-friendly IDMParams of traced floats)."""
    v = RL_LOW + jnp.clip(theta, 0.0, 1.0) * (RL_HIGH - RL_LOW)
    return ag.IDMParams(desired_speed=v[0], time_headway=v[1], min_gap=v[2], max_accel=v[3],
                        comfort_decel=v[4])  # fmt: skip


def rl_policy_actor(dynamics: dyn.DynamicsModel) -> ag.Actor:
    """The RL planner's actor: IDM route following along the on-route path with learned
    parameters (params = theta), reached through the dynamics inverse."""

    def select_action(theta, state, actor_state, rng):
        upd = ag.sdc_route_update(state, rl_params_to_idm(theta))
        cur = state.current_sim_trajectory
        nxt = jax.tree.map(lambda a: a[..., None], ag._update_as_traj(cur, upd))
        return ag.ActorOutput(actor_state, dynamics.inverse_step(cur, nxt),
                              state.object_metadata.is_sdc)  # fmt: skip

    return ag.Actor(lambda rng, state: None, select_action, "rl_planner")


def episode_score(summary: dict) -> jax.Array:
    """The RL objective per episode: route progress minus 2 x (collision or off-road)."""
    fail = jnp.maximum(summary["overlap"], summary["offroad"])
    return jnp.clip(summary["route_progress"], 0.0, 1.5) - 2.0 * fail


def make_cem_train(env: envlib.MultiAgentEnv, scenarios: SimulatorState, *, population: int,
                   elite: int, iterations: int):  # fmt: skip
    """Cross-entropy method over theta; returns one_iteration(mean, std, rng) jitted."""
    actor = rl_policy_actor(env.dynamics)

    def score(theta, s, key):
        _, m, r = envlib.rollout(env, s, actor, theta, key)
        return episode_score(envlib.summarize(m, r, s.object_metadata.is_sdc))

    def scores(thetas, key):
        n = scenarios.timestep.shape[0]
        keys = jax.random.split(key, n)
        per = jax.vmap(lambda th: jax.vmap(score, in_axes=(None, 0, 0))(th, scenarios, keys))(
            thetas
        )
        return per.mean(axis=1)

    @jax.jit
    def one_iteration(mean, std, rng):
        k1, k2 = jax.random.split(rng)
        thetas = jnp.clip(mean + std * jax.random.normal(k1, (population, mean.shape[0])), 0, 1)
        thetas = thetas.at[0].set(mean)
        sc = scores(thetas, k2)
        top = jnp.argsort(-sc)[:elite]
        new_mean = thetas[top].mean(0)
        new_std = jnp.maximum(thetas[top].std(0), 0.02)
        return new_mean, new_std, sc

    return one_iteration
