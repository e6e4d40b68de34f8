"""value-loss-mechanisms: the known task, the traced HL-Gauss sigma, the recipe end to end."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.cli import main
from selftaught.core import runner
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.rundir import RunDir
from selftaught.recipes import value_loss_mechanisms as vlm
from selftaught.rl.value_losses import make_value_head

SEEDS = 3


def test_frequency_table_is_distinct_nonzero_and_sign_canonical():
    t = vlm.frequency_table(3, 2)
    assert t.shape == ((5**3 - 1) // 2, 3)
    rows = {tuple(r) for r in t}
    assert len(rows) == len(t) and (0, 0, 0) not in rows
    assert not any(tuple(-np.asarray(r)) in rows for r in rows)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 0.9])
def test_true_value_solves_the_bellman_equation_and_has_unit_variance(gamma):
    cfg = dataclasses.replace(vlm.PRESETS["smoke"], input_dim=3, num_sinusoids=6)
    *_, shift, scale, _, f, v = vlm.task_arrays(cfg, jax.random.PRNGKey(3), gamma)
    x = jax.random.uniform(jax.random.PRNGKey(4), (20_000, 3), minval=-1.0, maxval=1.0)
    # V(x) = r(x) + gamma V(x + shift) with r = scale * f
    np.testing.assert_allclose(v(x), scale * f(x) + gamma * v(vlm.wrap(x + shift)), atol=2e-4)
    # the same value by brute force: a truncated discounted sum along the translation
    brute, xk = jnp.zeros(x.shape[0]), x
    for k in range(200 if gamma else 1):
        brute, xk = brute + gamma**k * scale * f(xk), vlm.wrap(xk + shift)
    np.testing.assert_allclose(v(x), brute, atol=1e-3)
    # orthogonal sinusoids: f and V have unit variance (Monte Carlo tolerance)
    assert abs(float(jnp.std(f(x))) - 1.0) < 0.03 and abs(float(jnp.std(v(x))) - 1.0) < 0.03


def test_hl_gauss_sigma_override_equals_a_head_built_with_that_sigma():
    rng = np.random.default_rng(0)
    out = jnp.asarray(rng.normal(size=(5, 1, 21)), jnp.float32)
    nxt = jnp.asarray(rng.normal(size=(5, 1, 21)), jnp.float32)
    a = jnp.zeros(5, jnp.int32)
    r, d = jnp.asarray(rng.normal(size=5), jnp.float32), jnp.full((5,), 0.9)
    base = make_value_head("hl_gauss", v_min=-3, v_max=3, num_bins=21)
    other = make_value_head("hl_gauss", v_min=-3, v_max=3, num_bins=21, sigma_ratio=2.0)
    np.testing.assert_allclose(base.loss(out, a, r, d, nxt, a, sigma_ratio=2.0),
                               other.loss(out, a, r, d, nxt, a), rtol=1e-6)
    traced = jax.jit(lambda s: base.loss(out, a, r, d, nxt, a, sigma_ratio=s))(2.0)
    np.testing.assert_allclose(traced, other.loss(out, a, r, d, nxt, a), rtol=1e-6)
    assert not np.allclose(base.loss(out, a, r, d, nxt, a), other.loss(out, a, r, d, nxt, a))


def test_chosen_lr_picks_lowest_mean_and_never_a_diverged_one():
    cfg = dataclasses.replace(vlm.PRESETS["smoke"], lrs=(1e-3, 1e-2, 1e-1))
    final = np.array([[[0.5, 0.6], [0.2, 0.3], [np.inf, 0.01]]])  # S x L x C
    assert vlm.chosen_lr(cfg, final[..., None]) == 1e-2


def test_lr_scores_average_seeds_and_conditions():
    final = np.array([[[0.5, 0.7], [0.2, np.inf]], [[0.3, 0.1], [0.2, 0.2]]])  # S x L x C
    np.testing.assert_allclose(vlm.lr_scores(final), [0.4, np.inf])


def test_clipped_fraction_matches_the_gaussian_tail_and_is_zero_without_noise():
    cfg = vlm.PRESETS["default"]
    seeds = [0, 1, 2]
    # |f| <= sum |a_j| <= sqrt(2 J) < v_max for unit-variance f with J = 4 sinusoids
    assert vlm.clipped_fraction(cfg, seeds, 0.0) == 0.0
    # noise-dominated labels: y ~ N(0, 1 + s^2) up to f's non-Gaussianity
    s = 4.0
    tail = 2 * (1 - 0.5 * (1 + math.erf(cfg.v_max / math.sqrt(1 + s**2) / math.sqrt(2))))
    assert abs(vlm.clipped_fraction(cfg, seeds, s) - tail) < 0.04
    # the labels of train_one (seed -> split key -> task, noise eps): same count by hand
    k_task = jax.random.split(jax.random.PRNGKey(1), 3)[0]
    _, f, *_, scale, eps, _, _ = vlm.task_arrays(cfg, k_task, 0.0)
    y = np.asarray(scale * f + 2.0 * eps)
    assert vlm.clipped_fraction(cfg, [1], 2.0) == pytest.approx(np.mean(np.abs(y) > 4.0))
    assert vlm.clipped_fraction(dataclasses.replace(cfg, v_min=-100, v_max=100), seeds, s) == 0


# Tiny: the smoke preset's grid (losses x widths x conditions, lr tuning, sigma sweep) with
# fewer steps and points: the recipe's real code path and resume, not its claims.
TINY = dataclasses.replace(vlm.PRESETS["smoke"], train_points=64, eval_points=64, steps=40,
                           target_period=10, curve_points=2)
TINY_SEEDS = SEEDS  # so that the padding test below reuses the run's compiled shapes


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("vlm") / "tiny"
    _, summary = runner.execute(vlm.RECIPE, TINY, preset="smoke", seeds=TINY_SEEDS, run_dir=path)
    return path, summary


def _check_run(path, summary, cfg, seeds):
    names = [c["name"] for c in summary["claims"]]
    assert names == ["hl_gauss_advantage_grows_with_noise",
                     "hl_gauss_advantage_grows_with_nonstationarity",
                     "hl_gauss_advantage_grows_with_width"]
    for c in summary["claims"]:
        assert c["ci_low"] <= c["value"] + 1e-9 <= c["ci_high"] + 2e-9
        assert c["holds"] == (c["ci_low"] > 0)
    run = RunDir.open(path)
    ev = run.events("eval")
    assert len(ev) == len(cfg.losses) * len(cfg.widths) * seeds
    for e in ev:
        final = np.array([c[-1] for c in e["curves"]])
        assert np.isfinite(final).all() and (final > 0).all()
        assert e["lr"] in cfg.lrs
        assert all(len(c) == cfg.curve_points for c in e["curves"])
    assert len(run.events("sigma")) == len(cfg.sigma_ratios) * seeds
    report = (path / "report.md").read_text()
    for section in ("## Learning rates chosen", "## Advantage over MSE", "sigma / bin-width",
                    "## Noise growth per width", "## Learning-rate choice margin",
                    "## Training targets outside the support", "plots/advantage_vs_noise.png"):
        assert section in report
    for png in ("advantage_vs_noise.png", "advantage_vs_gamma.png", "sigma_sweep.png"):
        assert (path / "plots" / png).stat().st_size > 0
    assert runner.finalize(vlm.RECIPE, RunDir.open(path))["claims"] == summary["claims"]
    return ev


def test_tiny_end_to_end(tiny_run):
    _check_run(*tiny_run, TINY, TINY_SEEDS)


@pytest.mark.slow  # the smoke preset, ~45 s
def test_smoke_end_to_end(tmp_path):
    path = tmp_path / "smoke"
    cfg = vlm.RECIPE.preset("smoke")
    _, summary = runner.execute(vlm.RECIPE, cfg, preset="smoke", seeds=SEEDS, run_dir=path)
    ev = _check_run(path, summary, cfg, SEEDS)
    # the noisiest condition is learned worse than the noiseless one, for most runs
    conds = cfg.conditions()
    hi, lo = conds.index((max(cfg.noise_levels), 0.0)), conds.index((0.0, 0.0))
    worse = [e["curves"][hi][-1] > e["curves"][lo][-1] for e in ev]
    assert np.mean(worse) >= 0.75


def test_padding_does_not_change_a_run():
    cfg = TINY
    conds = cfg.conditions()
    pad = len(conds) * max(cfg.tune_seeds * len(cfg.lrs), TINY_SEEDS)  # the recipe's own padding
    a = vlm.run_grid(cfg, "mse", 0.25, 0.75, [0, 1], [1e-3], conds, pad)
    b = vlm.run_grid(cfg, "mse", 0.25, 0.75, [0, 1, 2], [1e-3], conds, pad)
    np.testing.assert_array_equal(a, b[:2])


def test_resume_after_interruption_gives_same_metrics(tiny_run, tmp_path, killed_at):
    path_ref, summary_ref = tiny_run
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 3):
        runner.execute(vlm.RECIPE, TINY, preset="smoke", seeds=TINY_SEEDS, run_dir=path)
    _, summary = runner.execute(vlm.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert summary["claims"] == summary_ref["claims"]

    def evals(p):
        return sorted(json.dumps(e, sort_keys=True) for e in RunDir.open(p).events("eval"))

    assert evals(path) == evals(path_ref)


def test_config_errors():
    cfg = vlm.RECIPE.preset("smoke")
    with pytest.raises(UnknownNameError, match="unknown value loss 'huber'"):
        dataclasses.replace(cfg, losses=("mse", "huber")).validate()
    with pytest.raises(ConfigError, match="must include mse"):
        dataclasses.replace(cfg, losses=("hl_gauss",)).validate()
    with pytest.raises(ConfigError, match="gammas must lie in"):
        dataclasses.replace(cfg, gammas=(1.0,)).validate()
    with pytest.raises(ConfigError, match="num_sinusoids"):
        dataclasses.replace(cfg, input_dim=1, max_frequency=1, num_sinusoids=5).validate()


@pytest.mark.parametrize("flags,message", [
    (["--gammas", "1.5"], "gammas must lie in (0, 1)"),
    (["--noise-levels", "0.5"], "give at least two noise levels"),
    (["--losses", "mse", "quantile"], "unknown value loss 'quantile'"),
])
def test_cli_user_errors_exit_2(flags, message, tmp_path, capsys):
    rc = main(["run", "value-loss-mechanisms", "--preset", "smoke", "--run-dir",
               str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
