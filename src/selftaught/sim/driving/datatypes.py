"""Immutable pytree datatypes of the driving simulator (Waymax-style).

Every dataclass is a `flax.struct.dataclass`, so it passes through `jit`, `vmap` and
`lax.scan`. Fields share trailing shapes (objects x time, points, ...) and may carry any
leading batch dimensions. `validate()` checks that the fields agree; it runs on
construction whenever all fields are concrete arrays (it is skipped for the placeholder
leaves JAX uses while tracing).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

DT = 0.1  # seconds per step
NUM_PAST, NUM_FUTURE = 10, 80
NUM_TIMESTEPS = NUM_PAST + 1 + NUM_FUTURE  # 91
INIT_STEPS = NUM_PAST + 1  # reset replays 10 history + current

VEHICLE, PEDESTRIAN, CYCLIST = 1, 2, 3
LANE_FREEWAY, LANE_SURFACE, LANE_BIKE = 1, 2, 3
ROAD_EDGE_BOUNDARY, ROAD_EDGE_MEDIAN = 15, 16
ROAD_EDGE_TYPES = (ROAD_EDGE_BOUNDARY, ROAD_EDGE_MEDIAN)
LIGHT_UNKNOWN, LIGHT_STOP, LIGHT_GO = 0, 4, 6  # WOMD: 4 = LANE_STATE_STOP, 6 = GO


def _is_concrete(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, jax.Array)) and not isinstance(
        x, jax.core.Tracer
    )


def _check_same_shape(obj: Any, names: tuple[str, ...], what: str) -> None:
    shapes = {n: tuple(getattr(obj, n).shape) for n in names}
    ref = shapes[names[0]]
    bad = {n: s for n, s in shapes.items() if s != ref}
    if bad:
        raise ValueError(f"{what}: fields must share shape {ref} ({names[0]}), got {bad}")


class _Validated:
    _shape_fields: tuple[str, ...] = ()

    def __post_init__(self):
        leaves = [getattr(self, f) for f in self._shape_fields]
        if leaves and all(_is_concrete(x) for x in leaves):
            self.validate()

    def validate(self) -> None:
        _check_same_shape(self, self._shape_fields, type(self).__name__)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(getattr(self, self._shape_fields[0]).shape)


@struct.dataclass
class Trajectory(_Validated):
    """Object states over time, fields [..., objects, T]."""

    x: jax.Array
    y: jax.Array
    z: jax.Array
    vel_x: jax.Array
    vel_y: jax.Array
    yaw: jax.Array
    valid: jax.Array
    timestamp_micros: jax.Array
    length: jax.Array
    width: jax.Array
    height: jax.Array

    _shape_fields = (
        "x", "y", "z", "vel_x", "vel_y", "yaw", "valid", "timestamp_micros",
        "length", "width", "height",
    )  # fmt: skip

    @property
    def num_objects(self) -> int:
        return self.shape[-2]

    @property
    def num_timesteps(self) -> int:
        return self.shape[-1]

    @property
    def xy(self) -> jax.Array:
        return jnp.stack([self.x, self.y], axis=-1)

    @property
    def vel_xy(self) -> jax.Array:
        return jnp.stack([self.vel_x, self.vel_y], axis=-1)

    @property
    def speed(self) -> jax.Array:
        return jnp.sqrt(self.vel_x**2 + self.vel_y**2)

    def at(self, t) -> Trajectory:
        """The states at timestep `t` (a traced scalar is fine), keeping a T axis of 1."""
        return jax.tree.map(
            lambda a: jax.lax.dynamic_slice_in_dim(a, t, 1, axis=a.ndim - 1), self
        )

    def bbox_corners(self) -> jax.Array:
        """Box corners [..., objects, T, 4, 2] (counter-clockwise from front-left)."""
        return box_corners(self.x, self.y, self.yaw, self.length, self.width)

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> Trajectory:
        f = jnp.zeros(shape, jnp.float32)
        return cls(
            x=f, y=f, z=f, vel_x=f, vel_y=f, yaw=f, valid=jnp.zeros(shape, bool),
            timestamp_micros=jnp.zeros(shape, jnp.int32), length=f, width=f, height=f,
        )  # fmt: skip


def box_corners(x, y, yaw, length, width) -> jax.Array:
    """Corners [..., 4, 2] of oriented boxes centred at (x, y)."""
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    hl, hw = length / 2, width / 2
    signs = jnp.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])
    lx = signs[:, 0] * hl[..., None]
    ly = signs[:, 1] * hw[..., None]
    cx = x[..., None] + lx * c[..., None] - ly * s[..., None]
    cy = y[..., None] + lx * s[..., None] + ly * c[..., None]
    return jnp.stack([cx, cy], axis=-1)


@struct.dataclass
class TrajectoryUpdate(_Validated):
    """The next state of each object, fields [..., objects]."""

    x: jax.Array
    y: jax.Array
    yaw: jax.Array
    vel_x: jax.Array
    vel_y: jax.Array
    valid: jax.Array

    _shape_fields = ("x", "y", "yaw", "vel_x", "vel_y", "valid")


@struct.dataclass
class Action(_Validated):
    """Actions [..., objects, action_dim] with validity [..., objects, 1]."""

    data: jax.Array
    valid: jax.Array

    _shape_fields = ("data", "valid")

    def validate(self) -> None:
        if self.data.shape[:-1] != self.valid.shape[:-1] or self.valid.shape[-1:] != (1,):
            raise ValueError(
                f"Action: valid must be data.shape[:-1] + (1,) = {self.data.shape[:-1] + (1,)}, "
                f"got {self.valid.shape}"
            )


@struct.dataclass
class ObjectMetadata(_Validated):
    """Per-object constants, fields [..., objects]."""

    ids: jax.Array
    object_types: jax.Array
    is_sdc: jax.Array
    is_modeled: jax.Array
    is_valid: jax.Array
    objects_of_interest: jax.Array
    is_controlled: jax.Array

    _shape_fields = (
        "ids", "object_types", "is_sdc", "is_modeled", "is_valid", "objects_of_interest",
        "is_controlled",
    )  # fmt: skip


@struct.dataclass
class RoadgraphPoints(_Validated):
    """Sampled map points, fields [..., points]; dir is the unit direction to the next point."""

    x: jax.Array
    y: jax.Array
    z: jax.Array
    dir_x: jax.Array
    dir_y: jax.Array
    dir_z: jax.Array
    types: jax.Array
    ids: jax.Array
    valid: jax.Array

    _shape_fields = ("x", "y", "z", "dir_x", "dir_y", "dir_z", "types", "ids", "valid")

    @property
    def xy(self) -> jax.Array:
        return jnp.stack([self.x, self.y], axis=-1)

    @property
    def dir_xy(self) -> jax.Array:
        return jnp.stack([self.dir_x, self.dir_y], axis=-1)

    @property
    def is_road_edge(self) -> jax.Array:
        return self.valid & ((self.types == ROAD_EDGE_BOUNDARY) | (self.types == ROAD_EDGE_MEDIAN))


@struct.dataclass
class TrafficLights(_Validated):
    """Traffic-light lanes over time, fields [..., lights, T]."""

    x: jax.Array
    y: jax.Array
    z: jax.Array
    state: jax.Array
    lane_ids: jax.Array
    valid: jax.Array

    _shape_fields = ("x", "y", "z", "state", "lane_ids", "valid")


@struct.dataclass
class Paths(_Validated):
    """Candidate SDC routes: fields [..., paths, points]; on_route [..., paths]."""

    x: jax.Array
    y: jax.Array
    z: jax.Array
    ids: jax.Array
    valid: jax.Array
    arc_length: jax.Array
    on_route: jax.Array

    _shape_fields = ("x", "y", "z", "ids", "valid", "arc_length")

    def validate(self) -> None:
        super().validate()
        if tuple(self.on_route.shape) != self.shape[:-1]:
            raise ValueError(
                f"Paths: on_route must have shape {self.shape[:-1]}, got {self.on_route.shape}"
            )

    @property
    def xy(self) -> jax.Array:
        return jnp.stack([self.x, self.y], axis=-1)


@struct.dataclass
class SimulatorState:
    """Everything the simulator needs at one moment of one (or a batch of) scenario(s)."""

    sim_trajectory: Trajectory
    log_trajectory: Trajectory
    log_traffic_light: TrafficLights
    object_metadata: ObjectMetadata
    timestep: jax.Array
    roadgraph_points: RoadgraphPoints
    sdc_paths: Paths

    def __post_init__(self):
        leaves = [self.sim_trajectory.x, self.log_trajectory.x, self.object_metadata.ids]
        if all(_is_concrete(x) for x in leaves):
            self.validate()

    def validate(self) -> None:
        for part in (
            self.sim_trajectory, self.log_trajectory, self.log_traffic_light,
            self.object_metadata, self.roadgraph_points, self.sdc_paths,
        ):  # fmt: skip
            part.validate()
        s, lg, md = self.sim_trajectory.shape, self.log_trajectory.shape, self.object_metadata.shape
        if s != lg:
            raise ValueError(f"SimulatorState: sim {s} and log {lg} trajectories differ")
        if md != s[:-1]:
            raise ValueError(f"SimulatorState: metadata shape {md} must be trajectory's {s[:-1]}")
        if tuple(jnp.shape(self.timestep)) != s[:-2]:
            raise ValueError(
                f"SimulatorState: timestep shape {jnp.shape(self.timestep)} must be the batch "
                f"shape {s[:-2]}"
            )

    @property
    def num_objects(self) -> int:
        return self.log_trajectory.num_objects

    @property
    def num_timesteps(self) -> int:
        return self.log_trajectory.num_timesteps

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return self.log_trajectory.shape[:-2]

    @property
    def is_done(self) -> jax.Array:
        return self.timestep + 1 >= self.num_timesteps

    @property
    def remaining_timesteps(self) -> jax.Array:
        return self.num_timesteps - 1 - self.timestep

    @property
    def current_sim_trajectory(self) -> Trajectory:
        return self.sim_trajectory.at(self.timestep)

    @property
    def current_log_trajectory(self) -> Trajectory:
        return self.log_trajectory.at(self.timestep)

    @property
    def sdc_index(self) -> jax.Array:
        return jnp.argmax(self.object_metadata.is_sdc, axis=-1)


def fast_argmin(x: jax.Array, axis: int = -1) -> jax.Array:
    """jnp.argmin (first minimum) as two plain reductions: XLA's variadic argmin reduce is
    several times slower on CPU, and this is the simulator's hottest operation."""
    axis = axis % x.ndim
    m = jnp.min(x, axis=axis, keepdims=True)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    idx = jnp.arange(x.shape[axis], dtype=jnp.int32).reshape(shape)
    return jnp.min(jnp.where(x <= m, idx, x.shape[axis]), axis=axis)


def stack(items: list) -> Any:
    """Stack a list of identical-shaped pytrees along a new leading batch axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *items)


def index(tree: Any, i) -> Any:
    """Take batch element `i` of a batched pytree."""
    return jax.tree.map(lambda a: a[i], tree)
