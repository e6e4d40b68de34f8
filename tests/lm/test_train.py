import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError, DivergedError
from selftaught.lm.model import Transformer, TransformerConfig, forward, init_params
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


def test_sample_rows_uniform_over_scattered_positive_rows():
    """The O(B) sampler (`row_index` once, then `randint`) draws uniformly among the rows
    with weight > 0 wherever they lie, never a weight-0 row; with or without a prebuilt
    index the draws are the same."""
    from scipy import stats as sps

    from selftaught.lm.train import row_index

    rng = np.random.default_rng(0)
    n, draws = 5000, 200_000
    w = np.zeros(n, np.float32)
    valid = rng.choice(n, 50, replace=False)
    w[valid] = rng.uniform(0.5, 3.0, 50)  # the size of a positive weight does not matter
    key = jax.random.PRNGKey(1)
    idx = np.asarray(sample_rows(key, jnp.asarray(w), draws))
    np.testing.assert_array_equal(
        idx, np.asarray(sample_rows(key, jnp.asarray(w), draws, row_index(jnp.asarray(w)))))
    counts = np.bincount(idx, minlength=n)
    assert counts[w == 0].sum() == 0
    # chi-square goodness of fit to uniform over the 50 valid rows (49 dof); with a correct
    # sampler p is uniform on [0, 1], so p < 1e-4 happens once in 10,000 keys
    assert sps.chisquare(counts[valid]).pvalue > 1e-4
    rows, count = row_index(jnp.asarray(w))
    assert int(count) == 50
    np.testing.assert_array_equal(np.asarray(rows)[:50], np.sort(valid))


def test_sample_rows_cost_does_not_depend_on_the_dataset_size():
    """A step's jaxpr draws B indices: nothing in it has the dataset's length N (the row
    index is built once per chunk, outside the scanned step)."""
    from selftaught.lm.train import row_index

    n = 12_345
    w = jnp.ones(n)
    index = row_index(w)
    jaxpr = jax.make_jaxpr(lambda k: sample_rows(k, w, 16, index))(jax.random.PRNGKey(0))
    shapes = [v.aval.shape for eqn in jaxpr.eqns for v in eqn.outvars]
    assert all(n not in s for s in shapes), shapes


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


def test_padding_a_dataset_with_weight_0_rows_changes_no_step():
    """The same rows padded to a larger capacity (weight 0, after the real rows) draw the
    same batches, so training is the same: a recipe may pad every dataset to one shape and
    compile its trainer once."""
    from selftaught.lm.data import pad_rows

    d = _data(20, 3)
    real = {k: v for k, v in d.items() if k != "weight"}
    small, big = pad_rows(real), pad_rows(real, capacity=48)
    (s0, l0), (s1, l1) = (SFT.run(SFT.init(jax.random.PRNGKey(4)), x, 30) for x in (small, big))
    np.testing.assert_allclose(l1, l0, rtol=1e-6, atol=1e-7)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                           params_of(s1), params_of(s0))


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


# ---------------------------------------------------------------- the generic trainer
from selftaught.core import config as cfglib  # noqa: E402
from selftaught.lm.train import EvalSchedule  # noqa: E402


def test_eval_schedule_phases_and_steps():
    ev, tr = EvalSchedule(every=250, batch=8, test_rounds=1), TrainConfig(total_steps=1000)
    ev.check_fits(tr)
    assert ev.phases(tr) == 4
    assert ev.steps(tr) == [250, 500, 750, 1000]
    assert EvalSchedule(every=1000).steps(tr) == [1000]


@pytest.mark.parametrize("schedule, total, message", [
    (EvalSchedule(every=0), 1000, "evals.every=0 must be >= 1"),
    (EvalSchedule(batch=0), 1000, "evals.batch=0 and evals.test_rounds=2 must be >= 1"),
    (EvalSchedule(test_rounds=0), 1000, "evals.test_rounds=0 must be >= 1"),
    (EvalSchedule(every=300), 1000, "train.total_steps=1000 must be a multiple of "
                                    "evals.every=300"),
])
def test_eval_schedule_errors(schedule, total, message):
    with pytest.raises(ConfigError) as exc:
        cfglib.validate(schedule).check_fits(TrainConfig(total_steps=total))
    assert message in str(exc.value)


