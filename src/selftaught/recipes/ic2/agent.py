"""IC2: the intrinsic rewards (IC2, belief entropy, observation surprise, novelty, the exact
filter's), the filters (learned RSSM, exact factorised Bayes filter) and the agent: rollout,
PPO update and filter ELBO step in one jitted iteration, vmapped over seeds."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from selftaught.core import programs
from selftaught.recipes.ic2.config import (
    IC2Config,
)
from selftaught.rl import bayes_filter as bf
from selftaught.rl import gridworld as gw
from selftaught.rl import ppo as ppolib
from selftaught.rl import rssm as rs


def bernoulli_log_prob(obs_xO, theta_xO) -> jax.Array:
    """log prod_i Bernoulli(obs_i; theta_i), summed over the last axis."""
    return jnp.sum(obs_xO * jnp.log(theta_xO) + (1.0 - obs_xO) * jnp.log1p(-theta_xO), -1)


def running_bernoulli(obs_TxBxO) -> jax.Array:
    """Per step t, the Laplace-smoothed Bernoulli density of observations 0..t:
    theta_t = (1 + sum_{s<=t} o_s) / (2 + t + 1)."""
    t = jnp.arange(1, obs_TxBxO.shape[0] + 1, dtype=jnp.float32)[:, None, None]
    return (1.0 + jnp.cumsum(obs_TxBxO, 0)) / (2.0 + t)


def state_code(spec: gw.WorldSpec, ws: gw.WorldState) -> jax.Array:
    """A uint32 code of the full world state (agent cell, prey cells, captured flags);
    exact while (n^2) (2 n^2)^K < 2^32, a wrapping hash beyond."""
    n = spec.size
    code = (ws.agent[..., 0] * n + ws.agent[..., 1]).astype(jnp.uint32)
    cell = (ws.obj_pos[..., 0] * n + ws.obj_pos[..., 1]) * 2 + ws.captured.astype(jnp.int32)
    for k in range(spec.num_objects):
        code = code * jnp.uint32(2 * n * n) + cell[..., k].astype(jnp.uint32)
    return code


def empirical_entropy(codes_T) -> jax.Array:
    """Entropy (nats) of the empirical distribution of the T values in `codes_T`."""
    T = codes_T.shape[0]
    s = jnp.sort(codes_T)
    new = jnp.concatenate([jnp.ones(1, bool), s[1:] != s[:-1]])
    counts = jnp.zeros(T).at[jnp.cumsum(new) - 1].add(1.0)
    p = counts / T
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


def intrinsic_rewards(mean_TxBxZ, std_TxBxZ, obs_TxBxO, novelty_theta_O) -> jax.Array:
    """[4, T-1, B] rewards of the actions a_0..a_{T-2} read at step t+1 (inputs cover
    steps 0..T-1): ic2, belief-entropy, visitation-obs, novelty."""
    m, s = rs.moment_match(mean_TxBxZ, std_TxBxZ)
    r_ic2 = -rs.gaussian_cross_entropy(mean_TxBxZ, std_TxBxZ, m, s)
    r_bel = -rs.gaussian_entropy(std_TxBxZ)
    r_obs = bernoulli_log_prob(obs_TxBxO, running_bernoulli(obs_TxBxO))
    r_nov = -bernoulli_log_prob(obs_TxBxO, novelty_theta_O)
    return jnp.stack([r_ic2, r_bel, r_obs, r_nov])[:, 1:]


@struct.dataclass
class AgentState:
    fparams: object
    fopt: object
    policy: ppolib.PPOState
    counts: jax.Array  # [O] lifetime observation counts (novelty density)
    n_obs: jax.Array  # observations counted
    key: jax.Array


def _models(cfg: IC2Config):
    spec = cfg.world
    obs_dim = int(np.prod(spec.obs_shape))
    rssm = rs.RSSM(obs_dim=obs_dim, num_actions=gw.NUM_ACTIONS, deter=cfg.deter,
                   stoch=cfg.stoch, hidden=cfg.hidden, recurrent=cfg.recurrent)
    policy = ppolib.ActorCritic(gw.NUM_ACTIONS, cfg.hidden)
    return rssm, policy, rs.make_filter_learner(rssm, cfg.filter_lr, cfg.kl_weight)


def exact_features(spec: gw.WorldSpec, obs_BxO, agent_Bx2, b_BxKxS, qsum_BxKxS, t):
    """The policy input from the exact filter: [window, one-hot own cell, beliefs b_t,
    their running mean over the episode q_t, t / T]."""
    B, n = obs_BxO.shape[0], spec.size
    qbar = qsum_BxKxS / (t + 1.0)
    return jnp.concatenate([
        obs_BxO.reshape(B, -1), jax.nn.one_hot(agent_Bx2[:, 0] * n + agent_Bx2[:, 1], n * n),
        b_BxKxS.reshape(B, -1), qbar.reshape(B, -1),
        jnp.full((B, 1), t / spec.episode_steps, jnp.float32)], -1)


def exact_reward(b_TxBxKxS) -> jax.Array:
    """[T, B] ic2-exact's reward read at each step t: -H(b_t) - KL(b_t || q_t) =
    sum_k sum_s b_t,k(s) log q_t,k(s), q_t = the mean of the episode's beliefs b_0..b_t."""
    t = jnp.arange(1, b_TxBxKxS.shape[0] + 1, dtype=jnp.float32)[:, None, None, None]
    return -bf.cross_entropy(b_TxBxKxS, jnp.cumsum(b_TxBxKxS, 0) / t).sum(-1)


