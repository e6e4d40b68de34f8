"""BBF ("Bigger, Better, Faster", Schwarzer et al., 2023) as one pure function:
`make_train(config) -> train(rng)`, every loop a lax.scan, vmapped over seeds.

Algorithm box (per seed, one environment, every component behind a flag):
    network: Impala CNN (width scale) -> projection (latent) -> dueling C51 head; an MLP
             transition model on encoder features for SPR
    act with the target network (flag `target_action_selection`), epsilon-greedy
    store every step in a time-ordered prioritized ring buffer (flag `prioritized`)
    every env step: `loop.grad_steps` (the replay ratio) gradient steps on batches of sequences:
        n-step C51 loss (double DQN bootstrap; n and gamma annealed after each reset:
            n 10 -> 3 exponentially, gamma 0.97 -> 0.997 log-linearly in 1 - gamma,
            over `anneal_steps` gradient steps; flag `anneal`, else n=n_min, gamma=gamma_max)
        + spr_weight * SPR: roll the transition model `spr_steps` steps from the online
            latent with the taken actions; negative cosine between predicted projections
            and the EMA target's projections of the real future frames (flag `spr`)
        DrQ random shifts of every frame (flag `drq`); AdamW with weight decay on
        kernels only (`weight_decay`, 0 disables); target = EMA with `tau` per step
    every `reset_every` env steps until `reset_until` (flag `resets`): head, projection
    and prediction re-initialised; encoder and transition model shrink-and-perturbed
    (theta <- shrink * theta + (1 - shrink) * theta_random); optimizer state reset.
The ablation switches (resets, spr, anneal, weight_decay) are also data (`Knobs`, held in
the carry): a program compiled with a component switches it off per run, so one compiled
program trains the full agent and its ablations side by side under one vmap.
Simplifications at CPU scale, stated: the transition model is an MLP on the flattened
encoder features (BBF: a conv net on the spatial latent), and a time-limit truncation
inside an n-step window bootstraps from the stored true last observation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from selftaught.core.errors import UnknownNameError, check, check_at_least_one
from selftaught.rl import loop, replay
from selftaught.rl.envs import ENVS, make_env
from selftaught.rl.loop import Carry, LoopConfig
from selftaught.rl.networks import ImpalaStack
from selftaught.rl.returns import n_step_targets
from selftaught.rl.value_losses import atom_support, c51_project, cross_entropy

DEFAULT_LOOP = LoopConfig(env="Breakout-MinAtar", total_steps=20_000, batch_size=32,
                          buffer_size=20_000, train_every=1, grad_steps=2, eval_episodes=4)
"""BBF's loop defaults (presets change fields of it: `dataclasses.replace(DEFAULT_LOOP, ...)`)."""