from selftaught.lm.data import add_columns, pack_pairs, pack_sft  # noqa: E402
from selftaught.lm.train import (  # noqa: E402
    make_dpo_loss,
    make_orm_loss,
    make_trainer,
    orm_init,
    orm_logits,
    sequence_logprobs,
)


def test_generic_trainer_with_sft_loss_is_make_sft_and_rng_does_not_change_rows():
    """make_trainer(loss) draws the same rows as make_sft, whatever randomness the loss uses."""
    d = _data(32, 0)
    seen = []

    def noisy_sft(params, batch, rng):
        loss, aux = SFT.loss_fn(params, batch, rng)
        seen.append(batch["tokens"].shape)
        return loss + 0.0 * jax.random.normal(rng), {"rows": batch["tokens"][:, 1].sum()}

    tr = make_trainer(noisy_sft, TC)
    s_ref, l_ref = SFT.run(SFT.init(jax.random.PRNGKey(3)), d, 12)
    s, losses, aux = tr.run_aux(SFT.init(jax.random.PRNGKey(3)), d, 12)
    np.testing.assert_allclose(losses, l_ref, rtol=1e-6)
    assert aux["rows"].shape == (12,) and seen[0] == (TC.batch_size, CFG.max_len)
    with pytest.raises(ValueError, match="pass params"):
        tr.init(jax.random.PRNGKey(0))
    # fit(..., aux=True) returns the aux per step, concatenated over chunks
    s2, l2, a2 = fit(tr, SFT.init(jax.random.PRNGKey(3)), d, 12, chunk=5, aux=True)
    np.testing.assert_allclose(l2, l_ref, rtol=1e-5)
    np.testing.assert_array_equal(a2["rows"], np.asarray(aux["rows"]))


def test_cached_trainer_is_built_once_per_key_and_trains_as_make_sft():
    """cached_trainer(make_sft_loss, ...) is make_sft: same losses from the same start; the
    same key returns the same (compiled) trainer, another key a new one."""
    from selftaught.lm.train import cached_trainer, make_sft_loss

    tr = cached_trainer(make_sft_loss, CFG, TC, TC.z_loss)
    assert cached_trainer(make_sft_loss, CFG, TC, TC.z_loss) is tr
    other = dataclasses.replace(TC, lr=3e-3)
    assert cached_trainer(make_sft_loss, CFG, other, other.z_loss) is not tr
    assert cached_trainer(make_dpo_loss, CFG, TC, 0.1) is not tr
    d = _data(32, 0)
    _, l_ref = SFT.run(SFT.init(jax.random.PRNGKey(3)), d, 12)
    _, losses = tr.run(tr.init(jax.random.PRNGKey(3)), d, 12)  # fresh params: init_params
    np.testing.assert_allclose(losses, l_ref, rtol=1e-6)


def _np_seq_lp(params, tokens, mask):
    lp = _np_log_softmax(np.asarray(forward(params, CFG, tokens, None, tokens != 0),
                                    np.float64))
    tgt = np.concatenate([tokens[:, 1:], np.zeros_like(tokens[:, :1])], 1)
    return (np.take_along_axis(lp, tgt[..., None], -1)[..., 0] * mask).sum(-1)


