"""MetaPG's loss domain: SAC's critic and actor losses as typed DAGs reproduce rl.sac's
losses (values and gradients), through compile_program and the population interpreter."""

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.evolve import actor_critic as ac
from selftaught.evolve.program import (
    compile_program,
    encode,
    make_interpreter,
    to_formula,
    validate,
)
from selftaught.rl import sac


def _inputs(names, seed):
    rng = np.random.default_rng(seed)
    x = {n: jnp.asarray(rng.normal(size=8), jnp.float32) for n in names}
    if "alpha" in x:
        x["alpha"] = jnp.full(8, 0.3, jnp.float32)
    if "discount" in x:
        x["discount"] = jnp.asarray(rng.choice([0.0, 0.99], size=8), jnp.float32)
    return x


def test_sac_graphs_are_valid_and_reproduce_the_sac_losses_and_gradients():
    for prog, space, ref, names, wrt in [
        (ac.sac_critic_program(), ac.critic_space(), sac.sac_critic_loss, ac.CRITIC_INPUTS,
         ("q1", "q2")),
        (ac.sac_actor_program(), ac.actor_space(), sac.sac_actor_loss, ac.ACTOR_INPUTS,
         ("q1_pi", "q2_pi", "logp_pi")),
    ]:
        validate(space, prog)
        x = _inputs(names, 0)
        fn = compile_program(prog)
        np.testing.assert_allclose(np.asarray(fn(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-6)
        interp = make_interpreter(space)
        np.testing.assert_allclose(np.asarray(interp(*encode(space, prog), x)),
                                   np.asarray(ref(x)), rtol=1e-5, atol=1e-6)

        def grads(f, x=x, wrt=wrt):
            return jax.grad(lambda v: f({**x, **v}).mean())({k: x[k] for k in wrt})

        g, g_ref = grads(fn), grads(ref)
        for k in wrt:
            np.testing.assert_allclose(np.asarray(g[k]), np.asarray(g_ref[k]), rtol=1e-5,
                                       atol=1e-6)
    # the critic target is a constant: no gradient reaches q1_next through the program
    x = _inputs(ac.CRITIC_INPUTS, 1)
    g = jax.grad(lambda v: compile_program(ac.sac_critic_program())({**x, "q1_next": v}).sum())(
        x["q1_next"])
    assert float(jnp.abs(g).max()) == 0.0


def test_formulas_and_pair_mutation_stay_valid():
    pair = ac.sac_pair()
    f = pair.formulas()
    assert f["actor"] == "((alpha * logp_pi) - min(q1_pi, q2_pi))"
    assert "sg((reward + (discount * (min(q1_next, q2_next) - (alpha * logp_next)))))" in f[
        "critic"]
    rng = np.random.default_rng(0)
    cs, as_ = ac.critic_space(), ac.actor_space()
    changed = {"critic": 0, "actor": 0}
    for _ in range(40):
        child = ac.mutate_pair(pair, rng, cs, as_)
        validate(cs, child.critic)
        validate(as_, child.actor)
        changed["critic"] += child.critic != pair.critic
        changed["actor"] += child.actor != pair.actor
        assert (child.critic != pair.critic) + (child.actor != pair.actor) == 1
    assert changed["critic"] > 5 and changed["actor"] > 5
    assert to_formula(pair.actor) == f["actor"]
