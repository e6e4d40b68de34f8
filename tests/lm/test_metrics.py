import dataclasses
import itertools

import numpy as np
import pytest

from selftaught.lm.metrics import (
    GeneralisationGate,
    gate_verdict,
    maj_at_k,
    majority_vote,
    pass_at_k,
)


def brute_pass_at_k(n, c, k):
    correct = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return np.mean([any(correct[i] for i in s) for s in subsets])


@pytest.mark.parametrize("n", [1, 3, 6, 8])
def test_pass_at_k_matches_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert pass_at_k(n, c, k) == pytest.approx(brute_pass_at_k(n, c, k), abs=1e-12)


def test_pass_at_k_vectorised_and_large_n():
    n, c = np.array([10, 10, 200]), np.array([0, 3, 1])
    out = pass_at_k(n, c, 2)
    assert out.shape == (3,)
    assert out[0] == 0.0
    assert out[1] == pytest.approx(1 - (7 * 6) / (10 * 9))
    assert out[2] == pytest.approx(2 / 200)
    assert pass_at_k(10, 4, 1) == pytest.approx(0.4)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_majority_vote_ties_first_occurrence_and_none():
    assert majority_vote(["b", "a", "a", "b", None, None, None]) == "b"
    assert majority_vote(["c", "a", "a"]) == "a"
    assert majority_vote([None, None]) is None
    assert majority_vote([]) is None


def test_maj_at_k_averages_over_all_k_subsets():
    answers = [["1", "2", "2"], ["5", None, "5"], [None, None, None]]
    assert maj_at_k(answers, ["2", "5", "0"], k=3) == pytest.approx(2 / 3)
    # k=1: the fraction of correct samples (2/3, 2/3, 0), not the first sample's verdict
    assert maj_at_k(answers, ["2", "5", "0"], k=1) == pytest.approx(4 / 9)
    # k=2 by hand: {1,2}: tie -> "1" (earliest) wrong; {1,2'}: wrong; {2,2'}: right -> 1/3;
    # {5,None}: 5, {5,5}: 5, {None,5}: 5 -> 1; none -> 0
    assert maj_at_k(answers, ["2", "5", "0"], k=2) == pytest.approx((1 / 3 + 1) / 3)


def test_maj_at_k_matches_enumeration_and_sampling_estimates_it():
    rng = np.random.default_rng(1)
    answers = [[str(v) for v in rng.integers(0, 3, size=9)] for _ in range(5)]
    targets = ["0", "1", "2", "0", "1"]
    for k in (1, 3, 4, 9):
        brute = np.mean([
            np.mean([majority_vote([a[i] for i in s]) == t
                     for s in itertools.combinations(range(9), k)])
            for a, t in zip(answers, targets)])
        assert maj_at_k(answers, targets, k) == pytest.approx(brute)
        sampled = maj_at_k(answers, targets, k, max_subsets=1 if k == 9 else 40)
        assert sampled == pytest.approx(brute, abs=0.12)
    with pytest.raises(ValueError, match="need 1 <= k <= n"):
        maj_at_k(answers, targets, 10)


# ---------------------------------------------------------------- Best-of-k (V-STaR)
from selftaught.lm.metrics import best_of_k  # noqa: E402


def _brute_best_of_k(scores, correct, k):
    """Mean over every k-subset of the correctness of its top-scoring member (ties: lower
    index wins, as in a stable sort)."""
    vals = []
    for sub in itertools.combinations(range(len(scores)), k):
        best = max(sub, key=lambda j: (scores[j], -j))
        vals.append(correct[best])
    return np.mean(vals)


@pytest.mark.parametrize("n", [1, 4, 7, 9])
def test_best_of_k_matches_brute_force_enumeration(n):
    rng = np.random.default_rng(n)
    for trial in range(6):
        scores = rng.integers(0, 4, n).astype(float) if trial % 2 else rng.normal(size=n)
        correct = rng.random(n) < 0.4
        for k in range(1, n + 1):
            assert best_of_k(scores, correct, k) == pytest.approx(
                _brute_best_of_k(scores, correct, k), abs=1e-12)
    # k = 1 is the mean correctness; k = N is the correctness of the single top sample
    scores, correct = rng.normal(size=(3, n)), rng.random((3, n)) < 0.5
    np.testing.assert_allclose(best_of_k(scores, correct, 1), correct.mean(1))
    np.testing.assert_allclose(best_of_k(scores, correct, n),
                               correct[np.arange(3), scores.argmax(1)])
    with pytest.raises(ValueError, match="1 <= k <= N"):
        best_of_k(scores, correct, n + 1)


