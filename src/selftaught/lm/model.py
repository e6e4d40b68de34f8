"""A small pre-LN decoder-only transformer (nanodo style), with a KV-cache decode path.

Shape suffixes: B batch, T/S query length, M key length (cache slots), D d_model, H heads,
K head dim, V vocab, L layers, F mlp width.

Attention allows query slot s to see key slot m iff m <= s and key m is a real token
(mask True), and always itself (so padding queries stay causal and finite). Positions (for
learned / RoPE / FIRE encodings) are separate from slots: for a left-padded prompt they count
from its first real token, so a row's logits do not depend on how much padding it carries.
`Transformer.__call__` is the full forward; `Transformer.decode` runs S new tokens against a
`KVCache` (S = prompt length for prefill, 1 per sampling step) and gives the same logits as
the full forward on the concatenated sequence.

`attention="blocked"` computes the same attention flash-style (online softmax over key blocks
inside a rematerialised map over query blocks; key blocks wholly after a query block are
skipped), so memory grows linearly in the context instead of with S x M scores; the default
"plain" path is unchanged. `expand_cache` broadcasts a batch-1 cache (a shared prefix encoded
once) to a batch of queries.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.core
import flax.linen as nn
import flax.struct
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import ConfigError, check

POS_ENCODINGS = ("learned", "rope", "nope", "fire")
DTYPES = ("float32", "bfloat16")
ATTENTIONS = ("plain", "blocked")
_NEG = -1e30  # finite "minus infinity" so a fully masked row gives no NaN


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Model shape and options; `validate()` raises ConfigError on inconsistent values."""

    vocab_size: int
    max_len: int = 128
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    mlp_ratio: int = 4
    pos_encoding: str = "learned"
    qk_layernorm: bool = False
    tied_embeddings: bool = True
    dtype: str = "float32"
    rope_base: float = 10000.0
    attention: str = "plain"
    """'plain' (materialised S x M scores) or 'blocked' (flash-style, memory linear in length)"""
    attn_block: int = 128
    """query/key block size of attention='blocked'"""
    input_dim: int = 0
    """width of continuous inputs (`vectors_BxTxI`) added to the token embeddings through a
    linear projection; 0 = tokens only"""

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def validate(self) -> TransformerConfig:
        check(self.vocab_size >= 5, f"vocab_size={self.vocab_size} must be >= 5 (4 specials)")
        for name in ("max_len", "d_model", "n_layers", "n_heads"):
            v = getattr(self, name)
            check(v >= 1, f"{name}={v} must be a positive integer")
        check(self.mlp_ratio >= 0, f"mlp_ratio={self.mlp_ratio} must be >= 0 (0 = no MLP)")
        check(self.input_dim >= 0, f"input_dim={self.input_dim} must be >= 0 (0 = tokens only)")
        check(
            self.d_model % self.n_heads == 0,
            f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}",
        )
        if self.pos_encoding == "rope":
            check(self.head_dim % 2 == 0, f"rope needs an even head dim, got {self.head_dim}")
        if self.pos_encoding not in POS_ENCODINGS:
            raise ConfigError(
                f"pos_encoding={self.pos_encoding!r}; choose one of {', '.join(POS_ENCODINGS)}"
            )
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype={self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.attention not in ATTENTIONS:
            raise ConfigError(
                f"attention={self.attention!r}; choose one of {', '.join(ATTENTIONS)}"
            )
        if self.attention == "blocked":
            check(self.attn_block >= 1, f"attn_block={self.attn_block} must be >= 1")
            check(self.pos_encoding != "fire",
                  "attention='blocked' has no FIRE bias; use attention='plain' with FIRE")
        return self


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """Shape of the tiny decoder in a recipe config (vocabulary and length come from the task)."""

    d_model: int = 64
    """residual width"""
    n_layers: int = 2
    """decoder blocks"""
    n_heads: int = 4
    """attention heads (d_model must be divisible by it)"""
    mlp_ratio: int = 4
    """MLP hidden width as a multiple of d_model (0 = attention-only blocks)"""
    pos_encoding: str = "learned"
    """position encoding: learned | rope | nope | fire (see lm.model)"""
    attention: str = "plain"
    """plain (materialised scores) | blocked (flash-style, memory linear in length)"""
    attn_block: int = 256
    """query/key block size of attention='blocked'"""

    def config(self, vocab_size: int, max_len: int) -> TransformerConfig:
        """The validated `TransformerConfig` of this shape."""
        return TransformerConfig(
            vocab_size=vocab_size, max_len=max_len, d_model=self.d_model,
            n_layers=self.n_layers, n_heads=self.n_heads, mlp_ratio=self.mlp_ratio,
            pos_encoding=self.pos_encoding, attention=self.attention,
            attn_block=self.attn_block,
        ).validate()


@flax.struct.dataclass
class KVCache:
    """Keys/values of every layer for M slots; `index` = number of slots filled so far."""

    k_BxHxMxK: tuple[jax.Array, ...]  # one buffer per layer (updated in place by XLA)
    v_BxHxMxK: tuple[jax.Array, ...]
    mask_BxM: jax.Array  # bool: slot holds a real token
    pos_BxM: jax.Array  # int32: position of the token in each slot
    index: jax.Array  # int32 scalar, or int32[B] with `per_row=True` (see `init_cache`)


def init_cache(cfg: TransformerConfig, batch: int, max_len: int, per_row: bool = False) -> KVCache:
    """An empty cache with `max_len` slots (prompt + new tokens).

    `per_row=True` gives every row its own write index (int32[B]): `decode` writes row b's S
    new tokens at slots index[b]..index[b]+S-1 and a query at slot s sees only slots <= s, so
    setting `cache.replace(index=...)` back rewinds a row without copying the cache (slots
    past the index are stale and invisible until overwritten; speculative decoding). The
    caller keeps index + S <= max_len.
    """
    shape = (batch, cfg.n_heads, max_len, cfg.head_dim)
    dt = jnp.dtype(cfg.dtype)
    zeros = tuple(jnp.zeros(shape, dt) for _ in range(cfg.n_layers))
    return KVCache(
        zeros, zeros,
        jnp.zeros((batch, max_len), bool), jnp.zeros((batch, max_len), jnp.int32),
        jnp.zeros((batch,) if per_row else (), jnp.int32),
    )


def default_positions(mask_BxT: jax.Array) -> jax.Array:
    """Positions counting from each row's first real token (0 on left padding)."""
    return jnp.maximum(jnp.cumsum(mask_BxT.astype(jnp.int32), axis=-1) - 1, 0)


def _rope(x_BxSxHxK, pos_BxS, base):
    K = x_BxSxHxK.shape[-1]
    freq_K2 = base ** (-jnp.arange(0, K, 2, dtype=jnp.float32) / K)
    ang_BxSx1xK2 = pos_BxS[:, :, None, None].astype(jnp.float32) * freq_K2
    cos, sin = jnp.cos(ang_BxSx1xK2), jnp.sin(ang_BxSx1xK2)
    x1, x2 = jnp.split(x_BxSxHxK.astype(jnp.float32), 2, axis=-1)
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return out.astype(x_BxSxHxK.dtype)


def _pad_axis(x, axis, size, value=0):
    pad = size - x.shape[axis]
    if pad == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[axis] = (0, pad)
    return jnp.pad(x, widths, constant_values=value)


def blocked_attention(q_BxHxSxK, k_BxHxMxK, v_BxHxMxK, qslot_S, kmask_BxM, block: int):
    """softmax(q k^T / sqrt(K) masked) v without materialising the S x M scores.

    Query slot s sees key slot m iff (m <= qslot[s] and kmask[m]) or m == qslot[s], as in the
    plain path. `qslot_S` must be non-decreasing. Online softmax over key blocks (lax.scan,
    blocks wholly after the query block skipped by lax.cond) inside a lax.map over query
    blocks whose body is rematerialised in the backward pass: memory O((S + M) K + block^2).
    """
    B, H, S, K = q_BxHxSxK.shape
    M = k_BxHxMxK.shape[2]
    bq, bk = min(block, S), min(block, M)
    nq, nk = -(-S // bq), -(-M // bk)
    q = _pad_axis(q_BxHxSxK, 2, nq * bq)
    qslot = jnp.concatenate([qslot_S, jnp.full((nq * bq - S,), qslot_S[-1], qslot_S.dtype)])
    k = _pad_axis(k_BxHxMxK, 2, nk * bk)
    v = _pad_axis(v_BxHxMxK, 2, nk * bk)
    kmask = _pad_axis(kmask_BxM.astype(bool), 1, nk * bk, False)
    blocks = lambda x, n, b, ax: jnp.moveaxis(
        x.reshape(*x.shape[:ax], n, b, *x.shape[ax + 1:]), ax, 0)
    q_N = blocks(q, nq, bq, 2)  # nq x B x H x bq x K
    qs_N = qslot.reshape(nq, bq)
    k_N, v_N = blocks(k, nk, bk, 2), blocks(v, nk, bk, 2)
    km_N = blocks(kmask, nk, bk, 1)  # nk x B x bk
    ks_N = jnp.arange(nk * bk, dtype=qslot.dtype).reshape(nk, bk)

    @jax.checkpoint
    def one_query_block(args):
        q_BxHxQxK, qs_Q = args

        def body(carry, kv):
            k_BxHxCxK, v_BxHxCxK, km_BxC, ks_C = kv

            def update(carry):
                o, m, den = carry
                s = jnp.einsum("bhsk,bhmk->bhsm", q_BxHxQxK, k_BxHxCxK).astype(jnp.float32)
                s = s / np.sqrt(K)
                allowed_BxQxC = ((ks_C[None, :] <= qs_Q[:, None])[None] & km_BxC[:, None]) | (
                    ks_C[None, :] == qs_Q[:, None])[None]
                s = jnp.where(allowed_BxQxC[:, None], s, _NEG)
                m_new = jnp.maximum(m, s.max(-1))
                p = jnp.exp(s - m_new[..., None])
                corr = jnp.exp(m - m_new)
                pv = jnp.einsum("bhsm,bhmk->bhsk", p.astype(v_BxHxCxK.dtype), v_BxHxCxK)
                return (o * corr[..., None] + pv.astype(jnp.float32), m_new,
                        den * corr + p.sum(-1))

            return jax.lax.cond(ks_C[0] > qs_Q[-1], lambda c: c, update, carry), None

        init = (jnp.zeros((B, H, bq, K), jnp.float32), jnp.full((B, H, bq), _NEG, jnp.float32),
                jnp.zeros((B, H, bq), jnp.float32))
        (o, _, den), _ = jax.lax.scan(body, init, (k_N, v_N, km_N, ks_N))
        return (o / den[..., None]).astype(v_BxHxMxK.dtype)

    o_N = jax.lax.map(one_query_block, (q_N, qs_N))  # nq x B x H x bq x K
    return jnp.moveaxis(o_N, 0, 2).reshape(B, H, nq * bq, K)[:, :, :S]


class FireBias(nn.Module):
    """FIRE: b(i,j) = f(psi(i-j) / psi(max(L_thr, i))), psi(x) = log(c x + 1), f: 1->32->H."""

    n_heads: int

    @nn.compact
    def __call__(self, qpos_BxS, kpos_BxM):
        log_c = self.param("log_c", nn.initializers.constant(np.log(0.1)), ())
        log_thr = self.param("log_L_thr", nn.initializers.constant(np.log(32.0)), ())
        c, thr = jnp.exp(log_c), jnp.exp(log_thr)
        psi = lambda x: jnp.log(c * x + 1.0)
        i_BxSx1 = qpos_BxS[:, :, None].astype(jnp.float32)
        rel_BxSxM = jnp.maximum(i_BxSx1 - kpos_BxM[:, None, :].astype(jnp.float32), 0.0)
        u_BxSxM = psi(rel_BxSxM) / psi(jnp.maximum(thr, i_BxSx1))
        h = nn.relu(nn.Dense(32, name="fc1")(u_BxSxM[..., None]))
        return jnp.transpose(nn.Dense(self.n_heads, name="fc2")(h), (0, 3, 1, 2))  # BxHxSxM


class Attention(nn.Module):
    cfg: TransformerConfig

    def setup(self):
        c, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        self.qkv = nn.DenseGeneral((3, c.n_heads, c.head_dim), use_bias=False, dtype=dt)
        self.out = nn.DenseGeneral(c.d_model, axis=(-2, -1), use_bias=False, dtype=dt)
        if c.qk_layernorm:
            self.q_norm, self.k_norm = nn.LayerNorm(dtype=dt), nn.LayerNorm(dtype=dt)
        if c.pos_encoding == "fire":
            self.fire = FireBias(c.n_heads)

    def attn_bias(self, qpos_BxS, kpos_BxM):
        """Additive attention bias hook b(i, j) (FIRE); None for the other encodings."""
        return self.fire(qpos_BxS, kpos_BxM) if self.cfg.pos_encoding == "fire" else None

    def _sow_stats(self, qk_BxHxSxM, s_BxHxSxM, allowed_BxSxM):
        """Max |q.k|/sqrt(K) over allowed pairs and mean attention entropy (nats) over rows."""
        allowed_Bx1xSxM = allowed_BxSxM[:, None]
        self.sow("intermediates", "attn_logit_max",
                 jnp.max(jnp.where(allowed_Bx1xSxM, jnp.abs(qk_BxHxSxM), 0.0)))
        p_BxHxSxM = jax.nn.softmax(s_BxHxSxM, axis=-1)
        ent_BxHxS = jnp.sum(jnp.where(allowed_Bx1xSxM, jax.scipy.special.entr(p_BxHxSxM), 0.0),
                            axis=-1)
        self.sow("intermediates", "attn_entropy", jnp.mean(ent_BxHxS))

    def __call__(self, x_BxSxD, pos_BxS, kv_fn, kpos_BxM, allowed_BxSxM):
        """`kv_fn(k, v) -> (k_all, v_all)` merges the new keys with the cache (or not)."""
        c = self.cfg
        # a split, not three indexings: the backward of a split is one concatenate, that of
        # an index a zero-padded copy of the whole [B,S,3,H,K] tensor per part plus their sum
        q_BxSxHxK, k_BxSxHxK, v_BxSxHxK = (
            jnp.squeeze(a, 2) for a in jnp.split(self.qkv(x_BxSxD), 3, axis=2))
        if c.qk_layernorm:
            q_BxSxHxK, k_BxSxHxK = self.q_norm(q_BxSxHxK), self.k_norm(k_BxSxHxK)
        if c.pos_encoding == "rope":
            q_BxSxHxK = _rope(q_BxSxHxK, pos_BxS, c.rope_base)
            k_BxSxHxK = _rope(k_BxSxHxK, pos_BxS, c.rope_base)
        # head-major layout: batched dots over leading (b, h) need no transposes of the cache
        to_bhsk = lambda x: jnp.transpose(x, (0, 2, 1, 3))
        q_BxHxSxK = to_bhsk(q_BxSxHxK)
        k_BxHxMxK, v_BxHxMxK = kv_fn(to_bhsk(k_BxSxHxK), to_bhsk(v_BxSxHxK))
        if c.attention == "blocked":  # allowed_BxSxM is (qslot_S, kmask_BxM) here
            o_BxHxSxK = blocked_attention(q_BxHxSxK, k_BxHxMxK, v_BxHxMxK, *allowed_BxSxM,
                                          c.attn_block)
            return self.out(to_bhsk(o_BxHxSxK))
        s_BxHxSxM = jnp.einsum("bhsk,bhmk->bhsm", q_BxHxSxK, k_BxHxMxK).astype(jnp.float32)
        s_BxHxSxM = s_BxHxSxM / np.sqrt(c.head_dim)
        qk_BxHxSxM = s_BxHxSxM
        bias = self.attn_bias(pos_BxS, kpos_BxM)
        if bias is not None:
            s_BxHxSxM = s_BxHxSxM + bias
        s_BxHxSxM = jnp.where(allowed_BxSxM[:, None], s_BxHxSxM, _NEG)
        if self.is_mutable_collection("intermediates"):  # only when asked: see attention_stats
            self._sow_stats(qk_BxHxSxM, s_BxHxSxM, allowed_BxSxM)
        p_BxHxSxM = jax.nn.softmax(s_BxHxSxM, axis=-1).astype(v_BxHxMxK.dtype)
        if self.is_mutable_collection("attention") and not self.is_initializing():  # asked:
            # see attention_maps (init makes every collection mutable: keep params clean)
            self.sow("attention", "probs", p_BxHxSxM)
        o_BxHxSxK = jnp.einsum("bhsm,bhmk->bhsk", p_BxHxSxM, v_BxHxMxK)
        return self.out(to_bhsk(o_BxHxSxK))


class Block(nn.Module):
    cfg: TransformerConfig

    def setup(self):
        c, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        self.ln1, self.ln2 = nn.LayerNorm(dtype=dt), nn.LayerNorm(dtype=dt)
        self.attn = Attention(c)
        if c.mlp_ratio:  # mlp_ratio=0: an attention-only block
            self.fc1 = nn.Dense(c.d_model * c.mlp_ratio, dtype=dt)
            self.fc2 = nn.Dense(c.d_model, dtype=dt)

    def __call__(self, x_BxSxD, pos_BxS, kv_fn, kpos_BxM, allowed_BxSxM):
        x_BxSxD = x_BxSxD + self.attn(self.ln1(x_BxSxD), pos_BxS, kv_fn, kpos_BxM, allowed_BxSxM)
        if not self.cfg.mlp_ratio:
            return x_BxSxD
        return x_BxSxD + self.fc2(nn.gelu(self.fc1(self.ln2(x_BxSxD))))


class Transformer(nn.Module):
    cfg: TransformerConfig

    def setup(self):
        c, dt = self.cfg, jnp.dtype(self.cfg.dtype)
        init = nn.initializers.normal(0.02)
        self.embed = nn.Embed(c.vocab_size, c.d_model, embedding_init=init, dtype=dt)
        if c.pos_encoding == "learned":
            self.pos_embed = self.param("pos_embed", init, (c.max_len, c.d_model))
        self.blocks = [Block(c) for _ in range(c.n_layers)]
        self.ln_f = nn.LayerNorm(dtype=dt)
        if not c.tied_embeddings:
            self.head = nn.Dense(c.vocab_size, use_bias=False, dtype=dt)
        if c.input_dim:
            self.in_proj = nn.Dense(c.d_model, use_bias=False, kernel_init=init, dtype=dt)

    def _embed(self, tokens_BxS, pos_BxS, vectors_BxSxI=None):
        x_BxSxD = self.embed(tokens_BxS)
        if self.cfg.input_dim:
            if vectors_BxSxI is None:
                vectors_BxSxI = jnp.zeros((*tokens_BxS.shape, self.cfg.input_dim), x_BxSxD.dtype)
            x_BxSxD = x_BxSxD + self.in_proj(vectors_BxSxI)
        elif vectors_BxSxI is not None:
            raise ValueError("vectors_BxTxI given to a model with input_dim=0")
        if self.cfg.pos_encoding == "learned":
            pos_BxS = jnp.clip(pos_BxS, 0, self.cfg.max_len - 1)
            x_BxSxD = x_BxSxD + self.pos_embed[pos_BxS].astype(x_BxSxD.dtype)
        return x_BxSxD

    def _logits(self, x_BxSxD):
        h_BxSxD = self.ln_f(x_BxSxD)
        if self.cfg.tied_embeddings:
            return self.embed.attend(h_BxSxD).astype(jnp.float32)
        return self.head(h_BxSxD).astype(jnp.float32)

    def __call__(self, tokens_BxT, positions_BxT=None, mask_BxT=None, return_hidden=False,
                 vectors_BxTxI=None):
        """Full causal forward -> logits_BxTxV (float32).

        With `cfg.input_dim > 0`, `vectors_BxTxI` (default zeros) are projected linearly to
        d_model and added to the token (and position) embeddings: continuous items.
        mask_BxT (bool, default all True) marks real tokens; padding keys are never attended.
        positions default to `default_positions(mask)` (= arange when there is no padding).
        With `return_hidden=True` -> (logits_BxTxV, h_BxTxD), h the final-layer-norm output
        (the features of a reward-model head).
        """
        B, T = tokens_BxT.shape
        if mask_BxT is None:
            mask_BxT = jnp.ones((B, T), bool)
        mask_BxT = mask_BxT.astype(bool)
        if positions_BxT is None:
            positions_BxT = default_positions(mask_BxT)
        if self.cfg.attention == "blocked":
            allowed_BxTxT = (jnp.arange(T, dtype=jnp.int32), mask_BxT)
        else:
            causal_TxT = jnp.tril(jnp.ones((T, T), bool))
            allowed_BxTxT = (causal_TxT[None] & mask_BxT[:, None, :]) | jnp.eye(T, dtype=bool)
        x_BxTxD = self._embed(tokens_BxT, positions_BxT, vectors_BxTxI)
        for block in self.blocks:
            x_BxTxD = block(x_BxTxD, positions_BxT, lambda k, v: (k, v), positions_BxT,
                            allowed_BxTxT)
        if return_hidden:
            return self._logits(x_BxTxD), self.ln_f(x_BxTxD)
        return self._logits(x_BxTxD)

    def decode(self, tokens_BxS, positions_BxS, mask_BxS, cache: KVCache):
        """Run S new tokens into the next S cache slots -> (logits_BxSxV, new cache)."""
        S, M = tokens_BxS.shape[1], cache.mask_BxM.shape[1]
        i = cache.index
        upd = lambda buf, new, axis=1: jax.lax.dynamic_update_slice_in_dim(buf, new, i, axis)
        if i.ndim == 1:  # per-row write index (init_cache(per_row=True))
            upd = lambda buf, new, axis=1: jax.vmap(
                lambda b, n, j: jax.lax.dynamic_update_slice_in_dim(b, n, j, axis - 1)
            )(buf, new, i)
        mask_BxM = upd(cache.mask_BxM, mask_BxS.astype(bool))
        pos_BxM = upd(cache.pos_BxM, positions_BxS.astype(jnp.int32))
        m_M = jnp.arange(M)
        if i.ndim == 1:
            if self.cfg.attention == "blocked":
                raise ValueError("a per-row cache index (init_cache(per_row=True)) needs "
                                 "attention='plain'")
            slot_BxSx1 = (i[:, None] + jnp.arange(S))[:, :, None]
            allowed_BxSxM = ((m_M <= slot_BxSx1) & mask_BxM[:, None]) | (m_M == slot_BxSx1)
        else:
            slot_S = i + jnp.arange(S)
            allowed_BxSxM = ((m_M[None, :] <= slot_S[:, None])[None] & mask_BxM[:, None]) | (
                m_M[None, :] == slot_S[:, None]
            )[None]
            if self.cfg.attention == "blocked":
                allowed_BxSxM = (slot_S.astype(jnp.int32), mask_BxM)
        x_BxSxD = self._embed(tokens_BxS, positions_BxS)
        new_k, new_v = [], []
        for layer, block in enumerate(self.blocks):

            def kv_fn(k_BxHxSxK, v_BxHxSxK, layer=layer):
                k_old, v_old = cache.k_BxHxMxK[layer], cache.v_BxHxMxK[layer]
                k = upd(k_old, k_BxHxSxK.astype(k_old.dtype), 2)
                v = upd(v_old, v_BxHxSxK.astype(v_old.dtype), 2)
                new_k.append(k)
                new_v.append(v)
                return k, v

            x_BxSxD = block(x_BxSxD, positions_BxS, kv_fn, pos_BxM, allowed_BxSxM)
        new_cache = KVCache(tuple(new_k), tuple(new_v), mask_BxM, pos_BxM, i + S)
        return self._logits(x_BxSxD), new_cache


def expand_cache(cache: KVCache, batch: int) -> KVCache:
    """A batch-1 cache (e.g. a many-shot prefix encoded once) broadcast to `batch` rows."""
    rows = lambda x: jnp.broadcast_to(x, (batch, *x.shape[1:]))
    return KVCache(tuple(map(rows, cache.k_BxHxMxK)), tuple(map(rows, cache.v_BxHxMxK)),
                   rows(cache.mask_BxM), rows(cache.pos_BxM), cache.index)


def prefix_cached_logprobs(params, cfg: TransformerConfig, prefix_IxP, pmask_IxP,
                           query_IxQxL) -> jax.Array:
    """Next-token log-probs [I, Q, V] after each of Q L-token queries that share one of I
    (left-padded) prefixes: each prefix is encoded once into a KV cache, broadcast to its Q
    queries (`expand_cache`) and the queries decoded against it, one prefix at a time
    (`lax.map`), instead of re-encoding prefix + query Q times (many-shot evaluation;
    bench/icl_prefix.py). Equals log_softmax of `forward` on [prefix, query] at the query's
    last token."""
    n_prefixes, P = prefix_IxP.shape
    Q, L = query_IxQxL.shape[1:]
    cache = init_cache(cfg, n_prefixes, P + L)
    _, cache = decode(params, cfg, prefix_IxP, default_positions(pmask_IxP), pmask_IxP, cache)
    next_pos_I = jnp.sum(pmask_IxP, -1).astype(jnp.int32)

    def one(i):
        row = jax.tree_util.tree_map(
            lambda x: jax.lax.dynamic_index_in_dim(x, i, 0) if x.ndim else x, cache)
        qpos = jnp.broadcast_to(next_pos_I[i] + jnp.arange(L), (Q, L))
        logits, _ = decode(params, cfg, query_IxQxL[i], qpos, jnp.ones((Q, L), bool),
                           expand_cache(row, Q))
        return jax.nn.log_softmax(logits[:, -1], -1)

    return jax.lax.map(one, jnp.arange(n_prefixes))


def attention_stats(intermediates) -> tuple[jax.Array, jax.Array]:
    """(max attention logit over layers, mean attention entropy over layers) from the
    `intermediates` collection of `Transformer(cfg).apply(..., mutable=["intermediates"])`."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(intermediates))
    mx = [v for k, vs in flat.items() if k[-1] == "attn_logit_max" for v in vs]
    ent = [v for k, vs in flat.items() if k[-1] == "attn_entropy" for v in vs]
    return jnp.max(jnp.stack(mx)), jnp.mean(jnp.stack(ent))


def attention_maps(intermediates_or_vars) -> jax.Array:
    """Attention probabilities [layers, B, H, S, M] from the `attention` collection of
    `Transformer(cfg).apply(..., mutable=["attention"])` (plain attention only)."""
    flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(intermediates_or_vars))
    probs = [vs for k, vs in sorted(flat.items(), key=lambda kv: _layer_index(kv[0]))
             if k[-1] == "probs"]
    return jnp.stack([v for vs in probs for v in vs])


def _layer_index(path) -> int:
    for part in path:
        if part.startswith("blocks_"):
            return int(part.split("_")[1])
    return -1


def init_params(cfg: TransformerConfig, rng: jax.Array, seq_len: int = 8):
    """Fresh parameters of `Transformer(cfg)`."""
    cfg.validate()
    tokens = jnp.ones((1, min(seq_len, cfg.max_len)), jnp.int32)
    return _jitted_init(cfg)(rng, tokens)


@functools.lru_cache(maxsize=32)
def _jitted_init(cfg: TransformerConfig):
    return jax.jit(Transformer(cfg).init)


def forward(params, cfg: TransformerConfig, tokens_BxT, positions_BxT=None, mask_BxT=None):
    """Functional full forward -> logits_BxTxV (jitted, compiled once per cfg and shapes)."""
    return _jitted(cfg)[0](params, tokens_BxT, positions_BxT, mask_BxT)


def decode(params, cfg: TransformerConfig, tokens_BxS, positions_BxS, mask_BxS, cache):
    """Functional cached step -> (logits_BxSxV, new cache) (jitted like `forward`)."""
    return _jitted(cfg)[1](params, tokens_BxS, positions_BxS, mask_BxS, cache)


@functools.lru_cache(maxsize=32)
def _jitted(cfg: TransformerConfig):
    model = Transformer(cfg)
    fwd = jax.jit(model.apply)
    dec = jax.jit(lambda p, t, pos, m, c: model.apply(p, t, pos, m, c, method=Transformer.decode))
    return fwd, dec


def count_params(params) -> int:
    """Total number of scalars in a parameter pytree."""
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))
