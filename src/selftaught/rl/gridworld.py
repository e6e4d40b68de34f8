"""Partially observed, dynamic gridworlds that need no resets (rl.md §6, §7).

    spec = WorldSpec(task="tool", size=7, view=2)
    params = world_params(p=0.1)                 # dynamism, shaping, episodic flag: traced
    obs, state = reset(spec, key, params)        # stateless: the state is explicit
    obs, state, reward, terminated, truncated, info = step(spec, key, state, action)
    env = make_env(spec, params)                 # the rl.envs.Env interface DQN consumes
    traj = rollout(spec, key, state, actions_T)  # a whole trajectory in one lax.scan

The world. An N x N room surrounded by walls; the agent sees an agent-centred
(2 view + 1)^2 window (egocentric partial observation: cells outside the room read as
wall) with channels [wall, kind 0, kind 1, prey, holding kind 0, holding kind 1].
Actions: 0 up, 1 down, 2 left, 3 right, 4 use (craft; a no-op in `hunt`). Tasks (sparse
reward 1 on completion, several steps each):
    tool  gather one kind-0 resource (wood) and one kind-1 resource (stone) by stepping on
          them, then `use` to combine them into a tool.
    hunt  pick up a spear (kind 0), then step onto a prey that moves on its own with
          probability `p_prey` per step; the spear is used up by the kill.
    capture  (IC2's world) only prey, no resources: stepping onto a prey captures it; a
          captured prey stays where it is for good (it stops moving, it is not consumed)
          and shows in the kind-1 channel instead of the prey channel (`cage=True`:
          it leaves the room for a known cage instead - unseen, blocking nothing).
          Reward = prey captured this step; `success` = every prey is captured.
Consumed objects leave the grid.

Dynamism (the paper's "resources regrow / move on their own"): every step each consumed
object respawns with probability `p_regrow` (by default = `p`) at a random free cell, and
every object on the grid moves one cell in a random direction with probability `p` (prey
with `p_prey`). With p = 0 the world is static: a reset-free life can use up its
resources.
`transition_entropy` gives the entropy of the objects' autonomous motion in nats per step
(the paper measures dynamism as the environment's transition entropy);
`empirical_transition_entropy` measures it from a rollout.
Environment shaping: objects (at reset and on respawn) appear within Chebyshev distance
r(t) of the agent, r(t) growing linearly from 1 to the room size over `shaping_steps`
lifetime steps (resources start near the agent and drift away); 0 turns shaping off.
Reward shaping: `reward_bonus` is added for every pick-up the task needs.
Reset-free mode (`episodic=False`): the agent lives one life, no step ends an episode;
episodic mode ends an episode on success or after `episode_steps` steps and resets the
world (lifetime counters - steps, successes, visit counts - survive the reset).
Validation (`validate`): held-out worlds (fixed keys disjoint from training), static and
unshaped, episodic with horizon `episode_steps`: success rate and hitting time.
`validate(..., seed=TEST_SEED)` runs a second, disjoint set of held-out worlds (test worlds:
choices are made on the validation worlds, results reported on the test worlds).

Why our own and not navix / XLand-MiniGrid: both are MiniGrid ports built around episodes
(a fixed entity layout per reset, auto-reset on a time limit); XLand-MiniGrid's rules are
deterministic tile rewrites with no per-step random motion or respawn of objects, and
navix moves only hazard balls (Dynamic-Obstacles) with no resources, inventories or
respawning. Expressing "every resource drifts with probability p, consumed ones respawn
near the agent within a growing radius, lifetime counters survive resets" would mean
rewriting their step functions and adding a dependency for a small part of it. This module
is one pure-JAX file with the same stateless reset/step convention as gymnax.
"""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from selftaught.core.errors import ConfigError, UnknownNameError, check