@dataclasses.dataclass(frozen=True)
class BBFConfig:
    """BBF hyper-parameters; every component can be switched off for ablations. The loop's
    fields (environment, budget, replay, cadence, evaluation) are `loop`: one env per seed,
    `loop.grad_steps` gradient steps after every env step (the replay ratio; BBF: 8)."""

    loop: LoopConfig = DEFAULT_LOOP
    """the agent loop: env (a MinAtar game or ALE/<Game>; the bbf recipe sets it per game
    from --envs), budget, replay (batch_size = sequences per gradient step), grad_steps =
    the replay ratio (num_envs and train_every stay 1), evaluation"""
    width: float = 4.0
    """Impala channel scale (BBF: 4)"""
    channels: tuple[int, ...] = (16, 32, 32)
    """Impala channels at width 1 (BBF: 16, 32, 32); each is scaled by `width`"""
    latent: int = 512
    """projection / head width (BBF: 2048)"""
    num_atoms: int = 51
    """atoms of the C51 value distribution"""
    v_min: float = -10.0
    """lowest value of the C51 support"""
    v_max: float = 10.0
    """highest value of the C51 support"""
    lr: float = 1e-4
    """AdamW learning rate"""
    adam_eps: float = 1.5e-4
    """AdamW epsilon"""
    weight_decay: float = 0.1
    """AdamW weight decay on kernels (0 disables)"""
    max_grad_norm: float = 10.0
    """global gradient-norm clip"""
    tau: float = 0.005
    """EMA target update per gradient step"""
    target_action_selection: bool = True
    """act (epsilon-greedy) with the target network, as BBF does, instead of the online one"""
    prioritized: bool = True
    """prioritized replay (sampling by TD error)"""
    per_alpha: float = 0.5
    """prioritized-replay exponent on priorities (0 = uniform)"""
    per_beta: float = 0.5
    """prioritized-replay importance-sampling exponent"""
    resets: bool = True
    """periodic network resets (BBF's shrink-and-perturb of the torso, full reset of the head)"""
    reset_every: int = 5_000
    """env steps between resets (BBF: 20k of 100k)"""
    reset_until: int = 15_001
    """no resets at or after this env step"""
    shrink: float = 0.5
    """shrink-and-perturb factor at a reset: new = shrink * old + (1 - shrink) * fresh init"""
    anneal: bool = True
    """anneal the update horizon n and discount gamma after each reset"""
    n_max: int = 10
    """update horizon (n-step return) right after a reset"""
    n_min: int = 3
    """update horizon reached at the end of annealing"""
    gamma_min: float = 0.97
    """discount right after a reset"""
    gamma_max: float = 0.997
    """discount reached at the end of annealing"""
    anneal_steps: int = 2_500
    """gradient steps over which n and gamma are annealed after each reset (BBF: 10k)"""
    spr: bool = True
    """self-predictive representations auxiliary loss"""
    spr_steps: int = 5
    """future steps the SPR transition model predicts"""
    spr_weight: float = 5.0
    """weight of the SPR loss relative to the TD loss"""
    drq: bool = True
    """random-shift data augmentation of observations (DrQ)"""
    drq_pad: int = 1
    """random-shift padding in pixels (BBF on 84x84 Atari: 4; MinAtar 10x10: 1)"""
    eps_start: float = 1.0
    """epsilon of epsilon-greedy acting at the start"""
    eps_end: float = 0.01
    """epsilon after the decay"""
    eps_decay_steps: int = 2_000
    """environment steps over which epsilon decays linearly"""

    def validate(self) -> None:
        lc = self.loop
        if self.is_atari:
            pass  # real Atari through the host loop of selftaught.rl.atari
        elif lc.env not in ENVS:
            raise UnknownNameError("environment", lc.env, list(ENVS))
        else:
            check("MinAtar" in lc.env, "BBF uses a CNN and needs an image environment "
                  f"(a MinAtar game or ALE/<Game>), got {lc.env}")
        check(lc.num_envs == 1 and lc.train_every == 1, "BBF acts in one env and learns after "
              f"every step: keep loop.num_envs and loop.train_every at 1 (got {lc.num_envs}, "
              f"{lc.train_every}); loop.grad_steps is its replay ratio")
        check(self.v_min < self.v_max,
              f"v_min must be below v_max, got v_min={self.v_min}, v_max={self.v_max}")
        check(self.num_atoms >= 2, f"num_atoms must be at least 2, got {self.num_atoms}")
        check_at_least_one(self, "reset_every", "anneal_steps", "latent")
        check(1 <= self.n_min <= self.n_max, f"need 1 <= n_min <= n_max, got {self.n_min}, "
              f"{self.n_max}")
        check(0 < self.gamma_min <= self.gamma_max < 1,
              f"need 0 < gamma_min <= gamma_max < 1, got {self.gamma_min}, {self.gamma_max}")
        check(self.width > 0, f"width must be positive, got {self.width}")
        check(len(self.channels) >= 1 and all(int(ch * self.width) >= 1 for ch in self.channels),
              f"channels x width must leave at least one channel per stage, got "
              f"{self.channels} x {self.width}")
        check(0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}")
        check(self.spr_steps >= 1, f"spr_steps must be at least 1, got {self.spr_steps}")
        check(lc.buffer_size > lc.learning_starts + 2 * self.window,
              "loop.buffer_size must exceed loop.learning_starts plus two sequence windows")
        check(self.is_atari or not self.resets or self.reset_every % self.chunk_steps == 0,
              f"reset_every ({self.reset_every}) must be a multiple of the evaluation chunk "
              f"({self.chunk_steps} env steps = (loop.total_steps - loop.learning_starts) / "
              "loop.num_evals)")

    @property
    def is_atari(self) -> bool:
        """Real Atari (ALE/<Game>), trained by the host loop of selftaught.rl.atari."""
        return self.loop.env.startswith("ALE/")

    @property
    def window(self) -> int:
        """Steps a sampled sequence needs after its start."""
        return max(self.n_max, self.spr_steps + 1)

    @property
    def chunk_steps(self) -> int:
        """Environment steps per evaluation chunk: (total_steps - learning_starts) / num_evals."""
        return self.loop.steps_per_chunk


