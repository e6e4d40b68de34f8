"""DQN as one pure function: `make_train(config, loss_fn=None) -> train(rng)`.

    train = make_train(DQNConfig(loop=LoopConfig(env="CartPole-v1"), loss="hl_gauss"))
    curves = jax.jit(jax.vmap(train))(seeding.keys(range(10)))   # 10 seeds at once
    curves["eval_return"]  # [seeds, num_evals], greedy returns measured inside the program

Algorithm box (per seed, everything inside one compiled program):
    collect `loop.learning_starts` random transitions from `loop.num_envs` parallel envs
    repeat num_evals times (one "chunk"):
        repeat: `train_every` epsilon-greedy vector steps into the replay ring buffer,
                then `grad_steps` gradient steps on uniform minibatches
                (target net: hard copy every `target_update_every` gradient steps, or
                 Polyak averaging with `tau` < 1)
        evaluate: greedy episodes (`eval_episodes` parallel envs), undiscounted return
The loop (acting, epsilon, warm-up, env steps, evaluation) is `selftaught.rl.loop`; this
file holds the network, the loss and the gradient step. Double DQN (`double_dqn`, the
default) picks the bootstrap action with the online network, plain DQN with the target.
`make_train(config, env=...)` trains on any `rl.envs.Env` (e.g. a gridworld). CPU
throughput notes (bench/dqn.py): the exploration noise and env keys of a whole scan are
drawn up front, replay inserts are in-place dynamic-update-slices, and s' gets its own
forward pass so nothing back-propagates through it.

Custom losses (used by the evolutionary search over RL losses, rl.md §3):
`loss_fn(batch) -> per-sample loss [B]` receives a dict with
    q [B,A] online Q(s_t), q_target [B,A] target-net Q(s_{t+1}), q_next_online [B,A] online
    Q(s_{t+1}), action int[B], reward [B], discount [B] (= gamma * (1 - terminal): 0 at true
    terminals, gamma on time-limit truncation), obs [B,...], next_obs [B,...].
The train loop minimises the mean; gradients reach the online parameters through `q` and
`q_next_online` only (q_target is a constant). With loss_fn=None the configured value loss
(`mse`, `hl_gauss`, `two_hot`, `c51`) is used with a (double-)DQN bootstrap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from selftaught.core.errors import ConfigError, check, check_at_least_one
from selftaught.rl import loop, replay
from selftaught.rl.envs import ENVS, Env, greedy_returns, make_env, noisy_rewards, normalized_return
from selftaught.rl.loop import Carry, LoopConfig
from selftaught.rl.networks import ENCODERS, QNetwork
from selftaught.rl.value_losses import LOSSES, make_value_head

LossFn = Callable[[dict[str, jax.Array]], jax.Array]


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """DQN hyper-parameters (one seed; vmap runs many): the network, the value loss, the
    optimiser, the target and epsilon-greedy exploration; the loop's fields (environment,
    budget, replay, cadence, evaluation) are `loop`."""

    loop: LoopConfig = LoopConfig()
    """the agent loop: env (CartPole-v1, Acrobot-v1, Breakout-/Asterix-/Freeway-/
    SpaceInvaders-MinAtar), budget, replay buffer, training cadence, evaluation"""
    loss: str = "mse"
    """value loss: mse | hl_gauss | two_hot | c51"""
    num_bins: int = 51
    """bins (HL-Gauss) or atoms (two-hot, C51) of the value distribution"""
    v_min: float = 0.0
    """lowest representable value (classification losses)"""
    v_max: float = 100.0
    """highest representable value (classification losses)"""
    sigma_ratio: float = 0.75
    """HL-Gauss sigma as a fraction of the bin width"""
    encoder: str = "mlp"
    """network torso: mlp | minatar_cnn | impala"""
    width: float = 1.0
    """width multiplier of the torso"""
    lr: float = 2.5e-4
    """Adam learning rate"""
    adam_eps: float = 1e-5
    """Adam epsilon"""
    max_grad_norm: float = 10.0
    """global gradient-norm clip"""
    gamma: float = 0.99
    """discount"""
    reward_scale: float = 1.0
    """rewards are multiplied by this for learning (returns are reported unscaled)"""
    reward_noise: float = 0.0
    """sd of Gaussian noise added to every reward the learner stores ("noisy targets";
    before reward_scale); evaluation returns use the clean reward, train_return the noisy
    one (see `rl.envs.noisy_rewards`)"""
    reward_noise_per_sample: bool = False
    """draw the reward noise afresh each time a transition is replayed (in every sampled
    minibatch: zero-mean label noise the learner cannot memorise) instead of once per
    transition at collection (stored in the buffer, the default); train_return is then the
    clean return"""
    double_dqn: bool = True
    """bootstrap with the online network's greedy action (Double DQN)"""
    target_update_every: int = 50
    """hard target update period in gradient steps (used when tau == 1)"""
    tau: float = 1.0
    """Polyak factor per gradient step; 1.0 means hard updates"""
    eps_start: float = 1.0
    """epsilon of epsilon-greedy acting at the start"""
    eps_end: float = 0.05
    """epsilon after the decay"""
    eps_decay_frac: float = 0.5
    """fraction of loop.total_steps over which epsilon decays linearly"""

    def validate(self) -> None:
        from selftaught.core.errors import UnknownNameError

        if self.loop.env not in ENVS:
            raise UnknownNameError("environment", self.loop.env, list(ENVS))
        if self.loss not in LOSSES:
            raise UnknownNameError("value loss", self.loss, LOSSES)
        if self.encoder not in ENCODERS:
            raise UnknownNameError("encoder", self.encoder, ENCODERS)
        check(self.v_min < self.v_max,
              f"v_min must be below v_max, got v_min={self.v_min}, v_max={self.v_max}; "
              "set --v-min/--v-max to bracket the discounted returns")
        check(self.num_bins >= 2, f"num_bins must be at least 2, got {self.num_bins}")
        check_at_least_one(self, "target_update_every")
        check(self.width > 0, f"width must be positive, got {self.width}")
        check(0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}")
        check(0 <= self.gamma <= 1, f"gamma must be in [0, 1], got {self.gamma}")
        check(self.lr > 0, f"lr must be positive, got {self.lr}")
        check(self.reward_scale > 0, f"reward_scale must be positive, got {self.reward_scale}")
        check(self.reward_noise >= 0,
              f"reward_noise must be a non-negative sd, got {self.reward_noise}")