TASKS = ("tool", "hunt", "capture")
NUM_ACTIONS = 5
NUM_CHANNELS = 6
MOVES = np.array([[-1, 0], [1, 0], [0, -1], [0, 1], [0, 0]], np.int32)  # up down left right use
PREY = 2  # object kind of prey (kinds 0 and 1 are resources)
VALIDATION_SEED = 1_000_003  # keys of held-out validation worlds (training never uses it)
TEST_SEED = 2_000_003  # keys of held-out test worlds, disjoint from the validation worlds


@dataclasses.dataclass(frozen=True)
class WorldSpec:
    """The static shape of a world (array sizes; changing it recompiles)."""

    task: str = "tool"
    """tool (gather wood + stone, combine) | hunt (pick up a spear, catch a moving prey) |
    capture (step onto moving prey to stop them for good; IC2's world)"""
    size: int = 7
    """the room is size x size cells"""
    view: int = 2
    """egocentric view radius: the agent sees (2 view + 1)^2 cells around itself"""
    num_resources: int = 1
    """objects of each resource kind (tool: wood and stone; hunt: spears; capture: unused)"""
    num_prey: int = 1
    """prey (hunt and capture)"""
    episode_steps: int = 100
    """episode length in episodic mode and the horizon of validation tasks"""
    cage: bool = False
    """capture task: a captured prey leaves the room for a cage (it is no longer seen and
    no longer blocks anything) instead of staying where it was caught"""

    def validate(self) -> None:
        if self.task not in TASKS:
            raise UnknownNameError("gridworld task", self.task, TASKS)
        check(self.size >= 2, f"size must be at least 2, got {self.size}")
        check(self.view >= 1, f"view must be at least 1, got {self.view}")
        check(self.num_resources >= 1, f"num_resources must be at least 1, got "
              f"{self.num_resources}")
        check(self.num_prey >= 1, f"num_prey must be at least 1, got {self.num_prey}")
        check(self.episode_steps >= 1, f"episode_steps must be at least 1, got "
              f"{self.episode_steps}")
        check(not self.cage or self.task == "capture", f"cage is an option of the capture "
              f"task; drop --cage or use --task capture (got task {self.task!r})")
        cells = self.size * self.size
        need = self.num_objects + 1
        check(need <= cells, f"{self.num_objects} objects plus the agent need {need} cells "
              f"but a {self.size}x{self.size} room has {cells}; raise --size or lower "
              "--num-resources/--num-prey")

    @property
    def kinds(self) -> np.ndarray:
        """Object kinds, static: tool [0]*n + [1]*n; hunt [0]*n + [PREY]*num_prey;
        capture [PREY]*num_prey."""
        n = self.num_resources
        if self.task == "capture":
            return np.full(self.num_prey, PREY, np.int32)
        second = [1] * n if self.task == "tool" else [PREY] * self.num_prey
        return np.array([0] * n + second, np.int32)

    @property
    def num_objects(self) -> int:
        return len(self.kinds)

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        w = 2 * self.view + 1
        return (w, w, NUM_CHANNELS)


@struct.dataclass
class WorldParams:
    """Numeric knobs of a world, traced (vmap over conditions compiles one program)."""

    p: jax.Array  # probability that a resource moves one cell per step (dynamism)
    p_prey: jax.Array  # probability that a prey moves one cell per step
    episodic: jax.Array  # bool: episodes end (success / time limit) and reset the world
    shaping_steps: jax.Array  # environment shaping horizon in lifetime steps (0 = off)
    reward_bonus: jax.Array  # reward shaping: bonus per needed pick-up
    p_regrow: jax.Array  # probability per step that a consumed object respawns


def check_params(p: float = 0.0, p_prey: float = 0.5, shaping_steps: float = 0.0,
                 reward_bonus: float = 0.0, p_regrow: float = 0.0) -> None:
    """ConfigError for impossible values (probabilities outside [0, 1], negatives)."""
    for name, v in (("p", p), ("p_prey", p_prey), ("p_regrow", p_regrow)):
        check(0.0 <= float(v) <= 1.0 and math.isfinite(float(v)),
              f"{name} is a probability and must be in [0, 1], got {v}")
    check(shaping_steps >= 0, f"shaping_steps must be >= 0 (0 = no shaping), got "
          f"{shaping_steps}")
    check(reward_bonus >= 0, f"reward_bonus must be >= 0, got {reward_bonus}")