class BBFNet(nn.Module):
    num_actions: int
    num_atoms: int
    width: float
    latent: int
    obs_scale: float = 1.0
    channels: tuple[int, ...] = (16, 32, 32)

    def setup(self):
        self.encoder = ImpalaStack(width=self.width, channels=tuple(self.channels))
        self.transition = _Transition()
        self.projection = nn.Dense(self.latent)
        self.prediction = nn.Dense(self.latent)
        self.adv = nn.Dense(self.num_actions * self.num_atoms)
        self.val = nn.Dense(self.num_atoms)

    def features(self, obs):  # [B, F]: the Impala conv stack, flattened
        return self.encoder(obs * self.obs_scale)

    def head(self, f):  # dueling C51 logits [B, A, M]
        h = nn.relu(self.projection(f))
        adv = self.adv(h).reshape(f.shape[0], self.num_actions, self.num_atoms)
        return self.val(h)[:, None] + adv - adv.mean(axis=1, keepdims=True)

    def step(self, f, action):
        return self.transition(f, jax.nn.one_hot(action, self.num_actions))

    def project(self, f):
        return self.projection(f)

    def predict(self, f):
        return self.prediction(self.projection(f))

    def __call__(self, obs, action):  # touches every module (for init)
        f = self.features(obs)
        return self.head(f), self.predict(self.step(f, action))


class _Transition(nn.Module):
    @nn.compact
    def __call__(self, f, a_onehot):
        h = nn.relu(nn.Dense(f.shape[-1])(jnp.concatenate([f, a_onehot], -1)))
        return nn.relu(nn.Dense(f.shape[-1])(h))


RESET_FULL = ("projection", "prediction", "adv", "val")
SHRINK = ("encoder", "transition")
KNOB_FIELDS = ("resets", "spr", "anneal", "weight_decay")


@struct.dataclass
class Knobs:
    """The ablation switches of one run as traced values. A component compiled out by the
    config stays off whatever its knob says; a compiled-in one runs only when its knob is on."""

    resets: jax.Array  # bool
    spr: jax.Array  # bool
    anneal: jax.Array  # bool
    weight_decay: jax.Array  # float32


def knobs_of(c: BBFConfig) -> Knobs:
    return Knobs(jnp.bool_(c.resets), jnp.bool_(c.spr), jnp.bool_(c.anneal),
                 jnp.float32(c.weight_decay))


def program_config(configs: list[BBFConfig]) -> BBFConfig:
    """One config whose compiled program can train every config in `configs` (they may
    differ only in KNOB_FIELDS): each component is compiled in when any of them uses it."""
    base = configs[0]
    strip = lambda c: dataclasses.replace(  # noqa: E731
        c, resets=False, spr=False, anneal=False, weight_decay=0.0)
    for c in configs[1:]:
        check(strip(c) == strip(base), "configs sharing a program may differ only in "
              f"{', '.join(KNOB_FIELDS)}")
    return dataclasses.replace(
        base, resets=any(c.resets for c in configs), spr=any(c.spr for c in configs),
        anneal=any(c.anneal for c in configs),
        weight_decay=max(c.weight_decay for c in configs))


def random_shift(key, obs_BxHxWxC, pad):
    """DrQ: pad by `pad` (edge replicate) and crop back at a random offset per image."""
    b, h, w, _ = obs_BxHxWxC.shape
    x = jnp.pad(obs_BxHxWxC, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    off = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1]))  # noqa
    return jax.vmap(crop)(x, off)


def schedule(c: BBFConfig, since_reset, anneal=True):
    """(n, gamma) after `since_reset` gradient steps (the annealing of BBF); without
    annealing (config flag, or the traced `anneal` knob false) n = n_min, gamma = gamma_max."""
    fixed = jnp.int32(c.n_min), jnp.float32(c.gamma_max)
    if not c.anneal:
        return fixed
    frac = jnp.clip(since_reset / c.anneal_steps, 0.0, 1.0)
    n = jnp.round(jnp.exp(jnp.log(c.n_max) + frac * (jnp.log(c.n_min) - jnp.log(c.n_max))))
    lg = jnp.log(1 - c.gamma_min) + frac * (jnp.log(1 - c.gamma_max) - jnp.log(1 - c.gamma_min))
    n, gamma = n.astype(jnp.int32), (1.0 - jnp.exp(lg)).astype(jnp.float32)
    return jnp.where(anneal, n, fixed[0]), jnp.where(anneal, gamma, fixed[1])


