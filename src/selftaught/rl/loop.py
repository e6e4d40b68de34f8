"""The agent loop shared by DQN / Double DQN (`rl.dqn`), BBF (`rl.bbf`) and SAC (`rl.sac`):
everything but the network, the loss and the gradient step. Discrete agents use its
epsilon-greedy defaults; SAC replaces them through the `noise` / `random_action` /
`explore` / `greedy` hooks of `Spec`.

Every agent's config nests one `LoopConfig` as `loop` (flags `--dqn.loop.total-steps`,
`--bbf.loop.grad-steps`, ...): the environment, the step budget, the replay buffer, the
training cadence and the evaluation protocol, validated here once; the agent's own config
keeps its network, loss, optimiser, target and exploration fields. `spec(loop_config, env,
**agent_parts)` builds the `Spec`.

    loop = make_loop(spec(config.loop, env, q_values=..., grad_step=..., ...))
    carry = loop.init(rng)                      # random warm-up into the replay buffer
    carry, metrics = loop.chunk(carry, i)       # train, then evaluate (one curve point)
    curves = loop.train(rng)                    # init + num_evals chunks in one lax.scan

Algorithm box (per seed, everything inside one compiled program):
    reset `num_envs` parallel envs; `warmup_iters` uniformly random vector steps
    repeat num_evals times (one "chunk"):
        repeat `phases` times: `train_every` epsilon-greedy vector steps into the replay
            buffer (acting with the online or, `act_with_target`, the target parameters),
            then `grad_steps` calls of the agent's `grad_step(carry, key)` (which owns the
            loss, the optimizer and the target update)
        evaluate: `eval_episodes` parallel greedy episodes, undiscounted return
        `after_chunk(carry, i)` (BBF: network resets)
Every loop is a lax.scan with a static trip count, so vmap over seeds never turns a
data-dependent branch into "compute both sides".

Randomness comes in two layouts, kept so each agent reproduces its own streams exactly:
`per_step_keys=False` (DQN) draws the exploration noise and env keys of a whole phase up
front from one key (threefry lowers to a rolled loop on CPU, ~1 us per call, so one call per
scan matters for throughput); `per_step_keys=True` (BBF) splits the carry's key at every
env step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from selftaught.core import progress
from selftaught.core.errors import check, check_at_least_one, check_finite
from selftaught.rl import replay
from selftaught.rl.envs import Env, Step, greedy_returns


@struct.dataclass
class Carry:
    """The training state of one seed."""

    params: Any
    target_params: Any
    opt_state: Any
    buffer: replay.Buffer
    env_state: Any  # [num_envs] env states
    obs: jax.Array  # [num_envs, *obs_shape] observations to act on
    key: jax.Array
    env_steps: jax.Array  # environment steps so far (summed over the parallel envs)
    grad_steps: jax.Array  # gradient steps (BBF: since the last network reset)
    ep_return: jax.Array  # [num_envs] return of the running episodes
    extra: Any = None  # agent-owned state (BBF: its ablation knobs)


def linear_epsilon(start: float, end: float, decay_steps: float) -> Callable:
    """epsilon(env_steps): linear from `start` to `end` over `decay_steps`, then flat."""

    def epsilon(env_steps):
        frac = jnp.clip(env_steps / decay_steps, 0.0, 1.0)
        return start + frac * (end - start)

    return epsilon


def epsilon_greedy(key, q_NxA, eps):
    """Actions [N]: argmax of q, replaced by a uniform action with probability eps."""
    k_rand, k_u = jax.random.split(key)
    greedy = jnp.argmax(q_NxA, axis=-1)
    rand = jax.random.randint(k_rand, greedy.shape, 0, q_NxA.shape[-1])
    return jnp.where(jax.random.uniform(k_u, greedy.shape) < eps, rand, greedy)


def curve_steps(warmup_steps: int, chunk_steps: int, num_evals: int) -> list[int]:
    """Environment steps at which the learning curve's points are measured."""
    return [warmup_steps + (i + 1) * chunk_steps for i in range(num_evals)]