def test_cluster_rerank_top_clusters_aggregates_and_ties():
    from selftaught.lm.metrics import cluster_rerank

    answers = ["7", "7", "7", "3", "3", "9", None]
    scores = [0.1, 0.1, 0.1, 0.2, 0.2, 0.9, 5.0]
    # re-ranking all: "9" has the best score and total (0.9 > "3" 0.4 > "7" 0.3); keeping
    # only the 2 largest clusters drops "9", and the unparsable sample never wins
    assert cluster_rerank(answers, scores, None, "max") == "9"
    assert cluster_rerank(answers, scores, None, "sum") == "9"
    assert cluster_rerank(answers, scores, 2, "sum") == "3"
    assert cluster_rerank(answers, scores, 2, "mean") == "3"
    assert cluster_rerank(answers, scores, 1, "sum") == "7"  # top-1 cluster = majority vote
    assert cluster_rerank(answers, [1.0] * 7, None, "sum") == majority_vote(answers)
    assert cluster_rerank(["5", "6"], [1.0, 1.0], None, "mean") == "5"  # tie: first seen
    assert cluster_rerank([None, None], [1.0, 2.0]) is None
    with pytest.raises(ValueError, match="aggregate"):
        cluster_rerank(["1"], [1.0], None, "median")


def test_rerank_at_k_matches_enumeration_and_its_special_cases():
    from selftaught.lm.metrics import cluster_rerank, ranking_accuracy, rerank_at_k

    rng = np.random.default_rng(3)
    n = 7
    answers = [[None if rng.random() < 0.15 else str(v) for v in rng.integers(0, 3, n)]
               for _ in range(4)]
    scores = rng.random((4, n))
    targets = ["0", "1", "2", "1"]
    for k in (1, 3, 7):
        for top, agg in ((None, "max"), (None, "sum"), (2, "mean"), (1, "sum")):
            brute = np.mean([np.mean([
                cluster_rerank([a[i] for i in sub], [sc[i] for i in sub], top, agg) == t
                for sub in itertools.combinations(range(n), k)])
                for a, sc, t in zip(answers, scores, targets)])
            got = rerank_at_k(answers, scores, targets, k, top_clusters=top, aggregate=agg)
            assert got == pytest.approx(brute)
        # the largest cluster alone is the majority vote, on the same (sampled) subsets
        assert rerank_at_k(answers, scores, targets, k, top_clusters=1, max_subsets=5,
                           seed=9) == pytest.approx(maj_at_k(answers, targets, k,
                                                             max_subsets=5, seed=9))
    # with every answer parsable and distinct scores, re-ranking all = Best-of-k
    answers = [[str(v) for v in rng.integers(0, 4, n)] for _ in range(3)]
    correct = np.array([[x == "1" for x in a] for a in answers])
    for k in (1, 2, 5):
        assert rerank_at_k(answers, scores[:3], ["1"] * 3, k, aggregate="max") == \
            pytest.approx(best_of_k(scores[:3], correct, k).mean())
    with pytest.raises(ValueError, match="aggregate"):
        rerank_at_k(answers, scores[:3], ["1"] * 3, 2, aggregate="median")
    # ranking accuracy: per-problem pairs counted, ties 1/2, problems without both skipped
    sc = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.3], [1.0, 2.0, 3.0]])
    ok = np.array([[True, False, False], [True, False, True], [True, True, True]])
    assert ranking_accuracy(sc, ok) == pytest.approx((2 + 0.5 + 1) / 4)
    assert np.isnan(ranking_accuracy(sc[2:], ok[2:]))


def test_k_grid_powers_of_two_and_n():
    from selftaught.lm.metrics import k_grid

    assert k_grid(1) == [1] and k_grid(16) == [1, 2, 4, 8, 16]
    assert k_grid(6) == [1, 2, 4, 6] and k_grid(9) == [1, 2, 4, 8, 9]
    assert all(k_grid(n) == sorted({*(2**i for i in range(8) if 2**i < n), n})
               for n in range(1, 100))


