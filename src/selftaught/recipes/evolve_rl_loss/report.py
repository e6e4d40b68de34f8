"""evolve-rl-loss's report: the from-scratch searches' TD-rediscovery rate, each search's best
against DQN on CartPole, the bootstrapped best on the held-out environment, and the claims."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Claim, Report
from selftaught.core.rundir import RunDir
from selftaught.recipes.evolve_rl_loss.config import (
    EvolveRLLossConfig,
)

SEARCH = "search seeds"
"""The unit of a claim about what the from-scratch search finds: one search (one seed of
mutations and populations) is one replication, however many training seeds evaluate its
result."""


def report(config: EvolveRLLossConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    # each section of an unfinished run shows what its phases have finished
    refs = {loss: np.asarray(e["scores"]) for (loss,), e in stats.collect_events(
        run_dir, "reference", by={"loss": ["dqn", "dqnreg"]}).items()}
    claims: list[Claim] = []
    md = ["## From scratch", ""]
    ks = range(config.scratch_searches)
    searches = list((stats.collect_events(run_dir, "scratch_search", by={"search": ks},
                                          partial="search", optional=True) or {}).values())
    if searches:
        S = len(searches)
        wins = sum(bool(e["success"]) for e in searches)
        real = sum(e["real_evaluations"] for e in searches)
        trained = sum(e["cartpole_trainings"] for e in searches)
        rate = stats.proportion_ci(wins, S, unit=SEARCH)
        claims.append(stats.claim_greater(
            "scratch_td_rediscovery_rate",
            f"fraction of from-scratch searches (<= {config.scratch_evaluations} real "
            f"evaluations, <= {config.scratch_return_evaluations} CartPole trainings each) "
            f"whose best program clears the chain hurdle and is TD-like (TD-likeness >= "
            f"{config.success_td_likeness}), Wilson 95% CI; holds if its low end > 0",
            rate, 0.0, unit=SEARCH))
        md += [f"{S} searches, fitness = the normalised CartPole return of a DQN trained "
               f"with the loss for programs over the chain hurdle {config.hurdle} (chain "
               f"score - 2 under it): TD rediscovered by {wins} of {S} "
               f"({stats.ci_cell(rate, '.2f')}); {trained} of {real} real evaluations "
               f"({100 * trained / max(real, 1):.2g}%) cleared the hurdle and were trained on "
               "CartPole.", "", stats.markdown_table(
                   ["search seed", "real evals", "first over hurdle", "CartPole trainings",
                    "best program", "TD-likeness", "success"],
                   [[e["search_seed"], e["real_evaluations"], e["first_pass"] or "—",
                     e["cartpole_trainings"], f"`{e['formula']}`", f"{e['td_likeness']:.2f}",
                     "yes" if e["success"] else "no"] for e in searches])]
        stats.plot_curves(run_dir.plots / "scratch_chain_search.png",
                          np.asarray(searches[0]["curve_x"]),
                          {"best chain score": np.asarray([e["curve"] for e in searches])},
                          xlabel="real evaluations", ylabel="best chain-MDP score")
        md += ["", "![scratch search](plots/scratch_chain_search.png)"]
    results = list((stats.collect_events(run_dir, "scratch_result", by={"search": ks},
                                         optional=True) or {}).values())
    if results:
        best = np.asarray([r["scores"] for r in results])              # [searches, n]
        diff = stats.paired_difference_ci(best, np.broadcast_to(refs["dqn"], best.shape),
                                          unit=SEARCH)
        claims.append(stats.claim_greater(
            "scratch_minus_dqn_cartpole",
            "normalised CartPole return of each from-scratch search's best loss minus the "
            "DQN TD loss (mean over paired training seeds, CI over search seeds); holds if "
            "the CI's low end > -0.1", diff, -0.1, unit=SEARCH))
        md += ["", f"Best losses re-trained on {best.shape[1]} CartPole seeds: "
               f"{stats.ci_cell(diff, '+.3f')} vs DQN ({refs['dqn'].mean():.3f})."]
    boot = stats.collect_events(run_dir, "bootstrap_result", by={}, optional=True)
    if boot:
        b = boot[()]
        md += ["", "## Bootstrapped from the DQN graph", "",
               f"Best: `{b['formula']}` (TD-likeness {b['td_likeness']:.2f}"
               f"{'; the DQN loss itself' if b['is_dqn'] else ''}) after "
               f"{b['real_evaluations']} CartPole evaluations; re-evaluated return "
               f"{np.mean(b['scores']):.3f} vs DQN {refs['dqn'].mean():.3f} and hand-coded "
               f"DQNReg {refs['dqnreg'].mean():.3f}.", "", stats.markdown_table(
                   ["top programs", "search fitness"],
                   [[f"`{f}`", f"{v:.3f}"] for f, v in zip(b["top_formulas"],
                                                            b["top_fitness"])])]
    held = stats.collect_events(run_dir, "heldout", by={"env": sorted(config.heldout_envs),
                                                        "loss": ["dqn", "evolved"]},
                                partial="env", optional=True)
    bars = {f"{k} (CartPole)": stats.bootstrap_ci(v) for k, v in refs.items()}
    if held:
        by = {k: np.asarray(e["scores"]) for k, e in held.items()}
        envs = list(dict.fromkeys(e for e, _ in held))
        held = list(held.values())
        dq = np.stack([by[(e, "dqn")] for e in envs], 1)
        ev = np.stack([by[(e, "evolved")] for e in envs], 1)
        evolved = next(e for e in held if e["loss"] == "evolved")
        is_dqn = evolved["is_dqn"]
        diff = stats.paired_difference_ci(ev, dq, unit="training seeds")
        claims.append(stats.claim_greater(
            "evolved_minus_dqn_heldout",
            f"normalised return on held-out {', '.join(envs)}: the bootstrapped search's best "
            f"loss ({evolved['formula']}{', which is the DQN loss itself' if is_dqn else ''})"
            " minus DQN (paired seeds); paper: the evolved loss generalises better; holds if "
            "CI > 0", diff, unit="training seeds"))
        md += ["", "## Held-out environments", "", stats.markdown_table(
            ["env", "DQN", "best evolved"],
            [[e, f"{by[(e, 'dqn')].mean():.3f}", f"{by[(e, 'evolved')].mean():.3f}"]
             for e in envs])]
        for e in envs:
            for k in ("dqn", "evolved"):
                bars[f"{k} ({e})"] = stats.bootstrap_ci(by[(e, k)])
    stats.plot_bars(run_dir.plots / "returns.png", bars, ylabel="normalised return")
    md += ["", "![returns](plots/returns.png)"]
    return Report(claims, "\n".join(md))