def test_dpo_trainer_loss_matches_formula_and_raises_chosen_margin():
    params = init_params(CFG, jax.random.PRNGKey(1))
    prompts = ["1+2=", "3+4=", "5+5=", "0+9="]
    pairs = pack_pairs(TOK, prompts, ["3", "7", "10", "9"], ["4", "8", "11", "1"],
                       CFG.max_len, capacity=6)
    assert pairs["weight"].tolist() == [1, 1, 1, 1, 0, 0]
    ref_c = sequence_logprobs(params, CFG, pairs["chosen_tokens"][:4],
                              pairs["chosen_mask"][:4], batch_size=3)
    ref_r = sequence_logprobs(params, CFG, pairs["rejected_tokens"][:4],
                              pairs["rejected_mask"][:4], batch_size=3)
    np.testing.assert_allclose(ref_c, _np_seq_lp(params, pairs["chosen_tokens"][:4],
                                                 pairs["chosen_mask"][:4]), rtol=1e-5)
    pairs = add_columns(pairs, ref_chosen_lp=ref_c, ref_rejected_lp=ref_r)
    beta = 0.5
    loss_fn = make_dpo_loss(CFG, beta)
    # a policy different from the reference: the loss is the DPO formula on NumPy log-probs
    other = init_params(CFG, jax.random.PRNGKey(2))
    batch = {k: v[:4] for k, v in pairs.items() if k != "weight"}
    loss, aux = loss_fn(other, batch, jax.random.PRNGKey(0))
    pc = _np_seq_lp(other, batch["chosen_tokens"], batch["chosen_mask"])
    pr = _np_seq_lp(other, batch["rejected_tokens"], batch["rejected_mask"])
    margin = beta * ((pc - ref_c) - (pr - ref_r))
    assert float(loss) == pytest.approx(np.mean(np.log1p(np.exp(-margin))), rel=1e-4)
    assert float(aux["reward_accuracy"]) == pytest.approx(np.mean(margin > 0))
    # at the reference the loss is log 2; training raises the margin on the training pairs
    assert float(loss_fn(params, batch, None)[0]) == pytest.approx(np.log(2), rel=1e-5)
    dpo = make_trainer(loss_fn, TrainConfig(lr=3e-3, warmup_steps=2, total_steps=40,
                                            batch_size=4))
    state, losses, aux = fit(dpo, dpo.init(jax.random.PRNGKey(0), params), pairs, 40,
                             chunk=40, aux=True)
    assert losses[-5:].mean() < 0.5 * np.log(2) and aux["reward_accuracy"][-5:].mean() == 1.0


def test_orm_head_reads_the_last_real_token_and_learns_labels():
    params = init_params(CFG, jax.random.PRNGKey(0))
    rows = pack_sft(TOK, ["1+2=", "3+4=", "1+2=", "3+4="], ["3", "7", "4", "17"], CFG.max_len,
                    capacity=5, label=[1, 1, 0, 0])
    assert rows["label"].tolist() == [1, 1, 0, 0, 0]
    orm = orm_init(params, CFG)
    orm["head"]["w"] = jnp.ones(CFG.d_model) / CFG.d_model
    z = np.asarray(orm_logits(orm, CFG, rows["tokens"][:4], rows["loss_mask"][:4]))
    # features = the final-layer-norm state at the EOS; independent of extra right padding
    _, h = Transformer(CFG).apply(params, rows["tokens"][:4], None, rows["tokens"][:4] != 0,
                                  return_hidden=True)
    last = (rows["tokens"][:4] != 0).sum(1) - 1
    assert (rows["tokens"][np.arange(4), last] == 2).all()  # EOS
    np.testing.assert_allclose(z, np.asarray(h)[np.arange(4), last].mean(-1), rtol=1e-5,
                               atol=1e-6)
    z_pad = orm_logits(orm, CFG, np.pad(rows["tokens"][:4], ((0, 0), (0, 3)))[:, :CFG.max_len],
                       None)
    np.testing.assert_allclose(np.asarray(z_pad), z, atol=1e-5)
    tr = make_trainer(make_orm_loss(CFG), TrainConfig(lr=3e-3, warmup_steps=2, total_steps=60,
                                                      batch_size=4))
    state, losses, aux = fit(tr, tr.init(jax.random.PRNGKey(0), orm_init(params, CFG)), rows,
                             60, chunk=60, aux=True)
    assert losses[0] == pytest.approx(np.log(2), rel=1e-4)  # zero head: p = 1/2
    assert losses[-5:].mean() < 0.5 and aux["accuracy"][-5:].mean() == 1.0