# ---------------------------------------------------------------- generalisation gate
def test_gate_gap_is_the_paired_mean_over_seeds_and_passes_strictly_below_the_threshold():
    g = GeneralisationGate("G", [30.0, 40.0, 50.0], [20.0, 36.0, 44.0], max_gap=7.0)
    gap = g.gap
    assert gap[0] == pytest.approx((10 + 4 + 6) / 3) and gap.n == 3
    assert gap[1] <= gap[0] <= gap[2] and 4.0 <= gap[1] and gap[2] <= 10.0
    assert g.passed  # 6.67 < 7
    assert not dataclasses.replace(g, max_gap=20 / 3).passed  # the threshold itself fails
    assert "train 40% vs fresh 33% sample accuracy, gap 6.7 points" in \
        dataclasses.replace(g, max_gap=5.0).why
    # fresh above train (no memorisation) always passes
    assert GeneralisationGate("G", [10.0], [40.0], max_gap=1.0).passed


def test_gate_verdict_names_only_the_failing_generators():
    ok = GeneralisationGate("G_sft", [21.0, 23.0], [20.0, 20.0], 5.0)
    bad = GeneralisationGate("G_1", [60.0, 70.0], [20.0, 10.0], 5.0)
    passed, why, md = gate_verdict([ok, bad], [3, 4])
    assert not passed and "G_1 memorises" in why and "G_sft" not in why
    assert "gap 50.0 points" in why
    rows = [r for r in md if r.startswith("| G_")]
    assert rows[0].startswith("| G_sft | 21.0 / 20.0 | 23.0 / 20.0 | 2.0 [")
    assert "passes" in rows[0] and "**fails**" in rows[1]
    assert "seed 3 train / fresh" in md[2] and "seed 4 train / fresh" in md[2]
    assert gate_verdict([ok], [3, 4])[:2] == (True, "")


def test_gate_needs_paired_values():
    with pytest.raises(ValueError, match="need paired per-seed accuracies"):
        GeneralisationGate("G", [1.0, 2.0], [1.0], 5.0)


def test_pooled_auroc_equals_the_pairwise_count_with_ties_half():
    """lm.metrics.auroc (rank formula, O(n log n)) = the brute-force fraction of
    (positive, negative) pairs ordered right, ties 1/2; NaN without both classes."""
    from selftaught.lm.metrics import auroc

    rng = np.random.default_rng(3)
    for _ in range(5):
        s = rng.integers(0, 6, 40).astype(float)  # many ties
        y = rng.random(40) < 0.4
        d = s[y][:, None] - s[~y][None, :]
        want = (np.sum(d > 0) + 0.5 * np.sum(d == 0)) / d.size
        assert auroc(s, y) == pytest.approx(want, rel=1e-12)
    assert np.isnan(auroc([1.0, 2.0], [True, True]))
    assert auroc([0.1, 0.9], [False, True]) == 1.0 and auroc([0.9, 0.1], [False, True]) == 0.0


def test_per_problem_values_are_the_problems_own_chances_and_average_to_the_scalar():
    """per_problem=True: each problem's chance over its subsets (by hand for maj@2; the
    same subsets as the scalar), whose mean is the scalar estimate."""
    from selftaught.lm.metrics import rerank_at_k

    answers = [["1", "2", "2"], ["5", None, "5"], [None, None, None]]
    targets = ["2", "5", "0"]
    per = maj_at_k(answers, targets, k=2, per_problem=True)
    np.testing.assert_allclose(per, [1 / 3, 1.0, 0.0])
    rng = np.random.default_rng(3)
    answers = [[str(v) for v in rng.integers(0, 4, size=8)] for _ in range(6)]
    scores = rng.normal(size=(6, 8))
    targets = ["0", "1", "2", "3", "0", "1"]
    for k in (1, 3, 8):
        kw = dict(max_subsets=5, seed=k)
        per = rerank_at_k(answers, scores, targets, k, top_clusters=2, per_problem=True, **kw)
        assert per.shape == (6,) and ((per >= 0) & (per <= 1)).all()
        assert per.mean() == pytest.approx(rerank_at_k(answers, scores, targets, k,
                                                       top_clusters=2, **kw))
        assert maj_at_k(answers, targets, k, per_problem=True, **kw).mean() == pytest.approx(
            maj_at_k(answers, targets, k, **kw))
