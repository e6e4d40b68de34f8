"""KV-cached batch sampler: one jitted prefill + `lax.while_loop` over decode steps.

Per row, sampling stops at the first EOS: the EOS itself is kept, later tokens are PAD with
log-prob 0, and `lengths_B` counts the generated tokens including the EOS. The loop exits
early once every row has stopped.

PAD and BOS are never sampled (their logits are set to -inf first): every distribution below
is over the rest of the vocabulary.

Log-probs: with sampling, `logprobs_BxN` is the log-probability of the sampled token under
the distribution it was actually drawn from, softmax(top_k_filter(logits / temperature)).
With `greedy=True` (argmax; temperature and top_k ignored) it is the log-probability under
the model at temperature 1 with no top-k, log_softmax(logits). For the model's log-probs of
arbitrary sequences, use `selftaught.lm.train.token_logprobs`.

Batches: prompts of shape KxBxP are K batches decoded one after another in ONE compiled
program (`over_batches`: a `lax.map`, batch k with key `jax.random.split(rng, K)[k]`); every
output gains a leading K axis. Each batch's loop stops when its own rows are done, and the
batch size the model scores at once stays B (on a CPU the cost per call grows with it).
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp

from selftaught.core.errors import ConfigError
from selftaught.lm.model import TransformerConfig, decode, default_positions, init_cache
from selftaught.lm.tokenizer import BOS, EOS, PAD


@flax.struct.dataclass
class SampleOutput:
    tokens_BxN: jax.Array  # int32, PAD after the EOS
    logprobs_BxN: jax.Array  # float32, 0 after the EOS
    lengths_B: jax.Array  # int32, number of generated tokens including the EOS


def unsampleable(logits_BxV):
    """Set the logits of PAD and BOS to -inf (they are never generated)."""
    special_V = jnp.zeros(logits_BxV.shape[-1], bool).at[jnp.array([PAD, BOS])].set(True)
    return jnp.where(special_V, -jnp.inf, logits_BxV)


def filter_logits(logits_BxV, temperature, top_k: int):
    """The sampling logits: PAD/BOS removed, divided by temperature, top_k kept (0: all)."""
    logits_BxV = unsampleable(logits_BxV) / temperature
    if top_k > 0 and top_k < logits_BxV.shape[-1]:
        kth_Bx1 = jax.lax.top_k(logits_BxV, top_k)[0][:, -1:]
        logits_BxV = jnp.where(logits_BxV < kth_Bx1, -jnp.inf, logits_BxV)
    return logits_BxV


def over_batches(run, n_lead: int):
    """`run(*lead, prompt_BxP, pmask_BxP, rng, *rest)` as a function of KxBxP prompts: a
    `lax.map` over the K batches (batch k gets key split(rng, K)[k]); `lead` (the
    `n_lead` parameter pytrees) and `rest` (traced scalars) are shared by every batch."""

    def batched(*args):
        lead, (t_KxBxP, m_KxBxP, rng), rest = (args[:n_lead], args[n_lead:n_lead + 3],
                                               args[n_lead + 3:])
        keys_K = jax.random.split(rng, t_KxBxP.shape[0])
        return jax.lax.map(lambda x: run(*lead, *x, *rest), (t_KxBxP, m_KxBxP, keys_K))

    return batched


@functools.lru_cache(maxsize=64)
def _compiled_sampler(cfg: TransformerConfig, max_new_tokens: int, top_k: int, greedy: bool,
                      batched: bool = False):
    N = max_new_tokens

    def pick(logits_BxV, key, temperature):
        if greedy:
            logits_BxV = unsampleable(logits_BxV)
            tok_B = jnp.argmax(logits_BxV, axis=-1)
            lp_BxV = jax.nn.log_softmax(logits_BxV, axis=-1)
        else:
            filt_BxV = filter_logits(logits_BxV, temperature, top_k)
            tok_B = jax.random.categorical(key, filt_BxV, axis=-1)
            lp_BxV = jax.nn.log_softmax(filt_BxV, axis=-1)
        lp_B = jnp.take_along_axis(lp_BxV, tok_B[:, None], axis=-1)[:, 0]
        return tok_B.astype(jnp.int32), lp_B

    def run(params, prompt_BxP, pmask_BxP, rng, temperature, min_new_tokens):
        B, P = prompt_BxP.shape
        pmask_BxP = pmask_BxP.astype(bool)
        cache = init_cache(cfg, B, P + N)
        pos_BxP = default_positions(pmask_BxP)
        logits_BxPxV, cache = decode(params, cfg, prompt_BxP, pos_BxP, pmask_BxP, cache)
        next_pos_B = jnp.sum(pmask_BxP, axis=-1).astype(jnp.int32)  # position of 1st new token

        def cond(carry):
            i, done_B = carry[0], carry[1]
            return (i < N) & ~jnp.all(done_B)

        def body(carry):
            i, done_B, logits_BxV, cache, toks_BxN, lps_BxN, key = carry
            key, sub = jax.random.split(key)
            no_eos = (jnp.arange(logits_BxV.shape[-1]) == EOS) & (i < min_new_tokens)
            tok_B, lp_B = pick(jnp.where(no_eos, -jnp.inf, logits_BxV), sub, temperature)
            tok_B = jnp.where(done_B, PAD, tok_B)
            lp_B = jnp.where(done_B, 0.0, lp_B)
            toks_BxN = toks_BxN.at[:, i].set(tok_B)
            lps_BxN = lps_BxN.at[:, i].set(lp_B)
            logits_Bx1xV, cache = decode(
                params, cfg, tok_B[:, None], (next_pos_B + i)[:, None], ~done_B[:, None], cache
            )
            done_B = done_B | (tok_B == EOS)
            return i + 1, done_B, logits_Bx1xV[:, 0], cache, toks_BxN, lps_BxN, key

        carry = (
            jnp.zeros((), jnp.int32), jnp.zeros((B,), bool), logits_BxPxV[:, -1], cache,
            jnp.full((B, N), PAD, jnp.int32), jnp.zeros((B, N), jnp.float32), rng,
        )
        _, _, _, _, toks_BxN, lps_BxN, _ = jax.lax.while_loop(cond, body, carry)
        is_eos_BxN = toks_BxN == EOS
        has_eos_B = jnp.any(is_eos_BxN, axis=-1)
        lengths_B = jnp.where(has_eos_B, jnp.argmax(is_eos_BxN, axis=-1) + 1, N)
        return SampleOutput(toks_BxN, lps_BxN, lengths_B.astype(jnp.int32))

    return jax.jit(over_batches(run, 1) if batched else run)


def sample(
    params,
    cfg: TransformerConfig,
    prompt_tokens_BxP,
    prompt_mask_BxP,
    rng: jax.Array,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    min_new_tokens: int = 0,
) -> SampleOutput:
    """Sample up to `max_new_tokens` after left-padded prompts (see `encode_prompts`), BxP
    or KxBxP (K batches in one program, see the module docstring).

    EOS is excluded from the first `min_new_tokens` steps (as in Hugging Face `generate`).
    Compiled once per (cfg, max_new_tokens, top_k, greedy) and input shapes; temperature and
    min_new_tokens are traced arguments, so changing them does not recompile.
    """
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens={max_new_tokens} must be >= 1")
    if not greedy and not temperature > 0:
        raise ConfigError(f"temperature={temperature} must be > 0 (or pass greedy=True)")
    if top_k < 0:
        raise ConfigError(f"top_k={top_k} must be >= 0 (0 keeps the whole vocabulary)")
    P = prompt_tokens_BxP.shape[-1]
    if cfg.pos_encoding == "learned" and P + max_new_tokens > cfg.max_len:
        raise ConfigError(
            f"prompt length {P} + max_new_tokens {max_new_tokens} exceeds the model's "
            f"max_len={cfg.max_len} (learned positions); shorten them or raise max_len"
        )
    fn = _compiled_sampler(cfg, int(max_new_tokens), int(top_k), bool(greedy),
                           jnp.ndim(prompt_tokens_BxP) == 3)
    return fn(params, prompt_tokens_BxP, prompt_mask_BxP, rng, jnp.float32(temperature),
              jnp.int32(min_new_tokens))