def world_params(p: float = 0.0, p_prey: float = 0.5, episodic: bool = False,
                 shaping_steps: float = 0.0, reward_bonus: float = 0.0,
                 p_regrow: float | None = None) -> WorldParams:
    """Validated WorldParams from Python numbers; `p_regrow` defaults to `p` (dynamism:
    resources regrow and drift with the same probability)."""
    p_regrow = p if p_regrow is None else p_regrow
    check_params(p, p_prey, shaping_steps, reward_bonus, p_regrow)
    return WorldParams(jnp.float32(p), jnp.float32(p_prey), jnp.bool_(episodic),
                       jnp.float32(shaping_steps), jnp.float32(reward_bonus),
                       jnp.float32(p_regrow))


def stack_params(params: list[WorldParams]) -> WorldParams:
    """A [n]-batched WorldParams (for vmap over conditions)."""
    return jax.tree.map(lambda *x: jnp.stack(x), *params)


@struct.dataclass
class WorldState:
    agent: jax.Array  # [2] int32 (row, col)
    obj_pos: jax.Array  # [K, 2] int32 (stale while the object is consumed)
    alive: jax.Array  # [K] bool: on the grid (False once consumed, until it respawns)
    inventory: jax.Array  # [2] int32: holding kind 0 / kind 1
    ep_t: jax.Array  # steps in the current episode
    t: jax.Array  # lifetime steps (never reset)
    successes: jax.Array  # lifetime task completions
    visits: jax.Array  # [N, N] int32 lifetime visit counts of the agent
    params: WorldParams
    captured: jax.Array  # [K] bool: a captured prey (capture task) no longer moves


# ----------------------------------------------------------------------------- helpers
def _radius(spec: WorldSpec, params: WorldParams, t) -> jax.Array:
    """Spawn radius of environment shaping at lifetime step t (room size when off)."""
    frac = jnp.clip(t / jnp.maximum(params.shaping_steps, 1.0), 0.0, 1.0)
    r = 1.0 + (spec.size - 1.0) * frac
    return jnp.where(params.shaping_steps > 0, r, float(spec.size))


