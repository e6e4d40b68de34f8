"""value-loss-mechanisms: the known-function regression and bootstrapped policy-evaluation
programs (every seed, lr and condition of a loss and width in one vmapped program), the lr
tuned on held-out seeds, the evaluation and the HL-Gauss sigma sweep."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core import programs
from selftaught.core.rundir import RunDir
from selftaught.core.seeding import keys
from selftaught.recipes.value_loss_mechanisms.config import (
    TUNE_SEED_OFFSET,
    ValueLossMechanismsConfig,
)
from selftaught.rl.networks import QNetwork
from selftaught.rl.value_losses import make_value_head, make_value_learner


def task_arrays(cfg: ValueLossMechanismsConfig, key: jax.Array, gamma: jax.Array):
    """The known task of one seed: returns (x_train, f_train, x_eval, v_eval, shift,
    reward_scale, noise_eps). Pure JAX so it is vmapped with the training.

    f(x) = sum_j a_j sin(pi k_j . x + b_j); V(x) = sum_k gamma^k c f(x + k v) in closed form:
    sum_k gamma^k sin(theta + k phi) = Im[e^{i theta} / (1 - gamma e^{i phi})].
    Both f and V are scaled to unit standard deviation over the uniform inputs (for
    sinusoids with distinct nonzero integer frequencies, the variance is sum a_j^2 / 2)."""
    d, J = cfg.input_dim, cfg.num_sinusoids
    kf, ka, kb, kv, kx, ke, kn = jax.random.split(key, 7)
    table = jnp.asarray(frequency_table(d, cfg.max_frequency))
    freq = table[jax.random.choice(kf, table.shape[0], (J,), replace=False)]
    amp = jax.random.normal(ka, (J,))
    phase = jax.random.uniform(kb, (J,), maxval=2 * jnp.pi)
    shift = jax.random.uniform(kv, (d,), minval=-1.0, maxval=1.0)
    omega = jnp.pi * freq.astype(jnp.float32)  # J x d
    amp_f = amp / jnp.sqrt(jnp.sum(amp**2) / 2)

    # value: each sinusoid gets complex gain g = 1 / (1 - gamma e^{i phi_j})
    phi = omega @ shift  # J
    denom = (1 - gamma * jnp.cos(phi)) ** 2 + (gamma * jnp.sin(phi)) ** 2
    g_re, g_im = (1 - gamma * jnp.cos(phi)) / denom, (gamma * jnp.sin(phi)) / denom
    gain = jnp.sqrt(g_re**2 + g_im**2)
    v_std = jnp.sqrt(jnp.sum((amp_f * gain) ** 2) / 2)
    reward_scale = 1.0 / v_std  # r = reward_scale * f makes V unit-variance

    def f(x):
        return jnp.sin(x @ omega.T + phase) @ amp_f

    def v(x):  # Im[e^{i theta} (g_re + i g_im)] = sin(theta) g_re + cos(theta) g_im
        theta = x @ omega.T + phase
        return (jnp.sin(theta) * g_re + jnp.cos(theta) * g_im) @ amp_f * reward_scale

    x_train = jax.random.uniform(kx, (cfg.train_points, d), minval=-1.0, maxval=1.0)
    x_eval = jax.random.uniform(ke, (cfg.eval_points, d), minval=-1.0, maxval=1.0)
    eps = jax.random.normal(kn, (cfg.train_points,))
    return x_train, f(x_train), x_eval, v(x_eval), shift, reward_scale, eps, f, v


@functools.lru_cache(maxsize=16)
def frequency_table(d: int, m: int) -> np.ndarray:
    """All integer vectors in {-m..m}^d whose first nonzero entry is positive: distinct,
    nonzero and never the negative of one another, so their sinusoids are orthogonal on
    the torus [-1, 1)^d."""
    grid = np.stack(np.meshgrid(*[np.arange(-m, m + 1)] * d, indexing="ij"), -1).reshape(-1, d)
    first = np.array([row[np.flatnonzero(row)[0]] if row.any() else 0 for row in grid])
    return grid[first > 0]


def wrap(x: jax.Array) -> jax.Array:
    """Into [-1, 1): the torus on which the translation x -> x + v lives."""
    return jnp.mod(x + 1.0, 2.0) - 1.0


@programs.cached(maxsize=64)
def make_program(cfg: ValueLossMechanismsConfig, loss: str, width: float):
    """jit(vmap(train_one)) over runs; train_one(key, lr, noise, gamma, sigma_ratio) ->
    relative-RMSE curve [curve_points] (the last point is the score). Every number is a
    traced input, so one compiled program serves the tuning grid, the evaluation and the
    sigma sweep of a (loss, width)."""
    head = make_value_head(loss, v_min=cfg.v_min, v_max=cfg.v_max, num_bins=cfg.num_bins)
    extra = (lambda s: {"sigma_ratio": s}) if loss == "hl_gauss" else (lambda s: {})
    net = QNetwork(encoder="mlp", num_actions=1, num_outputs=head.num_outputs, width=width)
    every = cfg.steps // cfg.curve_points
    learner_init, learner_step = make_value_learner(net, head)

    def train_one(key, lr, noise, gamma, sigma_ratio):
        k_task, k_init, k_batch = jax.random.split(key, 3)
        x_tr, f_tr, x_ev, v_ev, shift, r_scale, eps, _, _ = task_arrays(cfg, k_task, gamma)
        # noise condition: y = f + sigma eps; bootstrapped: r = c f, y = r + gamma Q(x')
        reward = r_scale * f_tr + noise * eps
        params = net.init(k_init, x_tr[:1])
        opt_state = learner_init(params, lr)
        v_std = jnp.std(v_ev)

        def rel_rmse(p):
            q = head.q_values(net.apply(p, x_ev))[:, 0]
            return jnp.sqrt(jnp.mean((q - v_ev) ** 2)) / v_std

        def step(carry, k):
            params, target, opt_state, t = carry
            target = jax.tree.map(lambda a, b: jnp.where(t % cfg.target_period == 0, a, b),
                                  params, target)
            idx = jax.random.randint(k, (cfg.batch_size,), 0, cfg.train_points)
            x, x_next = x_tr[idx], wrap(x_tr[idx] + shift)
            next_out = jax.lax.stop_gradient(net.apply(target, x_next))
            disc = jnp.full((cfg.batch_size,), gamma)
            params, opt_state = learner_step(params, opt_state, lr, x, reward[idx], disc,
                                             next_out, **extra(sigma_ratio))
            return (params, target, opt_state, t + 1), None

        def chunk(carry, ks):
            carry, _ = jax.lax.scan(step, carry, ks)
            return carry, rel_rmse(carry[0])

        ks = jax.random.split(k_batch, cfg.curve_points * every)
        ks = ks.reshape(cfg.curve_points, every, *ks.shape[1:])
        carry = (params, params, opt_state, jnp.zeros((), jnp.int32))
        _, curve = jax.lax.scan(chunk, carry, ks)
        return jnp.where(jnp.isfinite(curve), curve, jnp.inf)

    return train_one


def run_grid(cfg, loss, width, sigma_ratio, seeds, lrs, conds, pad_to: int = 0):
    """Curves [len(seeds) x len(lrs) x len(conds) x curve_points] in one compiled call.
    The runs are padded (with copies of the last) to `pad_to`, so calls of different
    sizes reuse one compiled program; padding does not change any run's result."""
    S, L, C = len(seeds), len(lrs), len(conds)
    n = S * L * C
    cols = [np.repeat(np.asarray(keys(seeds)), L * C, axis=0),
            np.tile(np.repeat(np.asarray(lrs, np.float32), C), S),
            np.tile(np.asarray([c[0] for c in conds], np.float32), S * L),
            np.tile(np.asarray([c[1] for c in conds], np.float32), S * L),
            np.full((n,), sigma_ratio, np.float32)]
    if pad_to > n:
        cols = [np.concatenate([c, np.repeat(c[-1:], pad_to - n, axis=0)]) for c in cols]
    out = make_program(cfg, loss, float(width))(*cols)
    return np.asarray(jax.device_get(out))[:n].reshape(S, L, C, -1)


