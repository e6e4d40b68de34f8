import jax
import numpy as np
import pytest

from selftaught.core.errors import ConfigError
from selftaught.lm.model import TransformerConfig, forward, init_params
from selftaught.lm.sampler import _compiled_sampler, filter_logits, sample
from selftaught.lm.tokenizer import BOS, EOS, PAD, CharTokenizer

TOK = CharTokenizer("abcd")  # vocab 8: EOS is sampled often, so rows stop at different steps
CFG = TransformerConfig(vocab_size=TOK.vocab_size, max_len=32, d_model=16, n_layers=2,
                        n_heads=2, pos_encoding="rope")
N = 10


@pytest.fixture(scope="module")
def params():
    p = init_params(CFG, jax.random.PRNGKey(0))
    return jax.tree_util.tree_map(lambda x: x * 4.0, p)  # sharper, input-dependent logits


@pytest.fixture(scope="module")
def prompts():  # one batch shape for all tests below, so each sampler variant compiles once
    return TOK.encode_prompts(["abc", "d", "", "abcdab", "ca", "bb", "a", "cc"] * 8, 8)


def reference_greedy(params, prompt_tokens, prompt_mask, n):
    """Slow loop: a full forward over the whole sequence at every step, per-row EOS stop.

    The sequence buffer has a fixed length (not-yet-generated slots are masked padding, which
    the causal mask hides anyway) so the forward compiles once.
    """
    B, P = prompt_tokens.shape
    seq = np.concatenate([prompt_tokens, np.zeros((B, n), np.int32)], 1)
    mask = np.concatenate([prompt_mask, np.zeros((B, n), bool)], 1)
    fwd = jax.jit(lambda s, m: forward(params, CFG, s, None, m))
    done = np.zeros(B, bool)
    for i in range(n):
        logits = np.array(fwd(seq, mask)[:, P + i - 1])
        logits[:, [PAD, BOS]] = -np.inf
        tok = np.where(done, PAD, logits.argmax(-1))
        seq[:, P + i], mask[:, P + i] = tok, ~done
        done |= tok == EOS
    return seq[:, P:]


def test_greedy_matches_slow_reference_and_top1_and_low_temperature(params, prompts):
    t, m = prompts["tokens"], prompts["mask"]
    g = sample(params, CFG, t, m, jax.random.PRNGKey(0), max_new_tokens=N, greedy=True)
    np.testing.assert_array_equal(g.tokens_BxN, reference_greedy(params, t, m, N))
    top1 = sample(params, CFG, t, m, jax.random.PRNGKey(5), max_new_tokens=N, top_k=1)
    np.testing.assert_array_equal(top1.tokens_BxN, g.tokens_BxN)
    cold = sample(params, CFG, t, m, jax.random.PRNGKey(6), max_new_tokens=N, temperature=1e-4)
    np.testing.assert_array_equal(cold.tokens_BxN, g.tokens_BxN)
    # the compiled function is cached per static config
    assert _compiled_sampler.cache_info().hits >= 0
    n_before = _compiled_sampler.cache_info().currsize
    sample(params, CFG, t, m, jax.random.PRNGKey(7), max_new_tokens=N, temperature=0.5, top_k=1)
    assert _compiled_sampler.cache_info().currsize == n_before


def test_eos_stopping_and_logprobs_match_full_forward(params, prompts):
    t, m = prompts["tokens"], prompts["mask"]
    out = sample(params, CFG, t, m, jax.random.PRNGKey(3), max_new_tokens=N, temperature=0.8)
    toks, lps, lens = map(np.asarray, (out.tokens_BxN, out.logprobs_BxN, out.lengths_B))
    assert toks.dtype == np.int32 and lps.dtype == np.float32 and lens.dtype == np.int32
    assert len(set(lens.tolist())) > 3 and (lens < N).any()  # rows stop at different steps
    for b in range(len(toks)):
        eos = np.flatnonzero(toks[b] == EOS)
        L = eos[0] + 1 if len(eos) else N
        assert lens[b] == L
        assert (toks[b, L:] == PAD).all() and (lps[b, L:] == 0).all()
        assert not np.isin(toks[b, : L - 1], [PAD, BOS, EOS]).any()
        assert (lps[b, :L] < 0).all()
    # min_new_tokens keeps EOS out of the first steps (traced: no recompilation)
    late = sample(params, CFG, t, m, jax.random.PRNGKey(3), max_new_tokens=N, temperature=0.8,
                  min_new_tokens=4)
    assert (np.asarray(late.lengths_B) >= 5).all() and (np.asarray(late.lengths_B) < N).any()
    # log-probs are those of the filtered, tempered distribution under a full forward
    seq = np.concatenate([t, toks], 1)
    mask = np.concatenate([m, np.arange(N)[None] < lens[:, None]], 1)
    logits = forward(params, CFG, seq, None, mask)[:, t.shape[1] - 1 : -1]
    B, V = len(toks), CFG.vocab_size
    lp_ref = jax.nn.log_softmax(filter_logits(logits.reshape(-1, V), 0.8, 0)).reshape(B, N, V)
    lp_ref = np.take_along_axis(np.asarray(lp_ref), toks[..., None], -1)[..., 0]
    valid = np.arange(N)[None] < lens[:, None]
    np.testing.assert_allclose(np.where(valid, lp_ref, 0), lps, rtol=1e-5, atol=5e-5)


def test_sampled_frequencies_match_softmax(params):
    B = 4000
    p = TOK.encode_prompts(["ab"] * B, 4)
    logits = forward(params, CFG, p["tokens"][:1], None, p["mask"][:1])[0, -1]
    for temperature, top_k in [(1.0, 0), (0.7, 3)]:
        probs = np.asarray(jax.nn.softmax(filter_logits(logits[None], temperature, top_k)))[0]
        out = sample(params, CFG, p["tokens"], p["mask"], jax.random.PRNGKey(11),
                     max_new_tokens=1, temperature=temperature, top_k=top_k)
        counts = np.bincount(np.asarray(out.tokens_BxN[:, 0]), minlength=CFG.vocab_size)
        assert counts[probs == 0].sum() == 0
        keep = probs > 0
        expected = B * probs[keep]
        chi2 = float(np.sum((counts[keep] - expected) ** 2 / expected))
        # df <= 7; P(chi2 > 30) < 1e-4 under the null
        assert chi2 < 30, (chi2, counts, expected)
        assert probs.max() < 0.9  # the test distribution is not degenerate


def test_user_errors(params, prompts):
    t, m = prompts["tokens"], prompts["mask"]
    with pytest.raises(ConfigError, match="temperature"):
        sample(params, CFG, t, m, jax.random.PRNGKey(0), max_new_tokens=4, temperature=0.0)
    learned = TransformerConfig(vocab_size=8, max_len=10, d_model=16, n_layers=1, n_heads=2)
    with pytest.raises(ConfigError, match="max_len=10"):
        sample(params, learned, t, m, jax.random.PRNGKey(0), max_new_tokens=4)