def _cells(spec: WorldSpec) -> jax.Array:
    n = spec.size
    return jnp.stack(jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij"), -1).reshape(-1, 2)


def _occupancy(spec: WorldSpec, positions, mask=None) -> jax.Array:
    n = spec.size
    mask = jnp.ones(positions.shape[0], bool) if mask is None else mask
    return jnp.zeros((n, n), bool).at[positions[:, 0], positions[:, 1]].max(mask)


def observe(spec: WorldSpec, state: WorldState) -> jax.Array:
    """The egocentric window [2v+1, 2v+1, C] (float32 0/1 planes)."""
    n, v = spec.size, spec.view
    kinds = jnp.where(state.captured, 1, jnp.asarray(spec.kinds))  # captured: kind-1 plane
    planes = jnp.zeros((n, n, 3), jnp.float32)
    planes = planes.at[state.obj_pos[:, 0], state.obj_pos[:, 1], kinds].max(
        state.alive.astype(jnp.float32))
    wall = jnp.zeros((n, n, 1), jnp.float32)
    grid = jnp.concatenate([wall, planes], -1)
    grid = jnp.pad(grid, ((v, v), (v, v), (0, 0)))
    grid = grid.at[:, :, 0].set(jnp.pad(jnp.zeros((n, n)), v, constant_values=1.0))
    w = 2 * v + 1
    window = jax.lax.dynamic_slice(grid, (state.agent[0], state.agent[1], 0), (w, w, 4))
    inv = jnp.broadcast_to(state.inventory.astype(jnp.float32), (w, w, 2))
    return jnp.concatenate([window, inv], -1)


def _new_world(spec: WorldSpec, key, params: WorldParams, t) -> tuple[jax.Array, jax.Array]:
    """Agent uniformly placed; objects at distinct cells, those within the shaping radius
    first (one top-k over random scores: near cells score in [2, 3), the others [0, 1))."""
    k_agent, k_obj = jax.random.split(key)
    cells = _cells(spec)
    agent = cells[jax.random.randint(k_agent, (), 0, spec.size * spec.size)]
    dist = jnp.max(jnp.abs(cells - agent), axis=-1)
    near = dist <= _radius(spec, params, t)
    score = jax.random.uniform(k_obj, (cells.shape[0],)) + 2.0 * near
    score = jnp.where(dist == 0, -1.0, score)
    _, idx = jax.lax.top_k(score, spec.num_objects)
    return agent.astype(jnp.int32), cells[idx].astype(jnp.int32)


def reset(spec: WorldSpec, key, params: WorldParams) -> tuple[jax.Array, WorldState]:
    """A fresh world at lifetime step 0."""
    agent, obj = _new_world(spec, key, params, jnp.float32(0))
    n = spec.size
    state = WorldState(agent, obj, jnp.ones(spec.num_objects, bool), jnp.zeros(2, jnp.int32),
                       jnp.int32(0), jnp.int32(0), jnp.int32(0),
                       jnp.zeros((n, n), jnp.int32).at[agent[0], agent[1]].set(1), params,
                       jnp.zeros(spec.num_objects, bool))
    return observe(spec, state), state


def _move_objects(spec: WorldSpec, key, state: WorldState, obj_pos, alive) -> jax.Array:
    """Each object moves one cell in a random direction with its kind's probability;
    a move into a wall, the agent, another object or a cell two objects chose is blocked."""
    k_go, k_dir = jax.random.split(key)
    kinds = jnp.asarray(spec.kinds)
    prob = jnp.where(kinds == PREY, state.params.p_prey, state.params.p)
    go = (jax.random.uniform(k_go, prob.shape) < prob) & alive & ~state.captured
    d = jnp.asarray(MOVES[:4])[jax.random.randint(k_dir, prob.shape, 0, 4)]
    target = jnp.where(go[:, None], obj_pos + d, obj_pos)
    inside = jnp.all((target >= 0) & (target < spec.size), axis=-1)
    same = lambda a, b: jnp.all(a[:, None, :] == b[None, :, :], axis=-1)  # noqa: E731
    eye = jnp.eye(len(kinds), dtype=bool) | ~alive[None, :]  # ignore self and the consumed
    hits_current = jnp.any(same(target, obj_pos) & ~eye, axis=1)
    hits_other_target = jnp.any(same(target, target) & ~eye, axis=1)
    hits_agent = jnp.all(target == state.agent, axis=-1)
    ok = go & inside & ~hits_current & ~hits_other_target & ~hits_agent
    return jnp.where(ok[:, None], target, obj_pos)


def step(spec: WorldSpec, key, state: WorldState, action):
    """One step: (obs, state, reward, terminated, truncated, info). `obs` is the reset
    observation when an episode ended (episodic mode), `info["next_obs"]` the true
    successor; info also has `success` (the task was completed this step)."""
    k_spawn, k_move, k_reset = jax.random.split(key, 3)
    prm = state.params
    kinds = jnp.asarray(spec.kinds)
    agent = jnp.clip(state.agent + jnp.asarray(MOVES)[action], 0, spec.size - 1)
    here = jnp.all(state.obj_pos == agent, axis=-1) & state.alive  # at most one object
    inv = state.inventory
    is_res = kinds < PREY
    res_kind = jnp.minimum(kinds, 1)
    pick = here & is_res & (inv[res_kind] == 0)
    inv = inv.at[res_kind].max(jnp.where(pick, 1, 0))
    captured, new_captures = state.captured, jnp.int32(0)
    if spec.task == "tool":
        success = (action == 4) & (inv[0] == 1) & (inv[1] == 1)
        inv = jnp.where(success, 0, inv)
        consumed = pick
    elif spec.task == "capture":
        catch = here & ~captured
        new_captures = jnp.sum(catch).astype(jnp.int32)
        captured = captured | catch
        success = jnp.all(captured) & (new_captures > 0)
        consumed = catch if spec.cage else jnp.zeros_like(pick)  # caged: off the grid
    else:
        kill = here & (kinds == PREY) & (inv[0] == 1)
        success = jnp.any(kill)
        inv = inv.at[0].set(jnp.where(success, 0, inv[0]))
        consumed = pick | kill
    # objects consumed before this step respawn with probability p each, at distinct free
    # cells, those within the shaping radius first (one top-k over random scores)
    k_resp, k_cell = jax.random.split(k_spawn)
    alive = state.alive & ~consumed
    respawn = (~state.alive & ~state.captured  # a caged prey never comes back
               & (jax.random.uniform(k_resp, kinds.shape) < prm.p_regrow))
    occ = _occupancy(spec, jnp.concatenate([state.obj_pos, agent[None]]),
                     jnp.concatenate([alive, jnp.ones(1, bool)]))
    cells = _cells(spec)
    near = jnp.max(jnp.abs(cells - agent), axis=-1) <= _radius(spec, prm, state.t)
    score = jax.random.uniform(k_cell, (cells.shape[0],)) + 2.0 * near
    _, idx = jax.lax.top_k(jnp.where(occ.reshape(-1), -1.0, score), spec.num_objects)
    rank = jnp.cumsum(respawn) - 1
    obj_pos = jnp.where(respawn[:, None], cells[idx[jnp.maximum(rank, 0)]], state.obj_pos)
    alive = alive | respawn
    obj_pos = _move_objects(spec, k_move, state.replace(agent=agent, captured=captured),
                            obj_pos.astype(jnp.int32), alive)
    reward = success.astype(jnp.float32) + prm.reward_bonus * jnp.sum(pick)
    if spec.task == "capture":
        reward = new_captures.astype(jnp.float32)
    t, ep_t = state.t + 1, state.ep_t + 1
    nxt = state.replace(
        agent=agent, obj_pos=obj_pos, alive=alive, inventory=inv, ep_t=ep_t, t=t,
        captured=captured,
        successes=state.successes + success.astype(jnp.int32),
        visits=state.visits.at[agent[0], agent[1]].add(1),
    )
    next_obs = observe(spec, nxt)
    terminated = prm.episodic & success
    truncated = prm.episodic & ~success & (ep_t >= spec.episode_steps)
    done = terminated | truncated
    # episodic reset: a new world, lifetime counters kept
    r_agent, r_obj = _new_world(spec, k_reset, prm, t.astype(jnp.float32))
    fresh = nxt.replace(agent=r_agent, obj_pos=r_obj, alive=jnp.ones_like(alive),
                        inventory=jnp.zeros(2, jnp.int32),
                        ep_t=jnp.int32(0), captured=jnp.zeros_like(captured))
    out = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, nxt)
    obs = jnp.where(done, observe(spec, out), next_obs)
    info = {"next_obs": next_obs, "success": success}
    return obs, out, reward, terminated, truncated, info


