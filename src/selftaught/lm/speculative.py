"""Batched speculative decoding (Leviathan et al. 2023, Chen et al. 2023): exact, greedy, lossy.

Each round, for every row at once: the draft q proposes γ tokens autoregressively; the
target p scores the γ+1 prefixes in ONE cached forward; draft token x_i is accepted with
probability min(1, p_i(x_i) / (ε·q_i(x_i))); at the first rejection the row emits a token
drawn from norm(max(0, p_i − q_i)) and drops the rest; if all γ are accepted it emits a
bonus token from p_{γ+1}. With ε = 1 the output has exactly the target's sampling
distribution; ε < 1 (lenience, DistillSpec's lossy mode) accepts more and is no longer exact.
Greedy mode: the draft proposes its argmax tokens, x_i is accepted iff it is the target's
argmax, and the emitted token is the target's argmax, so the output equals the target's
greedy decode token for token.

Ragged acceptance: every row accepts its own number of tokens per round. Both KV caches have
a per-row write index (`init_cache(per_row=True)`); a rejected suffix is "rewound" by setting
the row's index back, never by copying the cache: stale slots past the index are invisible to
attention and are overwritten next round. The draft re-feeds the row's last two tokens each
round (slot n−1 is rewritten with identical keys), so a row that accepted all γ tokens needs no
extra draft call. The whole decode (prefill, rounds, draft loop) is one jitted program: a
`lax.while_loop` over rounds that exits when every row has hit EOS or `max_new_tokens`.

Distributions are the sampler's: PAD/BOS removed, logits / temperature, optional top-k
(`lm.sampler.filter_logits`), so "the target's own sampling distribution" is
`lm.sampler.sample(..., temperature, top_k)`'s.

Statistics per row (for α, τ and speedup): `target_calls_B` (rounds the row took part in),
`tested_B` (draft tokens whose acceptance was decided: n+1 per round, n when all γ pass),
`accepted_B`, and `alpha_sum_B` = Σ over tested positions of Σ_x min(p(x), q(x)), the
expected acceptance probability (lm.md §5: α = E[Σ_x min(p, q)]); α = alpha_sum / tested.
In greedy mode alpha_sum counts argmax matches instead (α = accepted / tested).
"""

from __future__ import annotations

import functools

import flax.struct
import jax
import jax.numpy as jnp

from selftaught.core.errors import ConfigError, check
from selftaught.lm.model import Transformer, TransformerConfig, default_positions, init_cache
from selftaught.lm.sampler import filter_logits, over_batches, unsampleable
from selftaught.lm.tokenizer import EOS, PAD


@flax.struct.dataclass
class SpecOutput:
    tokens_BxN: jax.Array  # int32, PAD after the EOS
    lengths_B: jax.Array  # int32, generated tokens including the EOS
    target_calls_B: jax.Array  # int32, target forwards (rounds) the row took part in
    tested_B: jax.Array  # int32, draft tokens whose acceptance was decided
    accepted_B: jax.Array  # int32, draft tokens accepted
    alpha_sum_B: jax.Array  # float32, Σ over tested positions of Σ_x min(p, q)
    rounds: jax.Array  # int32 scalar, rounds of the while loop (batch-level target calls)


def check_speculative(target_cfg: TransformerConfig, draft_cfg: TransformerConfig, *,
                      gamma: int, epsilon: float, max_new_tokens: int, prompt_len: int,
                      greedy: bool = False, temperature: float = 1.0, top_k: int = 0) -> None:
    """ConfigError (a UserError) that says what to change for an impossible setting."""
    check(isinstance(gamma, int) and gamma >= 1,
          f"gamma={gamma} must be an integer >= 1 (draft tokens per target call)")
    check(0.0 < epsilon <= 1.0,
          f"epsilon={epsilon} must be in (0, 1] (1 = exact speculative sampling, lower = "
          "more lenient, lossy)")
    check(target_cfg.vocab_size == draft_cfg.vocab_size,
          f"draft vocab_size={draft_cfg.vocab_size} differs from the target's "
          f"{target_cfg.vocab_size}; draft and target must share one tokenizer")
    check(max_new_tokens >= 1, f"max_new_tokens={max_new_tokens} must be >= 1")
    check(prompt_len >= 2, f"prompt length {prompt_len} must be >= 2 (BOS ... SEP)")
    check(greedy or temperature > 0,
          f"temperature={temperature} must be > 0 (or pass greedy=True)")
    check(top_k >= 0, f"top_k={top_k} must be >= 0 (0 keeps the whole vocabulary)")
    for name, c in (("target", target_cfg), ("draft", draft_cfg)):
        if c.pos_encoding == "learned":
            check(prompt_len + max_new_tokens <= c.max_len,
                  f"prompt length {prompt_len} + max_new_tokens {max_new_tokens} exceeds the "
                  f"{name}'s max_len={c.max_len} (learned positions); shorten or raise max_len")


