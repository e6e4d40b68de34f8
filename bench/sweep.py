"""An 8-lr sweep as one vmapped compiled program (lm.sweep) vs 8 sequential runs.

    PYTHONPATH=src .venv/bin/python bench/sweep.py [--steps 200 --width 64 --lrs 8]

Both sides train the same byte-level transformer on the same random-token data with the
same AdamW + warmup/cosine recipe, each lr from its own seed:
- vmapped: `lm.sweep.make_sweep` + `run_grid` over 8 cells (one compilation, one program);
- sequential: a fresh `lm.train.make_sft` per lr (the trainer whose lr is a Python float
  baked into the program, so each value recompiles), run one after the other.
Reports wall seconds and process CPU seconds (user + sys) of each side, compile included
(that is the cost a user pays for a sweep), and their ratios.
"""

from __future__ import annotations

import argparse
import time


def cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--lrs", type=int, default=8)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from selftaught.lm import sweep as sw
    from selftaught.lm.model import TransformerConfig
    from selftaught.lm.train import TrainConfig, make_sft, next_token_targets

    cfg = TransformerConfig(vocab_size=64, max_len=args.seq, d_model=args.width, n_layers=2,
                            n_heads=args.width // 16)
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, 64, (1024, args.seq)).astype(np.int32)
    mask = np.ones_like(tokens, np.float32)
    mask[:, -1] = 0
    lrs = np.geomspace(1e-4, 1e-1, args.lrs)

    def batch_fn(data, key):
        idx = jax.random.randint(key, (args.batch,), 0, data["tokens"].shape[0])
        t = data["tokens"][idx]
        return {"tokens": t, "targets": next_token_targets(t), "mask": data["loss_mask"][idx]}

    data = {"tokens": jnp.asarray(tokens), "loss_mask": jnp.asarray(mask),
            "weight": jnp.ones(len(tokens), jnp.float32)}

    # vmapped sweep
    c0, t0 = cpu_seconds(), time.perf_counter()
    sweep = sw.make_sweep(cfg, sw.SweepConfig(total_steps=args.steps, batch_size=args.batch,
                                              b2=0.98, final_lr_ratio=0.0,
                                              chunk=args.steps), batch_fn)
    hp = sw.table([dict(lr=float(lr), warmup_steps=args.steps // 10, weight_decay=0.1,
                        init_seed=i, data_seed=i) for i, lr in enumerate(lrs)])
    res = sw.run_grid(sweep, hp, data, description="vmapped sweep")
    jax.block_until_ready(res.states.params)
    vm_wall, vm_cpu = time.perf_counter() - t0, cpu_seconds() - c0

    # sequential runs
    c0, t0 = cpu_seconds(), time.perf_counter()
    seq_final = []
    for i, lr in enumerate(lrs):
        tc = TrainConfig(lr=float(lr), warmup_steps=args.steps // 10, total_steps=args.steps,
                         batch_size=args.batch, weight_decay=0.1)
        sft = make_sft(cfg, tc)
        state, losses = sft.run(sft.init(jax.random.PRNGKey(i)), data, args.steps)
        seq_final.append(float(np.asarray(losses)[-10:].mean()))
    sq_wall, sq_cpu = time.perf_counter() - t0, cpu_seconds() - c0

    vm_final = np.nanmean(res.curves["loss"][:, -10:], axis=1)
    print(f"devices={jax.device_count()} width={args.width} steps={args.steps} "
          f"lrs={args.lrs} batch={args.batch} seq={args.seq}")
    print("final train loss per lr  (vmapped | sequential):")
    for lr, a, b in zip(lrs, vm_final, seq_final, strict=True):
        print(f"  lr {lr:.2e}: {a:.3f} | {b:.3f}")
    print(f"vmapped sweep : wall {vm_wall:7.1f} s  cpu {vm_cpu:7.1f} s")
    print(f"8 sequential  : wall {sq_wall:7.1f} s  cpu {sq_cpu:7.1f} s")
    print(f"speed-up      : wall {sq_wall / vm_wall:.2f}x  cpu {sq_cpu / vm_cpu:.2f}x")


if __name__ == "__main__":
    main()
