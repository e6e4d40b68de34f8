"""Stateless environments: reset/step on an explicit SimulatorState; rollouts as one lax.scan.

`MultiAgentEnv` moves every controlled object by its action; `PlanningAgentEnv` controls
only the SDC while the other objects replay the log or run a sim agent (IDM, constant
speed). All functions take one scenario; `jax.vmap` them over a batch.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from selftaught.core.errors import UnknownNameError
from selftaught.sim.driving import agents as ag
from selftaught.sim.driving import metrics as mt
from selftaught.sim.driving.datatypes import INIT_STEPS, Action, SimulatorState
from selftaught.sim.driving.dynamics import DynamicsModel, apply_update


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    init_steps: int = INIT_STEPS
    controlled: str = "sdc"  # "sdc" | "all"
    reward_weights: tuple = mt.DEFAULT_REWARD_WEIGHTS
    metrics: tuple[str, ...] = tuple(mt.METRICS)
    allow_new_objects_after_warmup: bool = True
    """Waymax's flag: objects whose log starts after the warm-up are injected when their
    log becomes valid. False: only objects valid at the end of the warm-up ever exist (and
    with controlled="all" only those are controlled)."""


class MultiAgentEnv:
    def __init__(self, dynamics: DynamicsModel, config: EnvConfig = EnvConfig()):
        if config.controlled not in ("sdc", "all"):
            raise UnknownNameError("controlled set", config.controlled, ["sdc", "all"])
        self.dynamics, self.config = dynamics, config

    def reset(self, scenario: SimulatorState) -> SimulatorState:
        """Replay the first init_steps logged steps; later sim steps start invalid."""
        t0 = self.config.init_steps - 1
        log = scenario.log_trajectory
        steps = jnp.arange(log.num_timesteps)
        sim = log.replace(valid=log.valid & (steps <= t0))
        md = scenario.object_metadata
        if self.config.controlled == "sdc":
            ctrl = md.is_sdc
        elif self.config.allow_new_objects_after_warmup:
            ctrl = md.is_valid
        else:
            ctrl = log.valid[..., t0]
        return scenario.replace(
            sim_trajectory=sim,
            timestep=jnp.asarray(t0, jnp.int32),
            object_metadata=md.replace(is_controlled=ctrl & md.is_valid),
        )

    def step(self, state: SimulatorState, action: Action) -> SimulatorState:
        traj = self.dynamics.forward(
            action, state.sim_trajectory, state.log_trajectory,
            state.object_metadata.is_controlled, state.timestep,
            self.config.allow_new_objects_after_warmup,
        )  # fmt: skip
        return state.replace(sim_trajectory=traj, timestep=state.timestep + 1)

    def reward(self, state: SimulatorState, metrics: dict | None = None) -> jax.Array:
        return mt.reward(state, self.config.reward_weights, metrics)

    def metrics(self, state: SimulatorState) -> dict:
        return mt.run_metrics(state, self.config.metrics)

    @property
    def num_steps(self) -> int:
        return 0  # set by rollout from the scenario


class PlanningAgentEnv(MultiAgentEnv):
    """Only the SDC is controlled by the action; with a sim agent ("idm": Waymax's IDM,
    "idm_lane", "constant") every other object is controlled by it, as Waymax's sim agents
    control all non-SDC objects, except objects whose box starts (log step 0) overlapping
    another's (parked articulated buses, pedestrians getting in a car), which replay the
    log as in Waymax. Unlike Waymax, objects absent at step 0 are not counted as
    overlapping (Waymax tests their placeholder boxes too)."""

    def __init__(self, dynamics: DynamicsModel, sim_agent: str = "log",
                 config: EnvConfig = EnvConfig()):  # fmt: skip
        super().__init__(dynamics, dataclasses.replace(config, controlled="sdc"))
        if sim_agent not in ag.SIM_AGENTS:
            raise UnknownNameError("sim agent", sim_agent, list(ag.SIM_AGENTS))
        self.sim_agent = sim_agent

    def sim_agent_mask(self, state: SimulatorState) -> jax.Array:
        """Objects the sim agent controls: non-SDC objects not overlapping at log step 0."""
        md = state.object_metadata
        return ~md.is_sdc & ~initial_overlap(state)

    def step(self, state: SimulatorState, action: Action) -> SimulatorState:
        t = state.timestep
        md = state.object_metadata
        cur = state.sim_trajectory.at(t)
        upd = self.dynamics.compute_update(action, cur)
        ctrl = md.is_sdc
        if self.sim_agent != "log":
            sim_upd = ag.SIM_AGENTS[self.sim_agent](state)
            others = self.sim_agent_mask(state)
            upd = jax.tree.map(lambda a, b: jnp.where(ctrl, a, b), upd, sim_upd)
            ctrl = ctrl | others
        traj = apply_update(state.sim_trajectory, state.log_trajectory, upd, ctrl, t,
                            self.config.allow_new_objects_after_warmup)  # fmt: skip
        return state.replace(sim_trajectory=traj, timestep=t + 1)


def initial_overlap(state: SimulatorState) -> jax.Array:
    """[O] bool: the object's logged box at step 0 overlaps another valid object's."""
    log = state.log_trajectory
    x, y, yaw, ln, wd, v = (a[..., 0] for a in (log.x, log.y, log.yaw, log.length, log.width,
                                                log.valid))  # fmt: skip
    hit = mt.boxes_overlap(x, y, yaw, ln, wd)
    n = x.shape[-1]
    return jnp.any(hit & v[:, None] & v[None, :] & ~jnp.eye(n, dtype=bool), axis=-1)


def rollout(env: MultiAgentEnv, scenario: SimulatorState, actor: ag.Actor, params, rng,
            num_steps: int | None = None):  # fmt: skip
    """reset, then num_steps of (select_action, step, metrics, reward) in one lax.scan.

    Returns (final_state, {metric: MetricResult [S, O]}, rewards [S, O]).
    """
    state = env.reset(scenario)
    if num_steps is None:
        num_steps = scenario.log_trajectory.num_timesteps - env.config.init_steps
    rng, init_rng = jax.random.split(rng)
    actor_state = actor.init(init_rng, state)

    def body(carry, key):
        state, actor_state = carry
        out = actor.select_action(params, state, actor_state, key)
        state = env.step(state, out.action)
        m = env.metrics(state)
        return (state, out.actor_state), (m, env.reward(state, m))

    keys = jax.random.split(rng, num_steps)
    (state, _), (metrics, rewards) = jax.lax.scan(body, (state, actor_state), keys)
    return state, metrics, rewards


EVER_METRICS = ("overlap", "offroad", "kinematic_infeasibility", "off_route", "wrong_way")


def summarize(metrics: dict, rewards: jax.Array, is_sdc: jax.Array) -> dict:
    """Per-episode SDC summary of one rollout (vmap over scenarios): collision / off-road /
    infeasibility / off-route / wrong-way as 0-1 'ever during the episode', ADE (mean log
    divergence), route progress at the last step, and the return."""
    sdc = jnp.argmax(is_sdc)
    out = {}
    for name in EVER_METRICS:
        if name in metrics:
            m = metrics[name]
            out[name] = jnp.any((m.value[:, sdc] > 0) & m.valid[:, sdc]).astype(jnp.float32)
    if "log_divergence" in metrics:
        m = metrics["log_divergence"]
        ok = m.valid[:, sdc]
        out["ade"] = jnp.sum(jnp.where(ok, m.value[:, sdc], 0.0)) / jnp.maximum(jnp.sum(ok), 1)
    if "route_progress" in metrics:
        m = metrics["route_progress"]
        out["route_progress"] = m.value[-1, sdc]
    out["return"] = jnp.sum(rewards[:, sdc])
    return out
