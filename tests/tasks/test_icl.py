"""In-context-learning task families: contracts, splits, on-device batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from selftaught.core.errors import ConfigError
from selftaught.tasks.base import check_task
from selftaught.tasks.icl import (
    BaseAdditionFamily,
    BaseAdditionTask,
    LinearClassFamily,
    SequentialParityFamily,
    SequentialParityTask,
    SymbolRuleFamily,
    context_inputs,
    knn_predict,
    linear_pairs,
    logistic_fit,
    logistic_predict,
    pair_inputs,
    pair_is_test,
    shot_baselines,
    subset_is_test,
)


def _members(task):
    return np.isin(np.arange(task.n_symbols), list(task.subset))


def test_symbol_rule_instances_contract_and_splits():
    fam = SymbolRuleFamily(n_symbols=16, prior=0.5)
    for split in ("train", "test"):
        for task in fam.instances(split, 5, seed=3):
            check_task(task, "symbol-rule")
            assert subset_is_test(_members(task)) == (split == "test")
            a, b = (int(c) for c in task.labels)
            assert pair_is_test(a, b) == (split == "test")
            assert len(task.subset) == 8 and not fam._excluded(_members(task))
            train = task.problems("train", 50, seed=1)
            test = task.problems("test", 10, seed=1)
            assert not {p.id for p in train} & {p.id for p in test}
            assert task.problems("train", 20, seed=1) == train[:20]  # prefix-stable
            for p in train:
                assert task.verify(p, task.reference_solution(p))
                assert p.answer == task.labels[int(p.operands[1] in task.subset)]
    flipped, default = fam.flipped(), fam.default()
    p = default.problems("test", 5, 0)
    assert all(flipped.make_problem(q.operands).answer != q.answer for q in p)
    abstract = fam.abstract()
    assert pair_is_test(int(abstract.labels[0]), int(abstract.labels[1]))
    assert not default.verify(p[0], "") and not default.verify(p[0], "xyz")


def test_symbol_rule_shots_repeat_only_after_the_train_split_runs_out():
    task = SymbolRuleFamily(n_symbols=16, prior=0.5).default()
    with pytest.raises(ConfigError, match="train split of symbol-rule has"):
        task.problems("train", 512, seed=4)
    shots = task.shots(512, seed=4)
    n = len({p.id for p in shots})  # every train input, then repeats of them
    assert len(shots) == 512 and 150 < n < 256
    assert len({p.id for p in shots[:n]}) == n and shots[:n] == task.problems("train", n, 4)
    assert not {p.id for p in shots} & {p.id for p in task.problems("test", 20, seed=4)}
    assert task.shots(40, seed=4) == shots[:40] and task.shots(512, seed=4) == shots
    assert task.shots(512, seed=5) != shots


def test_symbol_rule_jax_batch_is_a_rule_per_row():
    fam = SymbolRuleFamily(n_symbols=16, prior=0.5)
    uv, lab = jax.device_get(fam.jax_batch(jax.random.PRNGKey(0), 64, 200))
    assert uv.shape == (64, 200, 2) and lab.shape == (64, 200)
    n_prior = 0
    for b in range(64):
        labels = sorted(set(lab[b].tolist()))
        assert len(labels) == 2 and all(16 <= v < 26 for v in labels)
        member = np.zeros(16, bool)
        for u in range(16):  # the label is a function of the second symbol alone
            seen = set(lab[b][uv[b, :, 1] == u].tolist())
            assert len(seen) <= 1
            member[u] = seen == {max(labels)} if labels != [16, 17] else seen == {17}
        pair = tuple(v - 16 for v in labels)
        if pair == (0, 1) and np.array_equal(member, np.arange(16) < 8):
            n_prior += 1
            continue
        assert not subset_is_test(member) and not fam._excluded(member)
    assert 20 <= n_prior <= 44  # prior = 0.5 of 64 rows


def test_linear_class_labels_follow_the_hidden_plane():
    fam = LinearClassFamily(d=16, levels=8)
    task = fam.instances("test", 1, seed=0)[0]
    check_task(task, "linear-class")
    probs = task.problems("train", 200, seed=0)
    x = task.features(probs)
    np.testing.assert_array_equal([int(p.answer) for p in probs], (x @ task.w > 0).astype(int))
    assert all(task.verify(p, p.answer) for p in probs)
    bins, lab = jax.device_get(fam.jax_batch(jax.random.PRNGKey(1), 4, 100))
    assert bins.shape == (4, 100, 16) and bins.min() >= 0 and bins.max() < 8
    assert set(np.unique(lab)) <= {8, 9} and 0.2 < (lab == 9).mean() < 0.8
    assert not np.array_equal(fam.instances("train", 1, 0)[0].w, task.w)


@pytest.mark.parametrize("base", [3, 7, 10])
def test_base_addition_rationale_and_verifier(base):
    task = BaseAdditionTask(base=base, digits=3)
    check_task(task, "base-addition")
    rng = np.random.default_rng(0)
    for p in task.problems("train", 30, seed=base):
        a, b = p.operands
        assert int(p.answer, base) == a + b
        ref = task.reference_solution(p)
        assert task.verify(p, ref) and task.verify(p, task.human_solution(p, rng))
        assert len(ref) <= task.max_solution_len
        assert len(task.prompt(p)) <= task.max_prompt_len
        assert set(ref) - set("=+\n ") <= set("0123456789"[:base])  # digits of the base
        assert not task.verify(p, ref[: ref.rfind("=")] + "=" + str(int(p.answer) + 1))
    assert not set(p.id for p in task.problems("train", 30, 0)) & set(
        p.id for p in task.problems("test", 3, 0))
    fam = BaseAdditionFamily()
    assert {t.base for t in fam.instances("test", 5, 0)} == {7}
    assert {t.base for t in fam.instances("train", 40, 0)} <= {5, 6, 8, 9, 10}
    with pytest.raises(ConfigError, match="base must be in"):
        BaseAdditionTask(base=11)


def test_sequential_parity():
    task = SequentialParityTask(n_bits=6, positions=(0, 2, 5))
    check_task(task, "sequential-parity")
    for p in task.problems("train", 20, seed=0):
        bits = np.array(p.operands) * np.isin(np.arange(6), [0, 2, 5])
        assert p.answer == "".join(str(v % 2) for v in np.cumsum(bits))
        assert task.verify(p, task.reference_solution(p))
        assert not task.verify(p, "=" + p.answer[:-1]) and not task.verify(p, None)
    fam = SequentialParityFamily(n_bits=6)
    for split in ("train", "test"):
        for t in fam.instances(split, 4, 0):
            code = sum(2**q for q in t.positions)
            assert (code % 10 == 0) == (split == "test")


def test_knn_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y, q = rng.integers(0, 3, (12, 3)).astype(float), rng.integers(0, 2, 12), rng.normal(
        size=(20, 3))
    for k in (1, 2, 4, 5, 30):
        want = []
        for point in q:
            dist = [float(np.sum((point - xi) ** 2)) for xi in x]
            order = sorted(range(len(x)), key=lambda i: (dist[i], i))[:min(k, len(x))]
            votes = np.mean([y[i] for i in order])
            want.append(y[order[0]] if votes == 0.5 else int(votes > 0.5))
        np.testing.assert_array_equal(knn_predict(x, y, q, k), want)


@pytest.mark.parametrize("n, d", [(1, 16), (8, 4), (40, 3)])
def test_logistic_fit_is_the_penalised_optimum(n, d):
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, d))
    y = (x @ rng.normal(size=d) > 0).astype(int)  # separable: only the penalty bounds w
    l2 = 0.5
    w = logistic_fit(x, y, l2)
    X, s = np.c_[x, np.ones(n)], 2 * y - 1

    def objective(v):
        z = X @ v
        return np.logaddexp(0, -s * z).sum() + 0.5 * l2 * v @ v, X.T @ (
            -s / (1 + np.exp(s * z))) + l2 * v

    ref = scipy.optimize.minimize(objective, np.zeros(d + 1), jac=True, method="BFGS",
                                  options={"gtol": 1e-10})
    np.testing.assert_allclose(w, ref.x, atol=1e-5)
    assert np.abs(objective(w)[1]).max() < 1e-8
    np.testing.assert_array_equal(logistic_predict(w, x), (X @ w > 0).astype(int))


def test_linear_pairs_layout_labels_and_curriculum():
    d, n, d_eff = 6, 9, 4
    b = jax.jit(linear_pairs, static_argnums=(1, 2, 3))(jax.random.PRNGKey(0), 5, n, d, d_eff)
    x, y, w, inputs = (np.asarray(b[k]) for k in ("x", "y", "w", "inputs"))
    assert inputs.shape == (5, n, d + 1) and set(np.unique(y)) <= {-1.0, 1.0}
    np.testing.assert_array_equal(y, np.where(np.einsum("bnd,bd->bn", x, w) > 0, 1.0, -1.0))
    assert not x[..., d_eff:].any() and not w[:, d_eff:].any()  # the curriculum's zeros
    assert np.all(x[..., :d_eff] != 0) and np.all(w[:, :d_eff] != 0)
    np.testing.assert_array_equal(inputs[..., :d], x)
    np.testing.assert_array_equal(inputs[:, 0, d], 0.0)  # token 0: no label yet
    np.testing.assert_array_equal(inputs[:, 1:, d], y[:, :-1])  # token i: y_{i-1}, never y_i
    np.testing.assert_array_equal(pair_inputs(x, y), inputs)
    carried = np.asarray(pair_inputs(x, y, carry=True))  # [x_i, x_{i-1}, y_{i-1}]
    assert carried.shape == (5, n, 2 * d + 1)
    np.testing.assert_array_equal(carried[..., :d], x)
    np.testing.assert_array_equal(carried[:, 1:, d:2 * d], x[:, :-1])
    np.testing.assert_array_equal(carried[:, 1:, -1], y[:, :-1])
    assert not carried[:, 0, d:].any()
    # a fresh plane per sequence, balanced labels
    assert len({tuple(r) for r in w.round(6)}) == 5
    big = linear_pairs(jax.random.PRNGKey(1), 200, 32, d, d)
    assert abs(float(np.mean(np.asarray(big["y"]) > 0)) - 0.5) < 0.05


@pytest.mark.parametrize("carry", [True, False])
def test_context_tokens_and_the_unsupervised_format(carry):
    """k shots then M queries: shot tokens are pair_inputs' tokens, each query token is
    [q_j, x_{k-1}, y_{k-1}] ([q_j, y_{k-1}] without carry); unlabelled shots (y = 0, the
    'no label yet' value of token 0) give [x_i, x_{i-1}, 0] and queries [q_j, x_{k-1}, 0]."""
    rng = np.random.default_rng(0)
    N, k, M, d = 2, 3, 4, 5
    x, q = rng.normal(size=(N, k, d)), rng.normal(size=(N, M, d))
    y = rng.choice([-1.0, 1.0], size=(N, k))
    t = np.asarray(context_inputs(jnp.asarray(x), jnp.asarray(y), jnp.asarray(q), carry))
    assert t.shape == (N, k + M, 2 * d + 1 if carry else d + 1)
    np.testing.assert_allclose(t[:, :k], pair_inputs(jnp.asarray(x), jnp.asarray(y), carry),
                               atol=1e-6)
    for j in range(M):
        want = [q[:, j], *([x[:, k - 1]] if carry else []), y[:, k - 1:k]]
        np.testing.assert_allclose(t[:, k + j], np.concatenate(want, -1), atol=1e-6)
    u = np.asarray(context_inputs(jnp.asarray(x), jnp.zeros((N, k)), jnp.asarray(q), carry))
    np.testing.assert_array_equal(u[..., -1], 0.0)  # no label anywhere
    np.testing.assert_allclose(u[:, :k, :d], x, atol=1e-6)
    if carry:
        np.testing.assert_allclose(u[:, 1:k, d:2 * d], x[:, :k - 1], atol=1e-6)
        np.testing.assert_allclose(u[:, k:, d:2 * d], np.repeat(x[:, k - 1:k], M, 1), atol=1e-6)
    z = np.asarray(context_inputs(jnp.zeros((N, 0, d)), jnp.zeros((N, 0)), jnp.asarray(q),
                                  carry))
    np.testing.assert_allclose(z[..., :d], q, atol=1e-6)
    np.testing.assert_array_equal(z[..., d:], 0.0)  # zero shots: [q, 0, 0]


def test_shot_baselines_score_the_queries_with_models_fitted_on_the_shots():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    x[:, 0] += np.where(rng.random(40) < 0.5, -4.0, 4.0)  # separable along coordinate 0
    y = (x[:, 0] > 0).astype(int)
    q = rng.normal(size=(25, 3))
    q[:, 0] += np.where(rng.random(25) < 0.5, -4.0, 4.0)
    qy = (q[:, 0] > 0).astype(int)
    acc = shot_baselines(x, y, q, qy, l2=0.1, knn=3)
    assert acc == {"logistic": 1.0, "knn": 1.0}
    # the queries' labels flipped: every answer is now wrong, for both baselines
    assert shot_baselines(x, y, q, 1 - qy, l2=0.1, knn=3) == {"logistic": 0.0, "knn": 0.0}
    # 1-NN on queries that are the shots themselves returns each shot's own label, even
    # for random labels that no plane separates; logistic regression cannot fit those
    noise = rng.integers(0, 2, 40)
    own = shot_baselines(x, noise, x, noise, l2=0.1, knn=1)
    assert own["knn"] == 1.0 and own["logistic"] < 1.0
    assert set(shot_baselines(x, y, q, qy, l2=0.1)) == {"logistic"}  # no k: no kNN
    one = shot_baselines(x[:5], y[:5], q[:1], qy[:1], l2=0.1, knn=5)  # one query: 0 or 1
    assert set(one.values()) <= {0.0, 1.0}
