"""The fast path of guided evolution's oracle sweep gives the same searches as the
sequential reference path: program memo, cached program hashes, batched filter proposals,
the table-driven mutation and encoding; and Nguyen 9-12 (equations of x and y)."""

import dataclasses
import json
import pickle

import numpy as np
import pytest

from selftaught.evolve import discriminator as disc
from selftaught.evolve import ops
from selftaught.evolve.hashing import FitnessCache, FunctionalHasher, ProgramMemo, memoized
from selftaught.evolve.program import (
    Node,
    Program,
    Space,
    compile_program,
    encode,
    encode_many,
    get_op,
    mutate,
    random_program,
)
from selftaught.evolve.symreg import NGUYEN, TWO_VARIABLES, SymRegTask
from selftaught.recipes.guided_evolution import PRESETS, _run_one, tasks
from selftaught.recipes.guided_evolution.config import arm_names

TASK = SymRegTask("nguyen1", num_nodes=6)
SPACE = TASK.space


def _programs(space, n=60, seed=0):
    rng = np.random.default_rng(seed)
    ps = [random_program(space, rng) for _ in range(n)]
    return ps + [mutate(space, p, rng) for p in ps] + ps[:10]  # repeats included


def test_program_memo_computes_each_distinct_program_once_and_returns_the_same_rows():
    calls = []
    evaluate = TASK.build()

    def counted(programs):
        calls.append(len(programs))
        return evaluate(programs)

    progs = _programs(SPACE)
    fn = memoized(counted)
    np.testing.assert_array_equal(fn(progs), evaluate(progs))
    assert calls == [len(set(progs))]  # one call, each distinct program once
    np.testing.assert_array_equal(fn(progs[::-1]), evaluate(progs[::-1]))
    assert calls == [len(set(progs))] and fn.memo.hits == len(progs) + len(progs) - len(
        set(progs))
    # a full memo starts afresh instead of growing past max_items
    memo = ProgramMemo(max_items=5)
    memo(progs[:4], evaluate)
    memo(progs[4:8], evaluate)
    assert len(memo.table) == 4 and memo.misses == 8


def test_memoised_hasher_gives_the_same_digests():
    progs = _programs(SPACE, seed=1)
    plain, memo = FunctionalHasher(SPACE), FunctionalHasher(SPACE, memo=1000)
    assert memo.hash_many(progs) == plain.hash_many(progs)
    assert memo.hash_many(progs[:7]) == plain.hash_many(progs[:7])
    assert memo.memo.misses == len(set(progs))


def test_program_hash_is_the_dataclass_hash_cached_and_not_pickled():
    p = Program(("x",), (Node("mul", (0, 0)), Node("add", (1, 0))))
    q = Program(("x",), (Node("mul", (0, 0)), Node("add", (1, 0))))
    assert hash(p) == hash((p.inputs, p.nodes)) == hash(q) and p == q
    assert hash(p.nodes[0]) == hash(("mul", (0, 0)))
    r = pickle.loads(pickle.dumps(p))  # string hashes differ between processes
    assert r == p and "_hash" not in r.__dict__ and hash(r) == hash(p)
    assert dataclasses.asdict(p) == {"inputs": ("x",), "nodes": (
        {"op": "mul", "args": (0, 0)}, {"op": "add", "args": (1, 0)})}


def _reference_random_node(space, slot_types, rng, out_type, exclude=None):
    """`_random_node` before the table-driven rewrite (rng.choice per argument)."""
    by_type: dict = {}
    for k, t in enumerate(slot_types):
        by_type.setdefault(t, []).append(k)
    cands = [o for o in space.ops
             if (out_type is None or get_op(o).out_type == out_type)
             and all(t in by_type for t in get_op(o).in_types)]
    if not cands:
        return None
    for _ in range(20):
        op = get_op(cands[rng.integers(len(cands))])
        args = tuple(int(rng.choice(by_type[t])) for t in op.in_types)
        node = Node(op.name, args)
        if node != exclude:
            return node
    return node


