import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError
from selftaught.lm.distill import (
    check_divergence,
    check_lambda,
    completion_rows,
    divergence,
    mixed_batch,
    on_policy,
    prompt_completion_rows,
    student_batch,
    token_divergence,
)
from selftaught.lm.model import TransformerConfig, init_params
from selftaught.lm.tokenizer import EOS, PAD, CharTokenizer


def _np_softmax(x, t=1.0):
    x = np.asarray(x, np.float64) / t
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def _np_kl(a, b):
    return np.sum(np.where(a > 0, a * (np.log(np.where(a > 0, a, 1)) - np.log(b)), 0), -1)


def _np_div(tl, sl, kind, beta, t):
    p, q = _np_softmax(tl, t), _np_softmax(sl, t)
    if kind == "fkl":
        return _np_kl(p, q)
    if kind == "rkl":
        return _np_kl(q, p)
    if kind == "tvd":
        return 0.5 * np.abs(p - q).sum(-1)
    if beta == 0:
        return _np_kl(p, q)
    if beta == 1:
        return _np_kl(q, p)
    m = beta * p + (1 - beta) * q
    return beta * _np_kl(p, m) + (1 - beta) * _np_kl(q, m)


CASES = [("fkl", 0.5), ("rkl", 0.5), ("tvd", 0.5), ("jsd", 0.0), ("jsd", 0.1), ("jsd", 0.5),
         ("jsd", 0.9), ("jsd", 1.0)]


@pytest.mark.parametrize("kind,beta", CASES)
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_divergences_match_numpy(kind, beta, temperature):
    rng = np.random.default_rng(0)
    tl = rng.normal(size=(3, 5, 11)) * 2
    sl = rng.normal(size=(3, 5, 11)) * 2
    mask = (rng.random((3, 5)) < 0.6).astype(np.float32)
    mask[0, 0] = 1
    got_tok = token_divergence(jnp.asarray(tl, jnp.float32), jnp.asarray(sl, jnp.float32),
                               kind, beta, temperature)
    want_tok = _np_div(tl, sl, kind, beta, temperature)
    np.testing.assert_allclose(np.asarray(got_tok), want_tok, atol=1e-6, rtol=1e-5)
    got = divergence(jnp.asarray(tl, jnp.float32), jnp.asarray(sl, jnp.float32), mask, kind,
                     beta, temperature)
    np.testing.assert_allclose(float(got), (want_tok * mask).sum() / mask.sum(), atol=1e-6)


def test_jsd_endpoints_are_the_scaled_limits_and_jsd_is_bounded():
    rng = np.random.default_rng(1)
    tl, sl = (jnp.asarray(rng.normal(size=(4, 9)), jnp.float32) for _ in range(2))
    fkl, rkl = token_divergence(tl, sl, "fkl"), token_divergence(tl, sl, "rkl")
    eps = 1e-3
    near0 = token_divergence(tl, sl, "jsd", eps) / eps
    near1 = token_divergence(tl, sl, "jsd", 1 - eps) / eps
    np.testing.assert_allclose(near0, fkl, rtol=2e-2)
    np.testing.assert_allclose(near1, rkl, rtol=2e-2)
    half = token_divergence(tl, sl, "jsd", 0.5)
    assert np.all(np.asarray(half) <= np.log(2) + 1e-6) and np.all(np.asarray(half) >= 0)
    # traced beta (a vmapped sweep) gives the same values, endpoints included
    betas = jnp.array([0.0, 0.5, 1.0])
    swept = jax.vmap(lambda b: token_divergence(tl, sl, "jsd", b))(betas)
    np.testing.assert_allclose(swept, np.stack([fkl, half, rkl]), atol=1e-6)


def test_finite_gradients_at_one_hot():
    V = 7
    onehot = jnp.full((2, 3, V), -jnp.inf).at[..., 2].set(0.0)  # exactly one-hot (log 0 = -inf)
    peaked = jnp.zeros((2, 3, V)).at[..., 2].set(60.0)  # numerically one-hot
    soft = jax.random.normal(jax.random.key(0), (2, 3, V))
    mask = jnp.ones((2, 3))

    @jax.jit
    def all_grads(teacher, student):
        out = []
        for kind, beta in CASES:
            out.append(jax.value_and_grad(lambda s, k=kind, b=beta: divergence(
                teacher, s, mask, k, b))(student))
        return out

    pairs = [("onehot", "onehot"), ("onehot", "peaked"), ("onehot", "soft"),
             ("peaked", "peaked"), ("peaked", "soft"), ("soft", "peaked")]
    logits = dict(onehot=onehot, peaked=peaked, soft=soft)
    for t_name, s_name in pairs:
        for (kind, beta), (val, g) in zip(CASES, all_grads(logits[t_name], logits[s_name])):
            # KL(Q‖P) is truly infinite when the student has mass where p = 0
            infinite = t_name == "onehot" and s_name != "onehot" and (
                kind == "rkl" or (kind == "jsd" and beta == 1.0))
            assert np.isfinite(float(val)) != infinite, (kind, beta, t_name, s_name)
            if not infinite:
                assert np.all(np.isfinite(np.asarray(g))), (kind, beta, t_name, s_name)
            if t_name == s_name:
                assert float(val) == pytest.approx(0.0, abs=1e-6)


