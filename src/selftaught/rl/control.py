"""Continuous-control environments whose physical parameters can be perturbed (jittable,
stateless, the same `Step` contract as `rl.envs`: auto-reset, explicit truncation).

    env = make_control_env("Pendulum-v1")
    obs, state = env.reset(key, env.physics)
    st = env.step(key, state, action_in_minus1_1, env.physics)     # rl.envs.Step
    grid = perturbed(env, "l", [0.5, 1.0, 1.5])  # physics dicts with the pole length scaled
    returns = greedy_returns(bind(env, grid[0]), policy, key, num_episodes)  # rl.envs

The physics is a dict of float scalars passed to every reset/step, so it can be traced:
one compiled program evaluates a policy over a whole grid of perturbed physics (vmap),
the generalisation objective of MetaPG (rl.md §4, RWRL-style perturbations).
Actions are in [-1, 1] and scaled by the env (Pendulum: torque x max_torque).

- Pendulum-v1: gymnax's swing-up pendulum; physics g, m (mass), l (length), dt,
  max_torque, max_speed. Returns in about [-1500, -100] over 200 steps.
- CartPoleContinuous: balance a pole on a cart (the gymnax / classic cart-pole equations)
  with a continuous force; physics gravity, masscart, masspole, length (half the pole),
  force_mag, tau. Reward 1 per step, the episode ends when |x| > 2.4 or |theta| > 12 deg.
Invalid physics (a non-positive mass, length, gravity, time step, ...) raises
`PhysicsError` (a ConfigError: one line, exit 2).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.rl.envs import Step


class PhysicsError(ConfigError):
    """Physical parameters that make the simulation meaningless."""


@dataclasses.dataclass(frozen=True)
class ControlEnv:
    """A stateless continuous-control env: reset(key, physics), step(key, state, a, physics)."""

    name: str
    obs_dim: int
    action_dim: int
    max_steps: int
    physics: dict[str, float]  # the default physical parameters (all must stay positive)
    reset: Callable[[jax.Array, Any], tuple[jax.Array, Any]]
    step: Callable[[jax.Array, Any, jax.Array, Any], Step]
    return_range: tuple[float, float]  # (random policy, good policy) for normalisation

    def normalized(self, returns):
        """(return - random) / (good - random): 0 ~ a random policy, 1 ~ a good one."""
        lo, hi = self.return_range
        return (returns - lo) / (hi - lo)


def check_physics(env: ControlEnv, physics: dict[str, float]) -> dict[str, float]:
    """Validate a physics dict (host-side floats); returns it with every field present."""
    unknown = sorted(set(physics) - set(env.physics))
    if unknown:
        raise PhysicsError(f"{env.name} has no physical parameter {unknown[0]!r}; "
                           f"perturb one of {', '.join(env.physics)}")
    full = {**env.physics, **{k: float(v) for k, v in physics.items()}}
    for k, v in full.items():
        if not (math.isfinite(v) and v > 0):
            raise PhysicsError(f"{env.name}: physical parameter {k}={v} must be a positive "
                               f"finite number (default {env.physics[k]}); narrow the "
                               "perturbation range")
    return full


def perturbed(env: ControlEnv, name: str, scales) -> list[dict[str, float]]:
    """Physics dicts with parameter `name` multiplied by each of `scales` (validated)."""
    if name not in env.physics:
        raise PhysicsError(f"{env.name} has no physical parameter {name!r}; "
                           f"perturb one of {', '.join(env.physics)}")
    return [check_physics(env, {name: env.physics[name] * float(s)}) for s in scales]


def stack_physics(physics: list[dict[str, float]]) -> dict[str, jax.Array]:
    """A list of physics dicts as one dict of [N] float32 arrays (to vmap over)."""
    return {k: jnp.asarray([p[k] for p in physics], jnp.float32) for k in physics[0]}


def _with_autoreset(reset, dynamics, limit):
    """step(): one transition of `dynamics`, truncation at `limit` steps, auto-reset."""

    def step(key, state, action, physics):
        k_step, k_reset = jax.random.split(key)
        next_obs, next_state, reward, terminated = dynamics(k_step, state, action, physics)
        truncated = jnp.logical_and(next_state["time"] >= limit, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        reset_obs, reset_state = reset(k_reset, physics)
        new_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
        obs = jnp.where(done, reset_obs, next_obs)
        return Step(obs, new_state, jnp.asarray(reward, jnp.float32), terminated, truncated,
                    next_obs)

    return step


# ---------------------------------------------------------------- Pendulum (gymnax)
PENDULUM = {"g": 10.0, "m": 1.0, "l": 1.0, "dt": 0.05, "max_torque": 2.0, "max_speed": 8.0}


def _pendulum(max_steps: int) -> ControlEnv:
    from selftaught.rl.envs import _import_gymnax

    genv, base = _import_gymnax().make("Pendulum-v1")

    def params_of(physics):
        return base.replace(**{k: physics[k] for k in PENDULUM})

    def to_dict(state):
        return {"theta": state.theta, "theta_dot": state.theta_dot, "last_u": state.last_u,
                "time": jnp.asarray(state.time, jnp.int32)}

    state_type = type(genv.reset_env(jax.random.PRNGKey(0), base)[1])

    def from_dict(d):
        return state_type(**d)

    def reset(key, physics):
        obs, state = genv.reset_env(key, params_of(physics))
        return obs.astype(jnp.float32), to_dict(state)

    def dynamics(key, state, action, physics):
        p = params_of(physics)
        torque = jnp.clip(action[0], -1.0, 1.0) * p.max_torque
        obs, st, reward, _, _ = genv.step_env(key, from_dict(state), torque, p)
        return obs.astype(jnp.float32), to_dict(st), reward, jnp.asarray(False)

    return ControlEnv("Pendulum-v1", 3, 1, max_steps, dict(PENDULUM), reset,
                      _with_autoreset(reset, dynamics, max_steps), (-1250.0, -150.0))


# ---------------------------------------------------------------- continuous cart-pole
CARTPOLE = {"gravity": 9.8, "masscart": 1.0, "masspole": 0.1, "length": 0.5,
            "force_mag": 10.0, "tau": 0.02}
X_LIMIT, THETA_LIMIT = 2.4, 12 * 2 * math.pi / 360


def _cartpole(max_steps: int) -> ControlEnv:
    def obs_of(s):
        return jnp.stack([s["x"], s["x_dot"], s["theta"], s["theta_dot"]]).astype(jnp.float32)

    def reset(key, physics):
        v = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
        s = {"x": v[0], "x_dot": v[1], "theta": v[2], "theta_dot": v[3],
             "time": jnp.int32(0)}
        return obs_of(s), s

    def dynamics(key, s, action, p):
        force = jnp.clip(action[0], -1.0, 1.0) * p["force_mag"]
        total_mass = p["masscart"] + p["masspole"]
        pml = p["masspole"] * p["length"]
        cos, sin = jnp.cos(s["theta"]), jnp.sin(s["theta"])
        temp = (force + pml * s["theta_dot"] ** 2 * sin) / total_mass
        theta_acc = (p["gravity"] * sin - cos * temp) / (
            p["length"] * (4.0 / 3.0 - p["masspole"] * cos**2 / total_mass))
        x_acc = temp - pml * theta_acc * cos / total_mass
        dt = p["tau"]  # explicit Euler, as in gym / gymnax
        n = {"x": s["x"] + dt * s["x_dot"], "x_dot": s["x_dot"] + dt * x_acc,
             "theta": s["theta"] + dt * s["theta_dot"],
             "theta_dot": s["theta_dot"] + dt * theta_acc, "time": s["time"] + 1}
        terminated = (jnp.abs(n["x"]) > X_LIMIT) | (jnp.abs(n["theta"]) > THETA_LIMIT)
        return obs_of(n), n, jnp.float32(1.0), terminated

    return ControlEnv("CartPoleContinuous", 4, 1, max_steps, dict(CARTPOLE), reset,
                      _with_autoreset(reset, dynamics, max_steps), (20.0, float(max_steps)))


CONTROL_ENVS: dict[str, tuple[Callable[[int], ControlEnv], int]] = {
    "Pendulum-v1": (_pendulum, 200),
    "CartPoleContinuous": (_cartpole, 200),
}


def make_control_env(name: str, max_steps: int | None = None) -> ControlEnv:
    """The named env; `max_steps` overrides its episode time limit."""
    if name not in CONTROL_ENVS:
        raise UnknownNameError("continuous-control environment", name, list(CONTROL_ENVS))
    build, default = CONTROL_ENVS[name]
    return build(int(max_steps or default))


@dataclasses.dataclass(frozen=True)
class Bound:
    """A ControlEnv with its physics fixed (possibly traced): reset(key), step(key, state,
    action), like `rl.envs.Env`, so `rl.envs.greedy_returns` evaluates a policy on it."""

    env: ControlEnv
    physics: Any

    @property
    def max_steps(self) -> int:
        return self.env.max_steps

    def reset(self, key):
        return self.env.reset(key, self.physics)

    def step(self, key, state, action):
        return self.env.step(key, state, action, self.physics)


def bind(env: ControlEnv, physics: Any = None) -> Bound:
    """`env` under `physics` (default: its own)."""
    return Bound(env, env.physics if physics is None else physics)
