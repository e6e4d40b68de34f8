"""A tiny recipe used by the core tests: a jitted 'training' with phases per seed."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.core import Recipe, Report, check, check_finite


@dataclasses.dataclass(frozen=True)
class Inner:
    width: int = 3


@dataclasses.dataclass(frozen=True)
class ToyConfig:
    seed: int = 0
    num_seeds: int = 2
    steps: int = 4
    lr: float = 0.1
    inner: Inner = Inner()
    tags: tuple[str, ...] = ("a", "b")

    def validate(self):
        check(self.steps > 0, f"steps must be positive, got {self.steps}")


CALLS: list[str] = []


def phases(config: ToyConfig, seeds):
    return [f"seed{seed}/step{step}" for seed in seeds for step in range(config.steps)]


def run(config: ToyConfig, run_dir, seeds):
    for seed in seeds:
        w = jnp.zeros(config.inner.width)
        for step in range(config.steps):
            tree = run_dir.phase(f"seed{seed}/step{step}", train_step, config, w, seed, step,
                                 restore={"w": w})
            w = jnp.asarray(tree["w"])


def train_step(log, config: ToyConfig, w, seed: int, step: int) -> dict:
    CALLS.append(log.phase)
    key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
    w = w - config.lr * (w - jax.random.normal(key, w.shape))
    loss = float(jnp.sum(w**2)) if config.lr < 100 else float("nan")
    check_finite(loss, where="toy training", step=step, lr=config.lr)
    log("train", seed=seed, step=step, loss=loss)
    return {"w": w}


def report(config, run_dir, seeds):
    final = [
        [e["loss"] for e in run_dir.events("train", seed=s)][-1] for s in seeds
    ]
    est = stats.bootstrap_ci(np.array(final))
    stats.plot_bars(run_dir.plots / "final.png", {"loss": est}, ylabel="loss")
    claim = stats.claim_greater("positive loss", "final loss > 0", est, unit="training seeds")
    return Report([claim], f"final losses: {final}")


RECIPE = Recipe(
    name="toy",
    description="toy recipe for core tests",
    config_cls=ToyConfig,
    presets={"smoke": ToyConfig(steps=2), "default": ToyConfig(), "paper": ToyConfig(steps=8)},
    run=run,
    report=report,
    phases=phases,
)
