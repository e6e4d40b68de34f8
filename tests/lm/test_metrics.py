import itertools

import numpy as np
import pytest

from selftaught.lm.metrics import maj_at_k, majority_vote, pass_at_k


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


def test_maj_at_k_uses_first_k():
    answers = [["1", "2", "2"], ["5", None, "5"], [None, None, None]]
    assert maj_at_k(answers, ["2", "5", "0"], k=3) == pytest.approx(2 / 3)
    assert maj_at_k(answers, ["2", "5", "0"], k=1) == pytest.approx(1 / 3)