def make_env(spec: WorldSpec, params: WorldParams):
    """The world behind `selftaught.rl.envs.Env` (what DQN's agent loop consumes).
    `params` may be traced (built inside a vmapped function)."""
    from selftaught.rl.envs import Env, Step

    spec.validate()

    def env_reset(key):
        return reset(spec, key, params)

    def env_step(key, state, action):
        obs, st, r, term, trunc, info = step(spec, key, state, action)
        return Step(obs, st, r, term, trunc, info["next_obs"])

    return Env(name=f"gridworld-{spec.task}", num_actions=NUM_ACTIONS,
               obs_shape=spec.obs_shape, max_steps=spec.episode_steps, reset=env_reset,
               step=env_step, is_image=True)


def rollout(spec: WorldSpec, key, state: WorldState, actions_T) -> tuple[WorldState, dict]:
    """Run a fixed action sequence in one lax.scan; returns the final state and per-step
    {obs, reward, success, done, agent, obj_pos, alive}."""

    def body(st, xs):
        k, a = xs
        obs, st2, r, term, trunc, info = step(spec, k, st, a)
        return st2, {"obs": obs, "reward": r, "success": info["success"],
                     "done": term | trunc, "agent": st2.agent, "obj_pos": st2.obj_pos,
                     "alive": st2.alive}

    keys_T = jax.random.split(key, actions_T.shape[0])
    return jax.lax.scan(body, state, (keys_T, actions_T))


