"""Why HL-Gauss stalls under noisy rewards (issue 27 item 1): cheap isolating probes.

Breakout-MinAtar, the `value-classification --preset conditions` DQN (conv16 + FC128,
48k env steps, 8 envs, 1 update per 16 env steps), reward + N(0, 1) for learning, greedy
evaluation on the clean reward. Held-out tuning seeds only (100-102 by default; never the
reported seeds 0-4). Every lr of --lrs and every seed train in one vmapped program per
probe configuration; after training the script measures, on 1024 replayed transitions of
each run's own buffer:

  score    mean normalised greedy return over the last 3 evaluations (IQM over seeds)
  Q        mean Q(s, a) of the replayed (s, a)             (the value level)
  gap      mean over s of max_a Q(s, a) - mean_a Q(s, a)   (action dependence)
  spread   sd over s of max_a Q(s, a)                      (state dependence)
  coh      gradient coherence |mean_i g_i|^2 / mean_i |g_i|^2 of the per-sample gradients
           of the DQN loss w.r.t. all parameters (1/B for pure noise, 1 for aligned)
  share    the most frequent greedy action's share of the replayed states (1/A: balanced,
           1: the greedy policy always takes one action)
  mem      corr(Q(s, a), stored reward of the transition) over replayed transitions: with
           noise stored per transition (rewards are rare, so the stored reward is mostly
           noise) how much of its own noise Q(s, a) has memorised
  q_dom / q_other   mean Q of the commonest greedy action / of the other actions
  sd_other the other actions' Q: sd over states (mean over those actions)
  bias_off that action's Q minus the others' from the output biases alone (features 0)
  data_dom the commonest greedy action's share of the replayed transitions' actions
  rmsTD    RMS TD error in value units at the last chunk (training curve)

    PYTHONPATH=src python bench/hl_gauss_noise.py --probe sigma --lrs 1e-3 3e-3

`--probe regress` separates the loss from the bootstrap and the control loop: the same
network (conv16 + FC128, one output "action") regresses a fixed state-dependent signal f(s)
on 20k Breakout states of a random policy, labels f(s) + N(0, 1) drawn once per state
(stored, as in the replay buffer) or none; f is a random network of the same architecture
standardised to mean 0.5 and sd 0.5 (the measured scale of the DQN's max_a Q over replayed
states); Adam (`rl.value_losses.make_value_learner`), batch 32, as many updates as the DQN
makes in 48k env steps (2,875). Score: RMSE of the prediction to f on 4k held-out states,
relative to sd(f) (1 = predicting the mean), and the correlation with f.

`--probe td` adds the bootstrap but not the control loop: policy evaluation of the random
policy on 20k Breakout transitions (the real 0/1 rewards, + N(0, 1) stored per transition
or none), TD(0) targets r + gamma (1 - terminal) V_target(s') with a target copy every 250
updates (the DQN's), 2,875 updates of batch 32. Score on 8k held-out transitions: the
correlation of V(s) with the clean Monte-Carlo return-to-go of the random policy (a noisy
but unbiased sample of V(s)), and the mean V vs the mean return.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import trim_mean

from selftaught.core import config as cfglib
from selftaught.core.seeding import keys
from selftaught.recipes.value_classification import PRESETS
from selftaught.rl import replay
from selftaught.rl.dqn import make_agent
from selftaught.rl.envs import make_env, normalized_return
from selftaught.rl.loop import run_chunks
from selftaught.rl.networks import QNetwork
from selftaught.rl.value_losses import make_value_head, make_value_learner

BASE = cfglib.replace(PRESETS["conditions"].dqn, **{"loop.env": "Breakout-MinAtar"},
                      width=1.0, reward_noise=1.0)

# one gradient update per environment step, clean rewards (`condition_config`'s high_rr)
_RR1 = {"loop.train_every": 1, "loop.grad_steps": BASE.loop.num_envs, "reward_noise": 0.0}

# probe name -> list of (label, DQNConfig overrides)
PROBES = {
    "base": [("MSE", dict(loss="mse")), ("HL s0.75 [-10,10]", dict(loss="hl_gauss"))],
    "sigma": [("HL s2.55 (1 reward sd)", dict(loss="hl_gauss", sigma_ratio=2.55)),
              ("HL s5.1 (2 reward sd)", dict(loss="hl_gauss", sigma_ratio=5.1))],
    "support": [("HL s0.75 [-3,3]", dict(loss="hl_gauss", v_min=-3.0, v_max=3.0)),
                ("HL s8.5 [-3,3] (1 reward sd)",
                 dict(loss="hl_gauss", v_min=-3.0, v_max=3.0, sigma_ratio=8.5))],
    "per_sample": [("MSE per-sample", dict(loss="mse", reward_noise_per_sample=True)),
                   ("HL s0.75 per-sample",
                    dict(loss="hl_gauss", reward_noise_per_sample=True))],
    "clean": [("MSE clean", dict(loss="mse", reward_noise=0.0)),
              ("HL s0.75 clean", dict(loss="hl_gauss", reward_noise=0.0))],
    # the recipe's high_rr condition at --high-replay-ratio 1: one update per env step
    "high_rr": [("MSE clean rr1", dict(loss="mse", **_RR1)),
                ("HL s0.75 clean rr1", dict(loss="hl_gauss", **_RR1))],
}


def per_sample_loss(dqn, net, head, params, target_params, batch):
    """The DQN's per-sample loss (double DQN bootstrap), as in rl.dqn.make_agent."""
    out = net.apply(params, batch["obs"])
    out_next = jax.lax.stop_gradient(net.apply(params, batch["next_obs"]))
    out_t = jax.lax.stop_gradient(net.apply(target_params, batch["next_obs"]))
    a_next = jnp.argmax(head.q_values(out_next), axis=-1)
    discount = dqn.gamma * (1.0 - batch["terminated"])
    return head.loss(out, batch["action"], batch["reward"], discount, out_t, a_next)


