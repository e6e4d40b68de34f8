"""Dynamics models: an action of each controlled object -> its next state.

Every model has `action_spec()` (shape, low, high or number of discrete actions),
`compute_update(action, current)` (the next state from a [..., O, 1] trajectory slice),
`inverse_step(current, nxt)` (the action that takes `current` to `nxt`, both [..., O, 1]),
`inverse(trajectory, timestep)` (the action between steps t and t+1 of a trajectory), and
the shared `forward(...)`, which moves controlled objects by their action and lets every
other object follow the log.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.sim.driving.datatypes import DT, Action, Trajectory, TrajectoryUpdate


def wrap_angle(a):
    """Angle wrapped to [-pi, pi)."""
    return (a + jnp.pi) % (2 * jnp.pi) - jnp.pi


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    shape: tuple[int, ...]
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    num_actions: int | None = None  # set for discrete specs


def _sq(traj: Trajectory):
    """Current-state fields [..., O] from a [..., O, 1] slice."""
    return jax.tree.map(lambda a: a[..., 0], traj)


class DynamicsModel:
    def action_spec(self) -> ActionSpec:
        raise NotImplementedError

    def compute_update(self, action: Action, current: Trajectory) -> TrajectoryUpdate:
        raise NotImplementedError

    def inverse_step(self, current: Trajectory, nxt: Trajectory) -> Action:
        raise NotImplementedError

    def inverse(self, trajectory: Trajectory, timestep) -> Action:
        """The action taking each object from step `timestep` to `timestep + 1` of the log."""
        return self.inverse_step(trajectory.at(timestep), trajectory.at(timestep + 1))

    def forward(
        self,
        action: Action,
        trajectory: Trajectory,
        reference_trajectory: Trajectory,
        is_controlled: jax.Array,
        timestep,
        allow_object_injection: bool = True,
    ) -> Trajectory:
        """Write step timestep+1: controlled objects move by `action`, others copy the log."""
        update = self.compute_update(action, trajectory.at(timestep))
        return apply_update(trajectory, reference_trajectory, update, is_controlled, timestep,
                            allow_object_injection)  # fmt: skip


def apply_update(
    trajectory: Trajectory,
    reference_trajectory: Trajectory,
    update: TrajectoryUpdate,
    is_controlled: jax.Array,
    timestep,
    allow_object_injection: bool = True,
) -> Trajectory:
    """Step timestep+1 of `trajectory`, with Waymax's validity rule.

    - x, y, yaw, vel_x, vel_y: `update` where `is_controlled`, the log's next step elsewhere.
    - valid: a controlled object that exists now stays valid (whatever its action's
      validity: an expert whose log ends coasts on, as in Waymax); every other object takes
      `valid_now & log_next.valid`, or with `allow_object_injection` (Waymax's default
      `allow_new_objects_after_warmup=True`) `log_next.valid`, so objects whose log starts
      after the warm-up appear.
    - z, length, width, height: kept from the current sim step (Waymax keeps box sizes and z
      constant during simulation), timestamp from the log.
    - An injected object (invalid now, valid in the log's next step) enters at its logged
      next state, controlled or not. Waymax writes the controller's output here, which it
      computed from the placeholder values of an invalid state; entering at the log is the
      deliberate difference.
    """
    cur = _sq(trajectory.at(timestep))
    log_next = _sq(reference_trajectory.at(timestep + 1))
    ctrl = is_controlled
    exists_ctrl = ctrl & cur.valid
    if allow_object_injection:
        valid = exists_ctrl | (~exists_ctrl & log_next.valid)
    else:
        valid = exists_ctrl | (cur.valid & log_next.valid)
    use_upd = exists_ctrl  # controlled but not yet present objects enter at the log
    keep = cur.valid  # z and box sizes: current sim values, the log's for injected objects
    new = dataclasses.replace(
        log_next,
        x=jnp.where(use_upd, update.x, log_next.x),
        y=jnp.where(use_upd, update.y, log_next.y),
        yaw=jnp.where(use_upd, update.yaw, log_next.yaw),
        vel_x=jnp.where(use_upd, update.vel_x, log_next.vel_x),
        vel_y=jnp.where(use_upd, update.vel_y, log_next.vel_y),
        valid=valid,
        z=jnp.where(keep, cur.z, log_next.z),
        length=jnp.where(keep, cur.length, log_next.length),
        width=jnp.where(keep, cur.width, log_next.width),
        height=jnp.where(keep, cur.height, log_next.height),
    )
    return jax.tree.map(
        lambda full, v: jax.lax.dynamic_update_slice_in_dim(
            full, v[..., None].astype(full.dtype), timestep + 1, axis=full.ndim - 1
        ),
        trajectory,
        new,
    )


def _valid_pair(current: Trajectory, nxt: Trajectory) -> jax.Array:
    return (current.valid & nxt.valid)[..., 0][..., None]


# --------------------------------------------------------------------------- bicycle
@dataclasses.dataclass(frozen=True)
class InvertibleBicycleModel(DynamicsModel):
    """Action (acceleration a, curvature kappa), clipped to |a| <= max_accel, |k| <= max_curv.

    x' = x + vx t + a cos(yaw) t^2 / 2;  y' = y + vy t + a sin(yaw) t^2 / 2
    yaw' = wrap(yaw + k (v t + a t^2 / 2));  v' = v + a t;  (vx', vy') = v' (cos yaw', sin yaw')
    """

    max_accel: float = 6.0
    max_curvature: float = 0.3
    dt: float = DT
    min_speed_for_curvature: float = 0.6
    estimate_yaw_with_velocity: bool = True
    """Waymax's default: the inverse takes the next heading from the direction of the next
    velocity (less noisy than logged box yaw on real data), falling back to the logged yaw
    when the next speed is <= 0.6 m/s. False: always the logged yaw (the earlier behaviour)."""

    def action_spec(self) -> ActionSpec:
        return ActionSpec(
            (2,), (-self.max_accel, -self.max_curvature), (self.max_accel, self.max_curvature)
        )

    def compute_update(self, action: Action, current: Trajectory) -> TrajectoryUpdate:
        c = _sq(current)
        a = jnp.clip(action.data[..., 0], -self.max_accel, self.max_accel)
        k = jnp.clip(action.data[..., 1], -self.max_curvature, self.max_curvature)
        t = self.dt
        v = jnp.sqrt(c.vel_x**2 + c.vel_y**2)
        x = c.x + c.vel_x * t + 0.5 * a * jnp.cos(c.yaw) * t**2
        y = c.y + c.vel_y * t + 0.5 * a * jnp.sin(c.yaw) * t**2
        yaw = wrap_angle(c.yaw + k * (v * t + 0.5 * a * t**2))
        v1 = v + a * t
        return TrajectoryUpdate(
            x=x, y=y, yaw=yaw, vel_x=v1 * jnp.cos(yaw), vel_y=v1 * jnp.sin(yaw),
            valid=action.valid[..., 0] & c.valid,
        )  # fmt: skip

    def raw_inverse_step(self, current: Trajectory, nxt: Trajectory) -> tuple:
        """Unclipped (a, kappa) between two [..., O, 1] states (Waymax's inverse):
        a = (v1 - v0) / dt; kappa = wrap(yaw1' - wrap(yaw0)) / (v0 dt + a dt^2 / 2) with
        yaw1' = atan2(vy1, vx1) when v1 > 0.6 (see `estimate_yaw_with_velocity`), else the
        logged yaw1; kappa = 0 when v0 or v1 < 0.6."""
        c, n = _sq(current), _sq(nxt)
        t = self.dt
        v0 = jnp.sqrt(c.vel_x**2 + c.vel_y**2)
        v1 = jnp.sqrt(n.vel_x**2 + n.vel_y**2)
        a = (v1 - v0) / t
        yaw1 = wrap_angle(n.yaw)
        if self.estimate_yaw_with_velocity:
            yaw1 = jnp.where(v1 <= self.min_speed_for_curvature, yaw1,
                             jnp.arctan2(n.vel_y, n.vel_x))  # fmt: skip
        denom = v0 * t + 0.5 * a * t**2
        slow = (v0 < self.min_speed_for_curvature) | (v1 < self.min_speed_for_curvature)
        k = jnp.where(slow, 0.0, wrap_angle(yaw1 - wrap_angle(c.yaw)) / jnp.where(slow, 1.0, denom))
        return a, k

    def inverse_step(self, current: Trajectory, nxt: Trajectory) -> Action:
        """The clipped action; zero where either state is invalid (as in Waymax)."""
        a, k = self.raw_inverse_step(current, nxt)
        valid = _valid_pair(current, nxt)
        data = jnp.where(valid, jnp.stack([a, k], axis=-1), 0.0)
        data = jnp.clip(data, jnp.array([-self.max_accel, -self.max_curvature]),
                        jnp.array([self.max_accel, self.max_curvature]))  # fmt: skip
        return Action(data=data, valid=valid)


# --------------------------------------------------------------------------- deltas / state
@dataclasses.dataclass(frozen=True)
class DeltaGlobal(DynamicsModel):
    """Action (dx, dy, dyaw) in the world frame; the velocity becomes (dx, dy) / dt.

    As in Waymax, the inverse clips (dx, dy) to the action spec and wraps dyaw, and its
    action is zero where either state is invalid. `clip_forward` (default False, Waymax's
    behaviour) also clips actions in the forward model, bounding what a policy can do."""

    dt: float = DT
    max_delta: float = 6.0
    clip_forward: bool = False
    """Clip (dx, dy) to +-max_delta and wrap dyaw in compute_update too (Waymax applies
    the action as given)."""

    def action_spec(self) -> ActionSpec:
        m = self.max_delta
        return ActionSpec((3,), (-m, -m, -np.pi), (m, m, np.pi))

    def _clip(self, d):
        m = self.max_delta
        return jnp.stack([jnp.clip(d[..., 0], -m, m), jnp.clip(d[..., 1], -m, m),
                          wrap_angle(d[..., 2])], axis=-1)  # fmt: skip

    def _global_delta(self, action: Action, c: Trajectory):
        d = self._clip(action.data) if self.clip_forward else action.data
        return d[..., 0], d[..., 1], d[..., 2]

    def compute_update(self, action: Action, current: Trajectory) -> TrajectoryUpdate:
        c = _sq(current)
        dx, dy, dyaw = self._global_delta(action, c)
        return TrajectoryUpdate(
            x=c.x + dx, y=c.y + dy, yaw=wrap_angle(c.yaw + dyaw),
            vel_x=dx / self.dt, vel_y=dy / self.dt, valid=action.valid[..., 0] & c.valid,
        )  # fmt: skip

    def _to_action(self, c, dx, dy, dyaw) -> jax.Array:
        return jnp.stack([dx, dy, dyaw], axis=-1)

    def inverse_step(self, current: Trajectory, nxt: Trajectory) -> Action:
        c, n = _sq(current), _sq(nxt)
        valid = _valid_pair(current, nxt)
        z = lambda a: jnp.where(valid[..., 0], a, 0.0)  # noqa: E731
        data = self._to_action(c, z(n.x - c.x), z(n.y - c.y), z(wrap_angle(n.yaw - c.yaw)))
        return Action(data=self._clip(data), valid=valid)


@dataclasses.dataclass(frozen=True)
class DeltaLocal(DeltaGlobal):
    """Action (dx, dy, dyaw) in the object's own frame (rotated by its current yaw)."""

    def _global_delta(self, action: Action, c: Trajectory):
        dxl, dyl, dyaw = super()._global_delta(action, c)
        cs, sn = jnp.cos(c.yaw), jnp.sin(c.yaw)
        return dxl * cs - dyl * sn, dxl * sn + dyl * cs, dyaw

    def _to_action(self, c, dx, dy, dyaw) -> jax.Array:
        cs, sn = jnp.cos(c.yaw), jnp.sin(c.yaw)
        return jnp.stack([dx * cs + dy * sn, -dx * sn + dy * cs, dyaw], axis=-1)


@dataclasses.dataclass(frozen=True)
class StateDynamics(DynamicsModel):
    """Action = the next state (x, y, yaw, vel_x, vel_y) itself; the inverse's validity is
    the next state's (as in Waymax: a state action needs no current state)."""

    def action_spec(self) -> ActionSpec:
        return ActionSpec((5,))

    def compute_update(self, action: Action, current: Trajectory) -> TrajectoryUpdate:
        d = action.data
        return TrajectoryUpdate(
            x=d[..., 0], y=d[..., 1], yaw=d[..., 2], vel_x=d[..., 3], vel_y=d[..., 4],
            valid=action.valid[..., 0],
        )  # fmt: skip

    def inverse_step(self, current: Trajectory, nxt: Trajectory) -> Action:
        n = _sq(nxt)
        data = jnp.stack([n.x, n.y, n.yaw, n.vel_x, n.vel_y], axis=-1)
        return Action(data=data, valid=n.valid[..., None])


def update_to_action(update: TrajectoryUpdate) -> Action:
    """A TrajectoryUpdate as a StateDynamics action."""
    data = jnp.stack([update.x, update.y, update.yaw, update.vel_x, update.vel_y], axis=-1)
    return Action(data=data, valid=update.valid[..., None])


# --------------------------------------------------------------------------- discretizer
@dataclasses.dataclass(frozen=True)
class DiscreteActionSpaceWrapper(DynamicsModel):
    """Uniform bins per action dimension; an action is one flat bin index [..., O, 1]."""

    dynamics_model: DynamicsModel
    bins: tuple[int, ...]

    def __post_init__(self):
        spec = self.dynamics_model.action_spec()
        if spec.low is None or len(self.bins) != spec.shape[0]:
            raise ValueError("discretizing needs a bounded model and one bin count per dimension")

    def _grid(self):
        spec = self.dynamics_model.action_spec()
        return [
            jnp.linspace(lo, hi, n, dtype=jnp.float32)
            for lo, hi, n in zip(spec.low, spec.high, self.bins)
        ]

    def action_spec(self) -> ActionSpec:
        return ActionSpec((1,), num_actions=int(np.prod(self.bins)))

    def to_continuous(self, action: Action) -> Action:
        idx = action.data[..., 0].astype(jnp.int32)
        coords = jnp.unravel_index(idx, self.bins)
        data = jnp.stack([g[c] for g, c in zip(self._grid(), coords)], axis=-1)
        return Action(data=data, valid=action.valid)

    def to_discrete(self, action: Action) -> Action:
        coords = []
        for i, g in enumerate(self._grid()):
            coords.append(jnp.argmin(jnp.abs(action.data[..., i : i + 1] - g), axis=-1))
        idx = jnp.ravel_multi_index(tuple(coords), self.bins, mode="clip")
        return Action(data=idx[..., None].astype(jnp.int32), valid=action.valid)

    def compute_update(self, action: Action, current: Trajectory) -> TrajectoryUpdate:
        return self.dynamics_model.compute_update(self.to_continuous(action), current)

    def inverse_step(self, current: Trajectory, nxt: Trajectory) -> Action:
        return self.to_discrete(self.dynamics_model.inverse_step(current, nxt))


DYNAMICS = {
    "bicycle": InvertibleBicycleModel,
    "delta_global": DeltaGlobal,
    "delta_local": DeltaLocal,
    "state": StateDynamics,
}
