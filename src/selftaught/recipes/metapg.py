"""MetaPG: multi-objective evolution of actor-critic losses (Garau-Luis et al. 2022; rl.md §4).

    selftaught run metapg --preset default
    # measured (3 searches x 5 generations x population 8, 33 common fresh seeds):
    # 47 min 35 s wall on the shared 2-core CPU at load average 7-9 (the run got 50% of one
    # core), 1,428 CPU-s (~13 min on an idle 2-core CPU), peak RSS 1.2 GiB; 144 candidates,
    # 122 real evaluations (22 pair-hash hits, 0 failures); the re-test trained SAC and 7
    # distinct chosen members on the same 33 fresh seeds (1,100 s of the wall).
    # 1 of 3 claims holds (n = 3 search seeds, the mean over searches of each search's
    # chosen member minus SAC on the common fresh seeds, stats.mean_ci):
    #   performance       -0.000 [-0.026, +0.014] (-0.1%; paper +3%)         does not hold
    #   generalizability  +0.028 [+0.011, +0.041] (+3.8%; paper +17%)        holds, fragile:
    #     the three searches' differences +0.041, +0.031, +0.011 are each inside their own
    #     33-seed noise (each CI over seeds spans 0; paired sd 0.18-0.24, se ~0.04); a t
    #     interval over the 3 searches is [-0.010, +0.066] and the CI over the fresh seeds
    #     with the searches fixed [-0.035, +0.099] (the report shows both). A bootstrap of
    #     3 values spans at most their range, so "holds" here means "all 3 were positive",
    #     which with no effect at all happens 1 time in 8.
    #   stability (std(SAC) - std(member)) -0.024 [-0.054, +0.028] (instability +11%;
    #     paper -65%)                                                        does not hold
    # Why (measured): the search cannot rank candidates at this size. Common random
    # numbers barely help: a member's per-seed performance correlates with SAC's at only
    # +0.35 (generalizability +0.30), so the measured sd of the paired difference is 0.268
    # for performance (SAC's own sd 0.221) and 0.221 for generalizability; a search's
    # 3-seed estimate of a difference has sd 0.155 against a 5% effect of 0.035. Winner's
    # curse: the chosen members' gains on their search seeds (performance +0.031, -0.055,
    # +0.200) shrink to -0.026, +0.014, +0.010 on fresh seeds. The population's best moves
    # little: performance in searches 0 and 1 never rises above generation 0 (0.693, 0.773),
    # search 2's jump 0.756 -> 0.944 (generation 1) re-tests at +0.010 over SAC.
    # Power (the report's section, stats.seeds_needed from the measured spreads): a 5%
    # change of mean performance (95% CI, 80% power) needs 452 seeds with the paired
    # design (617 per arm independent); generalizability 286 paired (510 independent).
    # Earlier (1 search seed, 9 fresh seeds, 648 CPU-s at load 13.6-15): 0 of 3, all
    # undetermined under the claim contract.

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
    `searches` independent searches (search seeds seed, seed + 1, ...; search k trains
        all its candidates on seed block k): the claims' unit of replication
    NSGA-II (`evolve.search.nsga2_parents` / `nsga2_survivors`), one generation of every
        search per resumable phase, the new candidates of all searches trained in one
        batched evaluator call: binary tournament on (rank, crowding), children = a
        mutation of one of the two graphs, survivors by non-dominated sort + crowding
        distance. Invalid graphs and NaN returns score -inf.
    re-test with common random numbers: SAC and up to `front_max` members of each search's
        final front (the best on each objective by the search's own scores first) trained
        on the same `num_seeds` fresh seeds (blocks beyond every search's), so each member's
        difference to SAC is paired seed by seed
    claims: per objective, each search's chosen member (best on it by search scores) minus
        SAC on the fresh seeds (stability: std(SAC) - std(member)); the mean over searches
        with `stats.mean_ci`, n = searches, unit "search seeds"
    power (report): the measured sd of the paired per-seed differences -> `stats.seeds_needed`
        for a `power_effect` change, and the sd of a search's own `train_seeds`-seed estimate
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
from selftaught.evolve.search import non_dominated_sort, nsga2_parents, nsga2_survivors
from selftaught.rl import control, sac

OBJECTIVES = ("performance", "generalizability", "stability")
PAPER = {"performance": "+3%", "generalizability": "+17%", "stability": "-65% instability"}


@dataclasses.dataclass(frozen=True)
class MetaPGConfig:
    """Evolve SAC's actor and critic losses for performance, generalizability, stability.

    Defaults = the `default` preset: `selftaught run metapg --preset default`, 3 searches,
    1,428 CPU-s, 1 of 3 claims holds (fragile; see the module docstring for the measured
    figures). The claims use the graph search space (typed DAG pairs); a continuous
    parameterisation of SAC's loss terms is not built."""

    seed: int = 0
    """the run's seed: search k mutates with search seed seed + k and trains its
    candidates on seed block k; the re-test uses fresh blocks beyond every search's"""
    searches: int = 3
    """independent NSGA-II searches (search seeds seed, seed + 1, ...), advanced one
    generation at a time with their new candidates trained in one batch: the claims'
    unit (fewer than 3 leave every claim undetermined)"""
    num_seeds: int = 33
    """fresh training seeds of the re-test (`--seeds`), the same for SAC and every
    search's chosen members (common random numbers: differences paired seed by seed);
    a multiple of train_seeds wastes no training"""
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
    front_max: int = 3
    """front members of each search re-tested (the best on each objective by the search's
    own scores first: 3 covers the members the claims use)"""
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
        check(self.searches >= 1, f"searches must be >= 1, got {self.searches}")
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