def run_chunks(chunk: Callable, carry: Any, num_chunks: int, description: str, *args: Any,
               index: bool = False, observe: Callable[[Any], dict] | None = None,
               finite: str | None = None, where: str = "", lr: float | None = None,
               step: int | None = None) -> tuple[Any, dict[str, np.ndarray]]:
    """The compiled cells runner: call `chunk(carry, *args) -> (carry, metrics)`
    (`chunk(carry, i, *args)` with `index`) `num_chunks` times with a progress bar, each
    chunk's metrics (arrays whose leading axis is the vmapped runs) brought to the host once
    -> (the final carry, {metric: array [runs, num_chunks]}): a learning curve per run.

    `observe(carry)` adds host-side measures of each chunk's final carry to its metrics
    (e.g. lifetime counters of a reset-free world). `finite` names the metric of the one
    divergence policy: its mean over runs at the last chunk must be finite, else
    `DivergedError` naming `where`, the step (`step`, else the runs' last `env_steps`, else
    `num_chunks`) and the lr. Cells where divergence is a data point (an lr sweep) leave it
    None."""
    rows = []
    with progress.bar(description, total=num_chunks) as bar:
        for i in range(num_chunks):
            carry, m = chunk(carry, i, *args) if index else chunk(carry, *args)
            m = dict(jax.device_get(m))
            if observe is not None:
                m.update(observe(carry))
            rows.append(m)
            bar.advance(1)
    curves = {k: np.stack([np.asarray(r[k]) for r in rows], axis=1) for k in rows[0]}
    if finite is not None:
        if step is None:
            step = int(curves["env_steps"][0, -1]) if "env_steps" in curves else num_chunks
        check_finite(float(np.mean(curves[finite][:, -1])), where=where or description,
                     step=step, lr=lr)
    return carry, curves