def test_prm_scores_every_position_loss_is_masked_bce_and_score_is_the_min_step():
    """The process verifier: the ORM's parameters read at every position; the loss is BCE
    over the labelled positions only (NumPy reference); a solution scores its least likely
    step; training on step labels learns them."""
    from selftaught.lm.train import make_prm_loss, prm_aggregate, prm_logits, prm_scores

    params = init_params(CFG, jax.random.PRNGKey(0))
    rows = pack_sft(TOK, ["1+2=", "3+4=", "1+2=", "3+4="], ["3", "7", "4", "17"], CFG.max_len)
    prm = orm_init(params, CFG)
    prm["head"]["w"] = jnp.asarray(np.random.default_rng(0).normal(size=CFG.d_model),
                                   jnp.float32)
    prm["head"]["b"] = jnp.asarray(0.3, jnp.float32)
    tokens = rows["tokens"]
    z = np.asarray(prm_logits(prm, CFG, tokens))
    _, h = Transformer(CFG).apply(params, tokens, None, tokens != 0, return_hidden=True)
    np.testing.assert_allclose(z, np.asarray(h) @ np.asarray(prm["head"]["w"]) + 0.3,
                               rtol=1e-5, atol=1e-5)
    last = (tokens != 0).sum(1) - 1  # the ORM reads exactly the PRM's EOS position
    np.testing.assert_allclose(orm_logits(prm, CFG, tokens, None), z[np.arange(4), last],
                               rtol=1e-5, atol=1e-5)
    mask = np.zeros(tokens.shape, np.float32)
    label = np.zeros(tokens.shape, np.float32)
    mask[np.arange(4), last] = 1  # a "step" at the EOS, and one at the first completion token
    mask[np.arange(4), 6] = 1
    label[np.arange(4), last] = [1, 1, 0, 0]
    label[:, 6] = [1, 1, 1, 0]
    batch = {"tokens": tokens, "step_mask": mask, "step_label": label}
    loss, aux = make_prm_loss(CFG)(prm, batch, None)
    zz = z.astype(np.float64)
    bce = np.maximum(zz, 0) - zz * label + np.log1p(np.exp(-np.abs(zz)))
    assert float(loss) == pytest.approx((bce * mask).sum() / mask.sum(), rel=1e-4)
    assert float(aux["step_accuracy"]) == pytest.approx(
        (((zz > 0) == (label > 0.5)) * mask).sum() / mask.sum())
    # score = min over the labelled positions; batching and a row-count padding change nothing
    z_all = prm_scores(prm, CFG, tokens, batch_size=3)
    np.testing.assert_allclose(z_all, z, rtol=1e-5, atol=1e-5)
    zz = z_all.astype(np.float64)
    for i in range(4):  # the aggregates, one row at a time
        steps = zz[i, mask[i] > 0]
        assert prm_aggregate(zz, mask, "min")[i] == pytest.approx(steps.min())
        assert prm_aggregate(zz, mask, "mean_logp")[i] == pytest.approx(
            np.mean(np.log(1 / (1 + np.exp(-steps)))))
        assert prm_aggregate(zz, mask, "final")[i] == pytest.approx(zz[i, last[i]])
    with pytest.raises(ConfigError, match="PRM aggregate must be one of"):
        prm_aggregate(zz, mask, "max")
    rows = {**batch, "weight": np.ones(4, np.float32)}
    tr = make_trainer(make_prm_loss(CFG), TrainConfig(lr=3e-3, warmup_steps=2, total_steps=80,
                                                      batch_size=4))
    state, losses, aux = fit(tr, tr.init(jax.random.PRNGKey(0), orm_init(params, CFG)), rows,
                             80, chunk=80, aux=True)
    assert losses[0] == pytest.approx(np.log(2), rel=1e-4)  # zero head: p = 1/2 everywhere
    assert losses[-5:].mean() < 0.3 and aux["solution_accuracy"][-5:].mean() == 1.0
    s = prm_aggregate(prm_scores(state.params, CFG, tokens), mask)
    assert s[:2].min() > 0 > s[2:].max()  # rows with a wrong step score below the others


