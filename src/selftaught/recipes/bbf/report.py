"""bbf: the ablation report and its claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Report
from selftaught.core.rundir import RunDir
from selftaught.recipes.bbf.config import VARIANTS, BBFRecipeConfig
from selftaught.rl.bbf import (
    reset_steps,
)
from selftaught.rl.envs import normalized_return


def _normalize(env: str, returns: np.ndarray) -> np.ndarray:
    if env.startswith("ALE/"):
        from selftaught.rl.atari import human_normalized

        return human_normalized(env, returns)
    return normalized_return(env, returns)


def report(cfg: BBFRecipeConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    by: dict[tuple[str, str], dict[int, dict]] = {}
    for e in run_dir.events("curve"):
        by.setdefault((e["env"], e["variant"]), {})[e["seed"]] = e
    finals, curves = {}, {}
    for (env, v), rows in by.items():
        runs = [rows[s] for s in seeds if s in rows]
        ev = _normalize(env, np.array([r["eval_return"] for r in runs], np.float64))
        finals[(env, v)] = ev[:, -cfg.final_points:].mean(axis=1)
        curves[(env, v)] = (np.array(runs[0]["steps"]), ev)

    def matrix(v):
        cols = [finals.get((e, v)) for e in cfg.envs]
        if any(c is None for c in cols):
            return None
        n = min(len(c) for c in cols)
        return np.stack([c[:n] for c in cols], axis=1)

    mats = {v: matrix(v) for v in cfg.variants}
    full = mats.get("full")
    md = ["## Ablation table", "",
          f"Tasks: {', '.join(cfg.envs)}; {len(seeds)} seeds per agent; score = mean greedy "
          f"return over the last {cfg.final_points} evaluations, normalised per task "
          "(R - random) / (reference - random) (Atari: human-normalised). IQM with 95% "
          "stratified-bootstrap CIs; the last columns compare the full agent with each "
          "ablation (same seeds).", ""]
    claims, bars, rows = [], {}, []
    # An ablation can only show what a component adds once the full agent learns: the
    # ablation claims need the full agent's IQM clearly above random (normalised score 0).
    full_iqm = stats.bootstrap_ci(full, "iqm") if full is not None else None
    learns = full_iqm is not None and full_iqm[1] > cfg.min_full_iqm
    at_random = ("" if full_iqm is None else
                 f"the full agent does not learn clearly: IQM of the normalised score "
                 f"{full_iqm[0]:.3f} [{full_iqm[1]:.3f}, {full_iqm[2]:.3f}], its CI needed "
                 f"above {cfg.min_full_iqm:g} (random = 0), so an ablation's effect cannot "
                 "be told from noise; train longer (--bbf.loop.total-steps)")
    for v in cfg.variants:
        m = mats[v]
        if m is None:
            continue
        label = VARIANTS[v][0]
        iqm = full_iqm if v == "full" else stats.bootstrap_ci(m, "iqm")  # full: computed above
        bars[label] = iqm
        if v == "full" or full is None:
            rows.append([label, f"{iqm[0]:.3f}", f"[{iqm[1]:.3f}, {iqm[2]:.3f}]", "-", "-", "-"])
            continue
        d = stats.iqm_difference(full, m)
        p = stats.probability_of_improvement(full, m)
        rows.append([label, f"{iqm[0]:.3f}", f"[{iqm[1]:.3f}, {iqm[2]:.3f}]", f"{d[0]:.3f}",
                     f"[{d[1]:.3f}, {d[2]:.3f}]", f"{p[0]:.2f}"])
        claims.append(stats.claim_greater(
            f"full_beats_{v}", f"IQM(BBF) - IQM(BBF {label}) > 0", d, 0.0,
            unit="training seeds").gated(learns, at_random))
    md.append(stats.markdown_table(
        ["agent", "IQM", "95% CI", "IQM(full) - IQM(agent)", "95% CI", "P(full > agent)"], rows))
    if bars:
        stats.plot_bars(run_dir.plots / "ablation.png", bars, ylabel="IQM normalised return",
                        title="BBF ablations")
        md += ["", "![ablation](plots/ablation.png)"]
    for env in (e for e in cfg.envs if not e.startswith("ALE/")):  # Atari: final eval only
        got = {VARIANTS[v][0]: curves[(env, v)] for v in cfg.variants if (env, v) in curves}
        if got:
            steps = next(iter(got.values()))[0]
            path = run_dir.plots / f"curves_{env}.png"
            stats.plot_curves(path, steps, {k: v[1] for k, v in got.items()},
                              xlabel="env steps", ylabel="normalised return", title=env)
            md += ["", f"![learning curves {env}](plots/{path.name})"]
    b = cfg.bbf
    atari = any(e.startswith("ALE/") for e in cfg.envs)
    scale = ("Atari-100k protocol (ale-py; life loss ends training episodes, no sticky "
             "actions, up to 30 no-op starts; score = final evaluation)" if atari else
             "a CPU-scale MinAtar study, far smaller than Atari-100k")
    resets = (f"resets every {b.reset_every} steps until {b.reset_until}" if atari else
              f"resets at env steps {', '.join(map(str, reset_steps(b))) or 'none'}")
    md += ["", "## Setting", "",
           f"Full agent: Impala channels {tuple(int(ch * b.width) for ch in b.channels)} "
           f"(width {b.width:g} x {b.channels}), latent {b.latent}, C51 {b.num_atoms} atoms, "
           f"replay ratio {b.loop.grad_steps}, batch {b.loop.batch_size}, {b.loop.total_steps} env "
           f"steps "
           f"per seed, {resets} (shrink {b.shrink}), n {b.n_max}->{b.n_min} and gamma "
           f"{b.gamma_min}->{b.gamma_max} over {b.anneal_steps} gradient steps, SPR "
           f"{b.spr_steps} steps x {b.spr_weight}, AdamW lr {b.lr:g} wd {b.weight_decay}, "
           f"EMA tau {b.tau}. "
           f"This is {scale}; a claim holds only when its CI lies above 0."]
    return Report(claims, "\n".join(md))