def make_train(config: BBFConfig) -> Callable[[jax.Array], dict]:
    from selftaught.core import config as cfglib

    cfglib.validate(config)
    return make_agent(config).train


def make_agent(config: BBFConfig, env: Any = None, obs_scale: float = 1.0) -> BBFAgent:
    """The agent; `env` defaults to the gymnax env of config.env. A host-loop caller
    (Atari) passes any object with num_actions and obs_shape and uses init_host /
    policy / observe instead of the in-graph train / init / chunk. The carry is a
    `rl.loop.Carry` whose `grad_steps` counts gradient steps since the last reset and
    whose `extra` holds the ablation `Knobs`."""
    c = config
    lc = c.loop
    env = make_env(lc.env, lc.max_episode_steps or None) if env is None else env
    A, M = env.num_actions, c.num_atoms
    net = BBFNet(A, M, c.width, c.latent, obs_scale, tuple(c.channels))
    support = atom_support(c.v_min, c.v_max, M)
    W = c.window
    epsilon = loop.linear_epsilon(c.eps_start, c.eps_end, c.eps_decay_steps)

    def decay_mask(params):
        return jax.tree.map(lambda x: x.ndim > 1, params)

    def make_tx(weight_decay):  # the optimizer state does not depend on weight_decay
        return optax.chain(
            optax.clip_by_global_norm(c.max_grad_norm),
            optax.adamw(c.lr, eps=c.adam_eps, weight_decay=weight_decay, mask=decay_mask),
        )

    tx = make_tx(c.weight_decay)

    def init_params(key, obs=None):
        dummy = jnp.zeros((1, *env.obs_shape))
        return net.init(key, dummy, jnp.zeros((1,), jnp.int32))

    def q_values(params, obs):
        logits = net.apply(params, obs, method=lambda m, o: m.head(m.features(o)))
        return jnp.sum(jax.nn.softmax(logits) * support, axis=-1)

    def store(obs, action, st):
        return {"obs": obs.astype(jnp.uint8), "action": action.astype(jnp.int32),
                "reward": st.reward, "terminated": st.terminated.astype(jnp.float32),
                "done": st.done.astype(jnp.float32), "next_obs": st.next_obs.astype(jnp.uint8)}

    def sample(buf: replay.Buffer, key):
        cap = buf.capacity
        i = jnp.arange(cap)
        valid = ((buf.pos - 1 - i) % cap) >= W  # W successors already written
        alpha = c.per_alpha if c.prioritized else 0.0
        _, idx, weights = replay.sample_prioritized(buf, key, lc.batch_size, alpha, c.per_beta,
                                                    valid=valid)
        seq_idx = (idx[:, None] + jnp.arange(W + 1)[None]) % cap  # [B, W+1]
        seq = jax.tree.map(lambda d: d[seq_idx], buf.data)
        if not c.prioritized:
            weights = jnp.ones_like(weights)
        return seq, idx, weights

    def loss_fn(params, target_params, seq, weights, key, n, gamma, spr_on):
        b = seq["action"].shape[0]
        obs = seq["obs"].astype(jnp.float32)  # [B, W+1, H, W, C]
        next_obs = seq["next_obs"].astype(jnp.float32)
        ret, last, disc = n_step_targets(seq["reward"][:, :W], seq["terminated"][:, :W],
                                         seq["done"][:, :W], n, gamma)
        boot_obs = jnp.take_along_axis(next_obs, last[:, None, None, None, None], 1)[:, 0]
        k1, k2, k3 = jax.random.split(key, 3)
        aug = (lambda k, x: random_shift(k, x, c.drq_pad)) if c.drq else (lambda k, x: x)
        o0 = aug(k1, obs[:, 0])
        ob = aug(k2, boot_obs)
        f0 = net.apply(params, o0, method=BBFNet.features)
        logits = net.apply(params, f0, method=BBFNet.head)
        logits_sa = jnp.take_along_axis(logits, seq["action"][:, 0, None, None], 1)[:, 0]
        # double-DQN bootstrap on the target distribution
        q_next_online = jax.lax.stop_gradient(q_values(params, ob))
        a_star = jnp.argmax(q_next_online, axis=-1)
        tgt_logits = net.apply(target_params, ob, method=lambda m, o: m.head(m.features(o)))
        tgt_probs = jax.nn.softmax(jnp.take_along_axis(tgt_logits, a_star[:, None, None], 1)[:, 0])
        target = jax.lax.stop_gradient(c51_project(tgt_probs, ret, disc, c.v_min, c.v_max))
        ce = cross_entropy(logits_sa, target)
        td_loss = jnp.mean(weights * ce)
        spr_loss = jnp.float32(0.0)
        if c.spr:
            K = c.spr_steps
            fut = obs[:, 1 : K + 1].reshape(b * K, *obs.shape[2:])
            fut = aug(k3, fut)
            z_t = net.apply(target_params, fut, method=lambda m, o: m.project(m.features(o)))
            z_t = jax.lax.stop_gradient(z_t.reshape(b, K, -1))

            def roll(f, a):
                f = net.apply(params, f, a, method=BBFNet.step)
                return f, net.apply(params, f, method=BBFNet.predict)

            _, preds = jax.lax.scan(roll, f0, seq["action"][:, :K].T)  # [K, B, L]
            preds = jnp.swapaxes(preds, 0, 1)
            cos = jnp.sum(_l2n(preds) * _l2n(z_t), -1)  # [B, K]
            alive = jnp.cumsum(seq["done"][:, :K], axis=1) == 0  # no episode end before k+1
            spr_loss = jnp.where(spr_on, -jnp.sum(cos * alive) / jnp.maximum(alive.sum(), 1.0),
                                 0.0)
        total = td_loss + c.spr_weight * spr_loss
        return total, (ce, td_loss, spr_loss)

    def grad_step(carry: Carry, key):
        k_s, k_l = jax.random.split(key)
        seq, idx, w = sample(carry.buffer, k_s)
        kn = carry.extra
        n, gamma = schedule(c, carry.grad_steps, kn.anneal)
        (_, (ce, td, spr)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            carry.params, carry.target_params, seq, w, k_l, n, gamma, kn.spr)
        tx_run = make_tx(kn.weight_decay)
        updates, opt_state = tx_run.update(grads, carry.opt_state, carry.params)
        params = optax.apply_updates(carry.params, updates)
        target = optax.incremental_update(params, carry.target_params, c.tau)
        buf = replay.update_priorities(carry.buffer, idx, ce) if c.prioritized else carry.buffer
        carry = carry.replace(params=params, target_params=target, opt_state=opt_state,
                              buffer=buf, grad_steps=carry.grad_steps + 1)
        return carry, {"loss": td, "spr_loss": spr, "n": n, "gamma": gamma}

    def reset(carry: Carry):
        key, k = jax.random.split(carry.key)
        fresh = init_params(k)["params"]
        p = dict(carry.params["params"])
        for name in RESET_FULL:
            p[name] = fresh[name]
        for name in SHRINK:
            p[name] = jax.tree.map(lambda a, r: c.shrink * a + (1 - c.shrink) * r, p[name],
                                   fresh[name])
        params = {"params": p}
        return carry.replace(params=params, opt_state=tx.init(params), key=key,
                             grad_steps=jnp.int32(0))

    reset_after = jnp.array([-1, *reset_chunks(c)], jnp.int32)  # -1: never matches

    def after_chunk(carry: Carry, i):
        if not c.resets:
            return carry
        do = jnp.any(reset_after == i) & carry.extra.resets
        return jax.lax.cond(do, reset, lambda x: x, carry)

    in_graph = None
    if hasattr(env, "step"):  # a jittable env: the whole training run is one program
        in_graph = loop.make_loop(loop.spec(
            lc, env, init_params=init_params, tx=tx, q_values=q_values, grad_step=grad_step,
            store=store, epsilon=epsilon, act_with_target=c.target_action_selection,
            per_step_keys=True, after_chunk=after_chunk, last=("n", "gamma"),
        ))

    def init(rng, knobs: Knobs | None = None):
        """The carry after the random warm-up; `knobs` default to the config's switches."""
        return in_graph.init(rng, knobs_of(c) if knobs is None else knobs)

    def chunk(carry: Carry, i):
        carry, metrics = in_graph.chunk(carry, i)
        metrics.pop("train_episodes")
        return carry, metrics

    def train(rng):
        carry = init(rng)
        _, curves = jax.lax.scan(chunk, carry, jnp.arange(lc.num_evals))
        return curves

    # ---- host loop (one seed, environment stepped in Python, e.g. Atari)
    def init_host(rng):
        k_net, k_run = jax.random.split(rng)
        params = init_params(k_net)
        o = jnp.zeros(env.obs_shape, jnp.uint8)
        example = {"obs": o, "action": jnp.int32(0), "reward": jnp.float32(0),
                   "terminated": jnp.float32(0), "done": jnp.float32(0), "next_obs": o}
        target = jax.tree.map(jnp.copy, params)  # own buffers: the host loop donates the carry
        return Carry(params, target, tx.init(params), replay.init(example, lc.buffer_size),
                     jnp.int32(0), jnp.zeros(env.obs_shape), k_run, jnp.int32(0), jnp.int32(0),
                     jnp.float32(0), knobs_of(c))

    def policy(carry: Carry, obs, key, eps=None):
        eps = epsilon(carry.env_steps) if eps is None else eps
        eps = jnp.where(carry.env_steps < lc.learning_starts, 1.0, eps)
        acting = carry.target_params if c.target_action_selection else carry.params
        return loop.epsilon_greedy(key, q_values(acting, obs[None]), eps)[0]

    def observe(carry: Carry, item):
        """Store one transition; once past learning_starts, take loop.grad_steps steps."""
        item = {**item, "obs": item["obs"].astype(jnp.uint8),
                "next_obs": item["next_obs"].astype(jnp.uint8)}
        buf = replay.add(carry.buffer, jax.tree.map(lambda x: jnp.asarray(x)[None], item))
        carry = carry.replace(buffer=buf, env_steps=carry.env_steps + 1)
        key, k = jax.random.split(carry.key)
        carry = carry.replace(key=key)

        def learn(cc):
            cc, m = jax.lax.scan(grad_step, cc, jax.random.split(k, lc.grad_steps))
            return cc, jax.tree.map(jnp.mean, m)

        def skip(cc):
            zero = {"loss": jnp.float32(0), "spr_loss": jnp.float32(0), "n": jnp.float32(0),
                    "gamma": jnp.float32(0)}
            return cc, zero

        return jax.lax.cond(carry.env_steps > lc.learning_starts + W, learn, skip, carry)

    return BBFAgent(train, init, chunk, reset, init_params, net, init_host, policy, observe,
                    loss_fn, grad_step)