def _row_slice(x_BxL, start_B, width: int):
    """x[b, start[b] : start[b] + width] for every row."""
    return jax.vmap(lambda r, s: jax.lax.dynamic_slice_in_dim(r, s, width))(x_BxL, start_B)


def _row_write(x_BxL, start_B, new_BxW):
    return jax.vmap(lambda r, s, n: jax.lax.dynamic_update_slice_in_dim(r, n, s, 0))(
        x_BxL, start_B, new_BxW)


@functools.lru_cache(maxsize=32)
def _compiled(target_cfg: TransformerConfig, draft_cfg: TransformerConfig, N: int, G: int,
              top_k: int, greedy: bool, batched: bool = False):
    target, draft = Transformer(target_cfg), Transformer(draft_cfg)
    t_dec = lambda p, *a: target.apply(p, *a, method=Transformer.decode)
    d_dec = lambda p, *a: draft.apply(p, *a, method=Transformer.decode)

    def probs(logits_xV, temperature):
        if greedy:
            return jax.nn.softmax(unsampleable(logits_xV), axis=-1)
        flat = logits_xV.reshape(-1, logits_xV.shape[-1])
        return jax.nn.softmax(filter_logits(flat, temperature, top_k), -1).reshape(
            logits_xV.shape)

    def pick(logits_BxV, key, temperature):
        if greedy:
            return jnp.argmax(unsampleable(logits_BxV), -1).astype(jnp.int32)
        return jax.random.categorical(key, filter_logits(logits_BxV, temperature, top_k),
                                      -1).astype(jnp.int32)

    def run(t_params, d_params, prompt_BxP, pmask_BxP, rng, temperature, epsilon):
        B, P = prompt_BxP.shape
        L = P + N + G + 1  # every write (<= G+1 tokens past the last kept slot) stays inside
        pmask_BxP = pmask_BxP.astype(bool)
        off_B = P - jnp.sum(pmask_BxP, -1).astype(jnp.int32)  # left padding: pos = slot - off
        pos_BxP = default_positions(pmask_BxP)
        t_cache = init_cache(target_cfg, B, L, per_row=True)
        d_cache = init_cache(draft_cfg, B, L, per_row=True)
        # prefill all but the last prompt token (SEP): it is fed at the first round
        pre = (prompt_BxP[:, :-1], pos_BxP[:, :-1], pmask_BxP[:, :-1])
        _, t_cache = t_dec(t_params, *pre, t_cache)
        _, d_cache = d_dec(d_params, *pre, d_cache)
        seq_BxL = jnp.full((B, L), PAD, jnp.int32).at[:, :P].set(prompt_BxP.astype(jnp.int32))
        live_BxL = jnp.zeros((B, L), bool).at[:, :P].set(pmask_BxP).at[:, P:].set(True)

        def cond(c):
            return jnp.any(c["active_B"])

        def body(c):
            seq, n_B, active_B = c["seq"], c["n_B"], c["active_B"]
            key, k_draft, k_acc, k_fix = jax.random.split(c["key"], 4)
            # --- draft: re-feed slots n-1, n, then G-1 single steps; proposals d_1..d_G
            d_cache = c["d_cache"].replace(index=n_B - 1)
            two_Bx2 = _row_slice(seq, n_B - 1, 2)
            slots_Bx2 = n_B[:, None] + jnp.array([-1, 0])
            lg_Bx2xV, d_cache = d_dec(d_params, two_Bx2, slots_Bx2 - off_B[:, None],
                                      _row_slice(live_BxL, n_B - 1, 2), d_cache)
            dkeys = jax.random.split(k_draft, G)
            tok_B = pick(lg_Bx2xV[:, -1], dkeys[0], temperature)

            def draft_step(carry, xs):
                cache, tok_B, logits_BxV = carry
                j, k = xs  # proposal j+1 (0-based j) is fed at slot n + j
                lg_Bx1xV, cache = d_dec(d_params, tok_B[:, None],
                                        (n_B + j - off_B)[:, None], jnp.ones((B, 1), bool),
                                        cache)
                nxt_B = pick(lg_Bx1xV[:, 0], k, temperature)
                return (cache, nxt_B, lg_Bx1xV[:, 0]), (nxt_B, lg_Bx1xV[:, 0])

            (d_cache, _, _), (rest_GxB, rest_GxBxV) = jax.lax.scan(
                draft_step, (d_cache, tok_B, lg_Bx2xV[:, -1]),
                (jnp.arange(1, G), dkeys[1:]))
            d_BxG = jnp.concatenate([tok_B[:, None], rest_GxB.T], axis=1)[:, :G]
            qlog_BxGxV = jnp.concatenate(
                [lg_Bx2xV[:, -1:], jnp.swapaxes(rest_GxBxV, 0, 1)], axis=1)[:, :G]
            # --- target: one forward over [x_n, d_1..d_G] at slots n..n+G
            t_cache = c["t_cache"].replace(index=n_B)
            t_in_BxG1 = jnp.concatenate([_row_slice(seq, n_B, 1), d_BxG], axis=1)
            t_pos_BxG1 = n_B[:, None] + jnp.arange(G + 1) - off_B[:, None]
            plog_BxG1xV, t_cache = t_dec(t_params, t_in_BxG1, t_pos_BxG1,
                                         jnp.ones((B, G + 1), bool), t_cache)
            p_BxG1xV = probs(plog_BxG1xV, temperature)
            q_BxGxV = probs(qlog_BxGxV, temperature)
            # --- accept / reject
            take = lambda x_BxGxV: jnp.take_along_axis(x_BxGxV, d_BxG[..., None], -1)[..., 0]
            if greedy:
                accept_BxG = d_BxG == jnp.argmax(unsampleable(plog_BxG1xV[:, :G]), -1)
            else:
                u_BxG = jax.random.uniform(k_acc, (B, G))
                accept_BxG = u_BxG * epsilon * take(q_BxGxV) < take(p_BxG1xV[:, :G])
            n_acc_B = jnp.sum(jnp.cumprod(accept_BxG.astype(jnp.int32), axis=1), axis=1)
            q_pad_BxG1xV = jnp.concatenate([q_BxGxV, jnp.zeros_like(q_BxGxV[:, :1])], 1)
            at = lambda x: jnp.take_along_axis(x, n_acc_B[:, None, None], 1)[:, 0]
            p_at_BxV, q_at_BxV = at(p_BxG1xV), at(q_pad_BxG1xV)
            if greedy:
                fix_B = jnp.argmax(unsampleable(at(plog_BxG1xV)), -1).astype(jnp.int32)
            else:
                resid_BxV = jnp.maximum(p_at_BxV - q_at_BxV, 0.0)
                ok_B = jnp.sum(resid_BxV, -1) > 0  # 0 only by rounding when p == q
                resid_BxV = jnp.where(ok_B[:, None], resid_BxV, p_at_BxV)
                fix_B = jax.random.categorical(
                    k_fix, jnp.where(resid_BxV > 0, jnp.log(resid_BxV), -jnp.inf), -1
                ).astype(jnp.int32)
            # --- emit d_1..d_n, fix (only rows still active), cut at EOS / the budget
            j_G1 = jnp.arange(G + 1)
            d_pad_BxG1 = jnp.concatenate([d_BxG, jnp.zeros((B, 1), jnp.int32)], 1)
            new_BxG1 = jnp.where(j_G1 < n_acc_B[:, None], d_pad_BxG1,
                                 jnp.where(j_G1 == n_acc_B[:, None], fix_B[:, None], PAD))
            written_B = jnp.where(active_B, n_acc_B + 1, 0)
            seq = jnp.where(active_B[:, None], _row_write(seq, n_B + 1, new_BxG1), seq)
            n_new_B = n_B + written_B
            emitted_BxG1 = j_G1 < written_B[:, None]
            hit_eos_B = jnp.any(emitted_BxG1 & (new_BxG1 == EOS), -1)
            done_B = hit_eos_B | (n_new_B - (P - 1) >= N)
            # statistics
            tested_B = jnp.where(active_B, jnp.minimum(n_acc_B + 1, G), 0)
            if greedy:  # acceptance is deterministic: α = fraction of argmax matches
                overlap_BxG = accept_BxG.astype(jnp.float32)
            else:
                overlap_BxG = jnp.sum(jnp.minimum(p_BxG1xV[:, :G], q_BxGxV), -1)
            alpha_B = jnp.sum(jnp.where(j_G1[:G] < tested_B[:, None], overlap_BxG, 0.0), -1)
            return dict(
                seq=seq, n_B=n_new_B, active_B=active_B & ~done_B, key=key,
                t_cache=t_cache, d_cache=d_cache,
                calls_B=c["calls_B"] + active_B.astype(jnp.int32),
                tested_B=c["tested_B"] + tested_B,
                accepted_B=c["accepted_B"] + jnp.where(active_B, n_acc_B, 0),
                alpha_B=c["alpha_B"] + alpha_B,
                rounds=c["rounds"] + 1,
            )

        zeros_B = jnp.zeros((B,), jnp.int32)
        carry = dict(seq=seq_BxL, n_B=jnp.full((B,), P - 1, jnp.int32),
                     active_B=jnp.ones((B,), bool), key=rng, t_cache=t_cache, d_cache=d_cache,
                     calls_B=zeros_B, tested_B=zeros_B, accepted_B=zeros_B,
                     alpha_B=jnp.zeros((B,), jnp.float32), rounds=jnp.zeros((), jnp.int32))
        c = jax.lax.while_loop(cond, body, carry)
        out_BxN = c["seq"][:, P:P + N]
        is_eos_BxN = out_BxN == EOS
        lengths_B = jnp.where(jnp.any(is_eos_BxN, -1), jnp.argmax(is_eos_BxN, -1) + 1, N)
        out_BxN = jnp.where(jnp.arange(N)[None] < lengths_B[:, None], out_BxN, PAD)
        return SpecOutput(out_BxN, lengths_B.astype(jnp.int32), c["calls_B"], c["tested_B"],
                          c["accepted_B"], c["alpha_B"], c["rounds"])

    return jax.jit(over_batches(run, 2) if batched else run)


