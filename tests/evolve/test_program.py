import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught.core.errors import DataError, UnknownNameError
from selftaught.evolve import ops
from selftaught.evolve.hashing import FitnessCache, FunctionalHasher, quantize
from selftaught.evolve.ops import A, O, S, V
from selftaught.evolve.program import (
    Node,
    Program,
    Space,
    compile_program,
    encode,
    from_dict,
    from_json,
    make_interpreter,
    mutate,
    random_inputs,
    random_program,
    to_formula,
    to_json,
    validate,
)

B, NA, D = 5, 3, 4
SR = Space(inputs=(("x", S),), ops=ops.SYMREG_OPS, num_nodes=6)
RL = Space(
    inputs=(("q", V), ("q_target", V), ("action", A), ("reward", S), ("discount", S),
            ("obs", O), ("next_obs", O)),
    ops=ops.RL_OPS_FULL, num_nodes=7)


def _value(t, rng):
    if t == S:
        return jnp.asarray(rng.normal(size=(B,)), jnp.float32)
    if t == V:
        return jnp.asarray(rng.normal(size=(B, NA)), jnp.float32)
    if t == A:
        return jnp.asarray(rng.integers(0, NA, size=(B,)), jnp.int32)
    return jnp.asarray(rng.normal(size=(B, D)), jnp.float32)


SHAPES = {S: (B,), V: (B, NA), A: (B,), O: (B, D)}


@pytest.mark.parametrize("name", sorted(ops.REGISTRY))
def test_every_op_types_shapes_and_finite_gradients(name):
    op = ops.get_op(name)
    rng = np.random.default_rng(0)
    args = [_value(t, rng) for t in op.in_types]
    out = jnp.broadcast_to(op.fn(*args), SHAPES[op.out_type])
    assert out.shape == SHAPES[op.out_type]
    assert (out.dtype == jnp.int32) == (op.out_type == A)
    # safe at the singular point 0: finite value and finite gradient
    zeros = [jnp.zeros_like(a) for a in args]
    if op.out_type != A and any(t != A for t in op.in_types):
        def f(*xs):
            full = [x if t != A else z for x, z, t in zip(xs, zeros, op.in_types)]
            return jnp.sum(op.fn(*full))
        float_pos = tuple(i for i, t in enumerate(op.in_types) if t != A)
        grads = jax.grad(f, argnums=float_pos)(*zeros)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads), name
        assert bool(jnp.all(jnp.isfinite(op.fn(*zeros))))


def test_op_values_against_formulas():
    q = jnp.array([[1.0, 3.0, 2.0], [0.0, -1.0, 5.0]])
    a = jnp.array([1, 0])
    np.testing.assert_allclose(ops.get_op("select").fn(q, a), [3.0, 0.0])
    np.testing.assert_allclose(ops.get_op("max_a").fn(q), [3.0, 5.0])
    np.testing.assert_array_equal(ops.get_op("argmax").fn(q), [1, 2])
    u = jnp.zeros((1, 4))
    np.testing.assert_allclose(ops.get_op("entropy").fn(u), [np.log(4)], rtol=1e-6)
    np.testing.assert_allclose(ops.get_op("kl").fn(q, q), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(ops.get_op("div").fn(jnp.array([1.0]), jnp.array([0.0])), [1e3])
    x = jnp.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(ops.get_op("batch_mean").fn(x), [2.0] * 3)


def test_noise_op_is_standard_normal_pure_and_fresh_per_input():
    noise = ops.get_op("noise").fn
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4096,)), jnp.float32)
    n1 = np.asarray(noise(x))
    np.testing.assert_array_equal(n1, np.asarray(noise(x)))          # pure: same input
    assert abs(n1.mean()) < 0.1 and abs(n1.std() - 1.0) < 0.1        # N(0, 1)
    n2 = np.asarray(noise(x.at[0].add(1.0)))                         # another minibatch
    assert abs(np.corrcoef(n1, n2)[0, 1]) < 0.1
    assert float(jnp.abs(jax.grad(lambda v: noise(v).sum())(x)).max()) == 0.0


def test_unknown_op_name_lists_known():
    with pytest.raises(UnknownNameError, match="unknown op 'foo'.*select"):
        ops.get_op("foo")


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), steps=st.integers(1, 30))
def test_mutation_always_yields_valid_programs(seed, steps):
    rng = np.random.default_rng(seed)
    for space in (SR, RL):
        p = random_program(space, rng)
        validate(space, p)
        for k in range(steps):
            child = mutate(space, p, rng, p_edge=0.5 * (k % 2))
            validate(space, child)
            assert child != p
            p = child


def test_mutation_changes_one_node_or_makes_fresh():
    rng = np.random.default_rng(1)
    p = random_program(RL, rng)
    diffs = []
    for _ in range(200):
        c = mutate(RL, p, rng, p_fresh=0.0)
        diffs.append(sum(a != b for a, b in zip(p.nodes, c.nodes)))
    assert set(diffs) == {1}


def test_edge_mutation_rewires_exactly_one_input():
    rng = np.random.default_rng(3)
    p = random_program(RL, rng)
    for _ in range(200):
        c = mutate(RL, p, rng, p_fresh=0.0, p_edge=1.0)
        changed = [(a, b) for a, b in zip(p.nodes, c.nodes) if a != b]
        assert len(changed) == 1
        (a, b), = changed
        assert a.op == b.op and sum(x != y for x, y in zip(a.args, b.args)) == 1