def diagnostics(dqn, agent, carry, key, n=1024, n_grad=256):
    net = agent.network
    head = make_value_head(dqn.loss, v_min=dqn.v_min, v_max=dqn.v_max,
                           num_bins=dqn.num_bins, sigma_ratio=dqn.sigma_ratio)

    def one(c, k):
        batch, _ = replay.sample(c.buffer, k, n)
        batch = {**batch, "obs": batch["obs"].astype(jnp.float32),
                 "next_obs": batch["next_obs"].astype(jnp.float32)}
        q = head.q_values(net.apply(c.params, batch["obs"]))  # n x A
        q_sa = jnp.take_along_axis(q, batch["action"][:, None], 1)[:, 0]
        v = q.max(-1)
        small = jax.tree.map(lambda x: x[:n_grad], batch)

        def g_one(b):
            b1 = jax.tree.map(lambda x: x[None], b)
            return jax.grad(lambda p: per_sample_loss(dqn, net, head, p, c.target_params,
                                                      b1)[0])(c.params)

        g = jax.vmap(g_one)(small)
        flat = jnp.concatenate([x.reshape(n_grad, -1) for x in jax.tree.leaves(g)], 1)
        coh = jnp.sum(flat.mean(0) ** 2) / jnp.mean(jnp.sum(flat ** 2, 1))
        # Q from the output layer's biases alone (the torso's features set to 0)
        h = net.apply(c.params, batch["obs"][:1], method=QNetwork.encode)
        bias_q = head.q_values(net.apply(c.params, jnp.zeros_like(h), method=QNetwork.head))[0]
        shares = jnp.mean(jax.nn.one_hot(q.argmax(-1), q.shape[-1]), 0)
        dom = jnp.argmax(shares)  # the commonest greedy action
        other = jnp.arange(q.shape[-1]) != dom
        q_other = jnp.where(other[None], q, jnp.nan)
        return {"Q": q_sa.mean(), "gap": (v - q.mean(-1)).mean(), "spread": v.std(),
                "coh": coh, "share": shares[dom],
                "mem": jnp.corrcoef(q_sa, batch["reward"])[0, 1],
                "q_dom": q[:, dom].mean(), "q_other": jnp.nanmean(q_other),
                "sd_other": jnp.nanmean(jnp.nanstd(q_other, axis=0)),
                "data_dom": jnp.mean(batch["action"] == dom),
                "bias_off": bias_q[dom] - jnp.sum(jnp.where(other, bias_q, 0.0)) / other.sum()}

    runs = jax.tree.leaves(carry.params)[0].shape[0]
    return jax.device_get(jax.jit(jax.vmap(one))(carry, jax.random.split(key, runs)))


