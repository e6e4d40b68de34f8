"""Sampling throughput: selftaught.lm.sample (jitted KV-cached lax loop) vs Hugging Face
`GPT2LMHeadModel.generate` (PyTorch, KV cache) on a model of the same size, same run.

    .venv/bin/python bench/sampler.py [--batch 256 --prompt-len 16 --new-tokens 64 --repeats 3]

Needs the `bench` extra (torch==2.13.0, transformers). Both sides: random-init weights of
the same shape (GPT-2 block: pre-LN, learned positions, tied embeddings, MLP 4x, no
dropout), a batch of full-length prompts (no padding), temperature 1, top-k sampling, the
same CPU thread count. EOS is held back for all `new-tokens` steps on both sides
(`min_new_tokens`), so every row generates exactly `new-tokens` tokens.
Reports tokens/s = batch * new_tokens / wall seconds after one warm-up (compile) call, best
and median of `repeats`.
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


def bench_ours(args, threads):
    import jax
    import jax.numpy as jnp

    from selftaught.lm import TransformerConfig, count_params, init_params, sample

    cfg = TransformerConfig(vocab_size=args.vocab, max_len=args.prompt_len + args.new_tokens,
                            d_model=args.d_model, n_layers=args.layers, n_heads=args.heads,
                            pos_encoding="learned")
    params = init_params(cfg, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    prompts = jnp.asarray(rng.integers(4, args.vocab, (args.batch, args.prompt_len)), jnp.int32)
    mask = jnp.ones(prompts.shape, bool)

    def once(seed):
        out = sample(params, cfg, prompts, mask, jax.random.PRNGKey(seed),
                     max_new_tokens=args.new_tokens, top_k=args.top_k,
                     min_new_tokens=args.new_tokens)
        jax.block_until_ready(out)
        return out

    t = time.perf_counter()
    out = once(0)
    compile_s = time.perf_counter() - t
    times, generated = [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        out = once(r + 1)
        times.append(time.perf_counter() - t)
        generated.append(int(np.asarray(out.lengths_B).sum()))
    steps = int(np.asarray(out.lengths_B).max())
    return dict(params=count_params(params), times=times, compile_s=compile_s, steps=steps,
                generated=generated)


def bench_hf(args, threads):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=args.vocab, n_positions=args.prompt_len + args.new_tokens,
                     n_embd=args.d_model, n_layer=args.layers, n_head=args.heads,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = GPT2LMHeadModel(cfg).eval()
    rng = np.random.default_rng(0)
    prompts = torch.tensor(rng.integers(4, args.vocab, (args.batch, args.prompt_len)))
    mask = torch.ones_like(prompts)

    def once():
        with torch.inference_mode():
            return model.generate(prompts, attention_mask=mask, do_sample=True, top_k=args.top_k,
                                  max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                  use_cache=True, pad_token_id=0, eos_token_id=2)

    t = time.perf_counter()
    once()
    warm_s = time.perf_counter() - t
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        out = once()
        times.append(time.perf_counter() - t)
    assert out.shape == (args.batch, args.prompt_len + args.new_tokens)
    nparams = sum(p.numel() for p in model.parameters())
    return dict(params=nparams, times=times, compile_s=warm_s)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=20)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="CPU threads for both (1 also pins XLA to one thread)")
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    import jax

    ntok = args.batch * args.new_tokens
    print(f"batch {args.batch}, prompt {args.prompt_len}, new tokens {args.new_tokens}, "
          f"d_model {args.d_model}, layers {args.layers}, heads {args.heads}, vocab {args.vocab}, "
          f"top_k {args.top_k}; {args.threads} CPU threads for torch (set_num_threads) and "
          f"{'1 for XLA' if args.threads == 1 else 'the default XLA pool'} on "
          f"{os.cpu_count()} cores; jax {jax.__version__} on {jax.devices()[0].platform}")
    ours = bench_ours(args, args.threads)
    hf = bench_hf(args, args.threads)
    assert ours["steps"] == args.new_tokens and ours["generated"][0] == ntok
    print(f"ours: {ours['params']:,} params; first call "
          f"(compile) {ours['compile_s']:.2f}s")
    print(f"hf:   {hf['params']:,} params; first call (warm-up) {hf['compile_s']:.2f}s")
    rows = {}
    for name, res in (("ours (jax)", ours), ("hf generate (torch)", hf)):
        best, med = min(res["times"]), statistics.median(res["times"])
        rows[name] = (ntok / best, ntok / med)
        print(f"{name:22s} best {ntok / best:10.0f} tok/s  median {ntok / med:10.0f} tok/s  "
              f"({', '.join(f'{t:.3f}' for t in res['times'])} s)")
    (ob, om), (hb, hm) = rows["ours (jax)"], rows["hf generate (torch)"]
    print(f"ratio ours/hf: best {ob / hb:.2f}x, median {om / hm:.2f}x")


if __name__ == "__main__":
    main()