def random_rollout(spec: WorldSpec, key, params: WorldParams, steps: int):
    """Reset then `steps` uniformly random actions (benchmarks, tests, baselines)."""
    k_reset, k_act, k_run = jax.random.split(key, 3)
    _, state = reset(spec, k_reset, params)
    actions = jax.random.randint(k_act, (steps,), 0, NUM_ACTIONS)
    return rollout(spec, k_run, state, actions)


# ----------------------------------------------------------------------------- measures
def transition_entropy(spec: WorldSpec, p: float, p_prey: float = 0.0) -> float:
    """Entropy (nats per step) of the world's autonomous transitions in open space: each
    object independently stays (1 - q) or moves to one of 4 neighbours (q / 4). Walls and
    blocked moves make the measured value (`empirical_transition_entropy`) a bit lower."""

    def h(q):
        q = float(q)
        out = 0.0 if q >= 1.0 else -(1 - q) * math.log(1 - q)
        return out + (0.0 if q <= 0.0 else -q * math.log(q / 4))

    kinds = spec.kinds
    return float(sum(h(p_prey if k == PREY else p) for k in kinds))


def empirical_transition_entropy(obj_pos_TxKx2: np.ndarray, alive_TxK=None) -> float:
    """Sum over objects of the entropy of their one-step displacement distribution
    (stay / 4 moves), measured from a trajectory (only steps where the object was on the
    grid before and after, and did not jump by a respawn)."""
    pos = np.asarray(obj_pos_TxKx2)
    d = pos[1:] - pos[:-1]  # [T-1, K, 2]
    total = 0.0
    for k in range(pos.shape[1]):
        dk = d[:, k]
        keep = np.abs(dk).sum(-1) <= 1
        if alive_TxK is not None:
            on = np.asarray(alive_TxK)[:, k]
            keep &= on[1:] & on[:-1]
        codes = dk[keep, 0] * 3 + dk[keep, 1]
        _, counts = np.unique(codes, return_counts=True)
        q = counts / max(counts.sum(), 1)
        total += float(-(q * np.log(q)).sum())
    return total


def visitation_entropy(visits_NN) -> jax.Array:
    """Entropy (nats) of the agent's state-visitation distribution over cells."""
    v = jnp.asarray(visits_NN, jnp.float32).reshape(*jnp.shape(visits_NN)[:-2], -1)
    q = v / jnp.maximum(v.sum(-1, keepdims=True), 1.0)
    return -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0), -1)


def validation_params() -> WorldParams:
    """Held-out validation tasks: static, unshaped, no bonus, episodic."""
    return world_params(p=0.0, p_prey=0.5, episodic=True)