def random_states(n, key, num_envs=16):
    """n Breakout-MinAtar observations from a uniformly random policy."""
    env = make_env("Breakout-MinAtar")
    k0, k1 = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(k0, num_envs))

    def body(c, k):
        obs, state = c
        ka, ks = jax.random.split(k)
        a = jax.random.randint(ka, (num_envs,), 0, env.num_actions)
        st = jax.vmap(env.step)(jax.random.split(ks, num_envs), state, a)
        return (st.obs, st.state), obs

    _, xs = jax.lax.scan(body, (obs, state), jax.random.split(k1, -(-n // num_envs)))
    return xs.reshape(-1, *xs.shape[2:])[:n].astype(jnp.float32)


def _learner(loss):
    """(head, net, init, step) of a state-value network with PROBES_REGRESS[loss]'s head."""
    over = dict(PROBES_REGRESS[loss])
    head = make_value_head(over.pop("loss"), v_min=BASE.v_min, v_max=BASE.v_max,
                           num_bins=BASE.num_bins, sigma_ratio=over.get("sigma_ratio", 0.75))
    net = QNetwork("minatar_cnn", 1, head.num_outputs)
    return (head, net, *make_value_learner(net, head))


def _sweep(name, loss, one, lrs, seeds, noises, fmt):
    """Every (noise, lr, seed) of `one(key, lr, noise) -> metrics` in one vmapped program;
    prints a table row per (noise, lr) with `fmt(metrics, indices)`."""
    grid = [(s, lr, nz) for nz in noises for lr in lrs for s in seeds]
    t0 = time.time()
    out = jax.device_get(jax.jit(jax.vmap(one))(
        keys([g[0] for g in grid]), jnp.array([g[1] for g in grid], jnp.float32),
        jnp.array([g[2] for g in grid], jnp.float32)))
    for nz in noises:
        for lr in lrs:
            i = [k for k, g in enumerate(grid) if g[1:] == (lr, nz)]
            print(f"| {name} | {loss} noise {nz:g} | {lr:g} | {fmt(out, i)} |", flush=True)
    print(f"<!-- {name} {loss}: {time.time() - t0:.0f} s wall -->", flush=True)


def _per_seed(v, i):
    return f"{v[i].mean():.3f} ({' '.join(f'{x:.2f}' for x in v[i])})"


def regress(losses, lrs, seeds, noises=(0.0, 1.0), updates=2_875, batch=32,
            n_train=20_000, n_test=4_000):
    """Regression on fixed noisy labels (see the module docstring)."""
    x = random_states(n_train + n_test, jax.random.PRNGKey(11))
    x_tr, x_te = x[:n_train], x[n_train:]
    f_net = QNetwork("minatar_cnn", 1, 1)
    for loss in losses:
        head, net, init, step = _learner(loss)

        def one(seed_key, lr, noise, head=head, net=net, init=init, step=step):
            k_f, k_p, k_n, k_b = jax.random.split(seed_key, 4)
            f = f_net.apply(f_net.init(k_f, x[:1]), x)[:, 0, 0]
            f = 0.5 + 0.5 * (f - f.mean()) / f.std()
            f_tr, f_te = f[:n_train], f[n_train:]
            y = f_tr + noise * jax.random.normal(k_n, (n_train,))
            params = net.init(k_p, x[:1])
            dummy = jnp.zeros((batch, 1, head.num_outputs))

            def body(c, k):
                params, opt = c
                i = jax.random.randint(k, (batch,), 0, n_train)
                return step(params, opt, lr, x_tr[i], y[i], jnp.zeros(batch), dummy), None

            (params, _), _ = jax.lax.scan(body, (params, init(params, lr)),
                                          jax.random.split(k_b, updates))
            pred = head.q_values(net.apply(params, x_te))[:, 0]
            rel = jnp.sqrt(jnp.mean((pred - f_te) ** 2)) / f_te.std()
            return rel, jnp.corrcoef(pred, f_te)[0, 1], pred.mean()

        _sweep("regress", loss, one, lrs, seeds, noises,
               lambda o, i: f"rel. RMSE {_per_seed(o[0], i)} | mean {o[2][i].mean():.2f} | "
                            f"corr {o[1][i].mean():.2f}")


def trajectories(n, key, num_envs=16, gamma=0.99, tail=400):
    """Random-policy Breakout transitions with clean Monte-Carlo returns-to-go (each env's
    last `tail` steps dropped: their returns are cut short)."""
    env = make_env("Breakout-MinAtar")
    k0, k1 = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(k0, num_envs))
    steps = -(-n // num_envs) + tail

    def body(c, k):
        obs, state = c
        ka, ks = jax.random.split(k)
        a = jax.random.randint(ka, (num_envs,), 0, env.num_actions)
        st = jax.vmap(env.step)(jax.random.split(ks, num_envs), state, a)
        out = (obs, st.reward, st.next_obs, st.terminated.astype(jnp.float32),
               st.done.astype(jnp.float32))
        return (st.obs, st.state), out

    _, (o, r, o2, term, done) = jax.lax.scan(body, (obs, state), jax.random.split(k1, steps))

    def back(g, x):
        r_t, d_t = x
        g = r_t + gamma * (1.0 - d_t) * g
        return g, g

    _, ret = jax.lax.scan(back, jnp.zeros(num_envs), (r, done), reverse=True)
    cut = lambda a: a[:steps - tail].reshape(-1, *a.shape[2:])[:n]  # noqa: E731
    return (cut(o).astype(jnp.float32), cut(r), cut(o2).astype(jnp.float32), cut(term),
            cut(ret))


def td(losses, lrs, seeds, noises=(0.0, 1.0), updates=2_875, batch=32, n_train=20_000,
       n_test=8_000, gamma=0.99, target_every=250):
    """TD(0) evaluation of the random policy on fixed transitions (module docstring)."""
    o, r, o2, term, _ = trajectories(n_train, jax.random.PRNGKey(21))
    x_te, _, _, _, g_te = trajectories(n_test, jax.random.PRNGKey(22))
    for loss in losses:
        head, net, init, step = _learner(loss)

        def one(seed_key, lr, noise, head=head, net=net, init=init, step=step):
            k_p, k_n, k_b = jax.random.split(seed_key, 3)
            y = r + noise * jax.random.normal(k_n, r.shape)
            params = net.init(k_p, o[:1])

            def body(c, xs):
                params, target, opt = c
                k, t = xs
                i = jax.random.randint(k, (batch,), 0, n_train)
                nxt = net.apply(target, o2[i])
                params, opt = step(params, opt, lr, o[i], y[i], gamma * (1.0 - term[i]), nxt)
                target = jax.tree.map(lambda a, b: jnp.where((t + 1) % target_every == 0, a, b),
                                      params, target)
                return (params, target, opt), None

            (params, _, _), _ = jax.lax.scan(body, (params, params, init(params, lr)),
                                             (jax.random.split(k_b, updates),
                                              jnp.arange(updates)))
            v = head.q_values(net.apply(params, x_te))[:, 0]
            return jnp.corrcoef(v, g_te)[0, 1], v.mean(), v.std()

        _sweep("td", loss, one, lrs, seeds, noises,
               lambda out, i: f"corr(V, MC return) {_per_seed(out[0], i)} | mean V "
                              f"{out[1][i].mean():.2f} (MC {float(g_te.mean()):.2f}) | "
                              f"sd V {out[2][i].mean():.2f}")


PROBES_REGRESS = {
    "MSE": dict(loss="mse"),
    "HL s0.75": dict(loss="hl_gauss"),
    "HL s2.55": dict(loss="hl_gauss", sigma_ratio=2.55),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", nargs="+", default=["base"], choices=[*PROBES, "regress", "td"])
    ap.add_argument("--lrs", nargs="+", type=float, default=[1e-3, 3e-3])
    ap.add_argument("--seeds", nargs="+", type=int, default=[100, 101, 102])
    ap.add_argument("--steps", type=int, default=BASE.loop.total_steps)
    args = ap.parse_args()
    runs = [(s, lr) for lr in args.lrs for s in args.seeds]
    print("| probe | condition | lr | score IQM (per seed) | Q | gap | spread | coh | share "
          "| mem | q_dom | q_other | sd_other | data_dom | bias_off | rmsTD |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    if "regress" in args.probe:
        regress(list(PROBES_REGRESS), args.lrs, args.seeds)
    if "td" in args.probe:
        td(list(PROBES_REGRESS)[:2], args.lrs, args.seeds)
    for probe in [p for p in args.probe if p not in ("regress", "td")]:
        for label, over in PROBES[probe]:
            dqn = cfglib.replace(BASE, **{"loop.total_steps": args.steps}, **over)
            agent = make_agent(dqn)
            t0, c0 = time.time(), time.process_time()
            carry = jax.jit(jax.vmap(agent.init))(
                keys([s for s, _ in runs]), np.array([lr for _, lr in runs], np.float32))
            carry, curves = run_chunks(jax.jit(jax.vmap(agent.chunk)), carry, dqn.loop.num_evals,
                                       label)
            d = diagnostics(dqn, agent, carry, jax.random.PRNGKey(7))
            score = normalized_return(dqn.loop.env, curves["eval_return"])[:, -3:].mean(1)
            rms = np.sqrt(curves["td_sq"][:, -1])
            for lr in args.lrs:
                i = [k for k, (_, r) in enumerate(runs) if r == lr]
                print(f"| {probe} | {label} | {lr:g} | {trim_mean(score[i], 0.25):.3f} "
                      f"({' '.join(f'{x:.2f}' for x in score[i])}) | {d['Q'][i].mean():.2f} | "
                      f"{d['gap'][i].mean():.3f} | {d['spread'][i].mean():.2f} | "
                      f"{d['coh'][i].mean():.4f} | {d['share'][i].mean():.2f} | "
                      f"{d['mem'][i].mean():.3f} | {d['q_dom'][i].mean():.2f} | "
                      f"{d['q_other'][i].mean():.2f} | {d['sd_other'][i].mean():.2f} | "
                      f"{d['data_dom'][i].mean():.2f} | {d['bias_off'][i].mean():.3f} | "
                      f"{rms[i].mean():.2f} |", flush=True)
            print(f"<!-- {label}, {args.steps} env steps: {time.time() - t0:.0f} s wall, "
                  f"{time.process_time() - c0:.0f} CPU-s -->", flush=True)


if __name__ == "__main__":
    main()
