import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from selftaught.core.errors import ConfigError, UserError
from selftaught.lm.model import TransformerConfig, forward, init_params
from selftaught.lm.sampler import filter_logits, sample
from selftaught.lm.speculative import (
    expected_tokens_per_call,
    speculative_sample,
    theoretical_speedup,
)
from selftaught.lm.tokenizer import EOS, CharTokenizer

TOK = CharTokenizer("abcd")
TARGET = TransformerConfig(vocab_size=TOK.vocab_size, max_len=32, d_model=16, n_layers=2,
                           n_heads=2, pos_encoding="rope")
DRAFT = TransformerConfig(vocab_size=TOK.vocab_size, max_len=32, d_model=8, n_layers=1,
                          n_heads=2)
N = 10


def _sharp(cfg, seed, scale=4.0):
    p = init_params(cfg, jax.random.key(seed))
    return jax.tree_util.tree_map(lambda x: x * scale, p)  # input-dependent, peaked logits


@pytest.fixture(scope="module")
def models():
    t = _sharp(TARGET, 0)
    # a draft that mostly agrees with the target: the target's weights plus noise, so rows
    # accept different numbers of tokens per round; and an unrelated small draft
    noisy = jax.tree_util.tree_map(
        lambda x, k: x + 0.3 * jax.random.normal(k, x.shape),
        t, jax.tree_util.tree_unflatten(
            jax.tree_util.tree_structure(t),
            list(jax.random.split(jax.random.key(9), len(jax.tree_util.tree_leaves(t))))))
    return dict(target=t, noisy=noisy, small=_sharp(DRAFT, 1))


def test_greedy_equals_target_greedy_token_for_token_with_ragged_acceptance(models):
    enc = TOK.encode_prompts(["abc", "d", "", "abcdab", "ca", "bb", "a", "cc"] * 2, 8)
    t, m = enc["tokens"], enc["mask"]
    ref = sample(models["target"], TARGET, t, m, jax.random.key(0), max_new_tokens=N,
                 greedy=True)
    # (a draft with another config than the target's is exercised by the chi-square test)
    out = speculative_sample(models["target"], TARGET, models["noisy"], TARGET, t, m,
                             jax.random.key(1), max_new_tokens=N, gamma=3, greedy=True)
    np.testing.assert_array_equal(out.tokens_BxN, ref.tokens_BxN)
    np.testing.assert_array_equal(out.lengths_B, ref.lengths_B)
    # every target call emits accepted + 1 tokens (the last call may overshoot EOS / N)
    assert np.all(out.accepted_B + out.target_calls_B >= out.lengths_B)
    assert np.all(out.target_calls_B <= out.lengths_B)
    assert np.all(out.accepted_B <= out.tested_B)
    assert int(out.rounds) == int(out.target_calls_B.max())
    # the noisy draft is accepted often but not always, and differently per row (ragged)
    acc = np.asarray(out.accepted_B)
    assert len(set(acc.tolist())) > 1 and acc.sum() > 0
    assert acc.sum() < out.tested_B.sum()


def _exact_distribution(params, cfg, prompt, n, temperature):
    """P(outcome) of the target's own sampler for every completion of <= n tokens
    (cut at EOS), by enumeration with full forwards."""
    V = cfg.vocab_size
    allowed = [v for v in range(V) if np.isfinite(
        np.asarray(filter_logits(jnp.zeros((1, V)), 1.0, 0))[0, v])]
    outcomes = []
    for k in range(1, n + 1):
        for s in itertools.product(allowed, repeat=k):
            if EOS in s[:-1] or (k < n and s[-1] != EOS):
                continue
            outcomes.append(s)
    seqs = np.array([list(prompt) + list(s) + [0] * (n - len(s)) for s in outcomes], np.int32)
    mask = seqs != 0
    logits = forward(params, cfg, jnp.asarray(seqs), None, jnp.asarray(mask))
    P = len(prompt)
    lp = jax.nn.log_softmax(filter_logits(logits.reshape(-1, V), temperature, 0), -1)
    lp = np.asarray(lp).reshape(len(outcomes), -1, V)
    probs = np.array([np.exp(sum(lp[i, P - 1 + t, s[t]] for t in range(len(s))))
                      for i, s in enumerate(outcomes)])
    return outcomes, probs


