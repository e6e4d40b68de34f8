"""Typed operations of program DAGs: name, input types, output type, jnp implementation.

Value types (B = batch, A = actions, D = observation size):

    S  scalar per sample      float [B]
    V  action values          float [B, A]
    A  action index           int   [B]
    O  observation            float [B, D]

Constants are zero-arity ops of type S. Every op is *safe*: finite output and finite
gradient for any finite input (protected log/div/sqrt, clipped exp), so a compiled
program never produces NaN from a legal input, and an interpreter that computes all ops
and selects one (see program.py) never leaks NaN through the unselected branches.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp

from selftaught.core.errors import UnknownNameError

S, V, A, O = "S", "V", "A", "O"  # noqa: E741
TYPES = (S, V, A, O)
TYPE_NAMES = {S: "scalar per sample [B]", V: "action values [B,A]", A: "action int [B]",
              O: "observation [B,D]"}

EPS = 1e-3
CLIP = 1e6


@dataclasses.dataclass(frozen=True)
class Op:
    """One operation: `fn(*inputs)` maps inputs of `in_types` to a value of `out_type`.

    `fmt` renders the op in a formula, with {0}, {1} standing for the argument formulas.
    """

    name: str
    in_types: tuple[str, ...]
    out_type: str
    fn: Callable
    fmt: str

    @property
    def arity(self) -> int:
        return len(self.in_types)


def _safe_div(x, y):
    small = jnp.abs(y) < EPS
    y_safe = jnp.where(small, jnp.where(y < 0, -EPS, EPS), y)
    return x / y_safe


def _safe_log(x):
    return jnp.log(jnp.abs(x) + EPS)


def _safe_exp(x):
    return jnp.exp(jnp.clip(x, -20.0, 20.0))


def _safe_sqrt(x):
    return jnp.sqrt(jnp.abs(x) + EPS)


def _select(q_BxA, a_B):
    a_B = jnp.clip(a_B.astype(jnp.int32), 0, q_BxA.shape[-1] - 1)
    return jnp.take_along_axis(q_BxA, a_B[:, None], axis=-1)[:, 0]


def _entropy(q_BxA):
    logp = jax.nn.log_softmax(q_BxA, axis=-1)
    return -(jnp.exp(logp) * logp).sum(-1)


def _kl(p_BxA, q_BxA):
    logp = jax.nn.log_softmax(p_BxA, axis=-1)
    logq = jax.nn.log_softmax(q_BxA, axis=-1)
    return (jnp.exp(logp) * (logp - logq)).sum(-1)


def _l2(x_BxD, y_BxD):
    return jnp.sqrt(((x_BxD - y_BxD) ** 2).sum(-1) + EPS)


def _batch_mean(x_B):
    return jnp.broadcast_to(x_B.mean(), x_B.shape)


def _batch_std(x_B):
    return jnp.broadcast_to(jnp.sqrt(x_B.var() + EPS), x_B.shape)


def _noise(x_B):
    """Standard normal noise of x's shape. The key is derived from x's bits, so a program
    stays a pure function of its inputs (functional hashing and the population-batched
    interpreter need that), while a new minibatch draws fresh noise; no gradient flows
    through it."""
    x_B = jax.lax.stop_gradient(x_B)
    bits = jax.lax.bitcast_convert_type(x_B.astype(jnp.float32), jnp.uint32)
    mix = jnp.arange(1, x_B.size + 1, dtype=jnp.uint32).reshape(x_B.shape) * jnp.uint32(
        2654435761)
    key = jax.random.fold_in(jax.random.PRNGKey(0), jnp.sum(bits ^ mix))
    return jax.random.normal(key, x_B.shape, jnp.float32)


REGISTRY: dict[str, Op] = {}


def register(op: Op) -> Op:
    if op.name in REGISTRY:
        raise ValueError(f"op {op.name!r} registered twice")
    for t in (*op.in_types, op.out_type):
        if t not in TYPES:
            raise ValueError(f"op {op.name!r}: unknown type {t!r}")
    REGISTRY[op.name] = op
    return op


_BINARY = {
    "add": (jnp.add, "({0} + {1})"),
    "sub": (jnp.subtract, "({0} - {1})"),
    "mul": (jnp.multiply, "({0} * {1})"),
    "div": (_safe_div, "({0} / {1})"),
    "max": (jnp.maximum, "max({0}, {1})"),
    "min": (jnp.minimum, "min({0}, {1})"),
}
_UNARY = {
    "neg": (jnp.negative, "-({0})"),
    "abs": (jnp.abs, "|{0}|"),
    "square": (jnp.square, "({0})^2"),
    "sqrt": (_safe_sqrt, "sqrt({0})"),
    "log": (_safe_log, "log({0})"),
    "exp": (_safe_exp, "exp({0})"),
    "sin": (jnp.sin, "sin({0})"),
    "cos": (jnp.cos, "cos({0})"),
}
for _name, (_fn, _fmt) in _BINARY.items():
    register(Op(_name, (S, S), S, _fn, _fmt))
    register(Op(_name + "_v", (V, V), V, _fn, _fmt))
for _name, (_fn, _fmt) in _UNARY.items():
    register(Op(_name, (S,), S, _fn, _fmt))
    if _name not in ("sin", "cos"):
        register(Op(_name + "_v", (V,), V, _fn, _fmt))
for _c in (1.0, 0.5, 0.2, 0.1, 0.01):
    register(Op(f"const_{_c:g}", (), S, (lambda c=_c: jnp.asarray(c, jnp.float32)), f"{_c:g}"))

register(Op("select", (V, A), S, _select, "{0}[{1}]"))
register(Op("max_a", (V,), S, lambda q: q.max(-1), "max_a {0}"))
register(Op("mean_a", (V,), S, lambda q: q.mean(-1), "mean_a {0}"))
register(Op("argmax", (V,), A, lambda q: jnp.argmax(q, -1), "argmax {0}"))
register(Op("softmax", (V,), V, lambda q: jax.nn.softmax(q, -1), "softmax({0})"))
register(Op("entropy", (V,), S, _entropy, "H({0})"))
register(Op("kl", (V, V), S, _kl, "KL({0} || {1})"))
register(Op("scale_v", (S, V), V, lambda s, q: s[..., None] * q, "({0} * {1})"))
register(Op("l2", (O, O), S, _l2, "||{0} - {1}||"))
register(Op("batch_mean", (S,), S, _batch_mean, "mean_B({0})"))
register(Op("batch_std", (S,), S, _batch_std, "std_B({0})"))
register(Op("noise", (S,), S, _noise, "noise({0})"))
register(Op("sign", (S,), S, jnp.sign, "sign({0})"))
# Adam's denominator, with its own tiny epsilon (so Adam is one node and matches optax);
# safe: |x| / 1e-8 stays finite and is clipped by the program runners like every output,
# and |y| is floored at 1e-30 so that the gradient of the sqrt stays finite at y = 0
register(Op("div_sqrt", (S, S), S,
            lambda x, y: x / (jnp.sqrt(jnp.maximum(jnp.abs(y), 1e-30)) + 1e-8),
            "{0} / (sqrt({1}) + 1e-8)"))


def get_op(name: str) -> Op:
    if name not in REGISTRY:
        raise UnknownNameError("op", name, list(REGISTRY))
    return REGISTRY[name]


# Op sets used by the domains.
SYMREG_OPS = ("add", "sub", "mul", "div", "sin", "cos", "log", "exp")
RL_OPS_FULL = (
    "add", "sub", "mul", "div", "max", "min", "neg", "abs", "square", "log", "exp", "sqrt",
    "add_v", "sub_v", "mul_v", "max_v", "min_v", "abs_v",
    "const_1", "const_0.5", "const_0.2", "const_0.1", "const_0.01",
    "select", "max_a", "mean_a", "argmax", "softmax", "entropy", "kl", "scale_v", "l2",
    "batch_mean", "batch_std", "noise",
)
RL_OPS_SMALL = (
    "add", "sub", "mul", "max", "min", "neg", "abs", "square",
    "const_1", "const_0.5", "const_0.1",
    "select", "max_a", "mean_a", "argmax", "sub_v", "scale_v",
)

# actor-critic losses (MetaPG, rl.md §4): every input is a per-sample scalar (Q values of
# the twin critics, log-probabilities, reward, discount, temperature)
register(Op("stop_grad", (S,), S, jax.lax.stop_gradient, "sg({0})"))
AC_OPS = (
    "add", "sub", "mul", "div", "max", "min", "neg", "abs", "square", "log", "exp",
    "stop_grad", "batch_mean", "const_1", "const_0.5", "const_0.1", "const_0.01",
)
