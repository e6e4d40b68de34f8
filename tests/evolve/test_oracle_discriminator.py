"""The oracle-with-noise discriminator (controlled TPR / FPR) and the precision / p
arithmetic that predicts a screened search's gain per evaluation."""

import numpy as np
import pytest

from selftaught.core.errors import ConfigError
from selftaught.evolve import discriminator as disc
from selftaught.evolve.hashing import FitnessCache, FunctionalHasher
from selftaught.evolve.program import mutate, random_program
from selftaught.evolve.search import regularized_evolution
from selftaught.evolve.symreg import SymRegTask

TASK = SymRegTask("nguyen1", num_nodes=6)
SPACE = TASK.space
EVALUATE = TASK.build()


def _within_binomial(hits: int, n: int, rate: float, z: float = 4.5) -> bool:
    """|hits/n - rate| within z binomial standard errors (exact when rate is 0 or 1)."""
    return abs(hits / n - rate) <= z * np.sqrt(rate * (1 - rate) / n) + 1e-12


@pytest.mark.parametrize("tpr,fpr", [(0.9, 0.05), (0.3, 0.4), (1.0, 0.0), (0.0, 1.0)])
def test_oracle_answers_with_the_requested_tpr_and_fpr(tpr, fpr):
    rng = np.random.default_rng(0)
    parents = [random_program(SPACE, rng) for _ in range(200)]
    a = [mutate(SPACE, p, rng) for p in parents for _ in range(20)]
    b = [p for p in parents for _ in range(20)]
    fa, fb = EVALUATE(a), EVALUATE(b)
    truth = fa > fb + 1e-6
    assert 200 < truth.sum() < len(a) - 200  # both classes are well represented
    oracle = disc.OracleDiscriminator(EVALUATE, tpr=tpr, fpr=fpr, seed=1)
    np.testing.assert_array_equal(oracle.truly_better(a, b), truth)
    said = oracle.prob_better(a, b)
    assert set(np.unique(said)) <= {0.0, 1.0}
    tp, fp, fn, tn = disc.confusion(said > 0.5, truth)
    assert _within_binomial(tp, tp + fn, tpr) and _within_binomial(fp, fp + tn, fpr)
    # it is a fresh noisy answer per query, deterministic given the seed
    again = disc.OracleDiscriminator(EVALUATE, tpr=tpr, fpr=fpr, seed=1).prob_better(a, b)
    np.testing.assert_array_equal(said, again)


def test_oracle_rejects_rates_outside_the_unit_interval():
    with pytest.raises(ConfigError, match="TPR and FPR must lie in"):
        disc.OracleDiscriminator(EVALUATE, tpr=1.2, fpr=0.1)


def test_confusion_rates_and_precision_by_hand():
    said = np.array([1, 1, 0, 0, 1, 0, 0, 0], bool)
    truth = np.array([1, 0, 1, 0, 1, 0, 0, 0], bool)
    c = disc.confusion(said, truth)
    np.testing.assert_array_equal(c, [2, 1, 1, 4])
    r = disc.rates(c)
    assert r["p"] == 3 / 8 and r["tpr"] == 2 / 3 and r["fpr"] == 1 / 5 and r["precision"] == 2 / 3
    assert np.isnan(disc.rates([0, 0, 0, 5])["tpr"])
    # precision = p TPR / (p TPR + (1 - p) FPR): the same 2/3 from the rates
    np.testing.assert_allclose(disc.precision_of(3 / 8, 2 / 3, 1 / 5), 2 / 3)


def test_screened_improvement_rate_limits_and_monte_carlo():
    p, tpr, fpr = 0.05, 0.6, 0.03
    # one proposal: the child is evaluated whatever the discriminator says
    np.testing.assert_allclose(disc.screened_improvement_rate(p, tpr, fpr, 1), p)
    # an uninformative discriminator (TPR = FPR) gains nothing
    np.testing.assert_allclose(disc.screened_improvement_rate(p, 0.4, 0.4, 8), p)
    # many proposals: the rate tends to the precision (speed-up -> precision / p)
    np.testing.assert_allclose(disc.screened_improvement_rate(p, tpr, fpr, 500),
                               disc.precision_of(p, tpr, fpr), rtol=1e-6)
    # against a simulation of the filter rule: the first accepted novel proposal of R, else
    # the first novel one; no novel proposal: no evaluation (left out)
    rng = np.random.default_rng(0)
    n, R = 200_000, 8
    for novel in (1.0, 0.4):
        new = rng.random((n, R)) < novel
        better = (rng.random((n, R)) < p) & new
        said = np.where(better, rng.random((n, R)) < tpr, rng.random((n, R)) < fpr) & new
        first = np.where(said.any(1), said.argmax(1), new.argmax(1))
        sim = better[np.arange(n), first][new.any(1)].mean()
        ref = float(disc.screened_improvement_rate(p, tpr, fpr, R, novel))
        assert abs(sim - ref) < 4.5 * np.sqrt(ref * (1 - ref) / new.any(1).sum())


def test_guided_mutation_with_an_oracle_improves_at_the_predicted_rate():
    """One parent repeated: every proposal is an iid mutation with the same p, so the
    filter rule's improving rate must match `screened_improvement_rate`."""
    rng = np.random.default_rng(3)
    parent = max((random_program(SPACE, rng) for _ in range(50)),
                 key=lambda q: float(EVALUATE([q])[0]))
    f0 = float(EVALUATE([parent])[0])
    n = 1500
    plain = [mutate(SPACE, parent, rng, 0.05) for _ in range(4000)]
    p = float(np.mean(EVALUATE(plain) > f0 + 1e-6))
    assert 0.02 < p < 0.5
    for tpr, fpr in [(1.0, 0.0), (0.5, 0.1)]:
        oracle = disc.OracleDiscriminator(EVALUATE, tpr=tpr, fpr=fpr, seed=0)
        children = disc.guided_mutation(SPACE, oracle, proposals=4, mode="filter")(
            [parent] * n, np.random.default_rng(1))
        rate = float(np.mean(EVALUATE(children) > f0 + 1e-6))
        ref = float(disc.screened_improvement_rate(p, tpr, fpr, 4))
        # binomial error of the children plus that of the estimated p
        se = np.sqrt(ref * (1 - ref) / n) + 4 * np.sqrt(p * (1 - p) / 4000)
        assert abs(rate - ref) < 4.5 * se and rate > p


