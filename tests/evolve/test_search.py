import numpy as np
import pytest

from selftaught.core.errors import UnknownNameError
from selftaught.evolve import ops
from selftaught.evolve.discriminator import Discriminator, graph_arrays, guided_mutation
from selftaught.evolve.hashing import FitnessCache, FunctionalHasher
from selftaught.evolve.program import (
    BatchInterpreter,
    Space,
    random_program,
    validate,
)
from selftaught.evolve.search import (
    crowding_distance,
    evaluations_to_reach,
    non_dominated_sort,
    nsga2,
    nsga2_select,
    regularized_evolution,
)

SR = Space(inputs=(("x", ops.S),), ops=ops.SYMREG_OPS, num_nodes=6)

POINTS = np.array([[1, 5], [2, 4], [3, 3], [2, 2], [1, 1], [4, 1], [0, 0]], float)


def test_non_dominated_sort_on_hand_made_points():
    fronts = [sorted(f.tolist()) for f in non_dominated_sort(POINTS)]
    assert fronts == [[0, 1, 2, 5], [3], [4], [6]]
    # duplicates share a front; a single objective gives a total order
    assert [f.tolist() for f in non_dominated_sort(np.array([[1.0], [3.0], [3.0], [2.0]]))] == [
        [1, 2], [3], [0]]


def test_crowding_distance_by_hand():
    front = POINTS[[0, 1, 2, 5]]  # (1,5) (2,4) (3,3) (4,1); ranges 3 and 4
    d = crowding_distance(front)
    assert np.isinf(d[0]) and np.isinf(d[3])
    np.testing.assert_allclose(d[1], 2 / 3 + 2 / 4)
    np.testing.assert_allclose(d[2], 2 / 3 + 3 / 4)
    assert sorted(nsga2_select(POINTS, 3).tolist()) == [0, 2, 5]
    assert sorted(nsga2_select(POINTS, 5).tolist()) == [0, 1, 2, 3, 5]


def _sr_fitness(space, target_fn):
    x = np.linspace(-1, 1, 20).astype(np.float32)
    run = BatchInterpreter(space)
    y = target_fn(x)

    def evaluate(programs):
        out = run(programs, {"x": x})
        return -np.sqrt(np.mean((out - y) ** 2, axis=1))

    return evaluate


def test_regularized_evolution_solves_a_small_regression_and_counts_evaluations():
    evaluate = _sr_fitness(SR, lambda x: x**2 + x)
    cache = FitnessCache(FunctionalHasher(SR))
    res = regularized_evolution(SR, evaluate, cache, rng=np.random.default_rng(0),
                                population_size=20, tournament_size=5, max_evaluations=400,
                                batch_size=10)
    n = np.asarray(res.real_evals)
    assert np.all(np.diff(n) >= 0) and n[-1] == cache.real_evaluations
    assert cache.real_evaluations >= 400 and cache.hits > 0
    init_best = max(ind.fitness for ind in res.history[:20])
    assert res.best.fitness > init_best
    assert res.best.fitness > -1e-4  # x^2 + x found exactly
    k = evaluations_to_reach(res, -1e-4)
    curve = res.best_curve(cache.real_evaluations)
    assert curve[k - 1] >= -1e-4 and (k == 1 or curve[k - 2] < -1e-4)
    # a success past the budget is not a success within it (censored like a failure)
    assert evaluations_to_reach(res, -1e-4, budget=k) == k
    assert evaluations_to_reach(res, -1e-4, budget=k - 1) is None
    assert np.all(np.diff(curve[np.isfinite(curve)]) >= 0)
    validate(SR, res.best.program)


def test_nsga2_keeps_a_pareto_front_of_programs():
    f1 = _sr_fitness(SR, lambda x: x**2)
    f2 = _sr_fitness(SR, lambda x: np.sin(x))

    def evaluate(programs):
        return np.stack([f1(programs), f2(programs)], axis=1)

    cache = FitnessCache(FunctionalHasher(SR))
    res = nsga2(SR, evaluate, cache, rng=np.random.default_rng(0), population_size=16,
                generations=8)
    F = res.objectives
    assert F.shape == (16, 2) and len(res.front) >= 1
    for i in res.front:  # nobody in the population dominates a front member
        assert not any(np.all(F[j] >= F[i]) and np.any(F[j] > F[i]) for j in range(16))


def _uses_exp(p):
    return any(p.nodes[i].op == "exp" for i in p.used_nodes())


def test_nsga2_history_and_generation_hook_and_failed_candidates():
    f1 = _sr_fitness(SR, lambda x: x**2)

    def evaluate(programs):
        a = np.asarray(f1(programs), np.float64)
        # candidates using exp "crash" (NaN objectives): scored as failures, never kept
        bad = np.array([_uses_exp(p) for p in programs])
        out = np.stack([a, -np.abs(a + 1.0)], axis=1)
        out[bad] = np.nan
        return out

    seen = []
    cache = FitnessCache(FunctionalHasher(SR))
    res = nsga2(SR, evaluate, cache, rng=np.random.default_rng(1), population_size=12,
                generations=4, on_generation=lambda g, pop, F: seen.append((g, len(pop),
                                                                             F.copy())))
    assert [g for g, _, _ in seen] == [0, 1, 2, 3, 4] and all(n == 12 for _, n, _ in seen)
    assert len(res.history) == 12 * 5  # initial population + 4 generations of children
    assert any(not np.all(np.isfinite(f)) for _, f in res.history)  # some did fail
    np.testing.assert_array_equal(seen[-1][2], res.objectives)
    front = res.objectives[res.front]
    assert np.all(front > -1e29)  # no failure on the front
    assert not any(_uses_exp(res.population[i]) for i in res.front)


