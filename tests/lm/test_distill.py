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


# ------------------------------------------------------------- the three known pitfalls (issue 25)
# Public GKD implementations first got (a) the direction of λ, (b) the JSD mixture weights and
# (c) the padding mask wrong. Each test below checks ours against a formula.

def _torch_kl_div(input_log, target_log):
    """torch.nn.functional.kl_div(input, target, reduction="none", log_target=True) summed
    over the vocabulary: Σ exp(target) (target − input) = KL(target ‖ input)."""
    return np.sum(np.exp(target_log) * (target_log - input_log), -1)


def _trl_generalized_jsd(student_logits, teacher_logits, beta, temperature=1.0):
    """TRL GKDTrainer.generalized_jsd_loss, per token, written from scratch in numpy from its
    definition (student log-probs s, teacher log-probs t):
    β=0: kl_div(s, t) = KL(teacher‖student); β=1: kl_div(t, s) = KL(student‖teacher);
    else log M = logsumexp(s + log(1−β), t + log β),
    jsd = β·kl_div(M, t) + (1−β)·kl_div(M, s)."""
    def logsm(x):
        x = np.asarray(x, np.float64) / temperature
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))
    s, t = logsm(student_logits), logsm(teacher_logits)
    if beta == 0:
        return _torch_kl_div(s, t)
    if beta == 1:
        return _torch_kl_div(t, s)
    m = np.logaddexp(s + np.log1p(-beta), t + np.log(beta))
    return beta * _torch_kl_div(m, t) + (1 - beta) * _torch_kl_div(m, s)


@pytest.mark.parametrize("beta", [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])
def test_pitfall_jsd_mixture_weights_match_trl_formula(beta):
    """(b) our JSD(β) = TRL's generalized_jsd_loss = the GKD paper's Eq. (1) with P = teacher,
    Q = student: M = β·P + (1−β)·Q, D = β·KL(P‖M) + (1−β)·KL(Q‖M)."""
    rng = np.random.default_rng(2)
    tl, sl = rng.normal(size=(6, 13)) * 3, rng.normal(size=(6, 13)) * 3
    got = token_divergence(jnp.asarray(tl, jnp.float32), jnp.asarray(sl, jnp.float32),
                           "jsd", beta, 0.8)
    np.testing.assert_allclose(np.asarray(got), _trl_generalized_jsd(sl, tl, beta, 0.8),
                               rtol=1e-4, atol=1e-6)
    if beta not in (0.0, 0.5, 1.0):
        # the swapped-weights bug (M = (1−β)·P + β·Q) is a different number: the test
        # above can tell them apart
        p, q = _np_softmax(tl, 0.8), _np_softmax(sl, 0.8)
        m_swapped = (1 - beta) * p + beta * q
        swapped = beta * _np_kl(p, m_swapped) + (1 - beta) * _np_kl(q, m_swapped)
        assert np.max(np.abs(swapped - np.asarray(got))) > 1e-2
    if 0 < beta < 1:
        # TRL issue #2202's bug, mixing log-probabilities (log M = β log p + (1−β) log q,
        # unnormalised) instead of probabilities, is also a different number
        p, q = _np_softmax(tl, 0.8), _np_softmax(sl, 0.8)
        lm = beta * np.log(p) + (1 - beta) * np.log(q)
        logmix = beta * np.sum(p * (np.log(p) - lm), -1) + (1 - beta) * np.sum(
            q * (np.log(q) - lm), -1)
        assert np.max(np.abs(logmix - np.asarray(got))) > 1e-2


def test_pitfall_jsd_limits_are_the_scaled_kl_directions():
    """(b) β → 0: JSD(β)/β → KL(teacher‖student) (forward, supervised KD's direction);
    β → 1: JSD(β)/(1−β) → KL(student‖teacher) (reverse), both checked against numpy KL on
    random distributions, and the converse directions are far off."""
    rng = np.random.default_rng(3)
    tl, sl = rng.normal(size=(8, 10)), rng.normal(size=(8, 10))  # p/q within ~e^4
    p, q = _np_softmax(tl), _np_softmax(sl)
    fwd, rev = _np_kl(p, q), _np_kl(q, p)
    assert np.max(np.abs(fwd - rev)) > 0.1  # the two directions differ on these rows
    t32, s32 = jnp.asarray(tl, jnp.float32), jnp.asarray(sl, jnp.float32)
    err = {}
    for eps in (1e-2, 1e-3):
        near0 = np.asarray(token_divergence(t32, s32, "jsd", eps)) / eps
        near1 = np.asarray(token_divergence(t32, s32, "jsd", 1 - eps)) / eps
        err[eps] = np.abs(near0 - fwd).max(), np.abs(near1 - rev).max()
    # O(eps) error: converges (10x smaller eps, error shrinks ~10x) and is small at 1e-3
    np.testing.assert_allclose(near0, fwd, rtol=2e-2)
    np.testing.assert_allclose(near1, rev, rtol=2e-2)
    for i in (0, 1):
        assert err[1e-3][i] < 0.2 * err[1e-2][i] + 1e-3, err
    assert np.max(np.abs(near0 - rev)) > 0.1 and np.max(np.abs(near1 - fwd)) > 0.1
    # and the endpoints are exactly the unscaled limits
    np.testing.assert_allclose(token_divergence(t32, s32, "jsd", 0.0), fwd, rtol=1e-5)
    np.testing.assert_allclose(token_divergence(t32, s32, "jsd", 1.0), rev, rtol=1e-5)