def test_regularized_evolution_records_each_childs_parent():
    cache = FitnessCache(FunctionalHasher(SPACE))
    res = regularized_evolution(SPACE, EVALUATE, cache, rng=np.random.default_rng(0),
                                population_size=16, tournament_size=4, max_evaluations=80,
                                batch_size=8)
    assert all(ind.parent == -1 for ind in res.history[:16])
    for ind in res.history[16:]:
        # the parent was alive when the child's batch was bred: one of the population's
        # newest 16 members (aging), so at most population + batch places back in history
        assert 0 <= ind.parent < ind.born and ind.born - ind.parent <= 16 + 8


def test_threshold_turns_a_probability_into_the_first_accepted_rule():
    """A discriminator whose P(child better) is 0.9 for truly better children and 0.6
    otherwise: threshold 0.75 makes it a perfect 0/1 screen (improving rate 1 - (1 - p)^R),
    threshold 0.95 accepts nothing (the first proposal is evaluated: rate p)."""

    class Graded(disc.OracleDiscriminator):
        def prob_better(self, a, b):
            return np.where(self.truly_better(a, b), 0.9, 0.6)

    rng = np.random.default_rng(3)
    parent = max((random_program(SPACE, rng) for _ in range(50)),
                 key=lambda q: float(EVALUATE([q])[0]))
    f0 = float(EVALUATE([parent])[0])
    p = float(np.mean(EVALUATE([mutate(SPACE, parent, rng, 0.05) for _ in range(4000)])
                      > f0 + 1e-6))
    n, grader = 1500, Graded(EVALUATE, tpr=1.0, fpr=0.0)
    for t, ref in [(0.75, 1 - (1 - p) ** 4), (0.95, p)]:
        children = disc.guided_mutation(SPACE, grader, proposals=4, mode="filter",
                                        threshold=lambda t=t: t)(
            [parent] * n, np.random.default_rng(1))
        rate = float(np.mean(EVALUATE(children) > f0 + 1e-6))
        se = np.sqrt(ref * (1 - ref) / n) + 4 * np.sqrt(p * (1 - p) / 4000)
        assert abs(rate - ref) < 4.5 * se


def test_tuned_threshold_separates_a_perfectly_ranked_set_of_pairs():
    """Validation pairs whose truly better children all score above every worse one: the
    chosen threshold accepts every better child and no worse one (TPR 1, FPR 0: the best
    predicted gain for any retry budget). 41 pairs: the 41 quantile candidates are the
    pairs' own P values, so the gap between the classes holds one."""
    rng = np.random.default_rng(0)
    pos, neg = rng.uniform(0.7, 0.9, 6), rng.uniform(0.05, 0.6, 35)
    P, y = np.r_[pos, neg], np.r_[np.ones(6, bool), np.zeros(35, bool)]
    t = disc.tuned_threshold(P, y, proposals=8)
    assert neg.max() < t <= pos.min()
    # an uninformative ranking (TPR = FPR at every threshold) gains nothing anywhere, so
    # the first candidate (the lowest P: accept everything) is kept
    P = np.r_[np.linspace(0, 1, 10), np.linspace(0, 1, 10)].repeat(3)
    y = np.r_[np.ones(10, bool), np.zeros(10, bool)].repeat(3)
    assert disc.tuned_threshold(P, y, proposals=8) == pytest.approx(P.min())


def test_tuned_threshold_maximises_the_predicted_gain_of_its_candidates():
    """Against a brute-force loop: the threshold is the quantile of P whose (TPR, FPR) on
    the pairs maximise `screened_improvement_rate`; with a small retry budget a high,
    precise threshold accepts too rarely and a lower one wins."""
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.08
    P = np.clip(np.where(y, rng.normal(0.55, 0.2, 400), rng.normal(0.35, 0.2, 400)), 0, 1)
    chosen = {}
    for R, novel in ((2, 1.0), (32, 0.4)):
        cands = np.unique(np.quantile(P, np.linspace(0, 1, 41)))
        gain = [float(disc.screened_improvement_rate(
            y.mean(), np.mean(P[y] >= t), np.mean(P[~y] >= t), R, novel)) for t in cands]
        chosen[R] = disc.tuned_threshold(P, y, proposals=R, novel=novel)
        assert chosen[R] == cands[int(np.argmax(gain))]
        assert max(gain) >= y.mean() - 1e-12  # never worse than accepting everything
    assert chosen[2] < chosen[32]  # more retries afford a more selective threshold


def test_tuned_threshold_needs_enough_pairs_of_both_classes():
    P = np.linspace(0, 1, 40)
    assert disc.tuned_threshold(P[:31], P[:31] > 0.5, proposals=8) is None  # < 32 pairs
    y = np.zeros(40, bool)
    y[-1] = True  # one better child: its rates would be noise
    assert disc.tuned_threshold(P, y, proposals=8) is None
    assert disc.tuned_threshold(P, ~y, proposals=8) is None
    y[-2] = True
    assert disc.tuned_threshold(P, y, proposals=8) is not None