@pytest.mark.parametrize("space", [
    SPACE,
    Space(inputs=(("q", ops.V), ("a", ops.A), ("r", ops.S)), ops=ops.RL_OPS_SMALL,
          num_nodes=7),
], ids=["symreg", "rl-typed"])
def test_mutation_draws_what_the_reference_implementation_draws(space, monkeypatch):
    from selftaught.evolve import program as prog

    def run(seed):
        rng = np.random.default_rng(seed)
        ps = [random_program(space, rng) for _ in range(40)]
        return ps + [mutate(space, p, rng, 0.1, 0.2) for p in ps for _ in range(5)], \
            rng.random()

    fast = run(7)
    monkeypatch.setattr(prog, "_random_node", _reference_random_node)
    assert run(7) == fast  # the same programs and the same random stream afterwards


def test_encode_many_stacks_encode():
    progs = _programs(SPACE) + [Program(("x",), (Node("sin", (0,)),))]  # a short program
    got = encode_many(SPACE, progs)
    want = [np.stack(x) for x in zip(*[encode(SPACE, p) for p in progs])]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
        assert g.dtype == w.dtype


@pytest.mark.parametrize("threshold", [None, 0.5])
def test_batched_filter_proposals_equal_the_sequential_rule(threshold):
    evaluate = TASK.build()
    rng = np.random.default_rng(5)
    parents = [random_program(SPACE, rng) for _ in range(12)]
    cache = FitnessCache(FunctionalHasher(SPACE))
    cache.evaluate([mutate(SPACE, p, rng) for p in parents for _ in range(3)], evaluate)
    out = []
    for batched in (False, True):
        oracle = disc.OracleDiscriminator(evaluate, tpr=0.6, fpr=0.2, seed=3)
        counts: dict = {}
        r = np.random.default_rng(11)
        kids = disc.guided_mutation(
            SPACE, oracle, proposals=6, known=cache.known, counts=counts, batched=batched,
            threshold=None if threshold is None else (lambda: threshold))(parents, r)
        out.append((kids, counts, r.random(), oracle.rng.random()))
    assert out[0] == out[1]
    assert out[0][1]["proposed"] == 5 * len(parents)


def test_fast_searches_equal_the_reference_searches():
    base = dataclasses.replace(
        PRESETS["surface"], equations=("nguyen1", "nguyen9"), num_nodes=6,
        max_evaluations=160, population_size=16, batch_size=8, proposals=6,
        oracle_tpr=(0.9, 0.3), oracle_fpr=(0.05, 0.3), diag_holdout=6, diag_windows=3)
    for eq, task in tasks(base):
        evaluate = task.build()
        for arm in arm_names(base):
            a, b = (_run_one(dataclasses.replace(base, fast=f), task, evaluate, 1, arm, -0.05)
                    for f in (False, True))
            assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True), (eq, arm)


@pytest.mark.parametrize("eq", TWO_VARIABLES)
def test_two_variable_nguyen_fitness_is_the_nrmse_of_the_formula(eq):
    task = SymRegTask(eq, num_nodes=8)
    assert task.space.input_names == ("x", "y")
    x, y = task.points()
    assert x.shape == (20, 2) and x.min() >= 0.0 and x.max() <= 1.0
    np.testing.assert_allclose(y, NGUYEN[eq][1](*x.astype(np.float64).T), rtol=1e-6)
    progs = [random_program(task.space, np.random.default_rng(k)) for k in range(20)]
    inputs, _ = task.inputs()
    want = [max(-np.sqrt(np.mean((np.asarray(compile_program(p)(inputs), np.float64) - y)
                                 ** 2)) / np.std(y), -10.0) for p in progs]
    np.testing.assert_allclose(task.build()(progs), want, rtol=1e-4, atol=1e-5)


def test_an_exact_program_fits_nguyen9_and_x_stays_the_first_input():
    task = SymRegTask("nguyen9", num_nodes=4)  # sin(x) + sin(y^2): slots x=0, y=1
    exact = Program(("x", "y"), (Node("mul", (1, 1)), Node("sin", (2,)), Node("sin", (0,)),
                                 Node("add", (3, 4))))
    assert task.build()([exact])[0] > -1e-5
    x1, _ = SymRegTask("nguyen1").points()
    assert x1.ndim == 1 and np.all(np.diff(x1) >= 0)  # one variable: sorted points, as before
