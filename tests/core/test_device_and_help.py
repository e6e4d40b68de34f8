"""The numerics policy (core.device) and the CLI's help (issue 17)."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_recipe

from selftaught import cli, recipes
from selftaught.core import device
from selftaught.core.errors import UnknownNameError


def test_deterministic_gpu_flag_is_added_kept_unique_and_removable():
    env = {"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_gpu_deterministic_ops=false"}
    device.set_deterministic_gpu(True, env)
    assert env["XLA_FLAGS"].split() == ["--xla_dump_to=/tmp/x", device.DETERMINISTIC_FLAG]
    device.set_deterministic_gpu(True, env)
    assert env["XLA_FLAGS"].count("deterministic") == 1
    device.set_deterministic_gpu(False, env)
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"
    env = {}
    device.set_deterministic_gpu(False, env)
    assert env == {}


def test_the_tests_run_at_highest_precision_and_unknown_names_are_refused():
    # tests/conftest.py pins "highest" unless SELFTAUGHT_TEST_MATMUL_PRECISION overrides it
    pinned = os.environ.get("SELFTAUGHT_TEST_MATMUL_PRECISION", "highest")
    assert jax.config.jax_default_matmul_precision == (None if pinned == "default" else pinned)
    with pytest.raises(UnknownNameError, match="unknown matmul precision 'tf32'"):
        device.set_matmul_precision("tf32")


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the CPU computes full float32")
def test_precision_setting_does_not_change_cpu_numbers():
    a = jax.random.normal(jax.random.PRNGKey(0), (33, 300))
    b = jax.random.normal(jax.random.PRNGKey(1), (300, 17))
    out = {}
    try:
        for name in device.PRECISIONS:
            device.set_matmul_precision(name)
            out[name] = np.asarray(jax.jit(lambda x, y: jnp.tanh(x @ y))(a, b))
    finally:
        device.set_matmul_precision("highest")
    assert all(np.array_equal(out["default"], v) for v in out.values())


def test_run_help_without_recipe_exits_0_and_documents_the_run_options(capsys):
    assert cli.main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    for text in ("--preset", "--seeds", "--run-dir", "--resume", "--matmul-precision",
                 "--nondeterministic-gpu", "smoke", "default", "paper", "rest-em"):
        assert text in out, text


def test_recipe_help_exits_0_and_documents_run_options_and_presets(monkeypatch, capsys):
    real_get = recipes.get
    monkeypatch.setattr(recipes, "get", lambda n: toy_recipe.RECIPE if n == "toy" else real_get(n))
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "toy", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for text in ("presets: smoke, default, paper", "--preset P", "--seeds N", "--run-dir D",
                 "--resume", "--steps", "--inner.width"):
        assert text in out, text


def test_run_without_recipe_is_a_one_line_error(capsys):
    assert cli.main(["run"]) == 2
    assert "name a recipe" in capsys.readouterr().err