def test_exact_mode_reproduces_target_sampling_distribution_chi_square(models):
    """Many rows of one prompt (batch > 1, ragged acceptance) vs the exact enumeration."""
    n, temperature, B = 3, 0.8, 6000
    prompt = [1, 4, 5, 3]  # BOS a b SEP
    outcomes, probs = _exact_distribution(models["target"], TARGET, prompt, n, temperature)
    assert abs(probs.sum() - 1) < 1e-4
    t = jnp.tile(jnp.asarray(prompt, jnp.int32)[None], (B, 1))
    m = jnp.ones_like(t, bool)
    out = speculative_sample(models["target"], TARGET, models["small"], DRAFT, t, m,
                             jax.random.key(3), max_new_tokens=n, gamma=2,
                             temperature=temperature)
    index = {o: i for i, o in enumerate(outcomes)}

    def chi2_pvalue(out):
        toks, lens = np.asarray(out.tokens_BxN), np.asarray(out.lengths_B)
        counts = np.bincount([index[tuple(r[:k])] for r, k in zip(toks, lens)],
                             minlength=len(outcomes))
        # pool rare outcomes so every expected count is >= 5
        exp = probs.astype(np.float64) / probs.astype(np.float64).sum() * B
        order = np.argsort(exp)
        keep = exp[order] >= 5
        obs_k = np.append(counts[order][keep], counts[order][~keep].sum())
        exp_k = np.append(exp[order][keep], exp[order][~keep].sum())
        return stats.chisquare(obs_k, exp_k).pvalue

    pval = chi2_pvalue(out)
    assert pval > 1e-3, pval
    # rejections did happen (the draft is a different model), at a non-trivial rate
    acc = out.accepted_B.sum() / out.tested_B.sum()
    assert 0.05 < acc < 0.95
    # the draft-q overlap statistic estimates the same acceptance rate
    alpha = float(out.alpha_sum_B.sum() / out.tested_B.sum())
    assert abs(alpha - acc) < 0.03
    # lossy mode (epsilon < 1) accepts more draft tokens and moves off the target's law
    lossy = speculative_sample(models["target"], TARGET, models["small"], DRAFT, t, m,
                               jax.random.key(3), max_new_tokens=n, gamma=2,
                               temperature=temperature, epsilon=0.2)
    assert lossy.accepted_B.sum() / lossy.tested_B.sum() > acc + 0.05
    assert chi2_pvalue(lossy) < 1e-3  # the same test has the power to see a wrong law
    print(f"exact p={pval:.3g} acc={acc:.3f} lossy p={chi2_pvalue(lossy):.3g}")


def test_bad_input_raises_user_error(models):
    enc = TOK.encode_prompts(["ab"], 4)
    t, m = enc["tokens"], enc["mask"]
    kw = dict(max_new_tokens=4, gamma=2)
    other = TransformerConfig(vocab_size=TOK.vocab_size + 1, max_len=32, d_model=8,
                              n_layers=1, n_heads=2)
    cases = [(dict(kw, gamma=0), "gamma"), (dict(kw, epsilon=0.0), "epsilon"),
             (dict(kw, epsilon=1.5), "epsilon"), (dict(kw, max_new_tokens=40), "max_len")]
    for kwargs, match in cases:
        with pytest.raises(ConfigError, match=match):
            speculative_sample(models["target"], TARGET, models["small"], DRAFT, t, m,
                               jax.random.key(0), **kwargs)
    with pytest.raises(UserError, match="vocab_size"):
        speculative_sample(models["target"], TARGET, models["small"], other, t, m,
                           jax.random.key(0), **kw)


def test_tokens_per_call_and_speedup_formulas():
    for a in (0.0, 0.3, 0.9):
        for g in (1, 4, 7):
            np.testing.assert_allclose(expected_tokens_per_call(a, g),
                                       sum(a**k for k in range(g + 1)), rtol=1e-6)
    assert float(expected_tokens_per_call(1.0, 5)) == 6.0
    assert float(theoretical_speedup(3.0, 4, 0.5)) == pytest.approx(1.0)


def test_batches_in_one_program_equal_the_batches_one_by_one(models):
    """KxBxP prompts (lax.map): batch k decodes exactly as a BxP call with key split(rng, K)[k],
    for speculative decoding (T = 1, every statistic) and the target-only sampler."""
    enc = TOK.encode_prompts(["abc", "d", "", "abcdab", "ca", "bb", "a", "cc"] * 3, 8)
    t_KxBxP, m_KxBxP = enc["tokens"].reshape(3, 8, 8), enc["mask"].reshape(3, 8, 8)
    key = jax.random.key(4)
    kw = dict(max_new_tokens=N, gamma=2, temperature=1.0, epsilon=0.5)
    out = speculative_sample(models["target"], TARGET, models["small"], DRAFT, t_KxBxP,
                             m_KxBxP, key, **kw)
    smp = sample(models["target"], TARGET, t_KxBxP, m_KxBxP, key, max_new_tokens=N)
    assert out.tokens_BxN.shape == (3, 8, N) and out.rounds.shape == (3,)
    for k, kk in enumerate(jax.random.split(key, 3)):
        one = speculative_sample(models["target"], TARGET, models["small"], DRAFT,
                                 t_KxBxP[k], m_KxBxP[k], kk, **kw)
        for field in ("tokens_BxN", "lengths_B", "target_calls_B", "tested_B", "accepted_B",
                      "rounds"):
            np.testing.assert_array_equal(getattr(out, field)[k], getattr(one, field))
        np.testing.assert_allclose(out.alpha_sum_B[k], one.alpha_sum_B, rtol=1e-5)
        ref = sample(models["target"], TARGET, t_KxBxP[k], m_KxBxP[k], kk, max_new_tokens=N)
        np.testing.assert_array_equal(smp.tokens_BxN[k], ref.tokens_BxN)
        np.testing.assert_array_equal(smp.lengths_B[k], ref.lengths_B)