# ---------------------------------------------------------------- the evaluator (Liu et al.)
from selftaught.lm.train import evaluator_scores, make_evaluator_loss, verdict_logits  # noqa


def test_evaluator_verdict_logits_and_both_losses_match_numpy():
    params = init_params(CFG, jax.random.PRNGKey(4))
    yes, no = TOK.encode("10")
    pairs = pack_pairs(TOK, ["1+2=", "3+4=", "2+2="], ["3", "7", "4"], ["4", "17", "5"],
                       CFG.max_len, capacity=4)
    batch = {k: v[:3] for k, v in pairs.items() if k != "weight"}
    # z = logit(yes) - logit(no) of the next-token distribution after the EOS
    def np_z(tokens):
        logits = np.asarray(forward(params, CFG, tokens, None, tokens != 0), np.float64)
        last = (tokens != 0).sum(1) - 1
        assert (tokens[np.arange(len(tokens)), last] == 2).all()
        row = logits[np.arange(len(tokens)), last]
        return row[:, yes] - row[:, no]

    zp, zn = np_z(batch["chosen_tokens"]), np_z(batch["rejected_tokens"])
    np.testing.assert_allclose(verdict_logits(params, CFG, batch["chosen_tokens"], yes, no),
                               zp, rtol=1e-4, atol=1e-5)
    log_s = lambda z: -np.log1p(np.exp(-z))  # noqa: E731
    ce, aux = jax.jit(make_evaluator_loss(CFG, yes, no, "ce"))(params, batch, None)
    assert float(ce) == pytest.approx(-np.mean(log_s(zp) + log_s(-zn)) / 2, rel=1e-4)
    assert float(aux["pair_accuracy"]) == pytest.approx(np.mean(zp > zn))
    mg, _ = jax.jit(make_evaluator_loss(CFG, yes, no, "margin", margin=0.7))(params, batch,
                                                                              None)
    assert float(mg) == pytest.approx(np.mean(np.maximum(0, log_s(zn) - log_s(zp) + 0.7)),
                                      rel=1e-4)
    s = evaluator_scores(params, CFG, batch["chosen_tokens"], yes, no, batch_size=2)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-zp)), rtol=1e-4)
    with pytest.raises(ConfigError, match="'ce' or 'margin'"):
        make_evaluator_loss(CFG, yes, no, "hinge")


@pytest.mark.slow
def test_evaluator_both_loss_forms_learn_to_rank_training_pairs():
    params = init_params(CFG, jax.random.PRNGKey(4))
    yes, no = TOK.encode("10")
    pairs = pack_pairs(TOK, ["1+2=", "3+4=", "2+2="], ["3", "7", "4"], ["4", "17", "5"],
                       CFG.max_len, capacity=4)
    for kind in ("ce", "margin"):
        tr = make_trainer(make_evaluator_loss(CFG, yes, no, kind),
                          TrainConfig(lr=3e-3, warmup_steps=2, total_steps=30, batch_size=4))
        state, losses, aux = fit(tr, tr.init(jax.random.PRNGKey(0), params), pairs, 30,
                                 chunk=30, aux=True)
        assert aux["pair_accuracy"][-5:].mean() == 1.0 and losses[-5:].mean() < losses[0]


# ---------------------------------------------------------------------------- batch_fn
from selftaught.lm.train import label_xent, make_optimizer  # noqa: E402


def _linear_problem():
    """A batch_fn drawing fresh (x, y) pairs on device, a step-dependent scale (curriculum)."""
    def batch_fn(key, step, data):
        x = jax.random.normal(key, (8, 3)) * (1.0 + step.astype(jnp.float32) / 10)
        return {"x": x, "y": x @ data["w"]}

    def loss_fn(params, batch, rng):
        return jnp.mean((batch["x"] @ params - batch["y"]) ** 2), {}

    return batch_fn, loss_fn, {"w": jnp.array([1.0, -2.0, 0.5])}