def out_of_view_measures(spec: gw.WorldSpec, seen_TxB, free_TxB, agent_TxBx2, h_exact_TxB,
                         h_learned_TxB) -> dict:
    """Per-episode sums of the behaviour and filter diagnostics over steps t (before the
    action): `oov_steps` (free prey left, none in view), `hiding_steps` (those with the agent
    on a wall cell), `inview_steps` (some free prey in view), the exact and learned filters'
    entropy summed over out-of-view (`*_entropy_oov`) and in-view (`*_entropy_inview`)
    steps, `oov_pairs` (consecutive out-of-view steps, no capture between them) and the
    summed entropy change over those pairs of the exact (`exact_growth`) and learned
    (`learned_growth`) filters; `entropy_corr`: Pearson correlation of the two filters'
    entropies over every step of the batch."""
    n = spec.size
    oov = (seen_TxB == 0) & (free_TxB > 0)
    inview = (seen_TxB > 0) & (free_TxB > 0)
    wall = jnp.any((agent_TxBx2 == 0) | (agent_TxBx2 == n - 1), -1)
    pair = oov[1:] & oov[:-1] & (free_TxB[1:] == free_TxB[:-1])
    d_ex, d_le = jnp.diff(h_exact_TxB, axis=0), jnp.diff(h_learned_TxB, axis=0)
    he, hl = h_exact_TxB - h_exact_TxB.mean(), h_learned_TxB - h_learned_TxB.mean()
    corr = jnp.sum(he * hl) / jnp.sqrt(jnp.sum(he ** 2) * jnp.sum(hl ** 2) + 1e-12)
    B = seen_TxB.shape[1]
    return {"oov_steps": oov.sum() / B, "hiding_steps": (oov & wall).sum() / B,
            "inview_steps": inview.sum() / B,
            "exact_entropy_oov": jnp.sum(oov * h_exact_TxB) / B,
            "exact_entropy_inview": jnp.sum(inview * h_exact_TxB) / B,
            "learned_entropy_oov": jnp.sum(oov * h_learned_TxB) / B,
            "learned_entropy_inview": jnp.sum(inview * h_learned_TxB) / B,
            "oov_pairs": pair.sum() / B,
            "exact_growth": jnp.sum(pair * d_ex) / B, "learned_growth": jnp.sum(pair * d_le) / B,
            "entropy_corr": corr}


