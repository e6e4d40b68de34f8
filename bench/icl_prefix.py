"""Many-shot evaluation cost: prefix caching vs re-encoding the shots per query, and the
memory of blocked vs plain attention as the context grows.

    .venv/bin/python bench/icl_prefix.py [--prefix 2048 --queries 256 --query-len 4]

1. Q queries of `query-len` tokens are scored against one `prefix`-token many-shot prefix
   (one model, random-init weights, attention='blocked'):
   - re-encode: a full forward of [prefix + query] for every query (in chunks of
     `chunk` rows), as an evaluator without a cache does;
   - prefix cache: the prefix is encoded once (batch 1) into a KV cache, broadcast to the Q
     queries (`expand_cache`) and the queries run in one cached `decode` call.
   Both give the same query logits (tests/lm/test_attention.py); the bench prints the max
   difference, the wall seconds of each (best of `repeats`, after a compile call) and the
   ratio.
2. For contexts of 512..`prefix` tokens, XLA's compiled temporary memory of one training
   step's forward+backward (batch 1) with plain and with blocked attention, and their ratio.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def best_time(fn, repeats):
    fn()  # compile
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefix", type=int, default=2048)
    ap.add_argument("--queries", type=int, default=256)
    ap.add_argument("--query-len", type=int, default=4)
    ap.add_argument("--chunk", type=int, default=16)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--block", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp

    from selftaught.lm.model import (
        TransformerConfig,
        decode,
        expand_cache,
        forward,
        init_cache,
        init_params,
    )
    from selftaught.lm.train import token_logprobs

    P, Q, q = args.prefix, args.queries, args.query_len
    cfg = TransformerConfig(vocab_size=40, max_len=P + q, d_model=args.d_model,
                            n_layers=args.layers, n_heads=args.heads, pos_encoding="rope",
                            attention="blocked", attn_block=args.block).validate()
    params = init_params(cfg, jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    prefix = jnp.asarray(rng.integers(4, 40, (1, P)), jnp.int32)
    queries = jnp.asarray(rng.integers(4, 40, (Q, q)), jnp.int32)

    @jax.jit
    def reencode(params, prefix, queries):
        def chunk(qs):
            whole = jnp.concatenate([jnp.broadcast_to(prefix, (qs.shape[0], P)), qs], 1)
            return forward(params, cfg, whole)[:, P:]
        out = jax.lax.map(chunk, queries.reshape(-1, args.chunk, q))
        return out.reshape(Q, q, -1)

    @jax.jit
    def cached(params, prefix, queries):
        cache = init_cache(cfg, 1, P + q)
        _, cache = decode(params, cfg, prefix, jnp.arange(P)[None], jnp.ones((1, P), bool),
                          cache)
        cache = expand_cache(cache, Q)
        pos = jnp.broadcast_to(P + jnp.arange(q), (Q, q))
        return decode(params, cfg, queries, pos, jnp.ones((Q, q), bool), cache)[0]

    diff = float(jnp.abs(reencode(params, prefix, queries) - cached(params, prefix, queries))
                 .max())
    t_re = best_time(lambda: reencode(params, prefix, queries).block_until_ready(), args.repeats)
    t_pc = best_time(lambda: cached(params, prefix, queries).block_until_ready(), args.repeats)
    print(f"scoring {Q} queries x {q} tokens after a {P}-token prefix "
          f"(d_model {args.d_model}, {args.layers} layers; max |logit diff| {diff:.1e})")
    print(f"  re-encode per query : {t_re:8.3f} s")
    print(f"  prefix cache        : {t_pc:8.3f} s")
    print(f"  saving              : {t_re / t_pc:8.1f}x")

    print("training-step temporary memory (forward+backward, batch 1), XLA compiled:")
    T = 512
    while T <= P:
        toks = jnp.zeros((1, T), jnp.int32).at[:, 0].set(5) + 4
        mask = jnp.ones((1, T), bool)
        row = []
        for attention in ("plain", "blocked"):
            c = TransformerConfig(**{**cfg.__dict__, "max_len": T, "attention": attention})
            loss = lambda p, c=c, t=toks, m=mask: token_logprobs(p, c, t, m).sum()
            mem = jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis()
            row.append(mem.temp_size_in_bytes / 2**20)
        print(f"  T={T:5d}: plain {row[0]:8.1f} MiB  blocked {row[1]:8.1f} MiB  "
              f"ratio {row[0] / row[1]:5.1f}x")
        T *= 2


if __name__ == "__main__":
    main()