def hard_or_polyak(params, target_params, grad_steps, tau: float, every: int):
    """The target after a gradient step: Polyak averaging with `tau` < 1, else a hard copy
    every `every` gradient steps (`grad_steps` counts the step just taken)."""
    if tau < 1.0:
        return optax.incremental_update(params, target_params, tau)
    hard = (grad_steps % every) == 0
    return jax.tree.map(lambda p, t: jnp.where(hard, p, t), params, target_params)


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """The loop's hyper-parameters, nested as `loop` in every agent's config (`DQNConfig`,
    `SACConfig`, `BBFConfig`): the environment, the budget, the replay buffer, the training
    cadence and the evaluation protocol. Which environment names are valid is the agent's
    to check (gymnax, continuous control, image games)."""

    env: str = "CartPole-v1"
    """environment the agent trains on (the agent's registry: see its config)"""
    max_episode_steps: int = 0
    """episode time limit; 0 keeps the environment's own"""
    total_steps: int = 50_000
    """environment steps per seed (summed over the parallel envs), warm-up included"""
    num_envs: int = 1
    """parallel environments per seed"""
    learning_starts: int = 1_000
    """uniformly random environment steps before learning"""
    buffer_size: int = 10_000
    """replay buffer capacity in transitions"""
    batch_size: int = 128
    """replayed items per gradient step (BBF: sequences)"""
    train_every: int = 10
    """vector-env steps between gradient phases"""
    grad_steps: int = 1
    """gradient steps per phase (replay ratio = grad_steps / (train_every * num_envs))"""
    num_evals: int = 10
    """evaluation points (learning-curve length)"""
    eval_episodes: int = 8
    """episodes per evaluation point"""
    eval_epsilon: float = 0.0
    """epsilon of the greedy policy during evaluation (discrete actions)"""

    def validate(self) -> None:
        check_at_least_one(self, "total_steps", "num_envs", "buffer_size", "batch_size",
                           "train_every", "grad_steps", "num_evals", "eval_episodes")
        check(self.max_episode_steps >= 0,
              f"max_episode_steps must be >= 0 (0 keeps the env's), got {self.max_episode_steps}")
        check(0 <= self.eval_epsilon <= 1,
              f"eval_epsilon must be in [0, 1], got {self.eval_epsilon}")
        check(self.learning_starts >= self.num_envs,
              f"learning_starts={self.learning_starts} must cover one vector step of "
              f"num_envs={self.num_envs} environments; raise loop.learning_starts")
        check(self.chunk_iters >= 1,
              f"total_steps={self.total_steps} leaves no training after learning_starts="
              f"{self.learning_starts} for num_evals={self.num_evals} chunks of train_every="
              f"{self.train_every} x num_envs={self.num_envs} steps; raise loop.total_steps")

    @property
    def warmup_iters(self) -> int:
        """Uniformly random vector steps before learning (covering learning_starts)."""
        return max(1, -(-self.learning_starts // self.num_envs))

    @property
    def chunk_iters(self) -> int:
        """Vector steps per evaluation chunk (a multiple of train_every)."""
        left = self.total_steps // self.num_envs - self.warmup_iters
        return (left // self.num_evals) // self.train_every * self.train_every

    @property
    def phases(self) -> int:
        """Gradient phases (train_every vector steps, then grad_steps updates) per chunk."""
        return max(1, self.chunk_iters // self.train_every)

    @property
    def steps_per_chunk(self) -> int:
        """Environment steps per evaluation chunk (summed over the parallel envs)."""
        return self.chunk_iters * self.num_envs

    @property
    def replay_ratio(self) -> float:
        """Gradient updates per environment step: grad_steps / (train_every * num_envs)."""
        return self.grad_steps / (self.train_every * self.num_envs)

    def curve_steps(self) -> list[int]:
        """Environment steps at which the learning curve's points are measured."""
        return curve_steps(self.warmup_iters * self.num_envs, self.steps_per_chunk,
                           self.num_evals)


def spec(config: LoopConfig, env: Env, **agent: Any) -> Spec:
    """The loop `Spec` of `config` on `env`; `agent` holds the agent's parts (init_params,
    tx, grad_step, store, acting hooks, ...)."""
    return Spec(env=env, num_envs=config.num_envs, buffer_size=config.buffer_size,
                warmup_iters=config.warmup_iters, train_every=config.train_every,
                grad_steps=config.grad_steps, phases=config.phases,
                num_evals=config.num_evals, eval_episodes=config.eval_episodes,
                eval_epsilon=config.eval_epsilon, **agent)


@dataclasses.dataclass(frozen=True)
class Spec:
    """What an agent plugs into the loop."""

    env: Env  # or anything with reset(key), step(key, state, action), max_steps
    num_envs: int
    init_params: Callable[[jax.Array, jax.Array], Any]  # (key, obs_1xObs) -> params
    tx: optax.GradientTransformation  # the optimizer state is tx.init(params)
    grad_step: Callable[[Carry, jax.Array], tuple[Carry, dict]]  # one update + its metrics
    store: Callable[[jax.Array, jax.Array, Step], dict]  # (obs, action, step) -> replay items
    buffer_size: int
    warmup_iters: int  # uniformly random vector steps before learning
    train_every: int  # vector env steps per phase
    grad_steps: int  # gradient steps per phase
    phases: int  # phases per chunk
    num_evals: int
    eval_episodes: int
    eval_epsilon: float = 0.0
    act_with_target: bool = False
    per_step_keys: bool = False
    after_chunk: Callable[[Carry, jax.Array], Carry] | None = None
    last: tuple[str, ...] = ()  # grad-step metrics reported at their last value, not mean
    # discrete actions: epsilon-greedy on q_values(params, obs_NxObs) -> q_NxA
    q_values: Callable[[Any, jax.Array], jax.Array] | None = None
    epsilon: Callable[[jax.Array], jax.Array] | None = None  # env_steps -> exploration rate
    # other action spaces replace the epsilon-greedy defaults of these four (shape = the
    # leading [steps, num_envs] or [num_envs] axes):
    noise: Callable | None = None  # (key, shape) -> behaviour noise (default U[0, 1))
    random_action: Callable | None = None  # (key, shape) -> warm-up actions (default U{A})
    explore: Callable | None = None  # (params, obs, noise, random, env_steps) -> actions
    greedy: Callable | None = None  # (key, params, obs) -> evaluation actions
    # (policy, key) -> dict of scalar metrics, replacing the greedy-return evaluation
    # (policy(key, obs_N) -> actions_N is the evaluation policy; e.g. a gridworld's
    # held-out validation tasks)
    evaluate: Callable | None = None


@dataclasses.dataclass(frozen=True)
class Loop:
    """init(rng[, extra]) -> Carry; chunk(carry, i) -> (carry, metrics); train(rng[, extra])
    -> curves (dict of [num_evals] arrays); run(rng[, extra]) -> (final carry, curves);
    env_step(carry, xs) for tests and tools; act(key, params, obs, eps) epsilon-greedy."""

    spec: Spec
    init: Callable
    chunk: Callable
    env_step: Callable
    act: Callable

    def run(self, rng, extra=None) -> tuple[Carry, dict]:
        """The final carry and the curves."""
        carry = self.init(rng, extra)
        return jax.lax.scan(self.chunk, carry, jnp.arange(self.spec.num_evals))

    def train(self, rng, extra=None) -> dict:
        return self.run(rng, extra)[1]


def make_loop(s: Spec) -> Loop:
    env, n = s.env, s.num_envs

    def act(key, params, obs, eps):
        return epsilon_greedy(key, s.q_values(params, obs), eps)

    def noise(key, shape):
        return jax.random.uniform(key, shape) if s.noise is None else s.noise(key, shape)

    def random_action(key, shape):
        if s.random_action is None:
            return jax.random.randint(key, shape, 0, env.num_actions)
        return s.random_action(key, shape)

    def explore(params, obs, u, rand, env_steps):
        if s.explore is not None:
            return s.explore(params, obs, u, rand, env_steps)
        greedy = jnp.argmax(s.q_values(params, obs), axis=-1)
        return jnp.where(u < s.epsilon(env_steps), rand, greedy)

    def greedy(key, params, obs):
        if s.greedy is not None:
            return s.greedy(key, params, obs)
        return act(key, params, obs, s.eval_epsilon)

    def acting(carry: Carry):
        return carry.target_params if s.act_with_target else carry.params

    def env_keys(key):
        return key[None] if n == 1 else jax.random.split(key, n)

    def draw(key, steps):
        """Exploration noise, random actions and env keys of `steps` vector steps."""
        k_u, k_a, k_e = jax.random.split(key, 3)
        return (noise(k_u, (steps, n)), random_action(k_a, (steps, n)),
                jax.random.split(k_e, steps * n).reshape(steps, n, *k_e.shape))

    def draw_now(carry: Carry):
        key, k_act, k_env = jax.random.split(carry.key, 3)
        k_rand, k_u = jax.random.split(k_act)
        xs = (noise(k_u, (n,)), random_action(k_rand, (n,)), env_keys(k_env))
        return carry.replace(key=key), xs

    def env_step(carry: Carry, xs=None, random_only=False):
        if xs is None:
            carry, xs = draw_now(carry)
        u, rand, keys = xs
        if random_only:
            action = rand
        else:
            action = explore(acting(carry), carry.obs, u, rand, carry.env_steps)
        st = jax.vmap(env.step)(keys, carry.env_state, action)
        ret = carry.ep_return + st.reward
        done = st.done.astype(jnp.float32)
        carry = carry.replace(
            buffer=replay.add(carry.buffer, s.store(carry.obs, action, st)), env_state=st.state,
            obs=st.obs, env_steps=carry.env_steps + n, ep_return=ret * (1.0 - done),
        )
        return carry, {"return_sum": jnp.sum(ret * done), "episodes": jnp.sum(done)}

    def phase(carry: Carry, _):
        if s.per_step_keys:
            carry, fin = jax.lax.scan(lambda cc, _: env_step(cc), carry, None, s.train_every)
            key, k = jax.random.split(carry.key)
        else:
            key, k_env, k = jax.random.split(carry.key, 3)
            carry, fin = jax.lax.scan(env_step, carry.replace(key=key), draw(k_env, s.train_every))
        carry = carry.replace(key=key)
        carry, m = jax.lax.scan(s.grad_step, carry, jax.random.split(k, s.grad_steps))
        stats = {"return_sum": fin["return_sum"].sum(), "episodes": fin["episodes"].sum()}
        return carry, {**stats, **jax.tree.map(jnp.mean, m)}

    def init(rng, extra=None):
        k_net, k_env, k_run = jax.random.split(rng, 3)
        reset_keys = env_keys(k_env) if s.per_step_keys else jax.random.split(k_env, n)
        obs, env_state = jax.vmap(env.reset)(reset_keys)
        params = s.init_params(k_net, obs[:1])
        a0 = random_action(k_run, (n,))  # only its shape and dtype are used
        shapes = jax.eval_shape(lambda: s.store(obs, a0, jax.vmap(env.step)(
            reset_keys, env_state, a0)))
        example = jax.tree.map(lambda x: jnp.zeros(x.shape[1:], x.dtype), shapes)
        carry = Carry(params, params, s.tx.init(params), replay.init(example, s.buffer_size),
                      env_state, obs, k_run, jnp.int32(0), jnp.int32(0), jnp.zeros(n), extra)
        if s.per_step_keys:
            carry, _ = jax.lax.scan(lambda cc, _: env_step(cc, random_only=True), carry, None,
                                    s.warmup_iters)
        else:
            k_run, k_warm = jax.random.split(k_run)
            carry, _ = jax.lax.scan(lambda cc, xs: env_step(cc, xs, random_only=True),
                                    carry.replace(key=k_run), draw(k_warm, s.warmup_iters))
        return carry

    def chunk(carry: Carry, i=0):
        carry, st = jax.lax.scan(phase, carry, None, s.phases)
        key, k_eval = jax.random.split(carry.key)
        carry = carry.replace(key=key)
        params = acting(carry)
        policy = lambda k, o: greedy(k, params, o)  # noqa: E731
        if s.evaluate is not None:
            evaluated = s.evaluate(policy, k_eval)
        else:
            evaluated = {"eval_return": greedy_returns(env, policy, k_eval,
                                                       s.eval_episodes).mean()}
        if s.after_chunk is not None:
            carry = s.after_chunk(carry, i)
        episodes = st.pop("episodes").sum()
        metrics = {**evaluated,
                   "train_return": st.pop("return_sum").sum() / jnp.maximum(episodes, 1.0),
                   "train_episodes": episodes, "env_steps": carry.env_steps}
        for k, v in st.items():
            metrics[k] = v[-1] if k in s.last else v.mean()
        return carry, metrics

    return Loop(s, init, chunk, env_step, act)
