"""A small RSSM-style latent filter (deep variational Bayes filter) for partially observed
worlds with discrete actions (rl.md §6, IC2).

    rssm = RSSM(obs_dim=54, num_actions=5)             # deter 32, stoch 8 by default
    params = rssm.init_params(key)
    state = rssm.initial(batch)                        # FilterState(h [B, D], z [B, Z])
    state, post, prior = rssm.apply(params, state, a_prev_B, obs_BxO, key, method=rssm.filter)
    loss, m = elbo_loss(rssm, params, obs_TxBxO, actions_TxB, key)   # -ELBO per step
    init_opt, fit = make_filter_learner(rssm, lr=1e-3)                # Adam on -ELBO

Model (Hafner et al. 2019's RSSM, Gaussian stochastic state, Bernoulli pixels):
    deterministic path  h_t = GRU(h_{t-1}, [z_{t-1}, onehot(a_{t-1})])
                        (recurrent=False: h_t = MLP(z_{t-1}, a_{t-1}), memory only in z)
    transition prior    p(z_t | h_t)         = N(mu, sigma), sigma = softplus(.) + min_std
    posterior (belief)  q(z_t | h_t, o_t)    = N(mu, sigma)   (the filter's belief b_t)
    decoder             p(o_t | h_t, z_t)    = prod Bernoulli(logits)
    ELBO_t = E_q[log p(o_t | h_t, z_t)] - KL(q(z_t | h_t, o_t) || p(z_t | h_t))
The first step uses a_{-1} = "no action" (a zero one-hot) and h = z = 0.

Belief measures used by IC2 (all for diagonal Gaussians, in nats):
    gaussian_entropy(std)                         H(b)
    gaussian_cross_entropy(mu, std, m, s)         H(b, q) = -E_{z~b}[log q(z)]
    moment_match(mean_TxZ, std_TxZ)               running Gaussian fit of a belief sequence
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

LOG_2PI = math.log(2.0 * math.pi)


@struct.dataclass
class FilterState:
    h: jax.Array  # [B, deter] deterministic (GRU) state
    z: jax.Array  # [B, stoch] last stochastic latent sample


@struct.dataclass
class Gaussian:
    mean: jax.Array
    std: jax.Array


def _gaussian(x, min_std: float) -> Gaussian:
    mean, raw = jnp.split(x, 2, axis=-1)
    return Gaussian(mean, jax.nn.softplus(raw) + min_std)


class RSSM(nn.Module):
    obs_dim: int
    num_actions: int
    deter: int = 32
    stoch: int = 8
    hidden: int = 64
    min_std: float = 0.1
    recurrent: bool = True
    """False: no deterministic memory, h_t = MLP(z_{t-1}, a_{t-1}), so everything the
    filter remembers (and how unsure it is) lives in the belief over z (a deep variational
    Bayes filter, IC2's state-space model)"""

    def setup(self):
        self.encoder = nn.Sequential([nn.Dense(self.hidden), nn.elu, nn.Dense(self.hidden),
                                      nn.elu])
        self.inp = nn.Dense(self.hidden)
        self.gru = nn.GRUCell(self.deter) if self.recurrent else None
        self.trans = None if self.recurrent else nn.Dense(self.deter)
        self.prior_net = nn.Sequential([nn.Dense(self.hidden), nn.elu,
                                        nn.Dense(2 * self.stoch)])
        self.post_net = nn.Sequential([nn.Dense(self.hidden), nn.elu,
                                       nn.Dense(2 * self.stoch)])
        self.decoder = nn.Sequential([nn.Dense(self.hidden), nn.elu, nn.Dense(self.hidden),
                                      nn.elu, nn.Dense(self.obs_dim)])

    def initial(self, batch: int) -> FilterState:
        return FilterState(jnp.zeros((batch, self.deter)), jnp.zeros((batch, self.stoch)))

    def filter(self, state: FilterState, a_prev_B, obs_BxO, key):
        """One filtering step: (new state, posterior = belief b_t, prior p(z_t | h_t)).
        `a_prev_B` < 0 means no previous action (the first step)."""
        a = jax.nn.one_hot(a_prev_B, self.num_actions)  # a negative index -> zeros
        x = nn.elu(self.inp(jnp.concatenate([state.z, a], -1)))
        if self.recurrent:
            h, _ = self.gru(state.h, x)
        else:
            h = nn.elu(self.trans(x))
        prior = _gaussian(self.prior_net(h), self.min_std)
        e = self.encoder(obs_BxO.reshape(obs_BxO.shape[0], -1))
        post = _gaussian(self.post_net(jnp.concatenate([h, e], -1)), self.min_std)
        z = post.mean + post.std * jax.random.normal(key, post.mean.shape)
        return FilterState(h, z), post, prior

    def decode(self, state: FilterState):
        """Bernoulli logits of the observation [B, obs_dim]."""
        return self.decoder(jnp.concatenate([state.h, state.z], -1))

    def init_params(self, key):
        state = self.initial(1)
        obs = jnp.zeros((1, self.obs_dim))
        return self.init(key, state, jnp.zeros(1, jnp.int32), obs, key,
                         method=lambda m, *a: m.decode(m.filter(*a)[0]))


def kl_gaussian(q: Gaussian, p: Gaussian) -> jax.Array:
    """KL(q || p) of diagonal Gaussians, summed over the last axis."""
    var_ratio = (q.std / p.std) ** 2
    t = ((q.mean - p.mean) / p.std) ** 2
    return 0.5 * jnp.sum(var_ratio + t - 1.0 - jnp.log(var_ratio), -1)


def gaussian_entropy(std) -> jax.Array:
    """H(N(., diag std^2)) in nats, summed over the last axis."""
    return jnp.sum(0.5 * (1.0 + LOG_2PI) + jnp.log(std), -1)


def gaussian_cross_entropy(mean, std, q_mean, q_std) -> jax.Array:
    """H(b, q) = -E_{z ~ N(mean, std^2)}[log N(z; q_mean, q_std^2)], summed over the last
    axis (= H(b) + KL(b || q))."""
    return jnp.sum(0.5 * LOG_2PI + jnp.log(q_std)
                   + (std ** 2 + (mean - q_mean) ** 2) / (2.0 * q_std ** 2), -1)


def moment_match(mean_TxZ, std_TxZ, prior_weight: float = 1.0, min_std: float = 1e-3):
    """For every t, the Gaussian with the mean and variance of the mixture of N(0, I)
    (weight `prior_weight`) and the beliefs 0..t (weight 1 each): a running density model
    of the latent visitation. Returns (mean_TxZ, std_TxZ). Axis 0 is time; any trailing
    batch axes are kept."""
    n = prior_weight + jnp.arange(1, mean_TxZ.shape[0] + 1, dtype=mean_TxZ.dtype)
    n = n.reshape((-1,) + (1,) * (mean_TxZ.ndim - 1))
    m = jnp.cumsum(mean_TxZ, 0) / n
    second = (prior_weight + jnp.cumsum(std_TxZ ** 2 + mean_TxZ ** 2, 0)) / n
    var = jnp.maximum(second - m ** 2, min_std ** 2)
    return m, jnp.sqrt(var)


def rollout_filter(rssm: RSSM, params, obs_TxBxO, actions_TxB, key):
    """Filter a batch of sequences: obs o_0..o_{T-1}, actions a_0..a_{T-1} (a_t follows
    o_t; the last one is unused). Returns per step {post, prior, logits, h, z}."""
    T, B = obs_TxBxO.shape[:2]
    a_prev = jnp.concatenate([jnp.full((1, B), -1, actions_TxB.dtype), actions_TxB[:-1]])

    def body(state, xs):
        a, o, k = xs
        state, post, prior = rssm.apply(params, state, a, o, k, method=rssm.filter)
        logits = rssm.apply(params, state, method=rssm.decode)
        return state, {"post": post, "prior": prior, "logits": logits, "h": state.h,
                       "z": state.z}

    _, out = jax.lax.scan(body, rssm.initial(B), (a_prev, obs_TxBxO, jax.random.split(key, T)))
    return out


def elbo_loss(rssm: RSSM, params, obs_TxBxO, actions_TxB, key, kl_weight: float = 1.0,
              free_nats: float = 0.0):
    """Negative ELBO per time step, averaged over time and batch, and its parts
    {recon (nats), kl (nats)}. `free_nats` clips the KL from below per step (0 = none)."""
    out = rollout_filter(rssm, params, obs_TxBxO, actions_TxB, key)
    target = obs_TxBxO.reshape(*obs_TxBxO.shape[:2], -1)
    nll = jnp.sum(jnp.logaddexp(0.0, out["logits"]) - target * out["logits"], -1)
    kl = kl_gaussian(out["post"], out["prior"])
    loss = jnp.mean(nll + kl_weight * jnp.maximum(kl, free_nats))
    return loss, {"recon": jnp.mean(nll), "kl": jnp.mean(kl)}


def make_filter_learner(rssm: RSSM, lr: float, kl_weight: float = 1.0,
                        clip_norm: float = 100.0):
    """The filter's learner: Adam on the negative ELBO with the gradient clipped to
    `clip_norm` (global norm). Returns (init(params) -> optimiser state,
    fit(params, opt_state, obs_TxBxO, actions_TxB, keys_N) -> ((params, opt_state),
    (loss_N, parts_N))): one ELBO step per key, as one `lax.scan` (jittable, vmappable)."""
    tx = optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(lr))

    def fit(params, opt_state, obs_TxBxO, actions_TxB, keys_N):
        def step(c, k):
            p, o = c
            (loss, parts), g = jax.value_and_grad(
                lambda q: elbo_loss(rssm, q, obs_TxBxO, actions_TxB, k, kl_weight),
                has_aux=True)(p)
            upd, o = tx.update(g, o, p)
            return (optax.apply_updates(p, upd), o), (loss, parts)

        return jax.lax.scan(step, (params, opt_state), keys_N)

    return tx.init, fit
