"""ML-optimizer domain: reference update rules reproduce optax; batched evaluation equals
training with optax itself; invalid rules score the floor instead of crashing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from selftaught.evolve import program as prog_lib
from selftaught.evolve.optimizer import (
    FLOOR,
    REFERENCE,
    OptimizerTask,
    init_state,
    opt_space,
    rule_step,
)

OPTAX = {
    "adam": lambda lr: optax.adam(lr),
    "sgd_momentum": lambda lr: optax.sgd(lr, momentum=0.9),
    "sign_sgd": lambda lr: optax.sign_sgd(lr),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("runner", ["compiled", "interpreter"])
def test_reference_program_reproduces_optax_update(name, runner):
    space = opt_space(8)
    prog_lib.validate(space, REFERENCE[name])
    if runner == "compiled":
        rule = prog_lib.compile_program(REFERENCE[name])
    else:
        enc = prog_lib.encode(space, REFERENCE[name])
        interp = prog_lib.make_interpreter(space)
        rule = jax.jit(lambda inputs: interp(*enc, inputs))
    rng = np.random.default_rng(0)
    lr = 0.01
    p = jnp.asarray(rng.normal(size=50), jnp.float32)
    # gradients over 4 decades of magnitude, some exactly zero
    grads = [jnp.asarray(rng.normal(size=50) * 10.0 ** rng.uniform(-4, 0, size=50)
                         * (rng.uniform(size=50) > 0.1), jnp.float32) for _ in range(6)]
    tx = OPTAX[name](lr)
    opt_state, p_ref = tx.init(p), p
    st, p_ours = init_state(p), p
    for g in grads:
        upd, opt_state = tx.update(g, opt_state, p_ref)
        p_ref = optax.apply_updates(p_ref, upd)
        u, st = rule_step(rule, st, g, p_ours)
        p_ours = p_ours - lr * u
        np.testing.assert_allclose(np.asarray(-lr * u), np.asarray(upd), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(p_ours, p_ref, rtol=1e-6, atol=1e-7)


def test_batched_evaluation_equals_training_with_optax():
    task = OptimizerTask(steps=40, samples=64, hidden=8)
    x_tr, y_tr, x_va, y_va = task.data()
    p0, unravel = task.init_params()

    def mse(p, x, y):
        q = unravel(p)
        return jnp.mean((jnp.tanh(x @ q["w1"] + q["b1"]) @ q["w2"] + q["b2"] - y) ** 2)

    names = sorted(REFERENCE)
    ours = task.build()([REFERENCE[n] for n in names])
    for n, fit in zip(names, ours):
        tx, p = OPTAX[n](task.lr), p0
        s = tx.init(p)
        for _ in range(task.steps):
            upd, s = tx.update(jax.grad(mse)(p, x_tr, y_tr), s, p)
            p = optax.apply_updates(p, upd)
        assert fit == pytest.approx(-np.log10(float(mse(p, x_va, y_va))), abs=1e-4), n
    # training helps: every reference beats the untrained network
    assert min(ours) > -np.log10(float(mse(p0, x_va, y_va)))


def test_exploding_and_random_rules_score_the_floor_or_better_never_nan():
    task = OptimizerTask(steps=30, samples=32, hidden=4)
    space = task.space
    blow = prog_lib.Program(tuple(n for n, _ in space.inputs),
                            (prog_lib.Node("const_1", ()), prog_lib.Node("div", (5, 5)),
                             prog_lib.Node("div_sqrt", (6, 4))))  # 1 / sqrt(mom) ~ 1e8
    rng = np.random.default_rng(1)
    progs = [blow] + [prog_lib.random_program(space, rng) for _ in range(12)]
    fit = task.build()(progs)
    assert np.isfinite(fit).all() and (fit >= FLOOR).all()
    assert fit[0] < task.build()([REFERENCE["adam"]])[0]
