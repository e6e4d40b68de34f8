"""The Si-dopant simulator: stateless, jittable and vmappable.

One experiment step: put the beam at a lab-frame offset from the Si, dwell for `dwell_s`
seconds at the given voltage and current, then image. Jumps to the 3 neighbours are
independent Poisson processes with rates `truth(context)` (context in the Si's canonical
frame), so the first event comes after Exp(Λ), Λ = Σₖ λₖ, and goes to neighbour k with
probability λₖ / Λ. After a jump the beam is no longer where it was aimed relative to the
Si, so a step records at most one jump (the first event); the Si then sits on the other
sublattice and the next step's context is expressed in the new canonical frame.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from selftaught.sim.dopant import lattice
from selftaught.sim.dopant.rates import I_REF, V_REF, RateFn


@struct.dataclass
class DopantState:
    ij: jax.Array  # int32[2] cell of the Si
    s: jax.Array  # int32[] sublattice of the Si (0 = A, 1 = B)
    beam_time: jax.Array  # float32[] total dwell so far (s)
    jumps: jax.Array  # int32[] jumps so far


@struct.dataclass
class Observation:
    """One recorded experiment: what a rate model learns from."""

    context: jax.Array  # float32[4] canonical (x_A, y_A, voltage_kV, current_pA)
    dwell: jax.Array  # float32[] seconds
    moved: jax.Array  # bool[]
    neighbour: jax.Array  # int32[] canonical neighbour jumped to, −1 if not moved


def reset(ij=(0, 0), s=0) -> DopantState:
    return DopantState(
        ij=jnp.asarray(ij, jnp.int32),
        s=jnp.asarray(s, jnp.int32),
        beam_time=jnp.zeros((), jnp.float32),
        jumps=jnp.zeros((), jnp.int32),
    )


def step(
    truth: RateFn,
    state: DopantState,
    beam_lab_2,
    dwell_s,
    key: jax.Array,
    voltage_kv=V_REF,
    current_pa=I_REF,
) -> tuple[DopantState, Observation]:
    """Expose the sample once; returns the next state and the observation."""
    beam_can_2 = lattice.to_canonical(jnp.asarray(beam_lab_2, jnp.float32), state.s)
    ctx_4 = jnp.concatenate([beam_can_2, jnp.stack([voltage_kv, current_pa]).astype(jnp.float32)])
    rates_3 = truth(ctx_4)
    total = jnp.sum(rates_3)
    k_time, k_which = jax.random.split(key)
    t_event = jax.random.exponential(k_time) / jnp.maximum(total, 1e-12)
    moved = (t_event < dwell_s) & (total > 0)
    k = jax.random.categorical(k_which, jnp.log(jnp.maximum(rates_3, 1e-30)))
    ij_new, s_new = lattice.neighbour_site(state.ij, state.s, k)
    state = DopantState(
        ij=jnp.where(moved, ij_new, state.ij),
        s=jnp.where(moved, s_new, state.s),
        beam_time=state.beam_time + dwell_s,
        jumps=state.jumps + moved.astype(jnp.int32),
    )
    obs = Observation(
        context=ctx_4,
        dwell=jnp.asarray(dwell_s, jnp.float32),
        moved=moved,
        neighbour=jnp.where(moved, k, -1).astype(jnp.int32),
    )
    return state, obs


def uniform_disk(key, radius, shape=()):
    """Points uniform in a disk of `radius` Å: (*shape, 2)."""
    k_r, k_t = jax.random.split(key)
    r = radius * jnp.sqrt(jax.random.uniform(k_r, shape))
    t = jax.random.uniform(k_t, shape, maxval=2 * jnp.pi)
    return jnp.stack([r * jnp.cos(t), r * jnp.sin(t)], axis=-1)


def explore(
    truth: RateFn,
    key: jax.Array,
    *,
    num_sessions: int,
    steps: int,
    radius: float,
    dwell_range: tuple[float, float],
    voltage_range: tuple[float, float] = (V_REF, V_REF),
    current_range: tuple[float, float] = (I_REF, I_REF),
) -> Observation:
    """The exploratory data-collection policy: `num_sessions` independent sessions (vmapped)
    of `steps` exposures each (one lax.scan); every exposure puts the beam uniformly in a
    disk of `radius` Å around the Si with a log-uniform dwell and uniform voltage/current.
    Returns observations with leading shape (num_sessions * steps,)."""

    def session(key):
        def body(state, key):
            kb, kd, kv, ki, ks = jax.random.split(key, 5)
            beam = uniform_disk(kb, radius)
            lo, hi = jnp.log(dwell_range[0]), jnp.log(dwell_range[1])
            dwell = jnp.exp(jax.random.uniform(kd, minval=lo, maxval=hi))
            volt = jax.random.uniform(kv, minval=voltage_range[0], maxval=voltage_range[1])
            curr = jax.random.uniform(ki, minval=current_range[0], maxval=current_range[1])
            return step(truth, state, beam, dwell, ks, volt, curr)

        _, obs = jax.lax.scan(body, reset(), jax.random.split(key, steps))
        return obs

    obs = jax.vmap(session)(jax.random.split(key, num_sessions))
    return jax.tree.map(lambda x: x.reshape(num_sessions * steps, *x.shape[2:]), obs)