def test_batch_fn_trainer_equals_a_hand_written_optax_loop():
    batch_fn, loss_fn, data = _linear_problem()
    cfg = TrainConfig(lr=0.05, total_steps=6, batch_size=8, warmup_steps=0)
    trainer = make_trainer(loss_fn, cfg, batch_fn=batch_fn)
    rng, params = jax.random.PRNGKey(3), jnp.zeros(3)
    state, losses = trainer.run(trainer.init_from(params, rng), data, 6)

    tx = make_optimizer(cfg)  # the reference: the documented key convention, by hand
    p, opt = params, tx.init(params)
    ref = []
    for t in range(6):
        batch = batch_fn(jax.random.fold_in(rng, t), jnp.asarray(t), data)
        loss, g = jax.value_and_grad(lambda q, b=batch: loss_fn(q, b, None)[0])(p)
        upd, opt = tx.update(g, opt, p)
        p = p + upd
        ref.append(loss)
    np.testing.assert_allclose(np.asarray(losses), np.asarray(ref), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(state.params), np.asarray(p), rtol=1e-6)
    assert int(state.step) == 6 and bool(jnp.all(state.rng == rng))  # key not advanced
    assert float(losses[-1]) < float(losses[0])


def test_batch_fn_stream_is_a_function_of_the_step_so_chunks_resume_exactly():
    batch_fn, loss_fn, data = _linear_problem()
    cfg = TrainConfig(lr=0.05, total_steps=6, batch_size=8, warmup_steps=0)
    trainer = make_trainer(loss_fn, cfg, batch_fn=batch_fn)
    s0 = trainer.init_from(jnp.zeros(3), jax.random.PRNGKey(0))
    whole, lw = trainer.run(s0, data, 6)
    half, l1 = trainer.run(s0, data, 3)
    half, l2 = trainer.run(half, data, 3)
    np.testing.assert_array_equal(np.asarray(whole.params), np.asarray(half.params))
    np.testing.assert_array_equal(np.asarray(lw), np.concatenate([l1, l2]))
    # and vmapped over seeds = separate runs (data mapped over the seed axis too)
    keys = jax.random.split(jax.random.PRNGKey(1), 2)
    states = jax.vmap(lambda k: trainer.init_from(jnp.zeros(3), k))(keys)
    both, _ = trainer.run_seeds(states, jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), data),
                                4)
    one, _ = trainer.run(trainer.init_from(jnp.zeros(3), keys[1]), data, 4)
    np.testing.assert_allclose(np.asarray(both.params[1]), np.asarray(one.params), rtol=1e-6)


def test_label_xent_against_numpy():
    logits = np.array([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0]], np.float32)
    labels = np.array([2, 1])
    ref = np.log(np.exp(logits).sum(1)) - logits[np.arange(2), labels]
    np.testing.assert_allclose(np.asarray(label_xent(jnp.asarray(logits), jnp.asarray(labels))),
                               ref, rtol=1e-6)


# ------------------------------------------------------------- traced hyper-parameters
def _traced_linear(**kw):
    batch_fn, loss_fn, data = _linear_problem()
    traced_loss = lambda params, batch, rng, hp: loss_fn(params, batch, rng)
    cfg = TrainConfig(lr=0.05, total_steps=6, batch_size=8, warmup_steps=2,
                      final_lr_ratio=0.1)
    return cfg, make_trainer(traced_loss, cfg, batch_fn=batch_fn, traced=True, **kw), \
        make_trainer(loss_fn, cfg, batch_fn=batch_fn), data


