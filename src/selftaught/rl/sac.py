"""SAC (Haarnoja et al., 2018) with pluggable actor and critic losses, as one pure function:
`make_train(config, actor_loss=None, critic_loss=None) -> train(rng)`.

    train = make_train(SACConfig(loop=LoopConfig(env="Pendulum-v1")))
    curves = jax.jit(jax.vmap(train))(seeding.keys(range(4)))   # 4 seeds at once
    curves["eval_return"]  # [seeds, num_evals] deterministic-policy returns

Algorithm box (per seed, one compiled program; the loop is `rl.loop`):
    `loop.learning_starts` uniformly random steps into the replay buffer
    every `loop.train_every` env steps (actions a = tanh(mu + sigma * eps) from the actor),
    `grad_steps` times, on a uniform minibatch:
        critic:      a' ~ pi(s'); minimise mean critic_loss(...) over the twin critics
        actor:       a~ ~ pi(s) (reparameterised); minimise mean actor_loss(...)
        temperature: minimise -log_alpha * (log pi(a~|s) + target_entropy) (`learn_alpha`)
        targets:     Polyak averaging of the critics with `tau`
    evaluate: `loop.eval_episodes` episodes of the deterministic policy tanh(mu)
After training, with `eval_physics`, the final policy is also evaluated zero-shot under
each perturbed physics (the generalisation objective of MetaPG).

Losses are per-sample functions `loss(inputs) -> [B]` (the train loop minimises the mean);
`inputs` is a dict of [B] arrays:
    critic_loss: q1, q2 (online critics at (s, a); gradients flow into the critics),
        q1_next, q2_next (target critics at (s', a'), a' ~ pi(s')), logp_next (log pi(a'|s')),
        reward, discount (gamma * (1 - terminated)), alpha. All but q1, q2 are constants.
    actor_loss: q1_pi, q2_pi (online critics at (s, a~), a~ ~ pi(s); gradients flow into
        the actor through a~, the critics are not updated), logp_pi (log pi(a~|s),
        gradients flow), alpha (constant).
SAC's own losses (the defaults, CleanRL's form):
    critic = (q1 - y)^2 + (q2 - y)^2, y = reward + discount * (min(q1_next, q2_next)
             - alpha * logp_next)
    actor  = alpha * logp_pi - min(q1_pi, q2_pi)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from selftaught.core.errors import check, check_at_least_one
from selftaught.rl import loop, replay
from selftaught.rl.control import (
    CONTROL_ENVS,
    PhysicsError,
    bind,
    check_physics,
    make_control_env,
    stack_physics,
)
from selftaught.rl.envs import greedy_returns
from selftaught.rl.loop import Carry, LoopConfig
from selftaught.rl.networks import MLP

LossFn = Callable[[dict[str, jax.Array]], jax.Array]
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def sac_critic_loss(x: dict) -> jax.Array:
    y = x["reward"] + x["discount"] * (
        jnp.minimum(x["q1_next"], x["q2_next"]) - x["alpha"] * x["logp_next"])
    return (x["q1"] - y) ** 2 + (x["q2"] - y) ** 2


def sac_actor_loss(x: dict) -> jax.Array:
    return x["alpha"] * x["logp_pi"] - jnp.minimum(x["q1_pi"], x["q2_pi"])


DEFAULT_LOOP = LoopConfig(env="Pendulum-v1", total_steps=15_000, buffer_size=20_000,
                          train_every=1, eval_episodes=4)
"""SAC's loop defaults (change fields of it: `dataclasses.replace(DEFAULT_LOOP, ...)`)."""


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """SAC hyper-parameters (one seed; vmap runs many): the networks, the optimisers, the
    temperature, the targets and the training physics; the loop's fields (environment,
    budget, replay, cadence, evaluation) are `loop`."""

    loop: LoopConfig = DEFAULT_LOOP
    """the agent loop: env (Pendulum-v1 | CartPoleContinuous), budget, replay buffer,
    training cadence, evaluation (eval_episodes of the deterministic policy)"""
    physics: tuple[str, ...] = ()
    """training physics overrides NAME=VALUE, e.g. l=1.5 (Pendulum) or length=0.75"""
    hidden: int = 64
    """units per hidden layer of the actor and of each critic"""
    layers: int = 2
    """hidden layers of the actor and of each critic"""
    actor_lr: float = 1e-3
    """Adam learning rate of the actor"""
    critic_lr: float = 1e-3
    """Adam learning rate of the critics"""
    alpha_lr: float = 1e-3
    """Adam learning rate of log(alpha)"""
    gamma: float = 0.99
    """discount"""
    tau: float = 0.005
    """Polyak factor of the target critics per gradient step"""
    init_alpha: float = 1.0
    """initial temperature"""
    learn_alpha: bool = True
    """tune the temperature toward target_entropy (else alpha stays init_alpha)"""
    target_entropy: float = -1.0
    """entropy target of the temperature loss (SAC: -action_dim)"""
    reward_scale: float = 1.0
    """rewards are multiplied by this for learning (returns are reported unscaled)"""

    def validate(self) -> None:
        from selftaught.core.errors import UnknownNameError

        if self.loop.env not in CONTROL_ENVS:
            raise UnknownNameError("continuous-control environment", self.loop.env,
                                   list(CONTROL_ENVS))
        self.train_physics()
        check_at_least_one(self, "hidden", "layers")
        check(self.loop.eval_epsilon == 0, "SAC evaluates its deterministic policy: keep "
              f"loop.eval_epsilon at 0 (a discrete agent's knob), got {self.loop.eval_epsilon}")
        check(0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}")
        check(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        check(min(self.actor_lr, self.critic_lr, self.alpha_lr) > 0,
              "learning rates must be positive")
        check(self.init_alpha > 0, f"init_alpha must be positive, got {self.init_alpha}")

    def train_physics(self) -> dict[str, float]:
        """The training physics: the env's defaults with `physics` applied (validated)."""
        env = make_control_env(self.loop.env, self.loop.max_episode_steps or None)
        over = {}
        for item in self.physics:
            name, sep, value = item.partition("=")
            try:
                over[name.strip()] = float(value)
            except ValueError:
                sep = ""
            if not sep:
                raise PhysicsError(f"physics override {item!r} is not NAME=VALUE (e.g. l=1.5)")
        return check_physics(env, over)


def curve_steps(c: SACConfig) -> list[int]:
    return c.loop.curve_steps()


class Actor(nn.Module):
    """obs -> (mean, log_std) of the pre-tanh Gaussian."""

    action_dim: int
    hidden: tuple[int, ...]

    @nn.compact
    def __call__(self, obs_BxD):
        h = MLP(hidden=self.hidden)(obs_BxD)
        mean = nn.Dense(self.action_dim)(h)
        log_std = jnp.clip(nn.Dense(self.action_dim)(h), LOG_STD_MIN, LOG_STD_MAX)
        return mean, log_std


class TwinCritic(nn.Module):
    """(obs, action) -> [2, B]: two independent Q networks."""

    hidden: tuple[int, ...]

    @nn.compact
    def __call__(self, obs_BxD, action_BxA):
        x = jnp.concatenate([obs_BxD, action_BxA], -1)
        return jnp.stack([nn.Dense(1)(MLP(hidden=self.hidden)(x))[:, 0] for _ in range(2)])


def tanh_gaussian_logp(mean, log_std, pre_tanh):
    """log density of a = tanh(u), u ~ N(mean, exp(log_std)), summed over action dims:
    log N(u) - sum log(1 - tanh(u)^2), with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))."""
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    log_n = -0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)
    log_det = 2.0 * (math.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(log_n - log_det, axis=-1)


@dataclasses.dataclass(frozen=True)
class Agent:
    """train(rng) -> curves, and its pieces: the loop, the networks, grad_step(carry, key),
    losses(params, target_critic, batch, keys) for tests, policy(params, obs, eps)."""

    config: SACConfig
    train: Callable
    loop: loop.Loop
    actor: Actor
    critic: TwinCritic
    grad_step: Callable
    losses: Callable


def make_agent(config: SACConfig, actor_loss: LossFn | None = None,
               critic_loss: LossFn | None = None, eval_physics: list[dict] | None = None
               ) -> Agent:
    c = config
    actor_loss = sac_actor_loss if actor_loss is None else actor_loss
    critic_loss = sac_critic_loss if critic_loss is None else critic_loss
    lcfg = c.loop
    cenv = make_control_env(lcfg.env, lcfg.max_episode_steps or None)
    physics = {k: jnp.float32(v) for k, v in c.train_physics().items()}
    env = bind(cenv, physics)
    d = cenv.action_dim
    hidden = (c.hidden,) * c.layers
    actor, critic = Actor(d, hidden), TwinCritic(hidden)
    opt_a, opt_c, opt_t = (optax.adam(lr) for lr in (c.actor_lr, c.critic_lr, c.alpha_lr))

    def init_params(key, obs_1xD):
        k_a, k_c = jax.random.split(key)
        return {"actor": actor.init(k_a, obs_1xD),
                "critic": critic.init(k_c, obs_1xD, jnp.zeros((1, d))),
                "log_alpha": jnp.log(jnp.float32(c.init_alpha))}

    tx = optax.GradientTransformation(
        lambda p: (opt_a.init(p["actor"]), opt_c.init(p["critic"]), opt_t.init(p["log_alpha"])),
        None)

    def policy(actor_params, obs, eps):
        """(action in [-1, 1], log pi(action|obs)) for standard-normal noise eps."""
        mean, log_std = actor.apply(actor_params, obs)
        u = mean + jnp.exp(log_std) * eps
        return jnp.tanh(u), tanh_gaussian_logp(mean, log_std, u)

    def store(obs, action, st):
        return {"obs": obs, "action": action.astype(jnp.float32),
                "reward": st.reward * c.reward_scale, "next_obs": st.next_obs,
                "terminated": st.terminated.astype(jnp.float32)}

    def losses(params, target_critic, batch, keys):
        """(critic loss of params["critic"], actor loss of params["actor"] against the
        critics, temperature loss, metrics) on one batch; keys = (k_next, k_pi)."""
        alpha = jnp.exp(params["log_alpha"])
        b = batch["reward"].shape[0]
        a_next, logp_next = policy(params["actor"], batch["next_obs"],
                                   jax.random.normal(keys[0], (b, d)))
        q_next = critic.apply(target_critic, batch["next_obs"], a_next)
        const = jax.lax.stop_gradient
        discount = c.gamma * (1.0 - batch["terminated"])

        def c_loss(critic_params):
            q = critic.apply(critic_params, batch["obs"], batch["action"])
            per = critic_loss({"q1": q[0], "q2": q[1], "q1_next": const(q_next[0]),
                               "q2_next": const(q_next[1]), "logp_next": const(logp_next),
                               "reward": batch["reward"], "discount": discount,
                               "alpha": const(jnp.broadcast_to(alpha, (b,)))})
            return jnp.mean(per), q

        def a_loss(actor_params, critic_params):
            a_pi, logp_pi = policy(actor_params, batch["obs"], jax.random.normal(keys[1], (b, d)))
            q_pi = critic.apply(const(critic_params), batch["obs"], a_pi)
            per = actor_loss({"q1_pi": q_pi[0], "q2_pi": q_pi[1], "logp_pi": logp_pi,
                              "alpha": const(jnp.broadcast_to(alpha, (b,)))})
            return jnp.mean(per), logp_pi

        def t_loss(log_alpha, logp_pi):
            return -log_alpha * jnp.mean(const(logp_pi) + c.target_entropy)

        return c_loss, a_loss, t_loss

    def grad_step(carry: Carry, key):
        k_s, k_next, k_pi = jax.random.split(key, 3)
        batch, _ = replay.sample(carry.buffer, k_s, lcfg.batch_size)
        p, (s_a, s_c, s_t) = carry.params, carry.opt_state
        c_loss, a_loss, t_loss = losses(p, carry.target_params["critic"], batch, (k_next, k_pi))
        (lc, q), g = jax.value_and_grad(c_loss, has_aux=True)(p["critic"])
        upd, s_c = opt_c.update(g, s_c)
        critic_params = optax.apply_updates(p["critic"], upd)
        (la, logp_pi), g = jax.value_and_grad(a_loss, has_aux=True)(p["actor"], critic_params)
        upd, s_a = opt_a.update(g, s_a)
        actor_params = optax.apply_updates(p["actor"], upd)
        log_alpha = p["log_alpha"]
        lt = t_loss(log_alpha, logp_pi)
        if c.learn_alpha:
            upd, s_t = opt_t.update(jax.grad(t_loss)(log_alpha, logp_pi), s_t)
            log_alpha = optax.apply_updates(log_alpha, upd)
        params = {"actor": actor_params, "critic": critic_params, "log_alpha": log_alpha}
        target = {**carry.target_params, "critic": optax.incremental_update(
            critic_params, carry.target_params["critic"], c.tau)}
        carry = carry.replace(params=params, target_params=target, opt_state=(s_a, s_c, s_t),
                              grad_steps=carry.grad_steps + 1)
        return carry, {"critic_loss": lc, "actor_loss": la, "alpha_loss": lt,
                       "alpha": jnp.exp(log_alpha), "q": q.mean(), "entropy": -logp_pi.mean()}

    def greedy(key, params, obs):
        return jnp.tanh(actor.apply(params["actor"], obs)[0])

    lp = loop.make_loop(loop.spec(
        lcfg, env, init_params=init_params, tx=tx, grad_step=grad_step, store=store,
        noise=lambda key, shape: jax.random.normal(key, (*shape, d)),
        random_action=lambda key, shape: jax.random.uniform(key, (*shape, d), minval=-1.0,
                                                            maxval=1.0),
        explore=lambda params, obs, eps, rand, steps: policy(params["actor"], obs, eps)[0],
        greedy=greedy,
    ))
    grid = None if not eval_physics else stack_physics(
        [check_physics(cenv, ph) for ph in eval_physics])

    def train(rng):
        carry, curves = lp.run(rng)
        if grid is not None:
            k = jax.random.fold_in(carry.key, 1)

            def under(ph):
                ret = greedy_returns(bind(cenv, ph), lambda kk, o: greedy(kk, carry.params, o),
                                     k, lcfg.eval_episodes)
                return ret.mean()

            curves["perturbed_return"] = jax.vmap(under)(grid)
        return curves

    return Agent(c, train, lp, actor, critic, grad_step, losses)


def make_train(config: SACConfig, actor_loss: LossFn | None = None,
               critic_loss: LossFn | None = None, eval_physics: list[dict] | None = None
               ) -> Callable[[jax.Array], dict]:
    """A pure `train(rng) -> curves`: [num_evals] arrays eval_return, train_return,
    train_episodes, critic_loss, actor_loss, alpha_loss, alpha, q, entropy, env_steps; with
    `eval_physics` (a list of physics dicts) also perturbed_return [len(eval_physics)]: the
    final deterministic policy's mean return under each. Jit and vmap it over seeds."""
    from selftaught.core import config as cfglib

    cfglib.validate(config)
    return make_agent(config, actor_loss, critic_loss, eval_physics).train


__all__ = ["DEFAULT_LOOP", "LoopConfig", "SACConfig", "make_agent", "make_train",
           "sac_actor_loss", "sac_critic_loss", "tanh_gaussian_logp", "curve_steps"]
