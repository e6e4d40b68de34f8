"""Guided evolution: one search of one arm (regularized evolution, with the discriminator
screening children or not) and its diagnostics."""

from __future__ import annotations

import numpy as np

from selftaught.evolve.backends import LazyBackend
from selftaught.evolve.discriminator import (
    Discriminator,
    OracleDiscriminator,
    confusion,
    guided_mutation,
    rates,
    tuned_threshold,
)
from selftaught.evolve.hashing import FitnessCache, FunctionalHasher, memoized
from selftaught.evolve.program import mutate, to_formula, to_json
from selftaught.evolve.search import (
    evaluations_to_reach,
    novel_mutation,
    regularized_evolution,
)
from selftaught.recipes.guided_evolution.config import (
    TIE,
    GuidedEvolutionConfig,
    oracle_cells,
)


def _run_one(config: GuidedEvolutionConfig, task, evaluate, seed: int, arm: str,
             target: float):
    space = task.space
    if config.fast:  # identical searches: each distinct program run once (memo), and an
        # oracle arm rates its filter proposals in one call (see `guided_mutation`)
        evaluate = memoized(evaluate)
    cache = FitnessCache(FunctionalHasher(space, memo=1_000_000 if config.fast else 0))
    rng = np.random.default_rng([seed, 17])
    kw: dict = {}
    online_acc: list[float] = []
    accepted = {"proposed": 0, "accepted": 0}
    disc = None
    if arm in oracle_cells(config):
        tpr, fpr = oracle_cells(config)[arm]
        disc = OracleDiscriminator(evaluate, tpr=tpr, fpr=fpr, seed=seed, tie_tol=TIE)
    elif arm != "unguided":
        disc = Discriminator(space, seed=seed, dim=config.disc_dim, layers=config.disc_layers,
                             lr=config.disc_lr, min_programs=config.disc_min_programs,
                             capacity=max(1024, config.max_evaluations + 64),
                             kind="regression" if arm == "regression" else "pairwise")
    th = {"t": 0.5, "history": []}  # the tuned arm's threshold (0.5: the others' verdict)
    val: dict = {"P": [], "y": [], "drawn": 0, "novel": 0, "first_novel": 0,
                 "pending": None, "pending_first": 0}
    # diagnostics per window of real evaluations: [TP, FP, FN, TN] of the discriminator's
    # "child better than parent" (P > 0.5, before training on them) on the evaluated
    # children (selected: biased) and on unscreened novel mutations (held out: unbiased)
    W = config.diag_windows
    conf_eval, conf_hold = np.zeros((W, 4), int), np.zeros((W, 4), int)
    novelty = np.zeros((W, 2), int)  # held-out mutations [drawn, novel] per window
    seen: list = []
    hold_rng = np.random.default_rng([seed, 99])

    # tuned arm: [TP, FP, FN, TN] on its validation pairs, at the threshold in force when
    # the verdict was taken (row 0) and at P > 0.5 (row 1): unscreened, so unbiased
    conf_val = np.zeros((2, 4), int)
    prob_hist = np.zeros((2, 20), int)  # held-out P(child better): [truly better, not]

    def said_better(children, parents, hist: bool = False):
        if disc is None or not disc.ready:
            return np.zeros(len(children), bool)
        P = disc.prob_better(children, parents)
        if hist and not isinstance(disc, OracleDiscriminator):
            return P
        return P >= th["t"] if arm == "tuned" else P > 0.5

    def diagnose(inds, is_new):
        seen.extend(inds)
        kids = [i for i, new in zip(inds, is_new) if new and i.parent >= 0]
        if not kids:
            return
        w = min(W - 1, (cache.real_evaluations - 1) * W // config.max_evaluations)
        par = [seen[i.parent] for i in kids]
        truth = np.array([c.fitness > q.fitness + TIE for c, q in zip(kids, par)])
        conf_eval[w] += confusion(said_better([c.program for c in kids],
                                              [q.program for q in par]), truth)
        if config.diag_holdout:
            pick = hold_rng.integers(0, len(par), config.diag_holdout)
            hp = [par[k] for k in pick]
            muts = [mutate(space, q.program, hold_rng, config.p_fresh) for q in hp]
            novel = ~cache.known(muts)
            novelty[w] += [len(muts), novel.sum()]
            hp = [q for q, n in zip(hp, novel) if n]
            muts = [m for m, n in zip(muts, novel) if n]
            if muts:
                f = np.asarray(evaluate(muts), np.float64).reshape(len(muts), -1)[:, 0]
                truth = np.nan_to_num(f, nan=-np.inf) > np.array([q.fitness for q in hp]) + TIE
                P = said_better(muts, [q.program for q in hp], hist=True)
                if P.dtype != bool:
                    for row, sel in enumerate((truth, ~truth)):
                        prob_hist[row] += np.histogram(P[sel], 20, (0.0, 1.0))[0]
                    P = P >= th["t"] if arm == "tuned" else P > 0.5
                conf_hold[w] += confusion(P, truth)

    def tune(inds, is_new):
        """Tuned arm: the batch's first `tune_pairs` children are unscreened; their verdicts
        (taken before evaluation) join the validation pairs, counted at the threshold then in
        force and at P > 0.5; the threshold maximising the predicted gain
        (`screened_improvement_rate` / p) on the last 512 of them is kept."""
        k, P = config.tune_pairs, val["pending"]
        val["pending"] = None
        if P is None or inds[0].parent < 0:
            return
        val["drawn"] += k
        val["first_novel"] += val["pending_first"]
        for ind, new, prob in zip(inds[:k], is_new[:k], P):
            if new:
                better = ind.fitness > seen[ind.parent].fitness + TIE
                val["novel"] += 1
                val["P"].append(float(prob))
                val["y"].append(better)
                conf_val[0] += confusion([prob >= th["t"]], [better])
                conf_val[1] += confusion([prob > 0.5], [better])
        # the novel fraction of plain mutations (what the retry budget screens): of the
        # children themselves, or of their first draws when known ones are re-drawn
        novel = val["first_novel"] if config.tune_redraws else val["novel"]
        t = tuned_threshold(val["P"][-512:], val["y"][-512:], config.proposals,
                            novel / max(val["drawn"], 1))
        if t is not None:
            th["t"] = t
            th["history"].append(t)

    if disc is not None:
        def on_batch(inds, is_new):
            diagnose(inds, is_new)
            if arm == "tuned":
                tune(inds, is_new)
            progs = [i.program for i in inds]
            fit = [i.fitness for i in inds]
            if disc.ready and len(inds) >= 2:  # accuracy on unseen programs, before training
                online_acc.append(disc.pairwise_accuracy(progs, fit, pairs=64, seed=len(fit)))
            disc.add(progs, fit)
            disc.train(config.disc_train_steps)

        kw = {"mutate_batch": guided_mutation(
                  space, disc, proposals=config.proposals, p_fresh=config.p_fresh,
                  # the tuned arm's threshold models the filter rule (first accepted)
                  mode="filter" if arm == "tuned" else config.guide_mode,
                  known=cache.known, counts=accepted,
                  threshold=(lambda: th["t"]) if arm == "tuned" else None,
                  batched=config.fast and isinstance(disc, OracleDiscriminator)),
              "on_batch": on_batch}
        if arm == "tuned":
            screened = kw["mutate_batch"]

            def mutate_batch(parents, rng):
                k = config.tune_pairs
                plain = [mutate(space, q, rng, config.p_fresh) for q in parents[:k]]
                val["pending_first"] = int((~cache.known(plain)).sum())
                for _ in range(config.tune_redraws):  # a known function is no pair: redraw
                    known = cache.known(plain)
                    if not known.any():
                        break
                    plain = [mutate(space, q, rng, config.p_fresh) if kn else c
                             for c, q, kn in zip(plain, parents[:k], known)]
                val["pending"] = disc.prob_better(plain, parents[:k]) if disc.ready else None
                return plain + screened(parents[k:], rng)

            kw["mutate_batch"] = mutate_batch
    else:  # same number of proposals, screened for novelty only
        kw = {"mutate_batch": novel_mutation(space, cache, config.proposals, config.p_fresh),
              "on_batch": diagnose}
    res = regularized_evolution(
        space, evaluate, cache, rng=rng, population_size=config.population_size,
        tournament_size=config.tournament_size, max_evaluations=config.max_evaluations,
        batch_size=config.batch_size, stop_fitness=target, **kw)
    grid = np.linspace(config.max_evaluations / config.curve_points, config.max_evaluations,
                       config.curve_points).astype(int)
    curve = res.best_curve(config.max_evaluations)[grid - 1]
    reached = evaluations_to_reach(res, target, budget=config.max_evaluations)
    return {
        "evals_to_target": float(reached if reached is not None else config.max_evaluations),
        "reached": reached is not None,
        "best_fitness": res.best.fitness,
        "best_formula": to_formula(res.best.program),
        "best_program": to_json(res.best.program),
        "real_evaluations": cache.real_evaluations,
        "candidates": len(res.history),
        "cache_hits": cache.hits,
        "curve_x": grid.tolist(),
        "curve": np.maximum(curve, -10.0).tolist(),
        "target": target,
        "accept_rate": (accepted["accepted"] / accepted["proposed"] if accepted["proposed"]
                        else float("nan")),
        "disc_online_accuracy": (float(np.nanmean(online_acc))
                                 if np.isfinite(online_acc).any() else float("nan")),
        "stopped_by": ("target" if reached is not None else
                       "budget" if cache.real_evaluations >= config.max_evaluations
                       else "candidate cap"),
        "confusion_evaluated": conf_eval.tolist(),
        "confusion_holdout": conf_hold.tolist(),
        "holdout_novelty": novelty.tolist(),
        "novel_fraction": float(novelty[:, 1].sum() / max(novelty[:, 0].sum(), 1)),
        "holdout_prob_hist": prob_hist.tolist(),
        "threshold_mean": float(np.mean(th["history"])) if th["history"] else float("nan"),
        "threshold_final": th["t"] if arm == "tuned" else float("nan"),
        "validation_pairs": len(val["y"]),
        "validation_drawn": val["drawn"],
        "validation_first_novel": val["first_novel"],
        "confusion_validation": conf_val.tolist(),
        **{f"{k}_evaluated": v for k, v in rates(conf_eval.sum(0)).items()},
        **{f"{k}_holdout": v for k, v in rates(conf_hold.sum(0)).items()},
    }


def search(log, config: GuidedEvolutionConfig, eq: str, task, evaluator: LazyBackend, target,
           seed: int, arm: str) -> None:
    """One search of one arm on one task: evaluations to the target and the diagnostics."""
    out = _run_one(config, task, evaluator(), seed, arm, target())
    log("run", equation=eq, seed=seed, arm=arm, **out)