def _synthetic_fitness(p):
    used = p.used_nodes()
    return (sum(p.nodes[i].op in ("sin", "cos") for i in used)
            - 0.5 * sum(p.nodes[i].op == "exp" for i in used))


def test_discriminator_learns_a_synthetic_ordering_and_is_antisymmetric():
    rng = np.random.default_rng(0)
    progs = [random_program(SR, rng) for _ in range(500)]
    f = np.array([_synthetic_fitness(p) for p in progs])
    d = Discriminator(SR, seed=0, capacity=512, dim=32, layers=2, min_programs=400)
    d.add(progs[:300], f[:300])
    assert not d.ready  # fewer than min_programs
    d.add(progs[300:350], f[300:350])
    before = d.pairwise_accuracy(progs[350:], f[350:])
    assert np.isnan(d.train(5))
    d.min_programs = 350
    assert d.ready
    d.train(80)
    after = d.pairwise_accuracy(progs[350:], f[350:])
    assert after > 0.85 and after > before + 0.2
    p_ab = d.prob_better(progs[:10], progs[10:20])
    p_ba = d.prob_better(progs[10:20], progs[:10])
    np.testing.assert_allclose(p_ab + p_ba, 1.0, atol=1e-5)
    # guided mutation proposes valid children the discriminator prefers on average
    parents = progs[350:382]
    guided = guided_mutation(SR, d, proposals=6)(parents, np.random.default_rng(1))
    for c in guided:
        validate(SR, c)
    gain = np.mean([_synthetic_fitness(c) - _synthetic_fitness(p)
                    for c, p in zip(guided, parents)])
    assert gain > 0.3


def test_graph_arrays_encode_edges_by_argument_position():
    from selftaught.evolve.program import Node, Program

    p = Program(("x",), (Node("sin", (0,)), Node("sub", (1, 0))))
    g = graph_arrays(SR, [p])
    n_in = 1
    assert g.adj[0, 0, n_in + 1, 1] == 1 and g.adj[0, 1, n_in + 1, 0] == 1
    assert g.adj.sum() == 3 and g.mask[0].sum() == 3 and g.out[0] == 2
    assert g.labels[0, 0] == len(SR.ops) and g.labels[0, 1] == SR.ops.index("sin")


def test_novel_mutation_avoids_known_functions():
    from selftaught.evolve.search import novel_mutation, plain_mutation

    cache = FitnessCache(FunctionalHasher(SR))
    rng = np.random.default_rng(0)
    parents = [random_program(SR, rng) for _ in range(16)]
    known = [c for p in parents for c in plain_mutation(SR, 0.0)([p] * 8, rng)] + parents
    cache.evaluate(known, lambda ps: np.zeros(len(ps)))
    plain = plain_mutation(SR, 0.0)(parents, np.random.default_rng(1))
    novel = novel_mutation(SR, cache, tries=8, p_fresh=0.0)(parents, np.random.default_rng(1))
    assert cache.known(novel).mean() < cache.known(plain).mean()
    for c in novel:
        validate(SR, c)


def test_regression_predictor_learns_the_ordering_and_adaptive_mode_stops_early():
    rng = np.random.default_rng(0)
    progs = [random_program(SR, rng) for _ in range(400)]
    f = np.array([_synthetic_fitness(p) for p in progs])
    d = Discriminator(SR, seed=0, capacity=512, dim=32, layers=2, min_programs=300,
                      kind="regression")
    d.add(progs[:300], f[:300])
    before = d.pairwise_accuracy(progs[300:], f[300:])
    d.train(80)
    after = d.pairwise_accuracy(progs[300:], f[300:])
    assert after > 0.8 and after > before + 0.2
    # P(a > b) = sigmoid(pred(a) - pred(b)) is antisymmetric for the regressor as well
    np.testing.assert_allclose(d.prob_better(progs[:8], progs[8:16])
                               + d.prob_better(progs[8:16], progs[:8]), 1.0, atol=1e-5)
    # adaptive: a child stops at the first proposal the predictor does not prefer, so it
    # screens no more proposals than chain, and every accepted step was an improvement
    parents = progs[300:332]
    counts_a, counts_c = {}, {}
    guided_mutation(SR, d, proposals=6, mode="adaptive", counts=counts_a)(
        parents, np.random.default_rng(1))
    guided_mutation(SR, d, proposals=6, mode="chain", counts=counts_c)(
        parents, np.random.default_rng(1))
    assert counts_c["proposed"] == 6 * len(parents)
    assert counts_a["proposed"] < counts_c["proposed"]
    assert counts_a["proposed"] - counts_a["accepted"] <= len(parents)  # one failure each
    with pytest.raises(UnknownNameError, match="unknown predictor 'ranknet'"):
        Discriminator(SR, kind="ranknet")


def test_regularized_evolution_stops_when_asked():
    calls = []

    def evaluate(programs):
        calls.append(len(programs))
        return np.zeros(len(programs))

    cache = FitnessCache(FunctionalHasher(SR))
    res = regularized_evolution(SR, evaluate, cache, rng=np.random.default_rng(0),
                                population_size=10, tournament_size=3, max_evaluations=10_000,
                                batch_size=5, stop=lambda: len(calls) >= 4)
    # the initial population (2 batches) always runs; then 2 generations until stop() holds
    assert len(calls) == 4 and len(res.history) == 20