def _search_state(run_dir: RunDir, spaces, k: int):
    """(population, raw table {hash: [2, seeds]}, rng state, last event) of search k after
    its last finished generation."""
    evs = run_dir.events("generation", search=k)
    table = {}
    for e in evs:
        table.update({h: np.asarray(v, np.float64) for h, v in e["new"].items()})
    last = evs[-1]
    pop = [ac.pair_from_dict(d, *spaces) for d in last["population"]]
    return pop, table, last["rng_state"], last


def run(config: MetaPGConfig, run_dir: RunDir, seeds: list[int]) -> None:
    check(len(seeds) >= 2, f"--seeds must be >= 2 (the re-test's fresh training seeds; "
          f"stability is their spread), got {len(seeds)}")
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
    """Generation g of every search (`config.searches` independent NSGA-II runs; search k
    mutates with search seed config.seed + k and trains every candidate on its own seed
    block k, common to its candidates). Generation 0 is SAC's pair and its mutants; a
    later one continues each search from the population, fitness table and random state of
    its last `generation` event (so a resumed search draws what an uninterrupted one
    draws). The new candidates of all searches are trained in one evaluator call (batched
    together), then each search keeps its survivors (`nsga2_survivors`) and logs one
    `generation` event."""
    hurdle = config.stability_hurdle
    states = []
    for k in range(config.searches):
        if g == 0:
            rng = np.random.default_rng([config.seed + k, 14])
            base = ac.sac_pair()
            pop, F = [], None
            cands = [base] + _mutator(config, spaces)([base] * (config.population - 1), rng)
            table = {}
            prev = {"real_evaluations": 0, "candidates": 0, "cache_hits": 0, "failures": 0}
        else:
            pop, table, rng_state, prev = _search_state(run_dir, spaces, k)
            rng = np.random.default_rng()
            rng.bit_generator.state = rng_state
            F = objectives(np.stack([table[h] for h in hasher.hash_many(pop)]), hurdle)
            F = np.where(np.isfinite(F), F, -1e30)
            cands = _mutator(config, spaces)(
                nsga2_parents(pop, F, rng, config.population), rng)
        states.append((pop, F, cands, table, rng, prev))
    todo = search_items(hasher, [(s[2], s[3]) for s in states])
    raw = np.asarray(evaluator()([(pair, k) for k, _, pair in todo])) if todo else []
    new: list[dict[str, np.ndarray]] = [{} for _ in states]
    for (k, h, _), v in zip(todo, raw):
        new[k][h] = v
    for k, (pop, F, cands, table, rng, prev) in enumerate(states):
        raw_of = {**table, **new[k]}
        Fc = objectives(np.stack([raw_of[h] for h in hasher.hash_many(cands)]), hurdle)
        if g == 0:
            pop = cands
        else:
            pop, _ = nsga2_survivors(pop, F, cands, Fc, config.population)
        hashes = hasher.hash_many(pop)
        F_pop = objectives(np.stack([raw_of[h] for h in hashes]), hurdle)
        log("generation", search=k, search_seed=config.seed + k, generation=g,
            population=[ac.pair_to_dict(p) for p in pop], hashes=hashes,
            objectives=_nan_list(F_pop),
            front=non_dominated_sort(np.where(np.isfinite(F_pop), F_pop, -1e30))[0].tolist(),
            formulas=[p.formulas() for p in pop],
            new={h: _nan_list(v) for h, v in new[k].items()},
            candidates=prev["candidates"] + len(cands),
            real_evaluations=prev["real_evaluations"] + len(new[k]),
            cache_hits=prev["cache_hits"] + len(cands) - len(new[k]),
            failures=prev.get("failures", 0) + int(sum(
                not np.isfinite(v).all() for v in new[k].values())),
            rng_state=rng.bit_generator.state)


