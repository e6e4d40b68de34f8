"""metapg: the claims over search seeds, the re-test diagnostics and the power section."""

from __future__ import annotations

import numpy as np

from selftaught import stats
from selftaught.core.recipe import Claim, Report
from selftaught.core.rundir import RunDir
from selftaught.evolve import sac_family as sf
from selftaught.recipes.metapg.config import OBJECTIVES, PAPER, MetaPGConfig
from selftaught.recipes.metapg.spaces import make_space


def chosen_rows(searches: list[dict]) -> np.ndarray:
    """[searches, objectives] row (into the re-test's pairs) of the member each search
    chose per objective: the re-tested member best on that objective by the search's own
    scores (never by the re-test); 0 (SAC itself) for a search whose front held no other
    function, whose difference to SAC is then 0 by construction."""
    out = np.zeros((len(searches), len(OBJECTIVES)), int)
    for k, s in enumerate(searches):
        score = np.asarray(s["search_objectives"], np.float64)[1:]  # row 0: SAC
        for o in range(len(OBJECTIVES)):
            if len(score):
                out[k, o] = s["pair_index"][int(np.argmax(np.nan_to_num(score[:, o],
                                                                         nan=-np.inf)))]
    return out


def search_differences(perf: np.ndarray, gen: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """[searches, objectives] the re-test's difference of each search's chosen member to
    SAC (row 0 of perf/gen [pairs, fresh seeds]), seed by seed on the common fresh seeds:
    mean(member - SAC) for performance and generalizability, std(SAC) - std(member) of
    performance for stability (instability removed). The claims' units are these rows."""
    d = np.zeros(rows.shape)
    for k in range(rows.shape[0]):
        j0, j1, j2 = rows[k]
        d[k, 0] = np.mean(perf[j0] - perf[0])
        d[k, 1] = np.mean(gen[j1] - gen[0])
        d[k, 2] = np.std(perf[0], ddof=1) - np.std(perf[j2], ddof=1)
    return d


def seed_level_ci(perf: np.ndarray, gen: np.ndarray, rows: np.ndarray, c: int) -> stats.Estimate:
    """The claims' statistic for objective c (the mean over searches of
    `search_differences`) with a bootstrap over the common fresh seeds, the searches fixed:
    each resample takes whole seeds (SAC's and every member's run on that seed together),
    so it measures the re-test's own noise, which the CI over searches sees only through
    the spread of 3 values."""
    x = gen if c == 1 else perf
    cols = np.concatenate([[0], rows[:, c]])
    M = x[cols].T                                       # [seeds, 1 + searches]

    def statistic(m):
        if c == 2:
            return float(np.mean(np.std(m[:, :1], ddof=1) - np.std(m[:, 1:], 0, ddof=1)))
        return float(np.mean(m[:, 1:] - m[:, :1]))

    return stats.unit_bootstrap(M, statistic, unit="fresh training seeds")


SEARCH = "search seeds"


def report(config: MetaPGConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    # an unfinished run reports the generations it has finished (and no re-evaluation)
    cells = stats.collect_events(run_dir, "generation",
                                 by={"generation": range(config.generations + 1),
                                     "search": range(config.searches)},
                                 partial="generation")
    gens = sorted({g for g, _ in cells})
    S = config.searches
    ev = {(g, k): cells[(g, k)] for g, k in cells}
    best = np.asarray([[np.nanmax(np.asarray(ev[(g, k)]["objectives"], np.float64), 0)
                        for g in gens] for k in range(S)])          # [S, G, 3]
    last = [ev[(gens[-1], k)] for k in range(S)]
    md = [f"## Search ({config.env}, perturbed {config.perturb_param} x "
          f"{list(config.perturb_scales)})", "",
          f"{S} independent searches (search seeds {config.seed}..{config.seed + S - 1}), "
          f"each {len(gens) - 1} generations of NSGA-II, population {config.population}, "
          f"{config.train_seeds} training seeds per candidate (common to a search's "
          f"candidates): {sum(e['candidates'] for e in last)} candidates, "
          f"{sum(e['real_evaluations'] for e in last)} real evaluations "
          f"({sum(e['cache_hits'] for e in last)} pair-hash cache hits, "
          f"{sum(e['failures'] for e in last)} failed: invalid graph or NaN return).", "",
          "Best in each search's population per generation (searches in order; NSGA-II "
          "keeps the best, so a rise is a new candidate scoring higher on its search "
          "seeds, which the re-test below checks):", "",
          stats.markdown_table(
              ["generation", "front sizes", *(f"best {o}" for o in OBJECTIVES)],
              [[g, ", ".join(str(len(ev[(g, k)]["front"])) for k in range(S)),
                *(", ".join(f"{best[k, i, o]:.3f}" for k in range(S)) for o in range(3))]
               for i, g in enumerate(gens)])]
    stats.plot_curves(run_dir.plots / "search.png", np.asarray(gens),
                      {o: best[:, :, i] for i, o in enumerate(OBJECTIVES)},
                      xlabel="generation", ylabel="best in population (band: searches)")
    md += ["", "![search](plots/search.png)"]
    if config.space == "continuous":
        sac_at = ", ".join(f"{n} = {v:g}" for n, v in zip(sf.NAMES, sf.SAC_POINT))
        md += ["", "Where the continuous searches moved: each parameter's mean over the "
               f"population per generation (searches in order; SAC is {sac_at}):",
               "", *parameter_drift([[ev[(g, k)] for k in range(S)] for g in gens], gens)]
    claims: list[Claim] = []
    r = stats.collect_events(run_dir, "reeval", by={}, optional=True)
    if r is None:
        return Report(claims, "\n".join(md))
    r = r[()]
    perf = np.asarray(r["performance"], np.float64)        # [pairs, n]: row 0 SAC
    gen = np.asarray(r["generalizability"], np.float64)
    n = perf.shape[1]
    space = make_space(config)
    readable = [space.readable(space.from_dict(d)) for d in r["pairs"]]
    rows = chosen_rows(r["searches"])
    d = search_differences(perf, gen, rows)
    md += ["", f"## Re-test ({n} fresh training seeds, the same for every row: common "
           "random numbers)", "", stats.markdown_table(
               ["", "chosen by (search: objectives)", "critic loss", "actor loss",
                "performance", "generalizability", "instability (std)",
                "performance - SAC (paired, CI over seeds)", "sd of paired difference"],
               [["SAC" if i == 0 else f"pair {i}",
                 "; ".join(f"{k}: " + ", ".join(o for c, o in enumerate(OBJECTIVES)
                                                 if rows[k, c] == i)
                           for k in range(S) if i in rows[k]) or "—",
                 f"`{f['critic']}`", f"`{f['actor']}`", f"{np.mean(perf[i]):.3f}",
                 f"{np.mean(gen[i]):.3f}", f"{np.std(perf[i], ddof=1):.3f}",
                 "—" if i == 0 else stats.ci_cell(stats.paired_difference_ci(perf[i], perf[0]),
                                                  "+.3f"),
                 "—" if i == 0 else f"{np.std(perf[i] - perf[0], ddof=1):.3f}"]
                for i, f in enumerate(readable)]), ""]
    search_gain = np.asarray([[np.asarray(s["search_objectives"], np.float64)[
        1 + s["pair_index"].index(rows[k, o]), o] - s["search_objectives"][0][o]
        if rows[k, o] else 0.0 for o in range(3)] for k, s in enumerate(r["searches"])])
    md += ["Each search's chosen member minus SAC: on the search's own seeds (what chose "
           f"it) and on the {n} fresh seeds (the claims' units); the mean over searches with "
           "the claim's bootstrap CI over searches, a t interval over searches (wider for "
           "few searches: a bootstrap of 3 values spans at most their range), and a CI over "
           "the common fresh seeds with the searches fixed (the re-test's own noise):", "",
           stats.markdown_table(
               ["objective", *(f"search {k}: search seeds → fresh" for k in range(S)),
                "mean (CI over searches)", "t interval over searches",
                "CI over fresh seeds", "paper"],
               [[o, *(f"{search_gain[k, c]:+.3f} → {d[k, c]:+.3f}" for k in range(S)),
                 stats.ci_cell(stats.mean_ci(d[:, c]), "+.3f"),
                 "[{:+.3f}, {:+.3f}]".format(*stats.t_interval(d[:, c])),
                 stats.ci_cell(seed_level_ci(perf, gen, rows, c), "+.3f"), PAPER[o]]
                for c, o in enumerate(OBJECTIVES)]), ""]
    for c, o in enumerate(OBJECTIVES):
        est = stats.mean_ci(d[:, c], unit=SEARCH)
        if o == "stability":
            base = np.std(perf[0], ddof=1)
            rel = -est[0] / base if base > 0 else float("nan")
            statement = (f"each search's member with the best search stability has a lower "
                         f"spread of normalised performance than SAC over {n} common fresh "
                         f"seeds: mean over {S} searches of std(SAC) - std(member) > 0 "
                         f"(instability {rel:+.0%} vs paper -65%)")
        else:
            x = perf if o == "performance" else gen
            rel = est[0] / abs(np.mean(x[0]))
            statement = (f"each search's member with the best search {o} beats SAC on "
                         f"normalised {o} over {n} common fresh seeds: mean over {S} "
                         f"searches of mean(member - SAC) > 0 (relative {rel:+.1%} vs paper "
                         f"{PAPER[o]})")
        claims.append(stats.claim_greater(f"front_beats_sac_on_{o}", statement, est,
                                          unit=SEARCH))
    bars = {"SAC": stats.bootstrap_ci(perf[0])}
    bars.update({f"pair {i}": stats.bootstrap_ci(perf[i]) for i in range(1, len(perf))})
    stats.plot_bars(run_dir.plots / "reeval.png", bars, ylabel="normalised performance")
    md += ["![re-test](plots/reeval.png)"]
    md += power_table(config, perf, gen, rows)
    return Report(claims, "\n".join(md))


def parameter_drift(events: list[list[dict]], gens: list[int]) -> list[str]:
    """Report lines: a table, one row per generation, of each continuous parameter's mean
    over each search's population (`events[i][k]`: search k's `generation` event of
    generation gens[i])."""
    rows = []
    for g, evs in zip(gens, events):
        means = [np.mean([[d[n] for n in sf.NAMES] for d in e["population"]], 0) for e in evs]
        rows.append([g, *(", ".join(f"{m[j]:.2f}" for m in means)
                          for j in range(len(sf.NAMES)))])
    return stats.markdown_table(["generation", *sf.NAMES], rows).splitlines()


def paired_sd(x: np.ndarray, members) -> tuple[float, float]:
    """(pooled sd, correlation) of the per-seed differences member - SAC (row 0 of x
    [pairs, seeds]) over the distinct `members` (rows != 0): the root mean of their
    variances, and the mean correlation of a member's seeds with SAC's (common random
    numbers shrink the paired variance 2 sd^2 (1 - rho) only where rho > 0). NaN when no
    member."""
    members = sorted({int(m) for m in np.ravel(members) if m != 0})
    if not members:
        return float("nan"), float("nan")
    var = [np.var(x[m] - x[0], ddof=1) for m in members]
    rho = [np.corrcoef(x[m], x[0])[0, 1] for m in members]
    return float(np.sqrt(np.mean(var))), float(np.mean(rho))


def power_table(config: MetaPGConfig, perf: np.ndarray, gen: np.ndarray,
                rows: np.ndarray) -> list[str]:
    """Report lines: training seeds needed to detect a `power_effect` relative change of
    SAC's mean, per objective, from the spreads measured on the re-test's common fresh
    seeds: independent arms (sd of the difference = sqrt(2) x SAC's sd) and paired with
    common random numbers (the measured sd of the chosen members' per-seed differences to
    SAC, pooled: `paired_sd`); and the sd of a search's own 3-seed (`train_seeds`)
    estimate of a difference, which is what ranks candidates."""
    e = config.power_effect
    lines = ["", f"## Power: training seeds to detect a {e:.0%} change of SAC's mean "
             "(95% CI, 80% power), from the re-test's measured spreads", ""]
    out = []
    for c, (o, x) in enumerate((("performance", perf), ("generalizability", gen))):
        mean, sd = float(np.mean(x[0])), float(np.std(x[0], ddof=1))
        diff_sd, rho = paired_sd(x, rows[:, c])
        effect = e * abs(mean)
        unpaired = stats.seeds_needed(np.sqrt(2) * sd, effect) if effect else -1
        paired = stats.seeds_needed(diff_sd, effect) if effect else -1
        show = lambda k: str(k) if k > 0 else "n/a"  # noqa: E731
        out.append([o, f"{mean:.3f}", f"{sd:.3f}", show(unpaired), f"{diff_sd:.3f}",
                    f"{rho:+.2f}", show(paired),
                    f"{diff_sd / np.sqrt(config.train_seeds):.3f} vs {effect:.3f}"])
    return lines + stats.markdown_table(
        ["objective", "SAC mean", "SAC sd", "seeds (independent)", "sd of paired difference",
         "corr(member, SAC)", "seeds (paired)",
         f"search's {config.train_seeds}-seed sd vs {e:.0%} effect"], out).splitlines()


