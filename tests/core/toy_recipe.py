"""A tiny recipe used by the core tests: a jitted 'training' with phases per seed."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.core import Recipe, Report, Timer, check, check_finite


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


def run(config: ToyConfig, run_dir, seeds):
    for seed in seeds:
        w = jnp.zeros(config.inner.width)
        for step in range(config.steps):
            phase = f"seed{seed}/step{step}"
            if run_dir.phase_done(phase):
                w = jnp.asarray(run_dir.load_checkpoint(phase)["w"])
                continue
            CALLS.append(phase)
            timer = Timer()
            key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
            w = w - config.lr * (w - jax.random.normal(key, w.shape))
            loss = float(jnp.sum(w**2)) if config.lr < 100 else float("nan")
            check_finite(loss, where="toy training", step=step, lr=config.lr)
            run_dir.log("train", phase=phase, seed=seed, step=step, loss=loss)
            run_dir.save_checkpoint(phase, {"w": w})
            run_dir.mark_phase_done(phase, timer())


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
)
