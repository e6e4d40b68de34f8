"""Speculative decoding throughput: selftaught.lm.speculative_sample (batched, ragged
acceptance, one jitted while-loop) vs Hugging Face assisted generation
(`generate(assistant_model=...)`, PyTorch, batch 1 only), same run, same sizes.

    .venv/bin/python bench/speculative.py [--gamma 4 --new-tokens 64 --batch 64 --threads 1]

Needs the `bench` extra (torch==2.13.0, transformers). Both sides: a GPT-2-shaped target
(default d_model 256, 6 layers, 8 heads) and draft (d_model 64, 2 layers, 2 heads) with
random-init weights, vocab 64, temperature-1 sampling, a constant γ draft tokens per round
(HF: `num_assistant_tokens_schedule="constant"`, `assistant_confidence_threshold=0`, so its
draft never stops early), the same CPU thread count. Each side is also timed on its own plain
decoding of the same target (ours: `lm.sample`; HF: `generate` without an assistant), so
"speedup" is over the side's own baseline.

EOS is held back on both sides so every row generates exactly `new-tokens` tokens: HF gets
`eos_token_id=None`; our models get a final-layer-norm bias of ones and an EOS embedding of
-100/d_model in every coordinate, which makes EOS's logit exactly -100 (the normalised
activations sum to zero) while every other logit stays random.

Reports tokens/s = batch * new_tokens / wall seconds after one warm-up (compile) call, best
and median of `repeats`, and the ratios ours/HF at batch 1 and ours at `--batch` / HF at 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from sampler import limit_threads  # bench/sampler.py: same thread policy for both sides


def _timed(fn, repeats):
    t = time.perf_counter()
    fn(0)
    warm = time.perf_counter() - t
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        out = fn(r + 1)
        times.append(time.perf_counter() - t)
    return out, times, warm


def bench_ours(args, batch):
    import jax
    import jax.numpy as jnp

    from selftaught.lm import TransformerConfig, init_params, sample
    from selftaught.lm.speculative import speculative_sample
    from selftaught.lm.tokenizer import EOS

    n = args.prompt_len + args.new_tokens

    def model(d, layers, heads, seed):
        cfg = TransformerConfig(vocab_size=args.vocab, max_len=n, d_model=d, n_layers=layers,
                                n_heads=heads, pos_encoding="learned")
        p = jax.tree.map(lambda x: x, init_params(cfg, jax.random.PRNGKey(seed)))
        p = jax.tree_util.tree_map_with_path(
            lambda path, x: jnp.ones_like(x) if "ln_f" in str(path) and "bias" in str(path)
            else x, p)
        p["params"]["embed"]["embedding"] = (
            p["params"]["embed"]["embedding"].at[EOS].set(-100.0 / d))
        return cfg, p

    tcfg, tp = model(args.d_model, args.layers, args.heads, 0)
    dcfg, dp = model(args.draft_d_model, args.draft_layers, args.draft_heads, 1)
    rng = np.random.default_rng(0)
    prompts = jnp.asarray(rng.integers(4, args.vocab, (batch, args.prompt_len)), jnp.int32)
    mask = jnp.ones(prompts.shape, bool)

    def spec(seed):
        out = speculative_sample(tp, tcfg, dp, dcfg, prompts, mask, jax.random.PRNGKey(seed),
                                 max_new_tokens=args.new_tokens, gamma=args.gamma)
        return jax.block_until_ready(out)

    def plain(seed):
        return jax.block_until_ready(sample(tp, tcfg, prompts, mask, jax.random.PRNGKey(seed),
                                            max_new_tokens=args.new_tokens))

    out, spec_t, spec_w = _timed(spec, args.repeats)
    lengths = np.asarray(out.lengths_B)
    assert (lengths == args.new_tokens).all(), f"EOS was not held back: lengths {lengths}"
    tested, accepted = np.asarray(out.tested_B).sum(), np.asarray(out.accepted_B).sum()
    calls = np.asarray(out.target_calls_B).sum()
    pout, plain_t, plain_w = _timed(plain, args.repeats)
    assert (np.asarray(pout.lengths_B) == args.new_tokens).all()
    return dict(spec=spec_t, plain=plain_t, warm=(spec_w, plain_w),
                alpha=accepted / max(tested, 1), tau=lengths.sum() / max(calls, 1))


def bench_hf(args):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(args.threads)
    n = args.prompt_len + args.new_tokens

    def model(d, layers, heads, seed):
        torch.manual_seed(seed)
        cfg = GPT2Config(vocab_size=args.vocab, n_positions=n, n_embd=d, n_layer=layers,
                         n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         bos_token_id=1, eos_token_id=None, pad_token_id=0)
        return GPT2LMHeadModel(cfg).eval()

    target = model(args.d_model, args.layers, args.heads, 0)
    draft = model(args.draft_d_model, args.draft_layers, args.draft_heads, 1)
    rng = np.random.default_rng(0)
    prompts = torch.tensor(rng.integers(4, args.vocab, (1, args.prompt_len)))
    mask = torch.ones_like(prompts)
    common = dict(attention_mask=mask, do_sample=True, top_k=0, max_new_tokens=args.new_tokens,
                  use_cache=True, pad_token_id=0, eos_token_id=None)

    def spec(seed):
        torch.manual_seed(seed)
        with torch.inference_mode():
            return target.generate(prompts, assistant_model=draft,
                                   num_assistant_tokens=args.gamma,
                                   num_assistant_tokens_schedule="constant",
                                   assistant_confidence_threshold=0.0, **common)

    def plain(seed):
        torch.manual_seed(seed)
        with torch.inference_mode():
            return target.generate(prompts, **common)

    out, spec_t, spec_w = _timed(spec, args.repeats)
    assert out.shape == (1, n), out.shape
    out, plain_t, plain_w = _timed(plain, args.repeats)
    assert out.shape == (1, n), out.shape
    return dict(spec=spec_t, plain=plain_t, warm=(spec_w, plain_w))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--batch", type=int, default=64, help="our batched run (HF: batch 1 only)")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=64)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--draft-d-model", type=int, default=64)
    ap.add_argument("--draft-layers", type=int, default=2)
    ap.add_argument("--draft-heads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="CPU threads for both (1 also pins XLA to one thread)")
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    import jax

    print(f"gamma {args.gamma}, prompt {args.prompt_len}, new tokens {args.new_tokens}, vocab "
          f"{args.vocab}; target d{args.d_model}x{args.layers}, draft "
          f"d{args.draft_d_model}x{args.draft_layers}; {args.threads} threads on "
          f"{os.cpu_count()} cores; jax {jax.__version__}")
    rows = {"ours b1": (bench_ours(args, 1), 1), f"ours b{args.batch}":
            (bench_ours(args, args.batch), args.batch), "hf b1": (bench_hf(args), 1)}
    tps = {}
    for name, (res, b) in rows.items():
        ntok = b * args.new_tokens
        sb, sm = ntok / min(res["spec"]), ntok / statistics.median(res["spec"])
        pb, pm = ntok / min(res["plain"]), ntok / statistics.median(res["plain"])
        tps[name] = (sb, sm)
        extra = (f"  alpha {res['alpha']:.2f} tau {res['tau']:.2f}" if "alpha" in res else "")
        print(f"{name:9s} speculative best {sb:9.0f} / median {sm:9.0f} tok/s; plain best "
              f"{pb:9.0f} / median {pm:9.0f} tok/s; speedup over own plain "
              f"{sb / pb:.2f}x / {sm / pm:.2f}x{extra}  (warm-up {res['warm'][0]:.1f}s)")
    hb, hm = tps["hf b1"]
    for name in list(rows)[:2]:
        ob, om = tps[name]
        print(f"ratio {name} / hf b1 (speculative tok/s): best {ob / hb:.2f}x, median "
              f"{om / hm:.2f}x")


if __name__ == "__main__":
    main()
