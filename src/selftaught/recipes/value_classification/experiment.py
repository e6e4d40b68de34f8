"""value-classification: one cell's training, every seed (and lr) in one vmapped program."""

from __future__ import annotations

import numpy as np

from selftaught.core import programs
from selftaught.core.seeding import keys
from selftaught.recipes.value_classification.config import (
    ValueClassificationConfig,
    cell_config,
    condition_config,
)
from selftaught.rl.dqn import DQNConfig, curve_steps, make_agent
from selftaught.rl.loop import run_chunks


@programs.cached(maxsize=64)
def _compiled(dqn: DQNConfig):
    """(init, chunk) jitted and vmapped over seeds (init's optional lr too), once per DQN
    config: a resumed run (or a second run in the same process) reuses the programs."""
    agent = make_agent(dqn)
    return agent.init, agent.chunk




def train_cell(log, cfg: ValueClassificationConfig, env: str, loss: str, width: float,
               seeds: list[int]) -> None:
    """DQN with one value loss at one width, every seed in one vmapped program, trained in
    `num_evals` compiled chunks (one learning-curve point each)."""
    dqn = cell_config(cfg, env, loss, width)
    init, chunk = _compiled(dqn)
    carry = init(keys(seeds))
    _, curves = run_chunks(chunk, carry, dqn.loop.num_evals, f"{env} {loss} w{width:g}",
                           finite="loss", where=log.phase, lr=dqn.lr)  # S x T
    for i, s in enumerate(seeds):
        log("curve", env=env, loss=loss, width=width, seed=s, steps=curve_steps(dqn),
            eval_return=curves["eval_return"][i], train_return=curves["train_return"][i],
            td_loss=curves["loss"][i], q=curves["q"][i])
    log.headline(env=env, loss=loss, width=width,
                 eval_return=float(np.mean(curves["eval_return"][:, -1])))




def train_cond_cell(log, cfg: ValueClassificationConfig, env: str, cond: str, loss: str,
                    lr: float, seeds: list[int]) -> None:
    """One (condition, loss, lr) cell: tuning and reported seeds in one vmapped program
    (the lr is traced, so every lr of a condition and loss shares the compiled program).
    A diverged run is a data point of the sensitivity curve, not an error."""
    dqn = condition_config(cfg, env, cond, loss)
    init, chunk = _compiled(dqn)
    runs = [*cfg.tune_seeds, *seeds]
    carry = init(keys(runs), np.full(len(runs), lr, np.float32))
    _, curves = run_chunks(chunk, carry, dqn.loop.num_evals, f"{env} {cond} {loss} lr{lr:g}")
    for i, s in enumerate(runs):
        log("cond_curve", env=env, condition=cond, loss=loss, lr=lr, seed=s,
            steps=curve_steps(dqn), eval_return=curves["eval_return"][i],
            train_return=curves["train_return"][i], td_loss=curves["loss"][i],
            td_sq=curves["td_sq"][i], q=curves["q"][i])
    log.headline(env=env, condition=cond, loss=loss, lr=lr,
                 eval_return=float(np.mean(curves["eval_return"][:, -1])))