def search_items(hasher, searches) -> list[tuple[int, str, ac.Pair]]:
    """The trainings one generation needs, for all searches in one batch: [(search k, hash,
    pair)] for each candidate of search k whose function (pair hash) neither its table nor
    an earlier candidate of the same search already holds. Searches do not share results:
    search k trains on its own seed block k, so the same function found by two searches is
    trained once for each."""
    todo = []
    for k, (cands, table) in enumerate(searches):
        seen = set(table)
        for h, pair in zip(hasher.hash_many(cands), cands):
            if h not in seen:
                seen.add(h)
                todo.append((k, h, pair))
    return todo


def reevaluate_front(log, config: MetaPGConfig, run_dir: RunDir, spaces, hasher, evaluator,
                     seeds: list[int]) -> None:
    """The re-test with common random numbers: SAC's pair and every search's chosen front
    members (`_front_members`) trained on the same fresh training seeds (seed blocks
    `searches`, `searches` + 1, ..., beyond every search's own), so each member's
    difference to SAC is paired seed by seed. A function chosen by several searches is
    trained once (its fresh results do not depend on the search that found it)."""
    sac_hash = hasher.hash_many([ac.sac_pair()])[0]
    pairs, index = [ac.sac_pair()], {sac_hash: 0}
    per_search = []
    for k in range(config.searches):
        pop, table, _, last = _search_state(run_dir, spaces, k)
        members = _front_members(config, last, sac_hash)
        rows = []
        for i in members:
            h = last["hashes"][i]
            if h not in index:
                index[h] = len(pairs)
                pairs.append(pop[i])
            rows.append(index[h])
        per_search.append({
            "search": k, "members": members, "pair_index": rows,
            "search_objectives": [_nan_list(objectives(table[h][None],
                                                       config.stability_hurdle)[0])
                                  for h in [sac_hash] + [last["hashes"][i] for i in members]]})
    n = len(seeds)
    first = config.searches
    blocks = list(range(first, first + math.ceil(n / config.train_seeds)))
    raw = np.asarray(evaluator()([(p, b) for p in pairs for b in blocks]))
    raw = raw.reshape(len(pairs), len(blocks), 2, config.train_seeds)
    per_seed = raw.transpose(0, 2, 1, 3).reshape(len(pairs), 2, -1)[..., :n]
    log("reeval", formulas=[p.formulas() for p in pairs],
        pairs=[ac.pair_to_dict(p) for p in pairs], searches=per_search,
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


def t_interval(x, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of x (a diagnostic beside the bootstrap: with 3
    values a percentile bootstrap spans at most their range); NaN for fewer than 2."""
    from scipy.stats import t

    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return float("nan"), float("nan")
    half = t.ppf((1 + confidence) / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


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
    claims: list[Claim] = []
    r = stats.collect_events(run_dir, "reeval", by={}, optional=True)
    if r is None:
        return Report(claims, "\n".join(md))
    r = r[()]
    perf = np.asarray(r["performance"], np.float64)        # [pairs, n]: row 0 SAC
    gen = np.asarray(r["generalizability"], np.float64)
    n = perf.shape[1]
    spaces = (ac.critic_space(config.critic_nodes), ac.actor_space(config.actor_nodes))
    readable = [ac.pair_from_dict(d, *spaces).readable() for d in r["pairs"]]
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
                 "[{:+.3f}, {:+.3f}]".format(*t_interval(d[:, c])),
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


PRESETS = {
    "smoke": MetaPGConfig(
        num_seeds=4, total_steps=300, learning_starts=100, buffer_size=300, batch_size=8,
        hidden=8, num_evals=2, eval_episodes=1, max_episode_steps=25, train_seeds=2,
        population=4, generations=1, front_max=2, eval_batch=4, perturb_scales=(0.5, 2.0)),
    "default": MetaPGConfig(),
    "paper": MetaPGConfig(
        searches=5, num_seeds=40, total_steps=30_000, learning_starts=1_000, buffer_size=30_000,
        batch_size=256, hidden=256, lr=1e-3, num_evals=10, eval_episodes=5,
        train_seeds=5, population=64, generations=30, front_max=3, eval_batch=16,
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
