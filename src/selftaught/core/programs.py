"""Compiled programs cached per hashable config: the one place a recipe turns its agent's
pure functions into jitted, seed-vmapped programs.

    @programs.cached(vmap=(0, (0, None)))        # init over seeds; chunk: carry over seeds,
    def compiled(cfg: AgentConfig):             # a knob shared by every seed
        agent = make_agent(cfg)
        return agent.init, agent.chunk

    init, chunk = compiled(cfg)                 # built and traced once per cfg per process

`build(*key)` returns a function or a tuple of functions; each becomes
`jax.jit(jax.vmap(fn, in_axes=axes))` with its entry of `vmap` (default 0: every argument
has a leading seed axis), plain `jax.jit(fn)` where the entry is `JIT` (no seed axis),
or `fn` unchanged where it is `AS_IS` (a function compiled elsewhere).
Traced knobs (an lr, reward weights, world parameters) are arguments, so every value of a
knob reuses the program. The cache key is `build`'s arguments (frozen configs and strings),
so a resumed run, a second phase or a second run in the same process compiles nothing
again. Data caches (tables, datasets) stay `functools.lru_cache`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax

JIT = "jit"
"""A `vmap` entry meaning: jit the function without a seed axis."""
AS_IS = "as is"
"""A `vmap` entry meaning: return the function unchanged (it is already compiled, e.g. a
trainer's `run_seeds` bound to the program's chunk length), cached with the others."""


def compile_one(fn: Callable, axes: Any = 0) -> Callable:
    """`jax.jit(jax.vmap(fn, in_axes=axes))`, `jax.jit(fn)` when axes is JIT, `fn` itself
    when it is AS_IS."""
    if axes == AS_IS:
        return fn
    return jax.jit(fn) if axes == JIT else jax.jit(jax.vmap(fn, in_axes=axes))


def cached(vmap: Sequence[Any] | None = None, maxsize: int = 8) -> Callable:
    """Decorator: `build(*key) -> fn | (fn, ...)` becomes a cached `(*key) -> compiled fn(s)`
    (see the module docstring). `vmap` gives each returned function's in_axes (or JIT);
    None vmaps every argument of every function over axis 0. Up to `maxsize` keys are kept
    (least recently used first out)."""

    def decorate(build: Callable) -> Callable:
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(build)
        def compiled(*key, **kw):
            fns = build(*key, **kw)
            single = callable(fns)
            fns = (fns,) if single else tuple(fns)
            axes = (0,) * len(fns) if vmap is None else tuple(vmap)
            if len(axes) != len(fns):
                raise TypeError(f"{build.__qualname__} returned {len(fns)} functions but "
                                f"vmap names {len(axes)} axes")
            out = tuple(compile_one(f, a) for f, a in zip(fns, axes))
            return out[0] if single else out

        return compiled

    return decorate