def speculative_sample(
    target_params,
    target_cfg: TransformerConfig,
    draft_params,
    draft_cfg: TransformerConfig,
    prompt_tokens_BxP,
    prompt_mask_BxP,
    rng: jax.Array,
    *,
    max_new_tokens: int,
    gamma: int,
    temperature: float = 1.0,
    epsilon: float = 1.0,
    greedy: bool = False,
    top_k: int = 0,
) -> SpecOutput:
    """Decode up to `max_new_tokens` after left-padded prompts (`encode_prompts` layout),
    BxP or KxBxP: K batches of B decoded one after another in one compiled program
    (`lm.sampler.over_batches`; batch k uses key split(rng, K)[k]), every output with a
    leading K axis (`rounds` per batch).

    Compiled once per (configs, max_new_tokens, gamma, top_k, greedy) and input shapes;
    temperature and epsilon are traced (a lenience sweep does not recompile). Stops per row
    at EOS like `lm.sampler.sample`. Raises ConfigError for γ < 1, ε ∉ (0, 1], different
    vocabularies and lengths past a learned-position model's max_len.
    """
    P = prompt_tokens_BxP.shape[-1]
    check_speculative(target_cfg, draft_cfg, gamma=gamma, epsilon=epsilon,
                      max_new_tokens=max_new_tokens, prompt_len=P, greedy=greedy,
                      temperature=temperature, top_k=top_k)
    fn = _compiled(target_cfg, draft_cfg, int(max_new_tokens), int(gamma), int(top_k),
                   bool(greedy), jnp.ndim(prompt_tokens_BxP) == 3)
    return fn(target_params, draft_params, prompt_tokens_BxP, prompt_mask_BxP, rng,
              jnp.float32(temperature if not greedy else 1.0), jnp.float32(epsilon))


def expected_tokens_per_call(alpha, gamma):
    """τ = (1 − α^{γ+1}) / (1 − α): expected tokens per target call at i.i.d. acceptance α."""
    alpha = jnp.asarray(alpha, jnp.float32)
    return jnp.where(alpha >= 1.0, gamma + 1.0,
                     (1.0 - alpha ** (gamma + 1)) / jnp.maximum(1.0 - alpha, 1e-12))


def theoretical_speedup(tokens_per_call, gamma, cost_ratio):
    """Leviathan et al.'s wall-time improvement τ / (γ·c + 1) for draft/target cost ratio c."""
    return tokens_per_call / (gamma * cost_ratio + 1.0)


__all__ = ["ConfigError", "SpecOutput", "check_speculative", "expected_tokens_per_call",
           "speculative_sample", "theoretical_speedup"]
