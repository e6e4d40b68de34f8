"""tasks.bursty: the layout, burstiness, re-mapping and test modes of the generator."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError
from selftaught.tasks import bursty
from selftaught.tasks.bursty import BurstySpec

SPEC = BurstySpec(num_classes=40, num_novel=30, num_labels=12, dim=16, exemplars=8,
                  burstiness=2, noise=0.1, p_remap=0.6, p_query_in=0.5)
BANK = bursty.make_bank(jax.random.PRNGKey(0), SPEC)


def _np(batch):
    return {k: np.asarray(v) for k, v in batch.items()}


def _check_layout(b, spec=SPEC):
    n, T = spec.exemplars, spec.seq_len
    assert b["vectors"].shape[1:] == (T, spec.dim) and b["tokens"].shape[1:] == (T,)
    np.testing.assert_array_equal(b["tokens"][:, 0:2 * n + 1:2], spec.item_token)
    assert (b["tokens"][:, 1:2 * n:2] < spec.num_labels).all()
    np.testing.assert_array_equal(b["vectors"][:, 1:2 * n:2], 0.0)
    # each item is nearest to its own class mean (noise 0.1 << distance between means)
    means = np.asarray(BANK.means)
    items = np.concatenate([b["vectors"][:, 0:2 * n:2], b["vectors"][:, 2 * n:]], axis=1)
    classes = np.concatenate([b["classes"], b["q_class"][:, None]], axis=1)
    d = ((items[..., None, :] - means) ** 2).sum(-1)
    np.testing.assert_array_equal(d.argmin(-1), classes)
    np.testing.assert_array_equal(b["match"], b["classes"] == b["q_class"][:, None])


def test_training_sequences_are_bursty_with_a_remapped_share():
    b = _np(bursty.train_batch(jax.random.PRNGKey(1), BANK, SPEC, 600))
    _check_layout(b)
    labels = b["tokens"][:, 1:2 * SPEC.exemplars:2]
    ways = SPEC.exemplars // SPEC.burstiness
    remapped = b["prior"] == -1
    for row in range(600):
        cls, counts = np.unique(b["classes"][row], return_counts=True)
        assert len(cls) == ways and (counts == SPEC.burstiness).all()
        assert (b["classes"][row] < SPEC.num_classes).all()
        # one label per class, and the query's label is its class's label when in context
        for c in cls:
            assert len(set(labels[row][b["classes"][row] == c])) == 1
        if b["match"][row].any():
            assert b["target"][row] == labels[row][b["match"][row]][0]
        if remapped[row]:
            assert b["match"][row].any()
            assert len({labels[row][b["classes"][row] == c][0] for c in cls}) == ways
        else:
            fixed = np.asarray(BANK.fixed_labels)
            np.testing.assert_array_equal(labels[row], fixed[b["classes"][row]])
            assert b["target"][row] == b["prior"][row] == fixed[b["q_class"][row]]
    # shares (binomial, 600 draws: 5 standard deviations ~ 0.1)
    assert abs(remapped.mean() - SPEC.p_remap) < 0.1
    inside = b["match"][~remapped].any(1)
    assert abs(inside.mean() - SPEC.p_query_in) < 0.15


@pytest.mark.parametrize("mode", bursty.EVAL_MODES)
def test_test_sequences_have_exactly_the_shots_and_distinct_distractors(mode):
    draw = jax.jit(lambda k, s: bursty.eval_batch(k, BANK, SPEC, 64, mode, s))  # traced shots
    for shots in (0, 1, 2, 4, 8):
        _check_test_batch(_np(draw(jax.random.PRNGKey(shots), shots)), mode, shots)


def _check_test_batch(b, mode, shots):
    _check_layout(b)
    np.testing.assert_array_equal(b["match"].sum(1), shots)
    labels = b["tokens"][:, 1:2 * SPEC.exemplars:2]
    fixed = np.asarray(BANK.fixed_labels)
    for row in range(64):
        cls, counts = np.unique(b["classes"][row], return_counts=True)
        assert (counts == max(shots, 1)).all()  # every class equally frequent
        assert len(cls) == (SPEC.exemplars // shots if shots else SPEC.exemplars)
        if shots:
            assert (labels[row][b["match"][row]] == b["target"][row]).all()
        if mode == "novel":
            assert (b["classes"][row] >= SPEC.num_classes).all() and b["prior"][row] == -1
            assert len(set(labels[row])) == len(set(b["classes"][row]))  # distinct labels
        else:
            assert (b["classes"][row] < SPEC.num_classes).all()
            assert b["prior"][row] == fixed[b["q_class"][row]]
    if mode == "fixed":
        np.testing.assert_array_equal(b["target"], b["prior"])
        np.testing.assert_array_equal(labels, fixed[b["classes"]])
    if mode == "flip":  # a permutation of labels without fixed points
        assert (b["target"] != b["prior"]).all()
        assert (labels != fixed[b["classes"]]).all()
        for row in range(64):
            f = fixed[b["classes"][row]]
            for lab in set(f):  # classes sharing a fixed label share its flipped label
                assert len(set(labels[row][f == lab])) == 1


def test_traced_shots_match_static_shots():
    fn = jax.jit(lambda s: bursty.eval_batch(jax.random.PRNGKey(3), BANK, SPEC, 8, "novel", s))
    static = bursty.eval_batch(jax.random.PRNGKey(3), BANK, SPEC, 8, "novel", 2)
    traced = fn(jnp.int32(2))
    for k, v in static.items():  # the same draw (float items to rounding: fused differently)
        np.testing.assert_allclose(np.asarray(traced[k]), np.asarray(v), rtol=1e-5, atol=1e-6)


def test_items_have_the_stated_noise():
    spec = dataclasses.replace(SPEC, noise=0.5)
    bank = bursty.make_bank(jax.random.PRNGKey(0), spec)
    b = _np(bursty.eval_batch(jax.random.PRNGKey(1), bank, spec, 2000, "fixed", 4))
    mu = np.asarray(bank.means)[b["q_class"]]
    x = b["vectors"][:, -1]
    # x = (mu + eps eta) / sqrt(1 + eps^2), eta ~ N(0, I/D): E|x sqrt(1+eps^2) - mu|^2 = eps^2
    resid = ((x * np.sqrt(1 + 0.25) - mu) ** 2).sum(-1)
    assert abs(resid.mean() - 0.25) < 0.02


@pytest.mark.parametrize("change, message", [
    ({"exemplars": 7}, "multiple of burstiness=2"),
    ({"num_labels": 8}, "num_labels=8 must be >= exemplars + 1 = 9"),
    ({"num_novel": 3}, "num_novel=3 must be >= exemplars + 1"),
    ({"p_remap": 1.5}, "p_remap=1.5 must be in [0, 1]"),
])
def test_spec_errors(change, message):
    with pytest.raises(ConfigError) as exc:
        dataclasses.replace(SPEC, **change).validate()
    assert message in str(exc.value)


def test_unknown_mode():
    with pytest.raises(ValueError, match="mode='mixed'"):
        bursty.eval_batch(jax.random.PRNGKey(0), BANK, SPEC, 2, "mixed", 1)


def test_distinct_draws_are_distinct_and_uniform():
    draw = jax.jit(jax.vmap(lambda k: bursty.distinct(k, 10, 4)))
    x = np.asarray(draw(jax.random.split(jax.random.PRNGKey(0), 20000)))
    assert x.min() >= 0 and x.max() < 10
    assert all(len(set(r)) == 4 for r in x[:2000])
    # every position is uniform over the 10 values (20000 draws: sd of a count ~ 42)
    for j in range(4):
        counts = np.bincount(x[:, j], minlength=10)
        assert np.abs(counts - 2000).max() < 250, counts
    # a full draw is a permutation
    full = np.asarray(bursty.distinct(jax.random.PRNGKey(1), 7, 7))
    assert sorted(full) == list(range(7))


def test_test_shots_and_the_context_guess_baseline():
    assert bursty.test_shots(SPEC, 4) == [0, 1, 2, 4]
    assert bursty.test_shots(dataclasses.replace(SPEC, exemplars=6, burstiness=3), 6) == [
        0, 1, 2, 3, 6]
    assert bursty.context_guess(SPEC, 2) == 0.25
