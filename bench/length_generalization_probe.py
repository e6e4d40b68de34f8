"""Steps-to-learn probe of `length-generalization` (not a benchmark: no peer).

Trains one variant on a vmapped lr x seed grid (cell s uses init and data-order seed s) and
prints, every --every steps, each cell's training loss and its *validation* exact match per
length (the recipe's val split, never the reported test pairs), plus CPU seconds so far.
The learning-rate schedule is the recipe's (warmup then cosine to 0 at --steps), so an
intermediate row is a run that has not annealed yet.

    PYTHONPATH=src .venv/bin/python -u bench/length_generalization_probe.py \\
        --L 3 --steps 2500 --every 500 --warmup 200 --lrs 2e-3,4e-3 --seeds 2
"""

import argparse
import dataclasses
import resource
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.lm import sweep as sw
from selftaught.recipes import length_generalization as lg

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--L", type=int, default=3, help="train_digits")
ap.add_argument("--variant", default="fire+randpos", choices=sorted(lg.VARIANTS))
ap.add_argument("--d", type=int, default=64, help="d_model")
ap.add_argument("--layers", type=int, default=2)
ap.add_argument("--heads", type=int, default=4)
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--steps", type=int, default=2000)
ap.add_argument("--warmup", type=int, default=200)
ap.add_argument("--lrs", default="2e-3", help="comma-separated peak learning rates")
ap.add_argument("--seeds", type=int, default=2, help="cells per lr (init = data seed)")
ap.add_argument("--every", type=int, default=500, help="steps between evaluations")
ap.add_argument("--maxpos", type=int, default=64, help="max_positions")
ap.add_argument("--wd", type=float, default=0.0, help="weight decay")
ap.add_argument("--offsets", type=int, default=0, help="1 = hint_offsets")
a = ap.parse_args()

cfg = dataclasses.replace(
    lg.PRESETS["default"], train_digits=a.L, d_model=a.d, n_layers=a.layers, n_heads=a.heads,
    batch_size=a.batch, steps=a.steps, warmup_steps=a.warmup, max_positions=a.maxpos,
    chunk=a.every, variants=(a.variant,), test_examples=50, hint_offsets=bool(a.offsets))
cfg.validate()
v = lg.VARIANTS[a.variant]
data = lg.make_data(cfg, v, 0)
mcfg = lg.model_config(cfg, v)
scfg = sw.SweepConfig(total_steps=a.steps, batch_size=a.batch, b2=0.98, final_lr_ratio=0.0,
                      chunk=a.every)
sweep = sw.make_sweep(mcfg, scfg, lg.make_batch_fn(cfg, v), lg.make_eval_fn(mcfg))
cells = [dict(lr=float(lr), warmup_steps=a.warmup, weight_decay=a.wd, init_seed=s, data_seed=s)
         for lr in a.lrs.split(",") for s in range(a.seeds)]
hp = {k: jnp.asarray(x) for k, x in sw.table(cells).items()}
state = sweep.init(hp)
print(" ".join(sys.argv[1:]), flush=True)
t0, w0, done = time.process_time(), time.time(), 0
while done < a.steps:
    state, m = sweep.chunk(state, data, a.every)
    done += a.every
    em = jax.device_get(sweep.evaluate(state, data))["val_exact_match"]  # cells x lengths
    loss = np.nanmean(np.asarray(m["loss"])[:, -20:], 1)
    cpu, wall = time.process_time() - t0, time.time() - w0
    for c, cell in enumerate(cells):
        print(f"step {done:5d} cpu {cpu:6.0f}s wall {wall:5.0f}s lr {cell['lr']:.0e} "
              f"s{cell['init_seed']} loss {loss[c]:.3f} solved "
              f"{lg.max_solved_length(em[c], 0.9)} val em "
              + " ".join(f"{x:.2f}" for x in em[c][:a.L + 3]), flush=True)
print("peak RSS GiB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
