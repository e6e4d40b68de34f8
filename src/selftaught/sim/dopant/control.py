"""Moving the Si to a goal site: a greedy controller driven by a rate model, and a
random-beam baseline. Episodes are one `lax.scan`, vmapped over goals.

Greedy step: among the Si's 3 neighbours pick the one nearest (Euclidean) to the goal —
on the honeycomb this one is always a jump closer in graph distance — put the beam where
the model's rate toward that neighbour is highest (grid search over the canonical frame,
done once per model since the model is frame-invariant), dwell, image, repeat until the Si
sits on the goal or `max_steps` exposures have been made.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from selftaught.sim.dopant import lattice
from selftaught.sim.dopant.rates import (
    I_REF,
    V_REF,
    RateFn,
    canonical_grid,
    evaluate,
    with_settings,
)
from selftaught.sim.dopant.sim import DopantState, reset, step, uniform_disk


def beam_table(rate_fn: RateFn, *, extent: float = 2.0, n: int = 81,
               voltage_kv: float = V_REF, current_pa: float = I_REF) -> np.ndarray:
    """(3, 2) canonical beam position maximising the model's rate toward each neighbour."""
    _, pts = canonical_grid(extent, n)
    rates_Nx3 = np.asarray(evaluate(rate_fn, with_settings(pts, voltage_kv, current_pa)))
    return pts[np.argmax(rates_Nx3, axis=0)]


@struct.dataclass
class EpisodeResult:
    success: jax.Array  # bool: the Si reached the goal within max_steps
    steps: jax.Array  # int32: exposures made (max_steps on failure)
    beam_time: jax.Array  # float32: seconds of beam exposure
    jumps: jax.Array  # int32: jumps made (including ones away from the goal)


def nearest_neighbour_to(state: DopantState, goal_pos_2):
    """Canonical index of the neighbour nearest to the goal position."""
    ks = jnp.arange(3)
    ij, s = jax.vmap(lambda k: lattice.neighbour_site(state.ij, state.s, k))(ks)
    pos_3x2 = lattice.site_position(ij, s)
    return jnp.argmin(jnp.sum((pos_3x2 - goal_pos_2) ** 2, axis=-1))


def run_episode(truth: RateFn, table_3x2, goal_ij, goal_s, key, *, max_steps: int,
                dwell_s: float, random_radius: float = 0.0,
                voltage_kv: float = V_REF, current_pa: float = I_REF) -> EpisodeResult:
    """One episode from the origin A site to (goal_ij, goal_s). With `random_radius` > 0
    the beam goes uniformly into that disk around the Si instead (the random baseline);
    it may be a traced value, so both policies share one compilation."""
    goal_ij = jnp.asarray(goal_ij, jnp.int32)
    goal_s = jnp.asarray(goal_s, jnp.int32)
    goal_pos = lattice.site_position(goal_ij, goal_s)
    table = jnp.asarray(table_3x2, jnp.float32)

    def at_goal(state):
        return jnp.all(state.ij == goal_ij) & (state.s == goal_s)

    def body(carry, key):
        state, done = carry
        kb, ks = jax.random.split(key)
        k = nearest_neighbour_to(state, goal_pos)
        beam_lab = jnp.where(random_radius > 0, uniform_disk(kb, random_radius),
                             lattice.to_lab(table[k], state.s))
        new, _ = step(truth, state, beam_lab, jnp.float32(dwell_s), ks,
                      jnp.float32(voltage_kv), jnp.float32(current_pa))
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), state, new)
        return (state, done | at_goal(state)), None

    start = reset()
    (state, done), _ = jax.lax.scan(body, (start, at_goal(start)),
                                    jax.random.split(key, max_steps))
    steps = jnp.round(state.beam_time / dwell_s).astype(jnp.int32)
    return EpisodeResult(success=done, steps=steps, beam_time=state.beam_time,
                         jumps=state.jumps)


def run_episodes(truth: RateFn, table_3x2, goals_Gx3, key, **kwargs) -> EpisodeResult:
    """vmap of `run_episode` over goals (G, 3) = (i, j, s); one key per goal."""
    goals = jnp.asarray(goals_Gx3, jnp.int32)
    keys = jax.random.split(key, goals.shape[0])
    fn = lambda g, k: run_episode(truth, table_3x2, g[:2], g[2], k, **kwargs)
    return jax.vmap(fn)(goals, keys)


def sample_goals(rng: np.random.Generator, distances, per_distance: int) -> np.ndarray:
    """(len(distances) * per_distance, 4) rows (i, j, s, hops): goal sites drawn uniformly
    (with replacement) among the sites exactly `hops` jumps from the origin."""
    rows = []
    for d in distances:
        sites = lattice.sites_at_distance(int(d))
        pick = sites[rng.integers(0, len(sites), per_distance)]
        rows.append(np.concatenate([pick, np.full((per_distance, 1), d, np.int32)], axis=1))
    return np.concatenate(rows).astype(np.int32)
