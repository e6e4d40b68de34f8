"""non-episodic: the agent (Double DQN living in the gridworld) and one condition's training,
all seeds under one vmap, with the world's measured transition entropy."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core import programs
from selftaught.core.seeding import keys
from selftaught.recipes.non_episodic.config import (
    Condition,
    NonEpisodicConfig,
    _dqn,
)
from selftaught.rl import gridworld as gw
from selftaught.rl.dqn import curve_steps, make_agent
from selftaught.rl.loop import run_chunks


def _agent(cfg: NonEpisodicConfig, params: gw.WorldParams):
    world = cfg.world

    def eval_fn(policy, key):
        k_val, k_test = jax.random.split(key)
        val = gw.validate(world, policy, k_val, cfg.validation_tasks)
        test = gw.validate(world, policy, k_test, cfg.test_tasks, seed=gw.TEST_SEED)
        success = val["success"].astype(jnp.float32).mean()
        return {"eval_return": success, "success": success,
                "hitting_time": val["hitting_time"].astype(jnp.float32).mean(),
                "test_success": test["success"].astype(jnp.float32).mean(),
                "test_hitting_time": test["hitting_time"].astype(jnp.float32).mean()}

    return make_agent(_dqn(cfg), env=gw.make_env(world, params), eval_fn=eval_fn)


@programs.cached(vmap=((0, None), 0))
def _compiled(cfg: NonEpisodicConfig):
    """(init(keys_S, params), chunk(carry_S)) jitted and vmapped over seeds. The world's
    knobs are arguments (traced), so every condition runs the same compiled program."""

    def init(rng, params):
        return _agent(cfg, params).init(rng)

    def chunk(carry):
        # the env's reset closure is unused after init; step reads the knobs from the state
        return _agent(cfg, gw.validation_params()).chunk(carry)

    return init, chunk


@programs.cached(vmap=(programs.JIT,))
def _entropy_rollout(world: gw.WorldSpec, steps: int):
    """jit(key, params) -> the random-policy trajectory's object positions and alive flags."""

    def go(key, params):
        _, tr = gw.random_rollout(world, key, params, steps)
        return tr["obj_pos"], tr["alive"]

    return go


def measure_transition_entropy(cfg: NonEpisodicConfig, cond: Condition, seed: int) -> dict:
    """The condition's dynamism, measured from a random-policy life of `entropy_steps` steps
    (reset-free, so episodic resets do not count as motion): drift entropy (nats per step,
    summed over objects: `gridworld.empirical_transition_entropy`) next to its analytic
    value, and regrowths per 1000 steps (the same regrowth probability in every condition)."""
    params = dataclasses.replace(cond, episodic=False).params()
    pos, alive = jax.device_get(_entropy_rollout(cfg.world, cfg.entropy_steps)(
        jax.random.PRNGKey(seed), params))
    regrown = int(np.sum(alive[1:] & ~alive[:-1]))
    return {"drift_entropy": gw.empirical_transition_entropy(pos, alive),
            "drift_entropy_analytic": gw.transition_entropy(cfg.world, cond.p, 0.5),
            "regrowths_per_1k": 1000.0 * regrown / cfg.entropy_steps}


def train_condition(log, cfg: NonEpisodicConfig, cond: Condition, seeds: list[int]):
    """One condition, all seeds under one vmap: learning curves (validation and test
    success) and lifetime measures per seed, and the world's measured transition entropy."""
    init, chunk = _compiled(cfg)
    steps = curve_steps(_dqn(cfg))
    carry = init(keys(seeds), cond.params())

    def lifetime(carry) -> dict:
        st = carry.env_state  # [S, 1, ...]: one life per seed
        return {"lifetime_successes": np.asarray(st.successes[:, 0]),
                "visitation_entropy": np.asarray(gw.visitation_entropy(st.visits[:, 0]))}

    _, curves = run_chunks(chunk, carry, cfg.num_evals, cond.name, observe=lifetime,
                           finite="loss", where=cond.name, lr=cfg.lr)
    for i, s in enumerate(seeds):
        log("curve", condition=cond.name, group=cond.group, knob=cond.knob, seed=s,
            steps=steps, success=curves["success"][i], hitting_time=curves["hitting_time"][i],
            test_success=curves["test_success"][i],
            test_hitting_time=curves["test_hitting_time"][i],
            lifetime_successes=curves["lifetime_successes"][i],
            visitation_entropy=curves["visitation_entropy"][i],
            td_loss=curves["loss"][i], q=curves["q"][i])
    entropy = measure_transition_entropy(cfg, cond, seeds[0])
    log("dynamism", condition=cond.name, **entropy)
    k = cfg.final_points
    log.headline(test_success=float(curves["test_success"][:, -k:].mean()),
                 drift_entropy=round(entropy["drift_entropy"], 3))