def tune_seeds(cfg: ValueLossMechanismsConfig) -> list[int]:
    return [cfg.seed + TUNE_SEED_OFFSET + i for i in range(cfg.tune_seeds)]


def lr_scores(final: np.ndarray) -> np.ndarray:
    """Tuning score per lr: the mean final relative RMSE over tuning seeds and conditions.
    final: seeds x lrs x conditions -> [lrs] (a diverged run, +inf, makes its lr +inf)."""
    return np.asarray(final, np.float64).mean(axis=(0, 2))


def chosen_lr(cfg, tune_curves: np.ndarray) -> float:
    """The lr with the lowest mean final relative RMSE over tuning seeds and conditions
    (a diverged run counts as +inf, so an lr that ever diverges is never chosen over one
    that does not)."""
    return float(cfg.lrs[int(np.argmin(lr_scores(np.asarray(tune_curves)[..., -1])))])


def clipped_fraction(cfg: ValueLossMechanismsConfig, seeds: list[int], noise: float) -> float:
    """Fraction of the noisy regression targets y = f(x) + noise * eps of the training sets
    of `seeds` that lie outside the classification support [v_min, v_max] (the
    classification losses clip them to its edge; MSE does not)."""
    def targets(key):  # as in `make_program`'s train_one at gamma 0
        k_task = jax.random.split(key, 3)[0]
        _, f_tr, _, _, _, r_scale, eps, _, _ = task_arrays(cfg, k_task, 0.0)
        return r_scale * f_tr + noise * eps

    y = np.asarray(jax.vmap(targets)(keys(seeds)))
    return float(np.mean((y < cfg.v_min) | (y > cfg.v_max)))


