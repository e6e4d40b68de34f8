"""Blocked (flash-style) attention equals plain attention; a prefix cache equals re-encoding."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from float32_tolerance import logit_atol

from selftaught.core.errors import ConfigError
from selftaught.lm.model import (
    TransformerConfig,
    decode,
    default_positions,
    expand_cache,
    forward,
    init_cache,
    init_params,
    prefix_cached_logprobs,
)
from selftaught.lm.train import token_logprobs

V = 14


def cfgs(block=4, **kw):
    base = dict(vocab_size=V, max_len=48, d_model=16, n_layers=2, n_heads=2, **kw)
    plain = TransformerConfig(**base)
    return plain, dataclasses.replace(plain, attention="blocked", attn_block=block)


def sharp_params(cfg, seed):
    # random-init logits are tiny; sharpen them so the comparison is meaningful
    return jax.tree_util.tree_map(lambda x: x * 3.0, init_params(cfg, jax.random.PRNGKey(seed)))


def padded_batch(T=15, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(4, V, (3, T)).astype(np.int32)
    mask = np.ones((3, T), bool)
    mask[1, :5] = False  # left padding
    mask[2, -4:] = False  # right padding
    return np.where(mask, tokens, 0), mask


@pytest.mark.parametrize("kw, block", [  # block divides T+1, does not divide T, exceeds T
    (dict(), 4), (dict(pos_encoding="rope", qk_layernorm=True), 7),
    (dict(pos_encoding="nope"), 64)])
def test_blocked_forward_equals_plain(kw, block):
    plain, blocked = cfgs(block, **kw)
    params = sharp_params(plain, 0)
    tokens, mask = padded_batch()
    a = np.asarray(forward(params, plain, tokens, None, mask))
    b = np.asarray(forward(params, blocked, tokens, None, mask))
    real = mask[..., None]
    atol = logit_atol(params, plain, tokens, mask)  # float32 rounding, derived there
    np.testing.assert_allclose(np.where(real, b, 0), np.where(real, a, 0), atol=atol)
    assert np.std(a) > 100 * atol  # a wrong mask or block boundary would show


@pytest.mark.slow
def test_blocked_gradient_equals_plain():
    plain, blocked = cfgs(7, pos_encoding="rope", qk_layernorm=True)
    params = sharp_params(plain, 0)
    tokens, mask = padded_batch()

    def loss(p, cfg):
        return token_logprobs(p, cfg, jnp.asarray(tokens), jnp.asarray(mask)).sum()

    ga, gb = jax.grad(loss)(params, plain), jax.grad(loss)(params, blocked)
    for x, y in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb)):
        np.testing.assert_allclose(y, x, atol=1e-4, rtol=1e-4)
    assert max(float(jnp.abs(x).max()) for x in jax.tree_util.tree_leaves(ga)) > 0.1


def test_blocked_cached_decode_equals_plain_forward():
    plain, blocked = cfgs(4, pos_encoding="rope")
    params = sharp_params(plain, 1)
    tokens, mask = padded_batch(T=13, seed=1)
    mask[2] = True  # the new tokens below are all real; left padding stays in row 1
    tokens = np.where(mask, np.maximum(tokens, 4), 0)
    full = np.asarray(forward(params, plain, tokens, None, mask))
    pos = default_positions(jnp.asarray(mask))
    P = 9
    cache = init_cache(blocked, 3, tokens.shape[1] + 2)  # spare slots stay empty
    pre, cache = decode(params, blocked, tokens[:, :P], pos[:, :P], mask[:, :P], cache)
    real = mask[:, :P, None]
    atol = logit_atol(params, plain, tokens, mask)  # float32 rounding, derived there
    assert np.std(full) > 100 * atol
    np.testing.assert_allclose(np.where(real, pre, 0), np.where(real, full[:, :P], 0), atol=atol)
    for s in range(P, tokens.shape[1]):
        step, cache = decode(params, blocked, tokens[:, s:s + 1], pos[:, s:s + 1],
                             mask[:, s:s + 1], cache)
        np.testing.assert_allclose(step[:, 0], full[:, s], atol=atol)


@pytest.mark.parametrize("attention", [pytest.param("plain", marks=pytest.mark.slow), "blocked"])
def test_prefix_cache_reused_for_a_batch_equals_reencoding(attention):
    plain, blocked = cfgs(4, pos_encoding="rope")
    cfg = plain if attention == "plain" else blocked
    params = sharp_params(cfg, 2)
    rng = np.random.default_rng(2)
    prefix = rng.integers(4, V, (1, 11)).astype(np.int32)
    queries = rng.integers(4, V, (5, 4)).astype(np.int32)
    qmask = np.ones((5, 4), bool)
    qmask[3, 2:] = False  # a shorter query, right-padded
    queries = np.where(qmask, queries, 0)
    cache = init_cache(cfg, 1, 15)
    _, cache = decode(params, cfg, prefix, np.arange(11)[None], np.ones((1, 11), bool), cache)
    cache = expand_cache(cache, 5)
    qpos = 11 + np.arange(4)[None].repeat(5, 0)
    got, _ = decode(params, cfg, queries, qpos, qmask, cache)
    whole = np.concatenate([prefix.repeat(5, 0), queries], 1)
    wmask = np.concatenate([np.ones((5, 11), bool), qmask], 1)
    want = forward(params, plain, whole, None, wmask)
    # sharpened attention (scores ~300) makes float32 rounding visible: 26 of 280 logits
    # differed by up to 1.3e-4 on an AVX-512 CPU; the tolerance is derived, not tuned
    atol = logit_atol(params, plain, whole, wmask)
    assert np.std(np.asarray(want)[:, 11:]) > 100 * atol  # a cache bug would show
    np.testing.assert_allclose(np.where(qmask[..., None], got, 0),
                               np.where(qmask[..., None], want[:, 11:], 0), atol=atol)


def test_prefix_cached_logprobs_equal_reencoding_each_prefix_and_query():
    plain, blocked = cfgs(4, pos_encoding="rope")
    params = sharp_params(plain, 3)
    rng = np.random.default_rng(5)
    n_pre, P, Q, L = 2, 9, 4, 3
    prefix = rng.integers(4, V, (n_pre, P)).astype(np.int32)
    pmask = np.ones((n_pre, P), bool)
    pmask[1, :4] = False  # the second prefix is shorter, left-padded
    prefix = np.where(pmask, prefix, 0)
    queries = rng.integers(4, V, (n_pre, Q, L)).astype(np.int32)
    got = np.asarray(jax.jit(lambda *a: prefix_cached_logprobs(params, blocked, *a))(
        prefix, pmask, queries))
    assert got.shape == (n_pre, Q, V)
    for i in range(n_pre):  # the reference: [prefix without its padding, query], full forward
        real = prefix[i][pmask[i]]
        whole = np.concatenate([np.repeat(real[None], Q, 0), queries[i]], 1)
        wmask = np.ones(whole.shape, bool)
        want = np.asarray(jax.nn.log_softmax(forward(params, plain, whole, None, wmask)[:, -1]))
        atol = 2 * logit_atol(params, plain, whole, wmask)  # log_softmax adds <= 1 logit's error
        np.testing.assert_allclose(got[i], want, atol=atol)
        assert np.std(want) > 100 * atol  # a wrong cache position or mask would show


def test_blocked_config_errors():
    with pytest.raises(ConfigError, match="attention='flash'"):
        TransformerConfig(vocab_size=V, attention="flash").validate()
    with pytest.raises(ConfigError, match="no FIRE bias"):
        TransformerConfig(vocab_size=V, attention="blocked", pos_encoding="fire").validate()
    with pytest.raises(ConfigError, match="attn_block=0"):
        TransformerConfig(vocab_size=V, attention="blocked", attn_block=0).validate()