def test_interpreter_matches_compiled_programs():
    rng = np.random.default_rng(2)
    for space, kw in ((SR, {}), (RL, {"actions": 2, "obs_dim": 4})):
        interp = jax.jit(jax.vmap(make_interpreter(space), in_axes=(0, 0, 0, None)))
        inputs = random_inputs(space, 3, batch=8, **kw)
        progs = [random_program(space, rng) for _ in range(64)]
        enc = [encode(space, p) for p in progs]
        got = np.asarray(interp(*[np.stack(e) for e in zip(*enc)], inputs))
        want = np.stack([np.asarray(jax.jit(compile_program(p))(inputs)) for p in progs[:6]])
        np.testing.assert_allclose(got[:6], want, rtol=1e-4, atol=1e-4)
        assert np.all(np.isfinite(got))


def _td_program():
    # (q[a] - (r + gamma * max_a q_target))^2
    return Program(RL.input_names, (
        Node("select", (0, 2)), Node("max_a", (1,)), Node("mul", (4, 8)),
        Node("add", (3, 9)), Node("sub", (7, 10)), Node("square", (11,))))


def test_formula_and_shorter_program_through_interpreter():
    p = _td_program()
    validate(RL, p)
    assert to_formula(p) == "((q[action] - (reward + (discount * max_a q_target))))^2"
    inputs = random_inputs(RL, 0, batch=6, actions=2)
    q, qt, a = inputs["q"], inputs["q_target"], inputs["action"]
    want = (q[np.arange(6), a] - (inputs["reward"] + inputs["discount"] * qt.max(1))) ** 2
    np.testing.assert_allclose(compile_program(p)(inputs), want, rtol=1e-5)
    got = make_interpreter(RL)(*encode(RL, p), inputs)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_json_round_trip_and_errors():
    rng = np.random.default_rng(3)
    for _ in range(20):
        p = random_program(RL, rng)
        assert from_json(to_json(p), RL) == p
    with pytest.raises(DataError, match="not valid JSON"):
        from_json("{nodes: [", RL)
    with pytest.raises(DataError, match="keys 'inputs' and 'nodes'"):
        from_json("[1, 2]", RL)
    bad = {"inputs": list(RL.input_names), "nodes": [{"op": "frobnicate", "args": [0]}]}
    with pytest.raises(UnknownNameError, match="unknown op 'frobnicate'"):
        from_json(json.dumps(bad), RL)
    wrong_type = {"inputs": list(RL.input_names), "nodes": [{"op": "max_a", "args": [3]}]}
    with pytest.raises(DataError, match="argument 0 needs type V"):
        from_json(json.dumps(wrong_type), RL)
    forward = {"inputs": list(RL.input_names), "nodes": [{"op": "abs", "args": [7]}]}
    with pytest.raises(DataError, match="reads slot 7"):
        from_dict(forward, RL)
    out_type = {"inputs": list(RL.input_names), "nodes": [{"op": "softmax", "args": [0]}]}
    with pytest.raises(DataError, match="output node has type V"):
        from_dict(out_type, RL)


def test_hashing_identifies_algebraically_equal_programs():
    h = FunctionalHasher(SR)
    x = 0

    def prog(*nodes):
        return Program(("x",), tuple(Node(o, a) for o, a in nodes))

    a = prog(("mul", (x, x)), ("add", (1, x)))                       # x^2 + x
    b = prog(("mul", (x, x)), ("add", (x, 1)))                       # x + x^2
    c = prog(("add", (x, x)), ("mul", (x, 1)), ("add", (2, 0)), ("sub", (3, 0)))  # x(2x)+x-x
    d = prog(("mul", (x, x)), ("mul", (1, 0)), ("add", (1, 2)))      # x^2 + x^3
    e = prog(("mul", (x, x)), ("add", (1, 1)))                       # 2x^2
    f = prog(("add", (x, x)), ("mul", (x, 1)))                       # x * 2x
    ha, hb, hc, hd, he, hf = h.hash_many([a, b, c, d, e, f])
    assert ha == hb and he == hf and hc == he
    assert len({ha, hd, he}) == 3


def test_fitness_cache_counts_only_new_functions():
    h = FunctionalHasher(SR)
    cache = FitnessCache(h)
    calls = []

    def evaluate(progs):
        calls.append(len(progs))
        return np.arange(len(progs), dtype=float)

    p1 = Program(("x",), (Node("mul", (0, 0)), Node("add", (1, 0))))
    p2 = Program(("x",), (Node("mul", (0, 0)), Node("add", (0, 1))))
    p3 = Program(("x",), (Node("sin", (0,)),))
    fit, new = cache.evaluate([p1, p2, p3], evaluate)
    assert calls == [2] and new == [True, False, True]
    assert fit[0] == fit[1] and cache.real_evaluations == 2 and cache.hits == 1
    fit2, new2 = cache.evaluate([p2], evaluate)
    assert calls == [2] and new2 == [False] and fit2[0] == fit[0]


def test_quantize_is_insensitive_to_last_bits():
    x = np.array([1.0, -3.5, 1e-3, 0.0, -0.0])
    assert np.array_equal(quantize(x), quantize(x * (1 + 1e-7)))
