"""Training throughput: the jitted SFT step of selftaught.lm (lax.scan over steps) vs an
equivalent eager PyTorch loop on Hugging Face `GPT2LMHeadModel` of the same size, same run.

    .venv/bin/python bench/train.py [--batch 32 --seq 64 --steps 50 --repeats 3 --threads 1]

Needs the `bench` extra (torch==2.13.0, transformers). Both sides per step: draw a minibatch
of `batch` rows uniformly from a 1024-row token dataset, forward, masked next-token
cross-entropy (mask = all but the last position), backward, global-norm clipping (1.0),
AdamW (warmup + cosine schedule), update. Same model shape (pre-LN GPT-2 block, learned
positions, tied embeddings, MLP 4x, no dropout), float32, same CPU thread count. Reports
training tokens/s = steps * batch * seq / wall seconds after a warm-up (compile) chunk,
best and median of `repeats` chunks of `steps` steps.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np


def limit_threads(threads: int) -> None:
    """Same thread count for both sides; call before importing jax or torch.

    With 1, the process is also pinned to one CPU: `--xla_cpu_multi_thread_eigen=false` only
    makes each dot single-threaded, and XLA still runs its thunks on a pool as wide as the
    CPUs it sees: two threads sharing the work on a 2-core machine, measured per thread
    (the `intra_op_parallelism_threads=1` written beside it before, without `--`, did not
    change that)."""
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def dataset(args):
    rng = np.random.default_rng(0)
    tokens = rng.integers(4, args.vocab, (1024, args.seq)).astype(np.int32)
    tokens[:, 0] = 1  # BOS
    mask = np.ones((1024, args.seq), np.float32)
    mask[:, -1] = 0.0  # the last position has no next token
    return tokens, mask


def bench_ours(args):
    import jax
    import jax.numpy as jnp

    from selftaught.lm import TrainConfig, TransformerConfig, count_params, make_sft

    cfg = TransformerConfig(vocab_size=args.vocab, max_len=args.seq, d_model=args.d_model,
                            n_layers=args.layers, n_heads=args.heads)
    tc = TrainConfig(lr=1e-3, warmup_steps=10, total_steps=10_000, batch_size=args.batch,
                     weight_decay=0.1, clip_norm=1.0)
    sft = make_sft(cfg, tc)
    tokens, mask = dataset(args)
    data = dict(tokens=jnp.asarray(tokens), loss_mask=jnp.asarray(mask),
                weight=jnp.ones(len(tokens), jnp.float32))
    state = sft.init(jax.random.PRNGKey(0))
    t = time.perf_counter()
    state, losses = sft.run(state, data, args.steps)
    jax.block_until_ready(losses)
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        state, losses = sft.run(state, data, args.steps)
        jax.block_until_ready(losses)
        times.append(time.perf_counter() - t)
    return dict(params=count_params(state.params), times=times, compile_s=compile_s,
                loss=float(losses[-1]))


def bench_torch(args):
    import math

    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=args.vocab, n_positions=args.seq, n_embd=args.d_model,
                     n_layer=args.layers, n_head=args.heads, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = GPT2LMHeadModel(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), eps=1e-9,
                            weight_decay=0.1)
    warmup, total = 10, 10_000
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: s / warmup if s < warmup
        else 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warmup) / (total - warmup)))))
    tokens, mask = dataset(args)
    tokens, mask = torch.from_numpy(tokens).long(), torch.from_numpy(mask)

    def chunk(n):
        for _ in range(n):
            idx = torch.randint(0, len(tokens), (args.batch,))
            x, m = tokens[idx], mask[idx]
            logits = model(x).logits
            targets = torch.cat([x[:, 1:], torch.zeros_like(x[:, :1])], 1)
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
            loss = (nll * m.reshape(-1)).sum() / m.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
        return float(loss.detach())

    t = time.perf_counter()
    chunk(args.steps)
    warm_s = time.perf_counter() - t
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        loss = chunk(args.steps)
        times.append(time.perf_counter() - t)
    nparams = sum(p.numel() for p in model.parameters())
    return dict(params=nparams, times=times, compile_s=warm_s, loss=loss)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--vocab", type=int, default=20)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="CPU threads for both (1 also pins XLA to one thread)")
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    import jax

    ntok = args.steps * args.batch * args.seq
    print(f"batch {args.batch}, seq {args.seq}, {args.steps} steps per timed chunk, d_model "
          f"{args.d_model}, layers {args.layers}, heads {args.heads}, vocab {args.vocab}; "
          f"{args.threads} CPU threads for torch (set_num_threads) and "
          f"{'1 for XLA' if args.threads == 1 else 'the default XLA pool'} on "
          f"{os.cpu_count()} cores; jax {jax.__version__} on {jax.devices()[0].platform}")
    ours = bench_ours(args)
    pt = bench_torch(args)
    rows = {}
    for name, res in (("ours (jax)", ours), ("torch eager", pt)):
        best, med = min(res["times"]), statistics.median(res["times"])
        rows[name] = (ntok / best, ntok / med)
        print(f"{name:12s} {res['params']:,} params, warm-up {res['compile_s']:.2f}s, "
              f"last loss {res['loss']:.3f}")
        print(f"{'':12s} best {ntok / best:9.0f} tok/s  median {ntok / med:9.0f} tok/s  "
              f"({', '.join(f'{t:.3f}' for t in res['times'])} s)")
    (ob, om), (tb, tm) = rows["ours (jax)"], rows["torch eager"]
    print(f"ratio ours/torch: best {ob / tb:.2f}x, median {om / tm:.2f}x")
    peak = matmul_peak_flops()
    model = 6 * ours["params"] * ob  # forward + backward matmul FLOPs per token
    print(f"model FLOP/s (6 x params x best tok/s): {model / 1e9:.1f} GFLOP/s = "
          f"{100 * model / peak:.0f}% of this machine's float32 matmul peak "
          f"({peak / 1e9:.1f} GFLOP/s: best of 10 jitted 1024x1024 @ 1024x1024 jnp matmuls, "
          "same thread setting)")


def matmul_peak_flops(n: int = 1024, repeats: int = 10) -> float:
    """Float32 FLOP/s of a jitted n x n @ n x n matmul (best of `repeats`), the yardstick of
    how close the trainer runs to the hardware (attention FLOPs are left out of the model
    count, so the fraction is a slight underestimate)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        mm(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


if __name__ == "__main__":
    main()
