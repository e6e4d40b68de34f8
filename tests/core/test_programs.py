"""core.programs.cached: one build and one trace per config, results of jit(vmap(fn))."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core import programs


@dataclasses.dataclass(frozen=True)
class Cfg:
    scale: float = 2.0


def make(counts):
    """A cached (init, chunk) program builder that counts builds and traces."""

    @programs.cached(vmap=(0, (0, None)))
    def compiled(cfg: Cfg):
        counts["build"] += 1

        def init(key):
            counts["init"] += 1
            return jax.random.normal(key, (3,))

        def chunk(x, w):
            counts["chunk"] += 1
            return x * cfg.scale + w, jnp.sum(x)

        return init, chunk

    return compiled


def test_builds_and_traces_once_per_config():
    counts = {"build": 0, "init": 0, "chunk": 0}
    compiled = make(counts)
    ks = jax.random.split(jax.random.PRNGKey(0), 4)
    for w in (1.0, 2.0, 3.0):  # a traced knob: every value reuses the program
        init, chunk = compiled(Cfg())
        chunk(init(ks), jnp.float32(w))
    assert counts == {"build": 1, "init": 1, "chunk": 1}
    assert compiled(Cfg()) is compiled(Cfg())  # equal configs hit the cache
    init, chunk = compiled(Cfg(scale=3.0))
    chunk(init(ks), jnp.float32(1.0))
    assert counts == {"build": 2, "init": 2, "chunk": 2}


def test_results_equal_the_hand_written_jit_vmap():
    counts = {"build": 0, "init": 0, "chunk": 0}
    init, chunk = make(counts)(Cfg(scale=0.5))
    ks = jax.random.split(jax.random.PRNGKey(3), 5)
    x = init(ks)
    ref_x = jax.jit(jax.vmap(lambda k: jax.random.normal(k, (3,))))(ks)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(ref_x))
    got = chunk(x, jnp.float32(1.5))
    ref = jax.jit(jax.vmap(lambda a, w: (a * 0.5 + w, jnp.sum(a)), in_axes=(0, None)))(
        ref_x, jnp.float32(1.5))
    for a, b in zip(got, ref):
        assert a.shape[0] == 5
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_single_function_default_axes_and_jit_only():
    @programs.cached()
    def double(n: int):
        return lambda x: x * n

    np.testing.assert_array_equal(np.asarray(double(2)(jnp.arange(3.0))), [0.0, 2.0, 4.0])

    @programs.cached(vmap=(programs.JIT,))
    def total(n: int):
        return lambda x: jnp.sum(x) * n  # no seed axis: the sum over the whole array

    assert float(total(2)(jnp.arange(4.0))) == 12.0


def test_as_is_returns_the_function_itself_inside_the_cache():
    def run(x):
        return x + 1

    @programs.cached(vmap=(0, programs.AS_IS))
    def pair(n: int):
        return (lambda x: x * n), run

    scaled, same = pair(3)
    assert same is run and pair(3)[1] is run and pair(3)[0] is scaled
    np.testing.assert_array_equal(np.asarray(scaled(jnp.ones((2, 2)))), 3 * np.ones((2, 2)))


def test_axes_must_match_the_functions():
    @programs.cached(vmap=(0,))
    def two(n: int):
        return (lambda x: x), (lambda x: x)

    with pytest.raises(TypeError, match="returned 2 functions but vmap names 1 axes"):
        two(1)
