"""The KMC likelihood, the vmapped bootstrap ensemble, distillation and map recovery."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core import config as cfglib
from selftaught.core.errors import ConfigError
from selftaught.sim.dopant import learn, metrics, rates, sim


def test_kmc_loss_matches_hand_computation():
    # λ = 2/s, Δt = 0.5 s, logits give neighbour 1 probability 2/4.
    logits = jnp.array([[0.0, math.log(2.0), 0.0]] * 3)
    log_rate = jnp.full(3, math.log(2.0))
    dwell = jnp.full(3, 0.5)
    moved = jnp.array([True, False, True])
    nbr = jnp.array([1, -1, 0])
    loss = jax.jit(learn.kmc_loss)
    got = np.asarray(loss(logits, log_rate, dwell, moved, nbr))
    p_move = 1 - math.exp(-1.0)  # 1 − e^{−λΔt}
    expected = [
        -math.log(p_move) - math.log(0.5),  # moved to neighbour 1: L_rate + L_class
        1.0,  # not moved: −(−λΔt)
        -math.log(p_move) - math.log(0.25),  # moved to neighbour 0
    ]
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    # tiny λΔt stays finite and accurate: −log(1 − e^{−x}) ≈ −log x
    tiny = loss(jnp.zeros((3, 3)), jnp.full(3, math.log(1e-6)), jnp.ones(3),
                jnp.array([True, True, True]), jnp.array([0, 1, 2]))
    np.testing.assert_allclose(tiny, [-math.log(1e-6) + math.log(3)] * 3, rtol=1e-4)


def test_net_rates_are_softmax_times_total():
    net = learn.RateNet(8, 1)
    params = jax.jit(net.init)(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    ctx = rates.with_settings(jnp.array([[0.3, -0.4], [1.0, 1.0]]))
    logits, log_rate = jax.jit(net.apply)(params, learn.features(ctx, False))
    r = rates.evaluate(learn.NetRates(params, 8, 1, False), ctx)
    np.testing.assert_allclose(r.sum(-1), jnp.exp(log_rate), rtol=1e-5)
    np.testing.assert_allclose(r / r.sum(-1, keepdims=True), jax.nn.softmax(logits), rtol=1e-5)


def test_bootstrap_members_differ_and_ensemble_is_their_mean():
    # the smoke preset's sizes, so the compiled trainer is shared with the recipe test
    obs = sim.explore(rates.ground_truth("offaxis"), jax.random.PRNGKey(0), num_sessions=64,
                      steps=64, radius=2.2, dwell_range=(0.3, 3.0))
    cfg = learn.LearnConfig(members=2, steps=600, distill_steps=200)
    model, losses = learn.train_ensemble(jax.random.PRNGKey(1), obs, cfg)
    assert losses.shape == (600,) and np.all(np.isfinite(losses))
    assert losses[-100:].mean() < losses[:100].mean()
    ctx = rates.with_settings(jnp.array([[0.5, 0.5], [1.0, -0.3]]))
    per_member = np.asarray(learn.member_rates(model, ctx))
    assert per_member.shape == (2, 2, 3)
    assert np.abs(per_member[0] - per_member[1]).max() > 1e-4
    np.testing.assert_allclose(rates.evaluate(model, ctx), per_member.mean(0), rtol=1e-5)
    # a data budget: every member resamples only the first 100 records
    _, init, _ = learn.make_train(cfg)
    state = init(jax.random.PRNGKey(2), learn.as_arrays(obs), jnp.array([100, 4096]))
    boot = np.asarray(state.boot_idx_MxN)
    assert boot.shape == (2, 4096) and boot[0].max() < 100 and boot[1].max() >= 100
    assert len(np.unique(boot[0])) < 100  # a bootstrap resample repeats records
    first, second = learn.split_members(model, [1, 1])
    np.testing.assert_allclose(rates.evaluate(second, ctx), per_member[1], rtol=1e-5)
    with pytest.raises(ConfigError, match="num_records must be in 1..4096"):
        learn.train_ensemble(jax.random.PRNGKey(1), obs, cfg, num_records=5000)


def _fit(records_sessions, steps, seed=0):
    truth = rates.ground_truth("offaxis")
    obs = sim.explore(truth, jax.random.PRNGKey(seed), num_sessions=records_sessions,
                      steps=256, radius=2.2, dwell_range=(0.3, 3.0))
    cfg = learn.LearnConfig(members=1, steps=steps, bootstrap=False)
    model, _ = learn.train_ensemble(jax.random.PRNGKey(seed + 1), obs, cfg)
    return truth, rates.symmetrize(model)


def test_enough_data_recovers_the_rate_map():
    """32768 exposures: normalised map error below 0.15 (stated tolerance) and the best beam
    position within 0.1 Å of the true off-axis optimum (the prior is 0.4 Å off)."""
    truth, model = _fit(128, 1500)
    assert metrics.rate_map_error(model, truth) < 0.15
    assert metrics.peak_offset(model, truth) <= 0.1 + 1e-6


@pytest.mark.slow
def test_map_error_shrinks_with_data():
    errors = [metrics.rate_map_error(*reversed(_fit(n, 3000))) for n in (16, 64, 256)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.1  # 65536 exposures: within 10% (0.08 measured)


def test_distillation_reproduces_the_teacher():
    truth = rates.ground_truth("offaxis")
    cfg = learn.LearnConfig(distill_steps=600)
    student, losses = learn.distill(jax.random.PRNGKey(0), truth, cfg, radius=2.2,
                                    voltage_range=(60.0, 60.0), current_range=(50.0, 50.0))
    assert losses[-50:].mean() < losses[:50].mean()
    assert metrics.rate_map_error(student, truth) < 0.15


def test_learn_config_validation():
    with pytest.raises(ConfigError, match="learn.members must be >= 1"):
        cfglib.validate(learn.LearnConfig(members=0))
    with pytest.raises(ConfigError, match="learn.lr must be > 0"):
        cfglib.validate(learn.LearnConfig(lr=0.0))


def test_settings_features_are_log_dose():
    """With voltage/current in the input, the features are linear in the true log dose."""
    ctx = jnp.array([[1.42, 0.0, 70.0, 100.0], [0.0, -1.42, 60.0, 50.0]])
    f = np.asarray(learn.features(ctx, True))
    np.testing.assert_allclose(f, [[1.0, 0.0, 1.0, math.log(2.0)], [0.0, -1.0, 0.0, 0.0]],
                               atol=1e-6)
    assert learn.features(ctx, False).shape == (2, 2)
    log_dose = np.log(np.asarray(rates.dose_scale(ctx[:, 2], ctx[:, 3])))
    np.testing.assert_allclose(log_dose, f[:, 2] + f[:, 3], atol=1e-6)


def test_batches_weight_every_record_of_a_budget_equally():
    """A budget that does not divide the record count: the tiled indices 0,1,2,0,1,2,0,1
    would draw records 0 and 1 3/8 of the time and record 2 2/8; each must get 1/3."""
    import jax.numpy as jnp

    n, used = 8, 3
    boot = jnp.arange(n) % used
    idx = np.asarray(learn.batch_records(jax.random.PRNGKey(0), boot, jnp.int32(used), 60_000))
    freq = np.bincount(idx, minlength=used) / idx.size
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.01)
    # a budget that divides the count keeps the draws of before
    boot = jnp.arange(n) % 4
    key = jax.random.PRNGKey(1)
    np.testing.assert_array_equal(learn.batch_records(key, boot, jnp.int32(4), 64),
                                  boot[jax.random.randint(key, (64,), 0, n)])