def replay_ratio(c: DQNConfig) -> float:
    """Gradient updates per environment step: grad_steps / (train_every * num_envs)."""
    return c.loop.replay_ratio


def curve_steps(c: DQNConfig) -> list[int]:
    """Environment steps at which the learning curve's points are measured."""
    return c.loop.curve_steps()


@dataclasses.dataclass(frozen=True)
class Agent:
    """The pieces of `train`, for callers that drive chunks from the host (progress bars).
    `init(rng, lr=None)`: with `lr` (a traced scalar, e.g. vmapped over a grid) the run's
    Adam step size is that value instead of config.lr, so one compiled program trains a
    whole learning-rate sweep."""

    config: DQNConfig
    init: Callable[..., Carry]
    chunk: Callable[[Carry], tuple[Carry, dict]]
    network: QNetwork
    loop: loop.Loop

    def train(self, rng: jax.Array) -> dict:
        return self.loop.train(rng)


def make_agent(config: DQNConfig, loss_fn: LossFn | None = None, env: Env | None = None,
               eval_fn: Callable | None = None) -> Agent:
    """The agent on `env` (default: the gymnax env named by config.env; pass any `Env`,
    e.g. a gridworld, to train on it). `eval_fn(policy, key) -> dict of scalars` replaces
    the greedy-return evaluation (policy(key, obs_N) -> actions_N acts with epsilon
    `eval_epsilon`)."""
    c = config
    lc = c.loop
    env = make_env(lc.env, lc.max_episode_steps or None) if env is None else env
    clean_env = env
    if c.reward_noise > 0 and not c.reward_noise_per_sample:
        # the learner stores noisy rewards; evaluation uses the clean env
        env = noisy_rewards(env, c.reward_noise)
        if eval_fn is None:
            eval_fn = lambda policy, key: {  # noqa: E731
                "eval_return": greedy_returns(clean_env, policy, key, lc.eval_episodes).mean()}
    if c.loss not in LOSSES:  # validate() is the user-facing check; keep make_* safe too
        raise ConfigError(f"unknown loss {c.loss!r}")
    head = make_value_head(c.loss, v_min=c.v_min, v_max=c.v_max, num_bins=c.num_bins,
                           sigma_ratio=c.sigma_ratio)
    net = QNetwork(c.encoder, env.num_actions, head.num_outputs, c.width)
    # Adam without its step size: the step is -lr * update, with lr = config.lr or the
    # run's own (traced) rate from init(rng, lr) (the same arithmetic as optax.adam(lr))
    tx = optax.chain(optax.clip_by_global_norm(c.max_grad_norm),
                     optax.scale_by_adam(eps=c.adam_eps))

    def q_values(params, obs):
        return head.q_values(net.apply(params, obs))

    def store(obs, action, st):
        # image observations (MinAtar) are 0/1 planes: store them as uint8 (4x less memory)
        dtype = jnp.uint8 if env.is_image else obs.dtype
        return {"obs": obs.astype(dtype), "action": action.astype(jnp.int32),
                "reward": st.reward * c.reward_scale, "next_obs": st.next_obs.astype(dtype),
                "terminated": st.terminated.astype(jnp.float32)}

    def loss(params, target_params, batch):
        obs, next_obs = batch["obs"], batch["next_obs"]
        out = net.apply(params, obs)
        # separate forward passes: with the built-in losses s' only picks the bootstrap
        # action, so no gradient flows through it (a shared forward on concat([s, s'])
        # back-propagated through all 2B rows and made the update ~2x slower on CPU)
        out_next_online = net.apply(params, next_obs)
        if loss_fn is None:
            out_next_online = jax.lax.stop_gradient(out_next_online)
        out_next_target = jax.lax.stop_gradient(net.apply(target_params, next_obs))
        discount = c.gamma * (1.0 - batch["terminated"])
        q = head.q_values(out)
        if loss_fn is None:
            q_sel = head.q_values(out_next_online if c.double_dqn else out_next_target)
            next_action = jax.lax.stop_gradient(jnp.argmax(q_sel, axis=-1))
            per = head.loss(out, batch["action"], batch["reward"], discount, out_next_target,
                            next_action)
        else:
            per = loss_fn({
                "q": q, "q_target": head.q_values(out_next_target),
                "q_next_online": head.q_values(out_next_online), "action": batch["action"],
                "reward": batch["reward"], "discount": discount, "obs": obs,
                "next_obs": next_obs,
            })
        q_sa = jnp.take_along_axis(q, batch["action"][:, None], axis=1)[:, 0]
        # the squared TD error in value units, comparable across losses (a diagnostic)
        q_next_t = head.q_values(out_next_target)
        a_next = jnp.argmax(head.q_values(out_next_online if c.double_dqn else out_next_target),
                            axis=-1)
        y = batch["reward"] + discount * jnp.take_along_axis(q_next_t, a_next[:, None], 1)[:, 0]
        td_sq = jax.lax.stop_gradient(jnp.mean((q_sa - y) ** 2))
        return jnp.mean(per), (jnp.mean(q_sa), td_sq)

    def grad_step(carry: Carry, key):
        if c.reward_noise > 0 and c.reward_noise_per_sample:  # fresh noise per replay
            key, k_noise = jax.random.split(key)
        batch, _ = replay.sample(carry.buffer, key, lc.batch_size)
        if c.reward_noise > 0 and c.reward_noise_per_sample:
            noise = jax.random.normal(k_noise, batch["reward"].shape, jnp.float32)
            batch = {**batch, "reward": batch["reward"] + c.reward_noise * c.reward_scale * noise}
        batch = {**batch, "obs": batch["obs"].astype(jnp.float32),
                 "next_obs": batch["next_obs"].astype(jnp.float32)}
        (loss_val, (q_mean, td_sq)), grads = jax.value_and_grad(loss, has_aux=True)(
            carry.params, carry.target_params, batch)
        updates, opt_state = tx.update(grads, carry.opt_state, carry.params)
        step = -(c.lr if carry.extra is None else carry.extra["lr"])
        updates = jax.tree.map(lambda u: step * u, updates)
        params = optax.apply_updates(carry.params, updates)
        n = carry.grad_steps + 1
        target = loop.hard_or_polyak(params, carry.target_params, n, c.tau,
                                     c.target_update_every)
        carry = carry.replace(params=params, target_params=target, opt_state=opt_state,
                              grad_steps=n)
        return carry, {"loss": loss_val, "q": q_mean, "td_sq": td_sq}

    lp = loop.make_loop(loop.spec(
        lc, env, init_params=net.init, tx=tx, q_values=q_values, grad_step=grad_step,
        store=store, evaluate=eval_fn,
        epsilon=loop.linear_epsilon(c.eps_start, c.eps_end,
                                    max(1.0, c.eps_decay_frac * lc.total_steps)),
    ))

    def init(rng, lr=None):
        return lp.init(rng, None if lr is None else {"lr": jnp.asarray(lr, jnp.float32)})

    return Agent(c, init, lambda carry: lp.chunk(carry, 0), net, lp)


def make_train(config: DQNConfig, loss_fn: LossFn | None = None, env: Env | None = None
               ) -> Callable[[jax.Array], dict]:
    """A pure `train(rng) -> curves` (dict of [num_evals] arrays: eval_return,
    train_return, train_episodes, loss, q, env_steps). Jit and vmap it over seeds.
    `env` replaces the gymnax env named by config.env (then config.env is not checked)."""
    from selftaught.core import config as cfglib

    # a caller-supplied env needs no registered name: validate the rest of the config
    cfglib.validate(config if env is None
                    else cfglib.replace(config, **{"loop.env": next(iter(ENVS))}))
    return make_agent(config, loss_fn, env).train


__all__ = ["Carry", "DQNConfig", "LoopConfig", "LossFn", "make_agent", "make_train",
           "normalized_return", "curve_steps", "replay_ratio"]
