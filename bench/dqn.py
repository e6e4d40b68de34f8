"""DQN throughput: selftaught (JAX, 10 seeds under one jit(vmap)) vs a CleanRL-style
PyTorch DQN loop (gymnasium CartPole-v1), same network and replay ratio, in one run.

    .venv/bin/pip install torch==2.13.0 gymnasium     # the peer (extra: bench)
    .venv/bin/python bench/dqn.py                     # --steps 50000 --seeds 10 --peer-steps 20000

Both sides: MLP 4-64-64-2, Adam lr 2.5e-4, buffer 10k, batch 128, one gradient step every
10 env steps, hard target update every 500 env steps, 1000 warm-up steps, gamma 0.99.
The peer runs one seed per process, `--peer-procs` processes in parallel (default: the CPU
count), and its aggregate steps/s is the sum over processes. Ours is one jit(vmap) program
over all seeds, run twice: on one CPU device, and with the seed axis split over `--devices`
XLA host devices (default: the CPU count, `--xla_force_host_platform_device_count`), which
is how one program uses as many cores as the peer has processes. Ours counts env steps of
all seeds; compile time is reported separately and excluded from steps/s. Wall-clock numbers
depend on machine load: run it on an otherwise idle machine; the steps per CPU-second
ratio it also prints is less sensitive to other processes competing for the cores.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time


def ours(steps: int, seeds: int, devices: int) -> dict:
    import jax
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    from selftaught.core.seeding import keys
    from selftaught.rl.dqn import DQNConfig, LoopConfig, make_train

    loop = LoopConfig(env="CartPole-v1", total_steps=steps, num_envs=1, buffer_size=10_000,
                      batch_size=128, learning_starts=1_000, train_every=10, grad_steps=1,
                      num_evals=1, eval_episodes=1)
    cfg = DQNConfig(loop=loop, loss="mse", lr=2.5e-4, target_update_every=50)
    ks = keys(list(range(seeds)))
    if devices > 1:  # the seed axis split over CPU devices: one program, SPMD-partitioned
        mesh = Mesh(jax.devices()[:devices], ("seed",))
        ks = jax.device_put(ks, NamedSharding(mesh, PartitionSpec("seed")))
    t0 = time.perf_counter()
    fn = jax.jit(jax.vmap(make_train(cfg))).lower(ks).compile()
    compile_s = time.perf_counter() - t0
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = jax.block_until_ready(fn(ks))
    wall = time.perf_counter() - t0
    return {"sps": seeds * steps / wall, "wall_s": wall, "compile_s": compile_s,
            "cpu_s": time.process_time() - cpu0, "devices": devices,
            "final_eval_return": float(out["eval_return"][:, -1].mean())}


def _peer_worker(args) -> dict:
    steps, seed = args
    import gymnasium as gym
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = gym.make("CartPole-v1")
    q = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                      nn.Linear(64, 2))
    target = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                           nn.Linear(64, 2))
    target.load_state_dict(q.state_dict())
    opt = torch.optim.Adam(q.parameters(), lr=2.5e-4, eps=1e-5)
    cap = 10_000
    obs_b = np.zeros((cap, 4), np.float32)
    nobs_b = np.zeros((cap, 4), np.float32)
    act_b = np.zeros(cap, np.int64)
    rew_b = np.zeros(cap, np.float32)
    term_b = np.zeros(cap, np.float32)
    pos = size = 0
    obs, _ = env.reset(seed=seed)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for t in range(steps):
        eps = max(0.05, 1.0 - 0.95 * t / (0.5 * steps))
        if t < 1000 or rng.random() < eps:
            a = int(rng.integers(2))
        else:
            with torch.no_grad():
                a = int(q(torch.as_tensor(obs)[None]).argmax(1)[0])
        nobs, r, term, trunc, _ = env.step(a)
        obs_b[pos], nobs_b[pos], act_b[pos], rew_b[pos], term_b[pos] = obs, nobs, a, r, term
        pos, size = (pos + 1) % cap, min(size + 1, cap)
        obs = nobs
        if term or trunc:
            obs, _ = env.reset()
        if t >= 1000 and t % 10 == 0:
            idx = rng.integers(0, size, 128)
            o, no = torch.as_tensor(obs_b[idx]), torch.as_tensor(nobs_b[idx])
            with torch.no_grad():
                a_star = q(no).argmax(1, keepdim=True)  # double DQN, as ours
                y = torch.as_tensor(rew_b[idx]) + 0.99 * (
                    1 - torch.as_tensor(term_b[idx])) * target(no).gather(1, a_star)[:, 0]
            qa = q(o).gather(1, torch.as_tensor(act_b[idx])[:, None])[:, 0]
            loss = 0.5 * ((qa - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(q.parameters(), 10.0)
            opt.step()
        if t % 500 == 0:
            target.load_state_dict(q.state_dict())
    return {"steps": steps, "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - cpu0}


def peer(steps: int, procs: int) -> dict:
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(procs) as pool:
        res = pool.map(_peer_worker, [(steps, s) for s in range(procs)])
    wall = time.perf_counter() - t0
    per = [r["steps"] / r["wall_s"] for r in res]
    cpu_sps = sum(r["steps"] for r in res) / sum(r["cpu_s"] for r in res)
    return {"sps": sum(per), "per_process_sps": per, "wall_s": wall, "procs": procs,
            "steps_per_cpu_s": cpu_sps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=50_000, help="env steps per seed (ours)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--peer-steps", type=int, default=20_000)
    ap.add_argument("--peer-procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--devices", type=int, default=os.cpu_count() or 1,
                    help="CPU devices the seed axis is split over (ours; like --peer-procs)")
    args = ap.parse_args()
    devices = max(d for d in range(1, args.devices + 1) if args.seeds % d == 0)
    # must precede the first jax import (the peer's spawned workers never import jax)
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                               + f" --xla_force_host_platform_device_count={devices}")
    p = peer(args.peer_steps, args.peer_procs)
    print(f"peer  (PyTorch, CleanRL-style, {p['procs']} procs): {p['sps']:,.0f} env steps/s "
          f"aggregate (per process: {', '.join(f'{x:,.0f}' for x in p['per_process_sps'])})")
    runs = [ours(args.steps, args.seeds, d) for d in sorted({1, devices})]
    for o in runs:
        ours_cpu = args.seeds * args.steps / o["cpu_s"]
        print(f"ours  (JAX, {args.seeds} seeds in one jit(vmap), {o['devices']} CPU device(s)): "
              f"{o['sps']:,.0f} env steps/s (run {o['wall_s']:.1f}s, cpu {o['cpu_s']:.1f}s, "
              f"compile {o['compile_s']:.1f}s, final greedy return "
              f"{o['final_eval_return']:.0f})")
        print(f"  ratio ours / peer: {o['sps'] / p['sps']:.1f}x (wall-clock aggregate steps/s); "
              f"per CPU-second: ours {ours_cpu:,.0f}, peer {p['steps_per_cpu_s']:,.0f}, "
              f"ratio {ours_cpu / p['steps_per_cpu_s']:.1f}x (robust to other load)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"(1-min load average during the run: {load:.1f} on {os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
