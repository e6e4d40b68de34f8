"""The default preset treats the classification heads like the regression head at start:
a freshly initialised head predicts Q ~ 0 (the former [-1, 20] support started every Q at
its mean, ~9.5, and the values stayed optimistic for the whole 48k-step run)."""

import dataclasses

import jax
import numpy as np
import pytest

from selftaught.recipes.value_classification import PRESETS
from selftaught.rl.envs import make_env
from selftaught.rl.networks import QNetwork
from selftaught.rl.value_losses import make_value_head


@pytest.mark.parametrize("loss", ["mse", "hl_gauss", "two_hot", "c51"])
def test_default_preset_heads_start_near_zero_q(loss):
    dqn = dataclasses.replace(PRESETS["default"].dqn, loss=loss)
    env = make_env("Breakout-MinAtar")
    head = make_value_head(loss, v_min=dqn.v_min, v_max=dqn.v_max, num_bins=dqn.num_bins,
                           sigma_ratio=dqn.sigma_ratio)
    net = QNetwork(dqn.encoder, env.num_actions, head.num_outputs, dqn.width)
    obs = jax.random.bernoulli(jax.random.PRNGKey(0), 0.1, (64, *env.obs_shape)).astype(float)
    q = np.asarray(head.q_values(net.apply(net.init(jax.random.PRNGKey(1), obs), obs)))
    assert q.shape == (64, env.num_actions)
    # MinAtar returns at this budget are O(1); the support spans [v_min, v_max]
    assert abs(q.mean()) < 0.05 * (dqn.v_max - dqn.v_min)
    assert dqn.v_min < 0.0 < dqn.v_max  # zero (the reward-free value) is representable


def test_default_preset_uses_one_lr_for_every_loss():
    cfg = PRESETS["default"]
    from selftaught.recipes.value_classification.config import cell_config, cells

    lrs = {cell_config(cfg, *c).lr for c in cells(cfg)}
    eps = {cell_config(cfg, *c).adam_eps for c in cells(cfg)}
    assert len(lrs) == 1 and len(eps) == 1
