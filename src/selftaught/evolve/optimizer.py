"""The ML-optimizer domain of guided evolution (rl.md §5): update rules as typed DAGs.

A program maps per-parameter statistics to an update direction u; training applies
p <- p - lr * u. Inputs (all type S, one value per parameter, the batch axis is the
flattened parameter vector):

    g    the gradient
    p    the parameter
    m    Adam's first moment, EMA(g, beta1 = 0.9), bias-corrected
    v    Adam's second moment, EMA(g^2, beta2 = 0.999), bias-corrected
    mom  the heavy-ball trace mom <- g + 0.9 mom (optax.sgd's momentum)

Reference programs, each reproducing optax's update exactly (tests/evolve):
    Adam           u = m / (sqrt(v) + 1e-8)       optax.adam(lr)
    SGD-momentum   u = mom * 1                     optax.sgd(lr, momentum=0.9)
    signSGD        u = sign(g)                     optax.sign_sgd(lr)

Evaluation (`OptimizerTask.build`): every candidate of a batch trains its own copy of a
small MLP (one tanh hidden layer) on a regression task generated from a random teacher
MLP, full batch, for `steps` steps, in one jitted program vmapped over candidates (the
program interpreter of program.py runs any encoded rule). Fitness = -log10 of the final
validation MSE, floored at -10 (NaN or exploding runs score the floor: a failure, never a
crash); higher is better.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from selftaught.evolve import ops
from selftaught.evolve.program import (
    Node,
    Program,
    Space,
    encode_many,
    make_interpreter,
    padded,
)

OPT_INPUTS = (("g", ops.S), ("p", ops.S), ("m", ops.S), ("v", ops.S), ("mom", ops.S))
OPT_OPS = ("add", "sub", "mul", "div", "neg", "abs", "square", "sqrt", "sign", "div_sqrt",
           "max", "min", "const_1", "const_0.5", "const_0.1", "const_0.01")
BETA1, BETA2, MOMENTUM, ADAM_EPS = 0.9, 0.999, 0.9, 1e-8
FLOOR = -10.0


def _prog(*nodes: tuple[str, tuple[int, ...]]) -> Program:
    return Program(tuple(n for n, _ in OPT_INPUTS), tuple(Node(o, a) for o, a in nodes))


# slots: 0 g, 1 p, 2 m, 3 v, 4 mom, 5.. nodes
REFERENCE = {
    "adam": _prog(("div_sqrt", (2, 3))),
    "sgd_momentum": _prog(("const_1", ()), ("mul", (4, 5))),
    "sign_sgd": _prog(("sign", (0,))),
}


def opt_space(num_nodes: int = 8) -> Space:
    return Space(inputs=OPT_INPUTS, ops=OPT_OPS, output_type=ops.S, num_nodes=num_nodes)


def init_state(p_flat: jax.Array) -> dict:
    z = jnp.zeros_like(p_flat)
    return {"m": z, "v": z, "mom": z, "t": jnp.zeros((), jnp.int32)}


def rule_step(rule, state: dict, g: jax.Array, p: jax.Array) -> tuple[jax.Array, dict]:
    """One step of an update rule: accumulators, then u = rule({g, p, m, v, mom}).
    `rule(inputs) -> u` is a compiled program or a bound interpreter. Returns (u, state)."""
    t = state["t"] + 1
    m = BETA1 * state["m"] + (1 - BETA1) * g
    v = BETA2 * state["v"] + (1 - BETA2) * g * g
    mom = g + MOMENTUM * state["mom"]
    tf = t.astype(jnp.float32)
    inputs = {"g": g, "p": p, "m": m / (1 - BETA1**tf), "v": v / (1 - BETA2**tf), "mom": mom}
    return rule(inputs), {"m": m, "v": v, "mom": mom, "t": t}


@dataclasses.dataclass(frozen=True)
class OptimizerTask:
    """A picklable evaluation task (see backends.py): train a small MLP with each
    candidate update rule and score -log10(validation MSE)."""

    num_nodes: int = 8
    seed: int = 0
    """draws the teacher network and the data"""
    steps: int = 150
    """full-batch training steps per evaluation"""
    lr: float = 0.01
    """the step size every rule is scaled by"""
    in_dim: int = 8
    hidden: int = 16
    teacher_hidden: int = 32
    samples: int = 256
    """training (and, separately, validation) points"""

    @property
    def space(self) -> Space:
        return opt_space(self.num_nodes)

    def data(self):
        rng = np.random.default_rng([self.seed, 23])
        w1 = rng.normal(size=(self.in_dim, self.teacher_hidden)) / np.sqrt(self.in_dim)
        w2 = rng.normal(size=(self.teacher_hidden,)) / np.sqrt(self.teacher_hidden)

        def teacher(x):
            return np.tanh(x @ w1 * 2.0) @ w2

        x_tr = rng.normal(size=(self.samples, self.in_dim))
        x_va = rng.normal(size=(self.samples, self.in_dim))
        y_tr, y_va = teacher(x_tr), teacher(x_va)
        scale = float(np.std(y_tr)) or 1.0
        f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
        return f32(x_tr), f32(y_tr / scale), f32(x_va), f32(y_va / scale)

    def init_params(self):
        k1, k2 = jax.random.split(jax.random.PRNGKey(self.seed))
        params = {
            "w1": jax.random.normal(k1, (self.in_dim, self.hidden)) / np.sqrt(self.in_dim),
            "b1": jnp.zeros((self.hidden,)),
            "w2": jax.random.normal(k2, (self.hidden,)) / np.sqrt(self.hidden),
            "b2": jnp.zeros(()),
        }
        return ravel_pytree(params)

    def build(self):
        """evaluate(programs) -> fitness [len(programs)], one compiled call per batch."""
        run = _compiled_trainer(self)
        space = self.space

        def evaluate(programs: list[Program]) -> np.ndarray:
            enc = encode_many(space, padded(programs))
            fit = np.asarray(run(*enc), np.float64)[: len(programs)]
            return np.where(np.isfinite(fit), np.maximum(fit, FLOOR), FLOOR)

        return evaluate


@functools.lru_cache(maxsize=8)
def _compiled_trainer(task: OptimizerTask):
    interpret = make_interpreter(task.space)
    x_tr, y_tr, x_va, y_va = task.data()
    p0, unravel = task.init_params()

    def mse(p_flat, x, y):
        q = unravel(p_flat)
        pred = jnp.tanh(x @ q["w1"] + q["b1"]) @ q["w2"] + q["b2"]
        return jnp.mean((pred - y) ** 2)

    grad = jax.grad(mse)

    def train(op_ids, args, out):
        rule = lambda inputs: interpret(op_ids, args, out, inputs)  # noqa: E731

        def step(carry, _):
            p, st = carry
            u, st = rule_step(rule, st, grad(p, x_tr, y_tr), p)
            p = jnp.clip(p - task.lr * u, -1e4, 1e4)
            return (p, st), None

        (p, _), _ = jax.lax.scan(step, (p0, init_state(p0)), None, length=task.steps)
        return -jnp.log10(mse(p, x_va, y_va) + 1e-12)

    return jax.jit(jax.vmap(train))


__all__ = ["OPT_INPUTS", "OPT_OPS", "OptimizerTask", "REFERENCE", "init_state", "opt_space",
           "rule_step"]