@dataclasses.dataclass(frozen=True)
class BBFAgent:
    """`train(rng)` and its pieces: init(rng[, knobs]) -> Carry, chunk(carry, i) -> (carry, metrics)
    (i = chunk index, unbatched), reset(carry), init_params(key), net; and for a host
    loop: init_host(rng), policy(carry, obs, key[, eps]) -> action, observe(carry, item)
    -> (carry, metrics) with item = {obs, action, reward, terminated, done, next_obs};
    the learner itself: loss_fn (-> (total, (ce, td_loss, spr_loss))) and grad_step."""

    train: Callable
    init: Callable
    chunk: Callable
    reset: Callable
    init_params: Callable
    net: BBFNet
    init_host: Callable
    policy: Callable
    observe: Callable
    loss_fn: Callable  # (params, target_params, seq, weights, key, n, gamma, spr_on)
    grad_step: Callable  # (carry, key) -> (carry, metrics)


def _l2n(x):
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def reset_chunks(c: BBFConfig) -> list[int]:
    """Indices of the evaluation chunks after which the networks are reset (in-graph
    loop): every `reset_every` env steps after learning starts, before `reset_until`."""
    if not c.resets:
        return []
    return [i for i in range(c.loop.num_evals)
            if ((i + 1) * c.chunk_steps) % c.reset_every == 0
            and c.loop.learning_starts + (i + 1) * c.chunk_steps < c.reset_until]


def reset_steps(c: BBFConfig) -> list[int]:
    """Environment steps at which the in-graph loop resets the networks."""
    return [c.loop.learning_starts + (i + 1) * c.chunk_steps for i in reset_chunks(c)]


def curve_steps(c: BBFConfig) -> list[int]:
    return c.loop.curve_steps()
