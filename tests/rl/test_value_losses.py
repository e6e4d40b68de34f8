"""Value losses against hand-computed distributions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.rl import value_losses as vl


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def hl_reference(y: float, edges: list[float], sigma: float) -> np.ndarray:
    cdf = [phi((e - y) / sigma) for e in edges]
    z = cdf[-1] - cdf[0]
    return np.array([(cdf[i + 1] - cdf[i]) / z for i in range(len(edges) - 1)])


# ---------------------------------------------------------------- HL-Gauss
def test_hl_gauss_on_bin_centre_is_symmetric_and_matches_reference():
    # range [0, 4], 4 bins -> edges 0..4, centres .5 1.5 2.5 3.5, sigma = .75
    p = np.asarray(vl.hl_gauss_target(jnp.array(1.5), 0.0, 4.0, 4))
    ref = hl_reference(1.5, [0, 1, 2, 3, 4], 0.75)
    np.testing.assert_allclose(p, ref, atol=1e-6)
    # the bin holding y gets 2*Phi(0.5/0.75) - 1 before renormalisation
    z = phi(2.5 / 0.75) - phi(-1.5 / 0.75)
    assert p[1] == pytest.approx((2 * phi(0.5 / 0.75) - 1) / z, abs=1e-6)
    assert p[0] == pytest.approx(p[2], abs=1e-6)  # symmetric around the centre bin
    assert p.sum() == pytest.approx(1.0, abs=1e-6)


def test_hl_gauss_at_range_edge_and_outside_range():
    p_edge = np.asarray(vl.hl_gauss_target(jnp.array(0.0), 0.0, 4.0, 4))
    ref = hl_reference(0.0, [0, 1, 2, 3, 4], 0.75)
    np.testing.assert_allclose(p_edge, ref, atol=1e-6)
    # first bin: (Phi(1/.75) - 1/2) / (Phi(4/.75) - 1/2)
    assert p_edge[0] == pytest.approx((phi(1 / 0.75) - 0.5) / (phi(4 / 0.75) - 0.5), abs=1e-6)
    # outside the range: clipped to the edge
    p_out = np.asarray(vl.hl_gauss_target(jnp.array([-7.0, 12.0]), 0.0, 4.0, 4))
    np.testing.assert_allclose(p_out[0], p_edge, atol=1e-6)
    np.testing.assert_allclose(p_out[1], p_edge[::-1], atol=1e-6)


def test_hl_gauss_sigma_ratio_changes_spread():
    narrow = np.asarray(vl.hl_gauss_target(jnp.array(1.5), 0.0, 4.0, 4, sigma_ratio=0.1))
    assert narrow[1] == pytest.approx(1.0, abs=1e-5)  # 5 sigma inside the bin


# ---------------------------------------------------------------- two-hot
def test_two_hot_on_atom_between_atoms_and_edges():
    atoms = np.asarray(vl.atom_support(0.0, 4.0, 5))
    np.testing.assert_allclose(atoms, [0, 1, 2, 3, 4])
    ys = jnp.array([2.0, 2.25, 0.0, 4.0, -3.0, 9.0])
    p = np.asarray(vl.two_hot_target(ys, 0.0, 4.0, 5))
    expected = np.array(
        [
            [0, 0, 1, 0, 0],
            [0, 0, 0.75, 0.25, 0],
            [1, 0, 0, 0, 0],
            [0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0],
            [0, 0, 0, 0, 1],
        ],
        dtype=np.float32,
    )
    np.testing.assert_allclose(p, expected, atol=1e-6)


def test_two_hot_mean_equals_clipped_target():
    ys = jnp.linspace(-1.0, 5.0, 37)
    p = vl.two_hot_target(ys, 0.0, 4.0, 9)
    mean = np.asarray(p @ vl.atom_support(0.0, 4.0, 9))
    np.testing.assert_allclose(mean, np.clip(np.asarray(ys), 0, 4), atol=1e-5)


# ---------------------------------------------------------------- C51
def test_c51_projection_hand_computed():
    onehot = lambda i: jnp.eye(5)[i]  # noqa: E731
    next_probs = jnp.stack([onehot(2), onehot(4), jnp.full(5, 0.2), onehot(1), onehot(3)])
    reward = jnp.array([0.5, 1.0, 1.5, 10.0, -1.0])
    discount = jnp.array([1.0, 0.5, 0.0, 0.9, 0.0])
    p = np.asarray(vl.c51_project(next_probs, reward, discount, 0.0, 4.0))
    expected = np.array(
        [
            [0, 0, 0.5, 0.5, 0],  # 0.5 + 2 = 2.5 splits between atoms 2 and 3
            [0, 0, 0, 1, 0],  # 1 + 0.5 * 4 = 3, exactly on an atom
            [0, 0.5, 0.5, 0, 0],  # terminal: all mass at r = 1.5
            [0, 0, 0, 0, 1],  # above range: clipped to v_max
            [1, 0, 0, 0, 0],  # below range: clipped to v_min
        ]
    )
    np.testing.assert_allclose(p, expected, atol=1e-6)


def test_c51_projection_preserves_mass_and_mean_inside_range():
    key = jax.random.PRNGKey(0)
    probs = jax.nn.softmax(jax.random.normal(key, (8, 11)))
    reward = jnp.linspace(-0.3, 0.3, 8)
    discount = jnp.full(8, 0.5)
    p = vl.c51_project(probs, reward, discount, -10.0, 10.0)
    np.testing.assert_allclose(np.asarray(p.sum(-1)), 1.0, atol=1e-5)
    z = vl.atom_support(-10.0, 10.0, 11)
    np.testing.assert_allclose(
        np.asarray(p @ z), np.asarray(reward + discount * (probs @ z)), atol=1e-4
    )


# ---------------------------------------------------------------- heads
@pytest.mark.parametrize("name", vl.LOSSES)
def test_head_loss_is_minimised_by_the_target(name):
    head = vl.make_value_head(name, v_min=0.0, v_max=4.0, num_bins=9)
    b, a = 3, 2
    next_out = jnp.zeros((b, a, head.num_outputs))  # uniform / zero: Q(s') = 2 or 0
    action = jnp.array([0, 1, 0])
    reward = jnp.array([0.5, 1.0, 0.0])
    discount = jnp.array([0.5, 0.0, 0.9])
    q_next = head.q_values(next_out)[:, 0]
    y = reward + discount * q_next

    def total(out):
        return head.loss(out, action, reward, discount, next_out, jnp.zeros(b, jnp.int32)).sum()

    # gradient descent drives Q(s, a) to the TD target y
    step = lambda _, o: o - 0.5 * jax.grad(total)(o)  # noqa: E731
    opt_out = jax.jit(lambda o: jax.lax.fori_loop(0, 300, step, o))(
        jnp.zeros((b, a, head.num_outputs))
    )
    q = np.asarray(head.q_values(opt_out))[np.arange(b), np.asarray(action)]
    tol = 0.05 if name != "c51" else 0.1
    np.testing.assert_allclose(q, np.asarray(y), atol=tol)


def test_head_errors():
    with pytest.raises(UnknownNameError, match="unknown value loss 'huber'.*hl_gauss"):
        vl.make_value_head("huber")
    with pytest.raises(ConfigError, match="v_min < v_max"):
        vl.make_value_head("hl_gauss", v_min=1.0, v_max=1.0)
    with pytest.raises(ConfigError, match="num_bins >= 2"):
        vl.make_value_head("two_hot", num_bins=0)


class _Linear:
    """A state-value 'network' V(x) = x . w with outputs shaped [B, 1 action, n]."""

    def __init__(self, n: int = 1):
        self.n = n

    def apply(self, p, x):
        return (x @ p["w"]).reshape(x.shape[0], 1, self.n)


def test_value_learner_first_step_is_adam_sign_step_on_the_td_error():
    """Adam's first step moves each weight by lr * sign(gradient) (up to eps); with the MSE
    head the gradient is mean((V(x) - r - discount * V_target(x')) x)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype(np.float32)
    r = rng.normal(size=32).astype(np.float32)
    next_v = rng.normal(size=32).astype(np.float32)
    w0 = np.array([0.3, -0.2, 0.1], np.float32)
    net, head = _Linear(), vl.make_value_head("mse")
    init, step = vl.make_value_learner(net, head)
    params = {"w": jnp.asarray(w0)}
    lr, gamma = 0.01, 0.9
    new, _ = jax.jit(step)(params, init(params, lr), lr, x, r, jnp.full(32, gamma),
                           next_v.reshape(32, 1, 1))
    g = ((x @ w0 - r - gamma * next_v)[:, None] * x).mean(0)
    np.testing.assert_allclose(np.asarray(new["w"]), w0 - lr * np.sign(g), atol=1e-6)


def test_value_learner_fits_the_reward_and_takes_a_traced_lr_and_sigma():
    """With discount 0 repeated steps reach the least-squares weights (MSE head); the
    HL-Gauss head takes `sigma_ratio` and a traced lr inside one jitted scan and lowers
    its loss."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 3)).astype(np.float32)
    w_true = np.array([0.5, -1.0, 0.25], np.float32)
    r = x @ w_true
    zero = jnp.zeros(64)
    net, head = _Linear(), vl.make_value_head("mse")
    init, step = vl.make_value_learner(net, head)

    @jax.jit
    def fit(p, lr):
        def body(c, _):
            return step(*c, lr, x, r, zero, jnp.zeros((64, 1, 1))), None
        return jax.lax.scan(body, (p, init(p, lr)), None, length=2000)[0][0]

    w = fit({"w": jnp.zeros(3)}, jnp.float32(0.02))["w"]
    np.testing.assert_allclose(np.asarray(w), w_true, atol=2e-3)

    hl = vl.make_value_head("hl_gauss", v_min=-4.0, v_max=4.0, num_bins=21)
    init, step = vl.make_value_learner(_Linear(21), hl)
    p0 = {"w": jnp.zeros((3, 21))}
    y = jnp.asarray(np.clip(r, -3.5, 3.5))

    def rmse(p):  # of the head's Q values against the targets
        q = hl.q_values(_Linear(21).apply(p, x))[:, 0]
        return float(jnp.sqrt(jnp.mean((q - y) ** 2)))

    @jax.jit
    def fit_hl(p, lr, s):
        def body(c, _):
            return step(*c, lr, x, y, zero, jnp.zeros((64, 1, 21)), sigma_ratio=s), None
        return jax.lax.scan(body, (p, init(p, lr)), None, length=300)[0][0]

    assert rmse(fit_hl(p0, jnp.float32(0.05), jnp.float32(1.5))) < 0.5 * rmse(p0)


def test_hl_gauss_target_of_a_noisy_td_target_is_unbiased_with_the_mixture_spread():
    # "noisy targets" (value-classification, noisy condition): y = r + eps + gamma * Q(s'),
    # eps ~ N(0, 1), support [-10, 10] x 51 bins (width 0.392), sigma = 0.75 bin. Averaged
    # over eps the target histograms form the distribution the cross-entropy is minimised
    # by: its mean is E[y] (nothing clipped for |y| <= 5) and its variance is the noise's
    # plus the Gaussian's plus the binning's (width^2 / 12)
    mu, n = 0.8, 40_000
    eps = jax.random.normal(jax.random.PRNGKey(0), (n,))
    p = np.asarray(vl.hl_gauss_target(mu + eps, -10.0, 10.0, 51), np.float64).mean(0)
    z = np.asarray(vl.hl_gauss_support(-10.0, 10.0, 51), np.float64)
    eps_mean = float(np.mean(np.asarray(eps, np.float64)))
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    assert (p * z).sum() == pytest.approx(mu + eps_mean, abs=2e-3)
    width = 20.0 / 51
    var = (p * (z - (p * z).sum()) ** 2).sum()
    want = np.var(np.asarray(eps, np.float64)) + (0.75 * width) ** 2 + width**2 / 12
    assert var == pytest.approx(want, rel=0.02)
    # the greedy action reads the categorical mean, not the mode: action 0 has the higher
    # mode (all mass at z_30 = 1.96), action 1 the higher mean (0.6 at z_25 = 0, 0.4 at
    # z_50 = 9.80: mean 3.92)
    head = vl.make_value_head("hl_gauss", v_min=-10.0, v_max=10.0, num_bins=51)
    logits = np.full((1, 2, 51), -40.0, np.float32)
    logits[0, 0, 30] = 0.0
    logits[0, 1, [25, 50]] = [np.log(0.6), np.log(0.4)]
    q = np.asarray(head.q_values(jnp.asarray(logits)))[0]
    np.testing.assert_allclose(q, [z[30], 0.6 * z[25] + 0.4 * z[50]], atol=1e-4)
    assert np.argmax(q) == 1
