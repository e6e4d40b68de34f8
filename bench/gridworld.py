"""Gridworld throughput: the jitted, vmapped JAX world (`selftaught.rl.gridworld`) against a
Python/NumPy world with the same rules (a MiniGrid-style object-per-step implementation),
measured in the same run. Both step a random policy and build the egocentric observation
every step; the JAX side runs `--worlds` worlds at once, each a `lax.scan` of `--steps`.

Rules (both sides): tool task in a size x size room, 2 wood + 2 stone, resources drift one
cell with probability p per step (blocked by walls, the agent and other objects), picked
resources leave the grid and respawn at a random free cell with probability p per step,
`use` with wood and stone held gives reward 1; reset-free. As a sanity check both sides
report successes per 1000 random steps (they should agree within noise: same rules,
different random streams).

    .venv/bin/python bench/gridworld.py [--worlds 1024] [--steps 1000] [--peer-steps 20000]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np

from selftaught.rl import gridworld as gw

MOVES = gw.MOVES


class NumpyWorld:
    """The same rules as `gridworld.step` (tool task, unshaped, reset-free), one world,
    Python control flow with NumPy arrays (the way MiniGrid-style envs are written)."""

    def __init__(self, spec: gw.WorldSpec, p: float, seed: int):
        self.spec, self.p = spec, p
        self.rng = np.random.default_rng(seed)
        n = spec.size
        cells = self.rng.choice(n * n, spec.num_objects + 1, replace=False)
        self.agent = np.array(divmod(int(cells[0]), n))
        self.obj = np.array([divmod(int(c), n) for c in cells[1:]])
        self.kinds = spec.kinds
        self.alive = np.ones(len(self.obj), bool)
        self.inv = np.zeros(2, np.int64)
        self.successes = 0

    def observe(self) -> np.ndarray:
        n, v = self.spec.size, self.spec.view
        w = 2 * v + 1
        obs = np.zeros((w, w, gw.NUM_CHANNELS), np.float32)
        for i in range(w):
            for j in range(w):
                r, c = self.agent[0] + i - v, self.agent[1] + j - v
                if not (0 <= r < n and 0 <= c < n):
                    obs[i, j, 0] = 1.0
        for (r, c), k, on in zip(self.obj, self.kinds, self.alive, strict=True):
            if not on:
                continue
            i, j = r - self.agent[0] + v, c - self.agent[1] + v
            if 0 <= i < w and 0 <= j < w:
                obs[i, j, 1 + k] = 1.0
        obs[:, :, 4] = self.inv[0]
        obs[:, :, 5] = self.inv[1]
        return obs

    def _free_cell(self) -> np.ndarray:
        n = self.spec.size
        taken = {tuple(self.agent), *(tuple(o) for o, on in zip(self.obj, self.alive,
                                                                   strict=True) if on)}
        free = [(r, c) for r in range(n) for c in range(n) if (r, c) not in taken]
        return np.array(free[self.rng.integers(len(free))])

    def step(self, action: int):
        n = self.spec.size
        self.agent = np.clip(self.agent + MOVES[action], 0, n - 1)
        reward = 0.0
        was_alive = self.alive.copy()
        for k in range(len(self.obj)):
            kind = self.kinds[k]
            if self.alive[k] and (self.obj[k] == self.agent).all() and self.inv[kind] == 0:
                self.inv[kind] = 1
                self.alive[k] = False  # consumed
        for k in range(len(self.obj)):  # consumed earlier: respawn with probability p
            if not was_alive[k] and self.rng.random() < self.p:
                self.obj[k] = self._free_cell()
                self.alive[k] = True
        if action == 4 and self.inv.all():
            self.inv[:] = 0
            reward = 1.0
            self.successes += 1
        go = self.rng.random(len(self.obj)) < self.p
        dirs = MOVES[self.rng.integers(0, 4, len(self.obj))]
        target = np.where(go[:, None], self.obj + dirs, self.obj)
        new = self.obj.copy()
        for k in range(len(self.obj)):
            t = target[k]
            if (not go[k] or not self.alive[k] or not ((t >= 0) & (t < n)).all()
                    or (t == self.agent).all()):
                continue
            others = [j for j in range(len(self.obj)) if j != k and self.alive[j]]
            if any((self.obj[j] == t).all() or (target[j] == t).all() for j in others):
                continue
            new[k] = t
        self.obj = new
        return self.observe(), reward


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worlds", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--peer-steps", type=int, default=20_000)
    ap.add_argument("--size", type=int, default=7)
    ap.add_argument("--p", type=float, default=0.1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    spec = gw.WorldSpec(task="tool", size=args.size, view=2, num_resources=2)
    spec.validate()
    params = gw.world_params(p=args.p)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} on {jax.default_backend()}; size {args.size}, p {args.p}")

    # ours: worlds x steps, random actions, one compiled program
    run = jax.jit(jax.vmap(lambda k: gw.random_rollout(spec, k, params, args.steps)[0]))
    ks = jax.random.split(jax.random.PRNGKey(0), args.worlds)
    jax.block_until_ready(run(ks))  # compile
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        final = jax.block_until_ready(run(jax.random.split(jax.random.PRNGKey(r + 1),
                                                            args.worlds)))
        times.append(time.perf_counter() - t0)
    ours = args.worlds * args.steps / np.array(times)
    ours_succ = float(np.asarray(final.successes).sum()) / (args.worlds * args.steps) * 1000

    # peer: one NumPy world, Python loop
    world = NumpyWorld(spec, args.p, seed=0)
    acts = np.random.default_rng(1).integers(0, gw.NUM_ACTIONS, args.peer_steps)
    peer_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for a in acts:
            world.step(int(a))
        peer_times.append(time.perf_counter() - t0)
    peer = args.peer_steps / np.array(peer_times)
    peer_succ = world.successes / (args.peer_steps * args.repeats) * 1000

    print(f"jax  ({args.worlds} worlds x {args.steps} steps): "
          + ", ".join(f"{x:,.0f}" for x in ours) + " steps/s")
    print(f"numpy (1 world, {args.peer_steps} steps): "
          + ", ".join(f"{x:,.0f}" for x in peer) + " steps/s")
    print(f"successes per 1000 random steps: jax {ours_succ:.2f}, numpy {peer_succ:.2f}")
    print(f"ratio (best / best): {ours.max() / peer.max():.1f}x; "
          f"(median / median): {np.median(ours) / np.median(peer):.1f}x")


if __name__ == "__main__":
    main()
