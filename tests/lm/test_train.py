import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError, DivergedError
from selftaught.lm.model import TransformerConfig, forward, init_params
from selftaught.lm.tokenizer import CharTokenizer
from selftaught.lm.train import (
    TrainConfig,
    check_losses,
    dpo_loss,
    fit,
    make_sft,
    masked_xent,
    next_token_targets,
    params_of,
    sample_rows,
    token_logprobs,
)

TOK = CharTokenizer("0123456789+=")
CFG = TransformerConfig(vocab_size=TOK.vocab_size, max_len=16, d_model=16, n_layers=1,
                        n_heads=2)


def _np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_masked_xent_and_z_loss_against_numpy():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 5)).astype(np.float32) * 3
    targets = rng.integers(0, 5, (2, 3))
    mask = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
    lp = _np_log_softmax(logits.astype(np.float64))
    nll = -np.take_along_axis(lp, targets[..., None], -1)[..., 0]
    logz = np.log(np.exp(logits.astype(np.float64)).sum(-1))
    expect = (nll * mask).sum() / 3
    assert float(masked_xent(logits, targets, mask)) == pytest.approx(expect, rel=1e-5)
    expect_z = expect + 0.1 * (logz**2 * mask).sum() / 3
    assert float(masked_xent(logits, targets, mask, z_loss=0.1)) == pytest.approx(expect_z,
                                                                                  rel=1e-5)
    assert float(masked_xent(logits, targets, np.zeros_like(mask))) == 0.0


def test_next_token_targets_and_token_logprobs():
    t = jnp.array([[1, 5, 6, 3, 7, 2, 0]])
    assert next_token_targets(t).tolist() == [[5, 6, 3, 7, 2, 0, 0]]
    params = init_params(CFG, jax.random.PRNGKey(0))
    d = TOK.encode_sft(["1+2="], ["3"], 10)
    lp = token_logprobs(params, CFG, d["tokens"], d["loss_mask"])
    full = np.asarray(jax.nn.log_softmax(forward(params, CFG, d["tokens"],
                                                 None, d["tokens"] != 0)))
    sep = 5  # BOS 1 + 2 = SEP
    expect = np.zeros(10)
    expect[sep] = full[0, sep, d["tokens"][0, sep + 1]]
    expect[sep + 1] = full[0, sep + 1, 2]  # EOS
    np.testing.assert_allclose(lp[0], expect, atol=1e-6)
    # the same completion after left padding gets the same log-prob
    padded = np.concatenate([np.zeros((1, 2), np.int32), d["tokens"][:, :8]], 1)
    pmask = np.concatenate([np.zeros((1, 2), np.float32), d["loss_mask"][:, :8]], 1)
    lp2 = token_logprobs(params, CFG, padded, pmask)
    assert float(lp2.sum()) == pytest.approx(float(lp.sum()), abs=1e-5)


def test_dpo_loss_hand_computed():
    pc, pr = jnp.array([-1.0, -2.0]), jnp.array([-3.0, -1.0])
    rc, rr = jnp.array([-1.5, -2.0]), jnp.array([-2.5, -1.5])
    beta = 0.5
    # pair 0: margin = (-1 + 1.5) - (-3 + 2.5) = 1.0 ; pair 1: (0) - (0.5) = -0.5
    expect = np.mean([np.log1p(np.exp(-0.5)), np.log1p(np.exp(0.25))])
    assert float(dpo_loss(pc, pr, rc, rr, beta)) == pytest.approx(expect, rel=1e-6)


def test_sample_rows_only_positive_weight():
    w = jnp.array([0.0, 1.0, 0.0, 2.0, 1.0, 0.0])
    idx = np.asarray(sample_rows(jax.random.PRNGKey(0), w, 3000))
    counts = np.bincount(idx, minlength=6)
    assert counts[[0, 2, 5]].sum() == 0
    np.testing.assert_allclose(counts[[1, 3, 4]] / 3000, 1 / 3, atol=0.04)  # uniform


def _data(n, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, 10, n), rng.integers(0, 10, n)
    d = TOK.encode_sft([f"{x}+{y}=" for x, y in zip(a, b)], [str(x + y) for x, y in zip(a, b)],
                       CFG.max_len)
    return dict(tokens=d["tokens"], loss_mask=d["loss_mask"], weight=np.ones(n, np.float32))


TC = TrainConfig(lr=1e-2, warmup_steps=5, total_steps=60, batch_size=16)
SFT = make_sft(CFG, TC)  # shared so that its jitted `run` compiles once per shape


def test_sft_learns_and_vmap_over_seeds_matches_separate_runs():
    sft = SFT
    d0, d1 = _data(32, 0), _data(32, 1)
    d1["weight"][20:] = 0.0  # seed 1 has a smaller dataset padded to the same shape
    s0, s1 = sft.init(jax.random.PRNGKey(0)), sft.init(jax.random.PRNGKey(1))
    (s0, l0), (s1, l1) = sft.run(s0, d0, 30), sft.run(s1, d1, 30)
    stack = lambda a, b: jax.tree_util.tree_map(lambda x, y: jnp.stack([x, y]), a, b)
    states = stack(sft.init(jax.random.PRNGKey(0)), sft.init(jax.random.PRNGKey(1)))
    data = stack(d0, d1)
    states, losses = fit(sft, states, data, 30, chunk=30, seeds=True)  # = sft.run_seeds
    assert losses.shape == (2, 30)
    np.testing.assert_allclose(losses[0], l0, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses[1], l1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(params_of(states)["params"]["embed"]["embedding"][1],
                               params_of(s1)["params"]["embed"]["embedding"], atol=1e-5)
    s0, l0b = sft.run(s0, d0, 30)
    assert int(s0.step) == 60
    assert float(l0b[-5:].mean()) < 0.6 * float(l0[:5].mean())  # the loss falls
    # init from given params starts from exactly those params with a fresh optimizer
    s2 = sft.init(jax.random.PRNGKey(9), params=params_of(s0))
    assert int(s2.step) == 0
    assert jax.tree_util.tree_all(
        jax.tree_util.tree_map(lambda a, b: bool(jnp.all(a == b)), params_of(s2), params_of(s0)))


def test_divergence_is_a_user_error_naming_step_and_lr():
    with pytest.raises(DivergedError, match=r"step 103.*lower the learning rate.*0\.001"):
        check_losses(np.array([1.0, 2.0, 0.5, np.nan, np.nan]), start_step=100, lr=3e-3)
    with pytest.raises(DivergedError, match=r"seed index 1.*step 1"):
        check_losses(np.array([[1.0, 1.0, np.inf], [1.0, np.nan, 1.0]]), start_step=0)
    check_losses(np.ones((2, 4)), start_step=0)
    sft = SFT
    s = sft.init(jax.random.PRNGKey(0))
    bad = s.replace(params=jax.tree_util.tree_map(lambda p: p * jnp.nan, s.params))
    with pytest.raises(DivergedError, match="SFT at step 0.*lower the learning rate"):
        fit(sft, bad, _data(32, 0), 60, chunk=30)


def test_train_config_validation():
    with pytest.raises(ConfigError, match="warmup_steps=50"):
        TrainConfig(warmup_steps=50, total_steps=10).validate()
    with pytest.raises(ConfigError, match="lr=0"):
        make_sft(CFG, TrainConfig(lr=0.0))