def test_bad_configs_raise():
    with pytest.raises(ConfigError, match="choose one of"):
        check_divergence("kl")
    with pytest.raises(ConfigError, match="beta"):
        check_divergence("jsd", beta=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        check_divergence("fkl", temperature=0.0)
    with pytest.raises(ConfigError, match="lambda"):
        check_lambda(-0.1)
    with pytest.raises(ConfigError, match="choose one of"):
        token_divergence(jnp.zeros((1, 5)), jnp.zeros((1, 5)), "xx")


def test_on_policy_frequency_and_endpoints():
    keys = jax.random.split(jax.random.key(0), 4000)
    for lam in (0.0, 0.3, 1.0):
        frac = float(jnp.mean(jax.vmap(lambda k, lam=lam: on_policy(k, lam))(keys)))
        assert abs(frac - lam) < 0.03
        if lam in (0.0, 1.0):
            assert frac == lam


def test_completion_rows_layout_and_mask():
    prompt = jnp.array([[PAD, 1, 5, 3], [1, 6, 7, 3]])
    comp = jnp.array([[8, EOS, 9], [8, 9, 10]])
    rows = completion_rows(prompt, comp, jnp.array([2, 3]))
    np.testing.assert_array_equal(rows["tokens"], [[0, 1, 5, 3, 8, EOS, PAD],
                                                   [1, 6, 7, 3, 8, 9, 10]])
    np.testing.assert_array_equal(rows["loss_mask"], [[0, 0, 0, 1, 1, 0, 0],
                                                      [0, 0, 0, 1, 1, 1, 0]])


@pytest.mark.slow  # compiles the sampler inside a jitted cond (~10 CPU-s); the gkd recipe
def test_student_batch_and_mixing_inside_jit():  # slow test also runs this path
    tok = CharTokenizer("0123456789+=")
    cfg = TransformerConfig(vocab_size=tok.vocab_size, max_len=16, d_model=16, n_layers=1,
                            n_heads=2)
    params = init_params(cfg, jax.random.key(0))
    enc = tok.encode_prompts(["1+2=", "3="], 6)
    fixed = dict(tokens=jnp.zeros((2, 10), jnp.int32), loss_mask=jnp.zeros((2, 10)))

    @jax.jit
    def step(rng, lam):
        return mixed_batch(lam, rng, fixed, lambda r: student_batch(
            params, cfg, enc["tokens"], enc["mask"], r, max_new_tokens=4))

    b1, f1 = step(jax.random.key(1), 1.0)
    b0, f0 = step(jax.random.key(1), 0.0)
    assert bool(f1) and not bool(f0)
    np.testing.assert_array_equal(b0["tokens"], fixed["tokens"])
    toks, mask = np.asarray(b1["tokens"]), np.asarray(b1["loss_mask"])
    np.testing.assert_array_equal(toks[:, :6], enc["tokens"])
    assert mask[:, :5].sum() == 0 and np.all(mask[:, 5] == 1)
    # the mask covers exactly the generated tokens up to and including EOS
    for b in range(2):
        gen = toks[b, 6:]
        n = (np.argmax(gen == EOS) + 1) if (gen == EOS).any() else 4
        assert mask[b].sum() == n


def test_prompt_completion_rows_score_exactly_the_completion_and_eos():
    tok = CharTokenizer("0123456789+=")
    rows = prompt_completion_rows(tok, ["1+2=", "13+4="], ["3", "17"], 8, 4)
    toks, mask = rows["tokens"], rows["loss_mask"]
    assert toks.shape == mask.shape == (2, 12)
    np.testing.assert_array_equal(rows["prompt"], toks[:, :8])
    for b, comp in enumerate(["3", "17"]):
        # the masked positions' next tokens are the completion and its EOS, nothing else
        targets = toks[b, 1:][mask[b, :-1] > 0]
        np.testing.assert_array_equal(targets, [*tok.encode(comp), EOS])
        assert tok.decode(toks[b, 8:]) == comp
