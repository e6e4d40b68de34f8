"""Jittable environments (gymnax) behind one small stateless interface.

    env = make_env("CartPole-v1")
    obs, state = env.reset(key)
    step = env.step(key, state, action)   # a Step pytree, auto-resets when the episode ends

Truncation is explicit: gymnax ends an episode either by a natural terminal state or by the
time limit (`max_steps_in_episode`). For bootstrapping only `terminated` cuts the return;
on a truncated step the learner must bootstrap from `next_obs`, the real last observation
(not the auto-reset observation that `obs` holds). We compute truncation ourselves from the
step counter (time >= max_steps and not terminated) so the behaviour does not depend on the
gymnax version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from selftaught.core.errors import UnknownNameError

# name -> (gymnax id, score used as 0 and as 1 by normalized_return)
# CartPole/Acrobot: uniform-random policy and the maximum/solved score.
# MinAtar: uniform-random score (measured over 64 episodes) and a reference score of a
# well-trained DQN (MinAtar paper scale); the map is affine per task, so it only sets how
# tasks are pooled.
ENVS: dict[str, tuple[str, float, float]] = {
    "CartPole-v1": ("CartPole-v1", 22.0, 500.0),
    "Acrobot-v1": ("Acrobot-v1", -500.0, -60.0),
    "Breakout-MinAtar": ("Breakout-MinAtar", 0.4, 30.0),
    "Asterix-MinAtar": ("Asterix-MinAtar", 0.4, 30.0),
    "Freeway-MinAtar": ("Freeway-MinAtar", 0.4, 50.0),
    "SpaceInvaders-MinAtar": ("SpaceInvaders-MinAtar", 4.1, 100.0),
}


@struct.dataclass
class Step:
    """One transition of a batch-free env. `obs` is the next observation to act on (the
    reset observation when the episode ended), `next_obs` the true successor of the step."""

    obs: jax.Array
    state: Any
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_obs: jax.Array

    @property
    def done(self) -> jax.Array:
        return jnp.logical_or(self.terminated, self.truncated)


@dataclasses.dataclass(frozen=True)
class Env:
    """A stateless environment: pure reset/step on an explicit state."""

    name: str
    num_actions: int
    obs_shape: tuple[int, ...]
    max_steps: int
    reset: Callable[[jax.Array], tuple[jax.Array, Any]]
    step: Callable[[jax.Array, Any, jax.Array], Step]
    is_image: bool


def _import_gymnax():
    """gymnax, imported lazily (its import pulls in gymnasium and matplotlib)."""
    import gymnax

    return gymnax


def env_names() -> list[str]:
    return list(ENVS)


def make_env(name: str, max_steps: int | None = None) -> Env:
    """The named environment; `max_steps` overrides its episode time limit."""
    if name not in ENVS:
        raise UnknownNameError("environment", name, list(ENVS))
    gymnax = _import_gymnax()
    genv, params = gymnax.make(ENVS[name][0])
    if max_steps is not None:
        params = params.replace(max_steps_in_episode=int(max_steps))
    limit = int(params.max_steps_in_episode)

    def reset(key):
        obs, state = genv.reset_env(key, params)
        return obs.astype(jnp.float32), state

    def step(key, state, action):
        k_step, k_reset = jax.random.split(key)
        next_obs, next_state, reward, terminated, _ = genv.step_env(
            k_step, state, action, params
        )
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.logical_and(next_state.time >= limit, jnp.logical_not(terminated))
        done = jnp.logical_or(terminated, truncated)
        reset_obs, reset_state = genv.reset_env(k_reset, params)
        new_state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
        next_obs = next_obs.astype(jnp.float32)
        obs = jnp.where(done, reset_obs.astype(jnp.float32), next_obs)
        return Step(obs, new_state, jnp.asarray(reward, jnp.float32), terminated, truncated,
                    next_obs)

    obs_shape = tuple(genv.observation_space(params).shape)
    return Env(
        name=name,
        num_actions=int(genv.num_actions),
        obs_shape=obs_shape,
        max_steps=limit,
        reset=reset,
        step=step,
        is_image=len(obs_shape) == 3,
    )


def noisy_rewards(env: Env, std: float) -> Env:
    """`env` whose every reward has N(0, std^2) noise added ("noisy targets", Farebrother et
    al., 2024); observations, states and episode ends are those of `env` stepped with the
    first half of the step key. Evaluate on the clean `env`."""

    def step(key, state, action):
        k_env, k_noise = jax.random.split(key)
        st = env.step(k_env, state, action)
        noise = std * jax.random.normal(k_noise, jnp.shape(st.reward), jnp.float32)
        return st.replace(reward=st.reward + noise)

    return dataclasses.replace(env, name=f"{env.name}+noise{std:g}", step=step)


def normalized_return(env_name: str, returns):
    """(return - random) / (reference - random): 0 = random policy, 1 = reference score."""
    if env_name not in ENVS:
        raise UnknownNameError("environment", env_name, list(ENVS))
    _, lo, hi = ENVS[env_name]
    return (returns - lo) / (hi - lo)


def greedy_returns(
    env: Env, policy: Callable[[jax.Array, jax.Array], jax.Array], key: jax.Array,
    num_episodes: int,
) -> jax.Array:
    """Undiscounted return of the first episode of `num_episodes` parallel envs, in one
    lax.scan of env.max_steps steps. `policy(key, obs_NxObs) -> actions_N`."""
    k_reset, k_run = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, num_episodes))

    def body(carry, key_t):
        obs, state, ret, alive = carry
        k_act, k_env = jax.random.split(key_t)
        action = policy(k_act, obs)
        st = jax.vmap(env.step)(jax.random.split(k_env, num_episodes), state, action)
        ret = ret + alive * st.reward
        alive = alive * (1.0 - st.done.astype(jnp.float32))
        return (st.obs, st.state, ret, alive), None

    init = (obs, state, jnp.zeros(num_episodes), jnp.ones(num_episodes))
    (_, _, ret, _), _ = jax.lax.scan(body, init, jax.random.split(k_run, env.max_steps))
    return ret
