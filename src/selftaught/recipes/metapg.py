"""MetaPG: multi-objective evolution of actor-critic losses (Garau-Luis et al. 2022; rl.md §4).

    selftaught run metapg --preset default
    # measured (seed 0, 9 re-evaluation seeds): 20 min 20 s wall on the shared 2-core CPU
    # at load average 13.6-15 (648 CPU-s: ~11 min on an idle 2-core CPU), peak RSS 1.1 GiB;
    # 48 candidates / 43 real evaluations (5 pair-hash hits, 0 failures) over 5 generations;
    # 0 of 3 claims hold: the front member chosen per objective vs SAC on fresh seeds:
    # performance -0.027 [-0.122, 0.065] (-3.5%; paper +3%), generalizability +0.034
    # [-0.010, 0.083] (+4.3%; paper +17%), instability +22% (paper -65%): std reduction
    # -0.052 [-0.192, 0.093]. At this size (4k SAC steps, 3 training seeds per candidate)
    # SAC's own spread over seeds (0.23 normalised) swamps the objectives: the search's
    # stability ranking is noise (SAC: std 0.07 on its 3 search seeds, 0.23 on 9 fresh ones).
    # Power (issue 28; `stats.seeds_needed`, the report's "Power" section): with SAC's sd
    # 0.23 and mean ~0.7, detecting a 5% change of mean performance at 95% confidence and
    # 80% power needs ~678 seeds per arm for independent arms and ~339 even with common
    # random numbers if the paired difference kept SAC's sd (computed from the numbers
    # above; the paired sd at the default is printed by the report, not yet re-measured).
    # The search's 3 seeds per candidate cannot rank candidates on a 5% effect.

Algorithm box:
    an algorithm = a pair of typed DAGs (critic loss, actor loss) over the inputs SAC hands
    its pluggable losses (`evolve.actor_critic`); SAC's own pair is the starting point
    population: SAC's pair + (population - 1) single-graph mutants of it
    evaluation of a pair: train SAC with its losses on `train_seeds` seeds (the same seeds
        for every candidate: common random numbers), each training one compiled program
        (losses run through the program interpreter; candidates x seeds are vmapped); per
        seed: performance = mean normalised deterministic return over the second half of
        the learning curve ((R - random) / (good - random)); generalizability = mean
        normalised zero-shot return of the final policy over the perturbed physics
        (`perturb_param` x each of `perturb_scales`)
    objectives (maximised): performance and generalizability (means over seeds) and
        stability = -std over seeds of the per-seed performance
    pair-aware functional hashing (`actor_critic.PairHasher`): pairs whose graphs have the
        same gradients w.r.t. the network outputs share one evaluation
    NSGA-II (`evolve.search.nsga2`, one generation per resumable phase): binary tournament
        on (rank, crowding), children = a mutation of one of the two graphs, survivors by
        non-dominated sort + crowding distance. Invalid graphs and NaN returns score -inf.
    re-evaluation: SAC and up to `front_max` members of the final Pareto front (the best on
        each objective first) with `num_seeds` fresh seeds; claims with 95% CIs over them:
        the member best on each objective (chosen on search scores) beats SAC on it
Evaluations go through `evolve.backends` (inprocess | pool | ray): results do not depend
on the backend (a candidate's seeds depend only on its seed block, not its batch slot).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from selftaught import stats
from selftaught.core.errors import UnknownNameError, check
from selftaught.core.recipe import Claim, Recipe, Report
from selftaught.core.rundir import RunDir
from selftaught.evolve import actor_critic as ac
from selftaught.evolve.actor_critic import MetaPGTask
from selftaught.evolve.actor_critic import metapg_objectives as objectives
from selftaught.evolve.backends import BACKENDS, LazyBackend
from selftaught.evolve.hashing import FitnessCache
from selftaught.evolve.search import non_dominated_sort, nsga2
from selftaught.rl import control, sac

OBJECTIVES = ("performance", "generalizability", "stability")
PAPER = {"performance": "+3%", "generalizability": "+17%", "stability": "-65% instability"}


@dataclasses.dataclass(frozen=True)
class MetaPGConfig:
    """Evolve SAC's actor and critic losses for performance, generalizability, stability.

    Defaults = the `default` preset: `selftaught run metapg --preset default`, 648 CPU-s,
    0 of 3 claims hold (see the module docstring for the measured figures)."""

    seed: int = 0
    """search seed (mutations, training seeds); re-evaluation uses fresh seed blocks"""
    num_seeds: int = 9
    """fresh seeds for the re-evaluation of SAC and the Pareto front (the claims' CIs)"""
    env: str = "Pendulum-v1"
    """continuous-control environment: Pendulum-v1 | CartPoleContinuous"""
    perturb_param: str = "l"
    """physical parameter perturbed for generalizability (Pendulum: l, m, g, ...)"""
    perturb_scales: tuple[float, ...] = (0.5, 0.75, 1.5, 2.0)
    """the perturbed values are the default times each scale (zero-shot evaluation)"""
    total_steps: int = 4_000
    """SAC environment steps per training"""
    learning_starts: int = 500
    """uniformly random steps before SAC learns"""
    buffer_size: int = 5_000
    """replay capacity"""
    batch_size: int = 64
    """SAC minibatch size"""
    hidden: int = 32
    """units per hidden layer (actor and critics)"""
    lr: float = 2e-3
    """Adam learning rate of actor, critics and temperature"""
    num_evals: int = 4
    """evaluation points per training (performance averages the second half)"""
    eval_episodes: int = 2
    """deterministic-policy episodes per evaluation point and per perturbed physics"""
    max_episode_steps: int = 0
    """episode time limit; 0 keeps the environment's own"""
    train_seeds: int = 3
    """training seeds per candidate (stability is their spread)"""
    stability_hurdle: float = 0.5
    """mean normalised performance a candidate needs for its stability to count (else -1)"""
    power_effect: float = 0.05
    """the report's power analysis: seeds needed to detect this relative change of SAC's
    mean (performance, generalizability) at 95% confidence and 80% power, from the spreads
    measured on the fresh seeds"""
    population: int = 8
    """NSGA-II population"""
    generations: int = 5
    """NSGA-II generations after the initial population"""
    critic_nodes: int = 14
    """op nodes of a critic-loss graph (SAC's uses 11)"""
    actor_nodes: int = 6
    """op nodes of an actor-loss graph (SAC's uses 3)"""
    p_critic: float = 0.5
    """probability that a mutation changes the critic graph (else the actor graph)"""
    p_edge: float = 0.3
    """probability that a mutation rewires one input instead of replacing a node"""
    front_max: int = 4
    """Pareto-front members re-evaluated (the best on each objective first)"""
    eval_batch: int = 4
    """candidates per compiled evaluation (candidates x train_seeds trainings vmapped)"""
    backend: str = "inprocess"
    """evaluation backend: inprocess | pool | ray"""
    workers: int = 2
    """worker processes of the pool/ray backends"""
    ray_address: str = ""
    """Ray cluster address (empty: start a local Ray)"""

    def validate(self) -> None:
        check(self.power_effect > 0, f"power_effect must be > 0 (a relative change, e.g. "
              f"0.05), got {self.power_effect}")
        if self.backend not in BACKENDS:
            raise UnknownNameError("evaluation backend", self.backend, list(BACKENDS))
        if self.env not in control.CONTROL_ENVS:
            raise UnknownNameError("continuous-control environment", self.env,
                                   list(control.CONTROL_ENVS))
        check(len(self.perturb_scales) >= 1, "perturb_scales is empty; give at least one scale")
        env = control.make_control_env(self.env, self.max_episode_steps or None)
        control.perturbed(env, self.perturb_param, self.perturb_scales)  # PhysicsError
        check(self.train_seeds >= 2, f"train_seeds must be >= 2 (stability is a spread), "
              f"got {self.train_seeds}")
        check(self.population >= 2, f"population must be >= 2, got {self.population}")
        check(self.generations >= 0, f"generations must be >= 0, got {self.generations}")
        check(self.critic_nodes >= 11, f"critic_nodes must be >= 11 to hold SAC's critic "
              f"loss, got {self.critic_nodes}")
        check(self.actor_nodes >= 3, f"actor_nodes must be >= 3 to hold SAC's actor loss, "
              f"got {self.actor_nodes}")
        check(0 <= self.p_critic <= 1 and 0 <= self.p_edge <= 1,
              "p_critic and p_edge must be in [0, 1]")
        check(self.front_max >= 1 and self.eval_batch >= 1 and self.workers >= 1,
              "front_max, eval_batch and workers must be >= 1")
        from selftaught.core import config as cfglib

        cfglib.validate(self.sac_config())

    def sac_config(self) -> sac.SACConfig:
        return sac.SACConfig(
            env=self.env, total_steps=self.total_steps, learning_starts=self.learning_starts,
            buffer_size=self.buffer_size, batch_size=self.batch_size, hidden=self.hidden,
            actor_lr=self.lr, critic_lr=self.lr, alpha_lr=self.lr, num_evals=self.num_evals,
            eval_episodes=self.eval_episodes, max_episode_steps=self.max_episode_steps)

    def task(self) -> MetaPGTask:
        env = control.make_control_env(self.env, self.max_episode_steps or None)
        grid = control.perturbed(env, self.perturb_param, self.perturb_scales)
        return MetaPGTask(self.sac_config(),
                          tuple((self.perturb_param, g[self.perturb_param]) for g in grid),
                          self.critic_nodes, self.actor_nodes, self.train_seeds, self.seed,
                          self.eval_batch)


def _phases(config: MetaPGConfig, seeds: list[int] | None = None) -> list[str]:
    return [f"search/gen{g}" for g in range(config.generations + 1)] + ["reeval"]


def _nan_list(x) -> list:
    return np.asarray(x, np.float64).tolist()


def _mutator(config: MetaPGConfig, spaces):
    def mutate_batch(parents, rng):
        return [ac.mutate_pair(p, rng, *spaces, p_critic=config.p_critic, p_edge=config.p_edge)
                for p in parents]
    return mutate_batch


def _search_state(run_dir: RunDir, spaces):
    """(population, raw table {hash: [2, seeds]}, rng state, totals) after the last
    finished generation."""
    evs = run_dir.events("generation")
    table = {}
    for e in evs:
        table.update({h: np.asarray(v, np.float64) for h, v in e["new"].items()})
    last = evs[-1]
    pop = [ac.pair_from_dict(d, *spaces) for d in last["population"]]
    return pop, table, last["rng_state"], last


def run(config: MetaPGConfig, run_dir: RunDir, seeds: list[int]) -> None:
    task = config.task()
    hasher = ac.PairHasher(*task.spaces)
    # the SAC evaluator (local or Ray), started when a phase first needs it
    with LazyBackend(config.backend, task, workers=config.workers,
                     address=config.ray_address or None) as evaluator:
        for g in range(config.generations + 1):
            run_dir.phase(f"search/gen{g}", search_generation, config, run_dir, g,
                          task.spaces, hasher, evaluator)
        run_dir.phase("reeval", reevaluate_front, config, run_dir, task.spaces, hasher,
                      evaluator, seeds)


def search_generation(log, config: MetaPGConfig, run_dir: RunDir, g: int, spaces, hasher,
                      evaluator) -> None:
    """NSGA-II generation g: generation 0 evaluates SAC's pair and its mutants; a later one
    continues from the population, fitness table and random state of the last `generation`
    event (so a resumed search draws what an uninterrupted one draws)."""
    cache = FitnessCache(hasher)
    new: dict[str, np.ndarray] = {}

    def evaluate(pairs):
        raw = np.asarray(evaluator()(pairs))
        new.update(zip(hasher.hash_many(pairs), raw))
        return objectives(raw, config.stability_hurdle)

    if g == 0:
        rng = np.random.default_rng([config.seed, 14])
        base = ac.sac_pair()
        initial = [base] + _mutator(config, spaces)([base] * (config.population - 1), rng)
        prev = {"real_evaluations": 0, "candidates": 0, "cache_hits": 0}
        table, gens = {}, 0
    else:
        initial, table, rng_state, prev = _search_state(run_dir, spaces)
        rng = np.random.default_rng()
        rng.bit_generator.state = rng_state
        cache.table = {h: objectives(v[None], config.stability_hurdle)[0]
                       for h, v in table.items()}
        gens = 1
    res = nsga2(spaces[0], evaluate, cache, rng=rng, population_size=config.population,
                generations=gens, initial=initial, mutate_batch=_mutator(config, spaces))
    raw_of = {**table, **new}
    hashes = hasher.hash_many(res.population)
    evaluated = res.history if g == 0 else res.history[len(initial):]
    log("generation", generation=g,
        population=[ac.pair_to_dict(p) for p in res.population],
        hashes=hashes, objectives=_nan_list(objectives(
            np.stack([raw_of[h] for h in hashes]), config.stability_hurdle)),
        front=res.front,
        formulas=[p.formulas() for p in res.population],
        new={h: _nan_list(v) for h, v in new.items()},
        candidates=prev["candidates"] + len(evaluated),
        real_evaluations=prev["real_evaluations"] + len(new),
        cache_hits=prev["cache_hits"] + len(evaluated) - len(new),
        failures=prev.get("failures", 0) + int(sum(
            not np.isfinite(v).all() for v in new.values())),
        rng_state=rng.bit_generator.state)


def reevaluate_front(log, config: MetaPGConfig, run_dir: RunDir, spaces, hasher, evaluator,
                     seeds: list[int]) -> None:
    """SAC's pair and the final front's chosen members (`_front_members`) re-trained on the
    run's fresh training seeds (blocks of `train_seeds`, beyond the search's own)."""
    pop, table, _, last = _search_state(run_dir, spaces)
    members = _front_members(config, last, hasher.hash_many([ac.sac_pair()])[0])
    pairs = [ac.sac_pair()] + [pop[i] for i in members]
    n = len(seeds)
    blocks = list(range(1, 1 + math.ceil(n / config.train_seeds)))
    raw = np.asarray(evaluator()([(p, b) for p in pairs for b in blocks]))
    raw = raw.reshape(len(pairs), len(blocks), 2, config.train_seeds)
    per_seed = raw.transpose(0, 2, 1, 3).reshape(len(pairs), 2, -1)[..., :n]
    log("reeval", members=members, formulas=[p.formulas() for p in pairs],
        search_objectives=[_nan_list(objectives(table[h][None], config.stability_hurdle)[0])
                           for h in hasher.hash_many(pairs)],
        performance=_nan_list(per_seed[:, 0]),
        generalizability=_nan_list(per_seed[:, 1]))


def _front_members(config: MetaPGConfig, last: dict, sac_hash: str) -> list[int]:
    """Indices (into the final population) of the front members to re-evaluate: distinct
    functions other than SAC's, the best on each objective first, then the rest in order."""
    F = np.asarray(last["objectives"], np.float64)
    F = np.where(np.isfinite(F), F, -1e30)
    front = non_dominated_sort(F)[0].tolist()
    seen, cands = {sac_hash}, []
    for i in front:
        if last["hashes"][i] not in seen and F[i].min() > -1e29:
            seen.add(last["hashes"][i])
            cands.append(i)
    chosen: list[int] = []
    for k in range(len(OBJECTIVES)):
        for i in sorted(cands, key=lambda i: -F[i, k]):
            if i not in chosen:
                chosen.append(i)
                break
    chosen += [i for i in cands if i not in chosen]
    return chosen[: config.front_max]


def _std_reduction(s: np.ndarray) -> float:
    """runs x [SAC, program] -> std(SAC) - std(program) (instability removed)."""
    return float(s[:, 0].std(ddof=1) - s[:, 1].std(ddof=1))


SEARCH = "search seeds"
SEARCHES = 1
"""A claim is about what the search finds (the front member it picks), so its unit is the
search seed; a run searches once (config.seed), so every claim is undetermined, n = 1,
whatever the re-evaluation over fresh training seeds (recorded as what the CI is over)."""

def report(config: MetaPGConfig, run_dir: RunDir, seeds: list[int]) -> Report:
    # an unfinished run reports the generations it has finished (and no re-evaluation)
    gens = list(stats.collect_events(run_dir, "generation",
                                     by={"generation": range(config.generations + 1)},
                                     partial="generation").values())
    last = gens[-1]
    md = [f"## Search ({config.env}, perturbed {config.perturb_param} x "
          f"{list(config.perturb_scales)})", "",
          f"{len(gens) - 1} generations of NSGA-II, population {config.population}: "
          f"{last['candidates']} candidates, {last['real_evaluations']} real evaluations "
          f"({last['cache_hits']} pair-hash cache hits, {last['failures']} failed: invalid "
          f"graph or NaN return), {config.train_seeds} training seeds each.", "",
          stats.markdown_table(
              ["generation", "front size", "best performance", "best generalizability",
               "best stability"],
              [[e["generation"], len(e["front"]), *(
                  f"{np.nanmax(np.asarray(e['objectives'], np.float64)[:, k]):.3f}"
                  for k in range(3))] for e in gens])]
    curve = np.asarray([np.nanmax(np.asarray(e["objectives"], np.float64), 0) for e in gens])
    stats.plot_curves(run_dir.plots / "search.png", np.arange(len(gens)),
                      {o: curve[None, :, k] for k, o in enumerate(OBJECTIVES)},
                      xlabel="generation", ylabel="best in population")
    md += ["", "![search](plots/search.png)"]
    claims: list[Claim] = []
    ev = stats.collect_events(run_dir, "reeval", by={}, optional=True)
    if ev is None:
        return Report(claims, "\n".join(md))
    r = ev[()]
    perf = np.asarray(r["performance"], np.float64)        # [1 + members, n]
    gen = np.asarray(r["generalizability"], np.float64)
    search = np.asarray(r["search_objectives"], np.float64)
    n = perf.shape[1]
    spaces = (ac.critic_space(config.critic_nodes), ac.actor_space(config.actor_nodes))
    pairs = [ac.sac_pair()] + [ac.pair_from_dict(last["population"][i], *spaces)
                               for i in r["members"]]
    readable = [p.readable() for p in pairs]
    md += ["", f"## Re-evaluation ({n} fresh seeds)", "", stats.markdown_table(
        ["", "critic loss", "actor loss", "performance", "generalizability", "instability (std)",
         "search objectives"],
        [["SAC" if i == 0 else f"front {i}", f"`{f['critic']}`", f"`{f['actor']}`",
          f"{np.mean(perf[i]):.3f}", f"{np.mean(gen[i]):.3f}", f"{np.std(perf[i], ddof=1):.3f}",
          ", ".join(f"{v:.3f}" for v in search[i])] for i, f in enumerate(readable)]), ""]
    objective_header = ["objective", "chosen member", "relative change vs SAC", "paper"]
    members = len(r["formulas"]) - 1
    if members == 0:
        for o in OBJECTIVES:
            claims.append(stats.claim(f"front_beats_sac_on_{o}", f"no front member other than "
                                      f"SAC to re-evaluate on {o}",
                                      stats.Estimate(0.0, 0.0, 0.0, n, "training seeds"),
                                      holds=False, unit=SEARCH, n=min(SEARCHES, n)))
        md.append(stats.markdown_table(objective_header, [[
            "all", "none: the final front holds only SAC-equivalent or failed programs",
            "—", "—"]]))
        return Report(claims, "\n".join(md))
    bars, rows = {}, []
    for k, o in enumerate(OBJECTIVES):
        j = 1 + int(np.argmax(search[1:, k]))  # chosen on search scores, not re-evaluation
        formula = readable[j]
        desc = f"critic `{formula['critic']}`, actor `{formula['actor']}`"
        if o == "stability":
            pair = np.stack([perf[0], perf[j]], 1)
            est = stats.bootstrap_ci(pair, _std_reduction) if np.isfinite(pair).all() \
                else stats.Estimate(float("nan"), float("nan"), float("nan"), n)
            s_sac, s_j = np.std(perf[0], ddof=1), np.std(perf[j], ddof=1)
            rel = s_j / s_sac - 1 if s_sac > 0 else float("nan")
            statement = (f"front member {j} (best search stability) has a lower spread of "
                         f"normalised performance over {n} fresh seeds than SAC: std(SAC) - "
                         f"std(member) > 0 (instability {rel:+.0%} vs paper -65%)")
        else:
            x = perf if o == "performance" else gen
            est = stats.paired_difference_ci(x[j], x[0])
            rel = (np.mean(x[j]) - np.mean(x[0])) / abs(np.mean(x[0]))
            statement = (f"front member {j} (best search {o}) beats SAC on normalised {o} "
                         f"over {n} fresh paired seeds: member - SAC > 0 (relative "
                         f"{rel:+.0%} vs paper {PAPER[o]})")
            bars[f"SAC {o}"] = stats.bootstrap_ci(x[0])
            bars[f"member {j} {o}"] = stats.bootstrap_ci(x[j])
        claims.append(stats.claim_greater(f"front_beats_sac_on_{o}", statement,
                                          stats.Estimate(*est, est.n, "fresh training seeds"),
                                          unit=SEARCH, n=min(SEARCHES, est.n)))
        rows.append([o, f"{j}: {desc}", f"{rel:+.1%}", PAPER[o]])
    md.append(stats.markdown_table(objective_header, rows))
    if bars:
        stats.plot_bars(run_dir.plots / "reeval.png", bars, ylabel="normalised return")
        md += ["", "![re-evaluation](plots/reeval.png)"]
    md += power_table(config, perf, gen)
    return Report(claims, "\n".join(md))


def power_table(config: MetaPGConfig, perf: np.ndarray, gen: np.ndarray) -> list[str]:
    """Report lines: training seeds needed to detect a `power_effect` relative change of
    SAC's mean, per objective, from the spreads measured on the fresh seeds: independent
    arms (sd of the difference = sqrt(2) x SAC's sd) and paired with common random numbers
    (the sd of each front member's per-seed difference to SAC, the largest over members)."""
    e = config.power_effect
    lines = ["", f"## Power: training seeds to detect a {e:.0%} change of SAC's mean "
             "(95% CI, 80% power)", ""]
    rows = []
    for o, x in (("performance", perf), ("generalizability", gen)):
        mean, sd = float(np.mean(x[0])), float(np.std(x[0], ddof=1))
        diff_sd = (float(np.max(np.std(x[1:] - x[:1], axis=1, ddof=1))) if len(x) > 1
                   else float("nan"))
        effect = e * abs(mean)
        unpaired = stats.seeds_needed(np.sqrt(2) * sd, effect) if effect else -1
        paired = stats.seeds_needed(diff_sd, effect) if effect else -1
        show = lambda k: str(k) if k > 0 else "n/a"  # noqa: E731
        rows.append([o, f"{mean:.3f}", f"{sd:.3f}", show(unpaired), f"{diff_sd:.3f}",
                     show(paired)])
    return lines + stats.markdown_table(
        ["objective", "SAC mean", "SAC sd", "seeds (independent)", "sd of paired difference",
         "seeds (paired)"], rows).splitlines()


PRESETS = {
    "smoke": MetaPGConfig(
        num_seeds=3, total_steps=300, learning_starts=100, buffer_size=300, batch_size=8,
        hidden=8, num_evals=2, eval_episodes=1, max_episode_steps=25, train_seeds=2,
        population=4, generations=1, front_max=2, eval_batch=4, perturb_scales=(0.5, 2.0)),
    "default": MetaPGConfig(),
    "paper": MetaPGConfig(
        num_seeds=20, total_steps=30_000, learning_starts=1_000, buffer_size=30_000,
        batch_size=256, hidden=256, lr=1e-3, num_evals=10, eval_episodes=5,
        train_seeds=5, population=64, generations=30, front_max=8, eval_batch=16,
        perturb_scales=(0.5, 0.75, 1.25, 1.5, 2.0)),
}

RECIPE = Recipe(
    name="metapg",
    description="MetaPG: NSGA-II over SAC's actor and critic loss graphs for performance, "
                "generalizability (perturbed physics) and stability over seeds",
    config_cls=MetaPGConfig,
    presets=PRESETS,
    run=run,
    report=report,
    phases=_phases,
)