def validate(spec: WorldSpec, policy, key, num_tasks: int, params: WorldParams | None = None,
             seed: int = VALIDATION_SEED):
    """Run `policy(key, obs_NxObs) -> actions_N` on `num_tasks` held-out worlds (reset
    keys derived from `seed` - VALIDATION_SEED, or TEST_SEED for the test worlds -
    independent of `key`, which only drives the policy and the dynamics) for
    `spec.episode_steps` steps. Returns {success: [N] bool, hitting_time: [N] first-success
    step (episode_steps when never)}."""
    params = validation_params() if params is None else params
    world_keys = jax.random.split(jax.random.PRNGKey(seed), num_tasks)
    _, state = jax.vmap(lambda k: reset(spec, k, params))(world_keys)
    obs = jax.vmap(lambda s: observe(spec, s))(state)
    T = spec.episode_steps

    def body(carry, xs):
        obs, state, hit = carry
        t, k = xs
        k_act, k_env = jax.random.split(k)
        a = policy(k_act, obs)
        # only the first success counts (the world resets after it, episodic params)
        obs2, st2, _, _, _, info = jax.vmap(lambda kk, s, aa: step(spec, kk, s, aa))(
            jax.random.split(k_env, num_tasks), state, a)
        first = info["success"] & (hit >= T)
        hit = jnp.where(first, t + 1, hit)
        return (obs2, st2, hit), None

    init = (obs, state, jnp.full((num_tasks,), T, jnp.int32))
    xs = (jnp.arange(T, dtype=jnp.int32), jax.random.split(key, T))
    (_, _, hit), _ = jax.lax.scan(body, init, xs)
    return {"success": hit < T, "hitting_time": hit}


# ----------------------------------------------------------------------------- rendering
COLORS = {"floor": (235, 235, 225), "wall": (90, 90, 90), "agent": (220, 40, 40),
          0: (150, 95, 40), 1: (120, 130, 150), PREY: (40, 150, 60), "view": (255, 230, 120),
          "captured": (40, 80, 200)}


def render(spec: WorldSpec, state: Any, cell: int = 16) -> np.ndarray:
    """An RGB uint8 frame [H, W, 3] of an unbatched state: walls, the agent's view
    (tinted), objects (wood brown, stone grey / spear brown, prey green, captured prey
    blue), agent red, held items as a bar on top."""
    s = jax.device_get(state)
    n = spec.size
    img = np.zeros((n + 2, n + 2, 3), np.uint8)
    img[:] = COLORS["wall"]
    img[1:-1, 1:-1] = COLORS["floor"]
    ar, ac = int(s.agent[0]) + 1, int(s.agent[1]) + 1
    v = spec.view
    r0, r1, c0, c1 = max(ar - v, 1), min(ar + v, n), max(ac - v, 1), min(ac + v, n)
    img[r0:r1 + 1, c0:c1 + 1] = COLORS["view"]
    for (r, c), k, on, cap in zip(np.asarray(s.obj_pos), spec.kinds, np.asarray(s.alive),
                                  np.asarray(s.captured), strict=True):
        if on:
            img[r + 1, c + 1] = COLORS["captured" if cap else int(k)]
    img[ar, ac] = COLORS["agent"]
    big = np.kron(img, np.ones((cell, cell, 1), np.uint8))
    bar = np.full((cell // 2, big.shape[1], 3), 255, np.uint8)
    for i, held in enumerate(np.asarray(s.inventory)):
        if held:
            bar[:, i * cell:(i + 1) * cell] = COLORS[i]
    return np.concatenate([bar, big], 0)


def save_png(frame: np.ndarray, path) -> Path:
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame).save(path)
    return Path(path)


def save_gif(frames: list[np.ndarray], path, fps: int = 8) -> Path:
    """An animated GIF of RGB frames (like sim/driving/visualization.animate_rollout)."""
    from PIL import Image

    if not frames:
        raise ConfigError("save_gif needs at least one frame")
    images = [Image.fromarray(f).convert("P", palette=Image.ADAPTIVE) for f in frames]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=int(1000 / fps), loop=0)
    Path(path).write_bytes(buf.getvalue())
    return Path(path)


def states_at(trajectory_states: Any, t: int) -> Any:
    """The unbatched state at index t of a stacked (scan-output) state pytree."""
    return jax.tree.map(lambda x: x[t], trajectory_states)