def test_traced_cell_equals_the_plain_trainer_and_run_cells_equals_each_cell_alone():
    cfg, grid, plain, data = _traced_linear()
    key, p0 = jax.random.PRNGKey(2), jnp.zeros(3)
    # the cell at the config's own numbers is the plain trainer (optax's schedule and AdamW)
    cell, closs = grid.run(grid.init_from(p0, key), data, 6)
    ref, rloss = plain.run(plain.init_from(p0, key), data, 6)
    np.testing.assert_allclose(np.asarray(cell.params), np.asarray(ref.params), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(closs), np.asarray(rloss), rtol=1e-5)
    # another lr / warmup / weight decay as traced numbers = a plain trainer built with them
    other = dict(lr=0.01, warmup_steps=0.0, weight_decay=0.3)
    cfg2 = TrainConfig(lr=0.01, total_steps=6, batch_size=8, warmup_steps=0, weight_decay=0.3,
                       final_lr_ratio=0.1)
    p2 = jnp.ones((3, 1))  # a matrix, so weight decay applies
    sq = lambda params, batch, rng, hp=None: (jnp.mean((batch["x"] @ params[:, 0]
                                                          - batch["y"]) ** 2), {})
    grid2 = make_trainer(sq, cfg, batch_fn=_linear_problem()[0], traced=True)
    plain2 = make_trainer(lambda p, b, r: sq(p, b, r), cfg2, batch_fn=_linear_problem()[0])
    states = jax.vmap(lambda lr, wd, w: grid2.init_from(p2, key, dict(
        lr=lr, weight_decay=wd, warmup_steps=w)))(
        jnp.array([0.05, 0.01]), jnp.array([0.1, 0.3]), jnp.array([2.0, 0.0]))
    both, losses, aux = grid2.run_cells_aux(states, data, 6)
    one, _ = plain2.run(plain2.init_from(p2, key), data, 6)
    np.testing.assert_allclose(np.asarray(both.params[1]), np.asarray(one.params), rtol=1e-5)
    alone, _ = grid2.run(grid2.init_from(p2, key, other), data, 6)
    np.testing.assert_allclose(np.asarray(both.params[1]), np.asarray(alone.params),
                               rtol=1e-6)
    assert aux["grad_norm"].shape == (2, 6) and bool(jnp.all(both.diverged_at == -1))


def test_traced_cell_freezes_at_its_first_non_finite_step():
    batch_fn, _, data = _linear_problem()
    # the loss turns inf once the step counter reaches 3 (through the batch's scale)
    def loss_fn(params, batch, rng, hp):
        return jnp.mean((batch["x"] @ params - batch["y"]) ** 2) * batch["blow"], {"y": 1.0}
    bf = lambda key, step, d: dict(batch_fn(key, step, d),
                                   blow=jnp.where(step >= 3, jnp.inf, 1.0))
    tr = make_trainer(loss_fn, TrainConfig(lr=0.05, total_steps=6, warmup_steps=0),
                      batch_fn=bf, traced=True)
    s0 = tr.init_from(jnp.zeros(3), jax.random.PRNGKey(0))
    s3, _ = tr.run(s0, data, 3)
    s6, losses, aux = tr.run_aux(s0, data, 6)
    assert int(s6.diverged_at) == 3 and int(s3.diverged_at) == -1
    np.testing.assert_array_equal(np.asarray(s6.params), np.asarray(s3.params))  # frozen
    assert np.isfinite(np.asarray(losses[:3])).all() and np.isnan(np.asarray(losses[3:])).all()
    assert np.isnan(np.asarray(aux["y"][3:])).all() and np.isnan(aux["grad_norm"][3:]).all()


def test_traced_trainer_rejects_unknown_names_and_untraced_options():
    _, grid, plain, _ = _traced_linear()
    with pytest.raises(ConfigError, match=r"unknown traced hyper-parameter\(s\) \['lr_max'\]"):
        grid.init_from(jnp.zeros(3), jax.random.PRNGKey(0), {"lr_max": 1.0})
    with pytest.raises(ConfigError, match="made without traced=True"):
        plain.init_from(jnp.zeros(3), jax.random.PRNGKey(0), {"lr": 1.0})
    with pytest.raises(ConfigError, match="need a traced trainer"):
        make_trainer(lambda p, b, r: (0.0, {}), TrainConfig(), independent_wd=True)
    # clip_norm 0 disables clipping (no clip transform), a negative one is an error
    assert len(make_optimizer(TrainConfig(clip_norm=0.0)).init(jnp.zeros(2))) == 1
    with pytest.raises(ConfigError, match="clip_norm=-1.0 must be >= 0"):
        TrainConfig(clip_norm=-1.0).validate()