def test_pitfall_lambda_is_the_fraction_of_student_generated_batches():
    """(a) λ = the probability that a step trains on the student's own samples (GKD's
    "student data fraction"; TRL: `if random.random() <= lmbda: generate on-policy`):
    λ=1 → always student samples, λ=0 → always the fixed data, λ=0.2 → 20% student."""
    fixed = dict(tokens=jnp.zeros((2, 5), jnp.int32), loss_mask=jnp.zeros((2, 5)))
    student = dict(tokens=jnp.ones((2, 5), jnp.int32), loss_mask=jnp.ones((2, 5)))
    pick = jax.jit(jax.vmap(lambda k, lam: mixed_batch(lam, k, fixed, lambda r: student),
                            in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(5), 4000)
    for lam in (0.0, 0.2, 1.0):
        rows, flag = pick(keys, lam)
        from_student = np.asarray(rows["tokens"][:, 0, 0] == 1)
        np.testing.assert_array_equal(from_student, np.asarray(flag))  # flag = student rows
        frac = from_student.mean()
        if lam in (0.0, 1.0):
            assert frac == lam
        else:
            assert abs(frac - lam) < 0.03, frac  # not 1 − λ


def _tiny_pair():
    tok = CharTokenizer("0123456789+=")
    cfg_s = TransformerConfig(vocab_size=tok.vocab_size, max_len=24, d_model=16, n_layers=1,
                              n_heads=2)
    cfg_t = TransformerConfig(vocab_size=tok.vocab_size, max_len=24, d_model=24, n_layers=1,
                              n_heads=2)
    return tok, cfg_s, cfg_t, init_params(cfg_s, jax.random.key(0)), init_params(
        cfg_t, jax.random.key(1))


@pytest.mark.parametrize("kind,beta", [("fkl", 0.0), ("jsd", 0.3), ("rkl", 0.0), ("tvd", 0.0)])
def test_pitfall_padding_and_prompt_positions_contribute_nothing(kind, beta):
    """(c) The λ=0 loss is the token-level mean, over completion tokens only (each
    completion token and the EOS, predicted from the position before it), of the per-token
    divergence between the two models' logits: recomputed here from the completion lengths
    alone. Appending PAD columns, adding left padding to the prompts, or setting the logits
    at prompt / padded positions to garbage (NaN, ±inf) leaves it unchanged."""
    from selftaught.lm.distill import make_distill_loss
    from selftaught.lm.model import forward

    tok, cfg_s, cfg_t, ps, pt = _tiny_pair()
    prompts, comps = ["1+2=", "13+45=", "7="], ["3", "58", "7123"]
    rows = prompt_completion_rows(tok, prompts, comps, 8, 6)
    loss_fn = make_distill_loss(cfg_s, cfg_t, pt, kind=kind, beta=beta, lam=0.0,
                                max_new_tokens=6)
    batch = {k: jnp.asarray(v) for k, v in rows.items()}
    got = float(loss_fn(ps, batch, jax.random.key(0))[0])

    toks = rows["tokens"]
    real = jnp.asarray(toks != PAD)
    tl = np.asarray(forward(pt, cfg_t, jnp.asarray(toks), None, real))
    sl = np.asarray(forward(ps, cfg_s, jnp.asarray(toks), None, real))
    per_tok = _np_div(tl, sl, kind, beta, 1.0)
    pos = [(b, 8 - 1 + n) for b, c in enumerate(comps) for n in range(len(c) + 1)]
    want = np.mean([per_tok[b, t] for b, t in pos])
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # the prompt positions carry real divergence: scoring them too would change the value
    all_real = per_tok[np.asarray(real)].mean()
    assert abs(all_real - want) > 0.02 * want
    # a row mean of per-row means (not a token mean) is also a different number here
    row_means = np.mean([np.mean([per_tok[b, t] for bb, t in pos if bb == b])
                         for b in range(len(comps))])
    assert abs(row_means - want) > 0.005 * want, (row_means, want)

    # more padding on both sides: same loss
    wider = prompt_completion_rows(tok, prompts, comps, 11, 9)
    wider = {k: jnp.asarray(v) for k, v in wider.items()}
    np.testing.assert_allclose(float(loss_fn(ps, wider, jax.random.key(0))[0]), got, rtol=1e-5)

    # garbage logits wherever the mask is 0: same value
    mask = rows["loss_mask"] > 0
    garbage = np.where(np.arange(tl.shape[-1]) % 3 == 0, np.nan,
                       np.where(np.arange(tl.shape[-1]) % 3 == 1, np.inf, -np.inf))
    tl_g = np.where(mask[..., None], tl, garbage)
    sl_g = np.where(mask[..., None], sl, 1e4 * garbage[::-1])
    val = divergence(jnp.asarray(tl_g, jnp.float32), jnp.asarray(sl_g, jnp.float32),
                     jnp.asarray(rows["loss_mask"]), kind, beta)
    np.testing.assert_allclose(float(val), want, rtol=1e-4)


@pytest.mark.slow  # compiles the sampler (~10 CPU-s)
def test_pitfall_lambda_direction_in_the_gkd_loss():
    """(a) at the loss level: with λ=1 the loss is computed on the student's samples (the
    fixed rows are never read: replacing them changes nothing) and equals the divergence on
    `student_batch` rows drawn with the same key; with λ=0 it is the fixed rows'."""
    from selftaught.lm.distill import make_distill_loss
    from selftaught.lm.model import forward

    tok, cfg_s, cfg_t, ps, pt = _tiny_pair()
    rows = prompt_completion_rows(tok, ["1+2=", "13+45="], ["3", "58"], 8, 6)
    batch = {k: jnp.asarray(v) for k, v in rows.items()}
    other = dict(batch, tokens=jnp.where(batch["tokens"] > 0, 5, 0))  # other fixed data
    key = jax.random.key(3)
    on = make_distill_loss(cfg_s, cfg_t, pt, kind="fkl", lam=1.0, max_new_tokens=6)
    off = make_distill_loss(cfg_s, cfg_t, pt, kind="fkl", lam=0.0, max_new_tokens=6)
    l1, aux1 = on(ps, batch, key)
    assert float(aux1["on_policy"]) == 1.0
    assert float(on(ps, other, key)[0]) == pytest.approx(float(l1), rel=1e-6)
    s_rows = student_batch(ps, cfg_s, batch["prompt"], batch["prompt_mask"],
                           jax.random.split(key)[1], max_new_tokens=6)
    real = s_rows["tokens"] != PAD
    want = divergence(forward(pt, cfg_t, s_rows["tokens"], None, real),
                      forward(ps, cfg_s, s_rows["tokens"], None, real),
                      s_rows["loss_mask"], "fkl")
    np.testing.assert_allclose(float(l1), float(want), rtol=1e-5)
    l0, aux0 = off(ps, batch, key)
    assert float(aux0["on_policy"]) == 0.0
    assert abs(float(off(ps, other, key)[0]) - float(l0)) > 1e-4


@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_a_teacher_fn_with_the_learned_teachers_logits_gives_the_same_loss(lam):
    """`teacher_fn` (e.g. the algorithmic chain teacher) plugs in where the learned teacher's
    forward pass was: when its logits are the learned teacher's, loss and gradient agree."""
    from selftaught.lm.distill import make_distill_loss
    from selftaught.lm.model import forward

    tok, cfg_s, cfg_t, ps, pt = _tiny_pair()
    rows = prompt_completion_rows(tok, ["1+2=", "13+45="], ["3", "58"], 8, 6)
    batch = {k: jnp.asarray(v) for k, v in rows.items()}
    key = jax.random.key(5)
    learned = make_distill_loss(cfg_s, cfg_t, pt, kind="jsd", beta=0.5, lam=lam,
                                max_new_tokens=6)
    as_fn = make_distill_loss(cfg_s, cfg_t, None, kind="jsd", beta=0.5, lam=lam,
                              max_new_tokens=6,
                              teacher_fn=lambda t: forward(pt, cfg_t, t, None, t != PAD))
    (a, _), ga = jax.value_and_grad(learned, has_aux=True)(ps, batch, key)
    (b, _), gb = jax.value_and_grad(as_fn, has_aux=True)(ps, batch, key)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)
    for x, y in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-7)