def make_agent(cfg: IC2Config):
    """(init(key) -> AgentState, iteration(state, w) -> (state, metrics),
    rollout(state, w, key, keep_states) -> trajectory). w (`_weights`, traced): reward
    weights of [ic2, belief-entropy, visitation-obs, novelty], the random-policy flag, the
    weight of ic2-exact's reward, the exact-input flag."""
    spec = cfg.world
    T, B = spec.episode_steps, cfg.envs
    rssm, policy, (filter_init, filter_fit) = _models(cfg)
    wparams = gw.world_params(p=0.0, p_prey=cfg.p_prey, episodic=False)
    feat_dim = cfg.deter + 2 * cfg.stoch
    exact = cfg.exact_filter
    if exact:
        S = bf.num_states(spec)
        feat_dim += int(np.prod(spec.obs_shape)) + spec.size ** 2 + 2 * spec.num_prey * S + 1
    filt = jax.vmap(lambda b, a, o: bf.step(spec, b, a, o, cfg.p_prey))

    def act_fn(w):  # the policy; the random agent (w[4]) has uniform logits
        def apply(pparams, feat):
            logits, value = policy.apply(pparams, feat)
            return jnp.where(w[4] > 0, jnp.zeros_like(logits), logits), value
        return apply

    def features(fs, post, w, ex):
        feat = jnp.concatenate([fs.h, post.mean, post.std], -1)
        if exact:
            feat = jnp.concatenate([feat * (1.0 - w[6]), ex * w[6]], -1)
        return jax.lax.stop_gradient(feat)

    def init(key):
        k_f, k_p, k_run = jax.random.split(key, 3)
        fparams = rssm.init_params(k_f)
        pparams = policy.init(k_p, jnp.zeros((1, feat_dim)))
        obs_dim = rssm.obs_dim
        pstate = ppolib.make_ppo(cfg.ppo, policy.apply).init(pparams)
        return AgentState(fparams, filter_init(fparams), pstate,
                          jnp.zeros(obs_dim), jnp.float32(0), k_run)

    def rollout(st: AgentState, w, key, keep_states: bool = False):
        """`envs` episodes of T steps from fresh worlds; filtering online."""
        k_reset, k_run, k_last = jax.random.split(key, 3)
        obs0, ws0 = jax.vmap(lambda k: gw.reset(spec, k, wparams))(jax.random.split(k_reset, B))

        def body(c, xs):
            (ws, fs, a_prev, obs), (b, qsum) = c
            t, k = xs
            k_f, k_a, k_e = jax.random.split(k, 3)
            fs, post, _ = rssm.apply(st.fparams, fs, a_prev, obs, k_f, method=rssm.filter)
            ex = exact_features(spec, obs, ws.agent, b, qsum, t) if exact else None
            feat = features(fs, post, w, ex)
            a, logp, value = ppolib.sample_action(act_fn(w), st.policy.params, feat, k_a)
            obs2, ws2, *_ = jax.vmap(lambda kk, s, aa: gw.step(spec, kk, s, aa))(
                jax.random.split(k_e, B), ws, a)
            out = {"obs": obs, "action": a, "logp": logp, "value": value, "feat": feat,
                   "mean": post.mean, "std": post.std, "code": state_code(spec, ws2),
                   "captured": jnp.sum(ws2.captured, -1)}
            if keep_states:
                out["world"] = ws2
            if exact:  # the exact filter: b_t (before the action), then b_t+1
                out.update(b=b, agent=ws.agent, free=spec.num_prey - jnp.sum(ws.captured, -1))
                b = filt(b, ws2.agent, obs2)
                qsum = qsum + b
            return ((ws2, fs, a, obs2), (b, qsum)), out

        b0 = jax.vmap(lambda a, o: bf.initial(spec, a, o))(ws0.agent, obs0) if exact else None
        c0 = ((ws0, rssm.initial(B), jnp.full((B,), -1, jnp.int32), obs0), (b0, b0))
        ((ws, fs, a_last, obs_last), (b, qsum)), tr = jax.lax.scan(
            body, c0, (jnp.arange(T), jax.random.split(k_run, T)))
        # the belief after the last action (its reward is read there)
        fs, post, _ = rssm.apply(st.fparams, fs, a_last, obs_last, k_last, method=rssm.filter)
        ex = exact_features(spec, obs_last, ws.agent, b, qsum, T) if exact else None
        tr["last_value"] = policy.apply(st.policy.params, features(fs, post, w, ex))[1]
        if exact:
            tr["b_all"] = jnp.concatenate([tr["b"], b[None]])  # [T+1, B, K, S]
        tr["obs_all"] = jnp.concatenate([tr["obs"], obs_last[None]])  # [T+1, B, ...]
        tr["mean_all"] = jnp.concatenate([tr["mean"], post.mean[None]])
        tr["std_all"] = jnp.concatenate([tr["std"], post.std[None]])
        tr["world0"] = ws0
        return tr

    def iteration(st: AgentState, w):
        key, k_roll, k_elbo = jax.random.split(st.key, 3)
        tr = rollout(st, w, k_roll)
        obs_flat = tr["obs_all"].reshape(T + 1, B, -1)
        theta = (1.0 + st.counts) / (2.0 + st.n_obs)
        r4 = intrinsic_rewards(tr["mean_all"], tr["std_all"], obs_flat, theta)  # [4, T, B]
        r = jnp.tensordot(w[:4].astype(jnp.float32), r4, 1)
        if exact:
            r = r + w[5] * exact_reward(tr["b_all"])[1:]
        batch = {"obs": tr["feat"], "action": tr["action"], "logp": tr["logp"],
                 "value": tr["value"], "last_value": tr["last_value"]}
        k_mb = jax.random.fold_in(k_roll, 1)  # minibatch shuffling (unused at 1 minibatch)
        pstate, pm = ppolib.make_ppo(cfg.ppo, act_fn(w)).update(st.policy, batch, r, k_mb)
        actions = jnp.concatenate([tr["action"], jnp.zeros((1, B), jnp.int32)])

        (fparams, fopt), (loss, parts) = filter_fit(
            st.fparams, st.fopt, obs_flat, actions, jax.random.split(k_elbo, cfg.filter_steps))
        st = st.replace(fparams=fparams, fopt=fopt, policy=pstate,
                        counts=st.counts + obs_flat.sum((0, 1)),
                        n_obs=st.n_obs + (T + 1) * B, key=key)
        metrics = {
            "captures": jnp.mean(tr["captured"][-1].astype(jnp.float32)),
            "state_entropy": jnp.mean(jax.vmap(empirical_entropy, 1)(tr["code"])),
            "elbo_loss": loss[-1], "recon": parts["recon"][-1], "kl": parts["kl"][-1],
            "belief_entropy": -jnp.mean(r4[1]), "latent_cross_entropy": -jnp.mean(r4[0]),
            "policy_entropy": pm["entropy"],
        }
        if exact:
            seen = tr["obs"][..., bf.PREY_CHANNEL].sum((-1, -2))
            metrics.update(out_of_view_measures(
                spec, seen, tr["free"], tr["agent"], bf.entropy(tr["b"]).sum(-1),
                rs.gaussian_entropy(tr["std"])))
            metrics["exact_reward"] = jnp.mean(exact_reward(tr["b_all"])[1:])
        return st, metrics

    return init, iteration, rollout


@programs.cached(vmap=(0, (0, None)), maxsize=4)
def _compiled(cfg: IC2Config):
    """(init(keys_S), chunk(states_S, weights_5)) jitted, vmapped over seeds; the reward
    weights are traced, so every agent runs the same compiled program."""
    init, iteration, _ = make_agent(cfg)
    per_chunk = cfg.iterations // cfg.num_evals

    def chunk(st, w):
        st, m = jax.lax.scan(lambda s, _: iteration(s, w), st, None, per_chunk)
        return st, jax.tree.map(jnp.mean, m)

    return init, chunk