def stages(cfg: ValueLossMechanismsConfig) -> list[tuple[str, str, float]]:
    """(stage, loss, width) in run order; stage 'sigma' uses its sigma ratio as width slot."""
    out = [(st, loss, float(w)) for loss in cfg.losses for w in cfg.widths
           for st in ("tune", "eval")]
    out += [("sigma", "hl_gauss", float(r)) for r in cfg.sigma_ratios]
    return out


def phase_name(stage: str, loss: str, w: float) -> str:
    return f"sigma/{w:g}" if stage == "sigma" else f"{stage}/{loss}/w{w:g}"


def _tuned(run_dir: RunDir, loss: str, width: float) -> float | None:
    ev = run_dir.events("lr_choice", loss=loss, width=width)
    return ev[-1]["lr"] if ev else None


def run(cfg: ValueLossMechanismsConfig, run_dir: RunDir, seeds: list[int]) -> None:
    conds = cfg.conditions()
    pad = len(conds) * max(len(tune_seeds(cfg)) * len(cfg.lrs), len(seeds))
    work = {"tune": tune_lr, "eval": evaluate_loss, "sigma": sigma_sweep}
    for stage, loss, w in stages(cfg):
        run_dir.phase(phase_name(stage, loss, w), work[stage], cfg, run_dir, loss, w, seeds,
                      conds, pad)


def tune_lr(log, cfg: ValueLossMechanismsConfig, run_dir: RunDir, loss: str, w: float, seeds,
            conds, pad) -> None:
    """Every lr of `cfg.lrs` on the held-out tuning seeds; logs the choice (`lr_choice`)."""
    curves = run_grid(cfg, loss, w, cfg.sigma_ratio, tune_seeds(cfg), cfg.lrs, conds, pad)
    lr = chosen_lr(cfg, curves)
    log("tune", loss=loss, width=w, lrs=list(cfg.lrs), conditions=conds, final=curves[..., -1])
    log("lr_choice", loss=loss, width=w, lr=lr)
    log.headline(lr=lr)


def evaluate_loss(log, cfg: ValueLossMechanismsConfig, run_dir: RunDir, loss: str, w: float,
                  seeds, conds, pad) -> None:
    """The reported seeds at the tuned lr, every condition."""
    lr = _tuned(run_dir, loss, w)
    curves = run_grid(cfg, loss, w, cfg.sigma_ratio, seeds, [lr], conds, pad)[:, 0]
    for i, s in enumerate(seeds):
        log("eval", loss=loss, width=w, lr=lr, seed=s, conditions=conds, curves=curves[i])


def sigma_sweep(log, cfg: ValueLossMechanismsConfig, run_dir: RunDir, loss: str,
                ratio: float, seeds, conds, pad) -> None:
    """HL-Gauss at σ / bin width = `ratio`, at the lr tuned for the σ-sweep's width."""
    lr = _tuned(run_dir, "hl_gauss", cfg.sigma_width)
    curves = run_grid(cfg, "hl_gauss", cfg.sigma_width, ratio, seeds, [lr], conds, pad)[:, 0]
    for i, s in enumerate(seeds):
        log("sigma", sigma_ratio=ratio, lr=lr, seed=s, conditions=conds, curves=curves[i])
