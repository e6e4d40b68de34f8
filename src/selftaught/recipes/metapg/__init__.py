"""MetaPG: multi-objective evolution of actor-critic losses (Garau-Luis et al. 2022; rl.md §4).

    selftaught run metapg --preset default
    # measured (3 searches x 5 generations x population 8, 33 common fresh seeds):
    # idle 2-core CPU (2026-12-07, /usr/bin/time -v): 20 min 20 s wall, 1,450 CPU-s (1,400
    # user + 50 sys), peak RSS 1.20 GiB, the same claims as the first run (47 min 35 s at
    # load average 7-9, 1,428 CPU-s); 144 candidates,
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

The default's claims (above) use the graph space. The second, continuous space (issue 28):

    selftaught run metapg --preset continuous
    # measured under load 5-12 (2026-12-07, /usr/bin/time -v): 27 min 47 s wall, 760 CPU-s
    # (748 user + 12 sys), peak RSS 0.91 GiB; idle (2026-12-07, one job, load < 2): 7 min
    # 01 s wall, 690 CPU-s (654 user + 37 sys), 0.92 GiB, the same claims;
    # 3 searches x 6 generations x population 8,
    # 6 training seeds per candidate: 168 candidates, 162 trainings of 6 seeds (6 hash
    # hits: mutants clipped back onto SAC's corner), then SAC and 9 distinct chosen points
    # on the same 33 fresh seeds (409 s of the wall). A training costs ~0.5 CPU-s here
    # (8 points x 6 seeds vmapped per compiled call).
    # 0 of 3 claims hold (n = 3 search seeds, as above):
    #   performance       +0.019 [-0.024, +0.040] (+2.7%; paper +3%)        does not hold
    #   generalizability  -0.007 [-0.038, +0.041] (-0.9%; paper +17%)       does not hold
    #   stability         +0.011 [-0.008, +0.023] (instability -5%)         does not hold
    # The front moves here (it did not in the graph space): the population's best
    # performance on its search seeds rises in 2 of 3 searches (0.680 -> 0.788 at
    # generation 2; 0.778 -> 0.873 at generation 5; search 2 keeps its generation-0 0.921)
    # and the populations drift (the TD target's entropy scale 1 -> 0.52 and 0.56 in
    # searches 1 and 2, the actor's min-vs-mean weight 1 -> 0.61 in search 1; the report's
    # parameter table). But what moves it is noise: the chosen members' performance gains
    # on their search seeds (+0.259, +0.249, +0.220) re-test at -0.024, +0.039, +0.040 on
    # the fresh seeds. Effect vs noise (measured): of the 9 re-tested points only one
    # differs from SAC in performance with a CI over seeds above 0 (+0.088 [+0.008,
    # +0.184], search 0's stability pick: Huber TD clipping 1/0.063, entropy scales 1.49 in
    # the target and 1.92 in the actor), and it is 1 of 9 comparisons; the other 8 lie in
    # -0.024 .. +0.043. The points stay close to SAC, so common random numbers work better than in
    # the graph space (corr(member, SAC) +0.57, graph +0.35), yet the paired sd is 0.225
    # and a search's 6-seed estimate of a difference has sd 0.092 against a 5% effect of
    # 0.035: the space is measurable but its effects in this box are about the size of
    # that noise. Power: a 5% change of performance needs 331 paired seeds (761 per arm
    # independent), generalizability 134 paired.

Algorithm box:
    an algorithm = a pair of typed DAGs (critic loss, actor loss) over the inputs SAC hands
    its pluggable losses (`evolve.actor_critic`); SAC's own pair is the starting point
    population: SAC's pair + (population - 1) single-graph mutants of it (the continuous
        space, `--space continuous`: SAC's point + Gaussian mutants, `evolve.sac_family`)
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

from selftaught.core.errors import check
from selftaught.core.recipe import Recipe
from selftaught.core.rundir import RunDir
from selftaught.evolve.actor_critic import metapg_objectives as objectives  # noqa: F401
from selftaught.evolve.backends import LazyBackend
from selftaught.recipes.metapg.config import (  # noqa: F401  (re-exported: tests)
    OBJECTIVES,
    PAPER,
    MetaPGConfig,
)
from selftaught.recipes.metapg.report import (  # noqa: F401  (re-exported: tests)
    chosen_rows,
    paired_sd,
    parameter_drift,
    power_table,
    report,
    search_differences,
    seed_level_ci,
)
from selftaught.recipes.metapg.search import (  # noqa: F401  (re-exported: tests)
    _front_members,
    _phases,
    reevaluate_front,
    search_generation,
    search_items,
)
from selftaught.recipes.metapg.spaces import make_space


def run(config: MetaPGConfig, run_dir: RunDir, seeds: list[int]) -> None:
    check(len(seeds) >= 2, f"--seeds must be >= 2 (the re-test's fresh training seeds; "
          f"stability is their spread), got {len(seeds)}")
    space = make_space(config)
    # the SAC evaluator (local or Ray), started when a phase first needs it
    with LazyBackend(config.backend, space.task, workers=config.workers,
                     address=config.ray_address or None) as evaluator:
        for g in range(config.generations + 1):
            run_dir.phase(f"search/gen{g}", search_generation, config, run_dir, g, space,
                          evaluator)
        run_dir.phase("reeval", reevaluate_front, config, run_dir, space, evaluator, seeds)


PRESETS = {
    "smoke": MetaPGConfig(
        num_seeds=4, total_steps=300, learning_starts=100, buffer_size=300, batch_size=8,
        hidden=8, num_evals=2, eval_episodes=1, max_episode_steps=25, train_seeds=2,
        population=4, generations=1, front_max=2, eval_batch=4, perturb_scales=(0.5, 2.0)),
    "default": MetaPGConfig(),
    # the continuous space (`evolve.sac_family`): 3 searches x 6 generations x population 8,
    # 6 training seeds per candidate (a training costs ~0.5 CPU-s here, 8 points x 6 seeds
    # vmapped per compiled call), then the same 33-seed re-test and claims
    "continuous": MetaPGConfig(space="continuous", train_seeds=6, generations=6,
                               eval_batch=8),
    "continuous-smoke": MetaPGConfig(
        space="continuous", num_seeds=4, total_steps=300, learning_starts=100,
        buffer_size=300, batch_size=8, hidden=8, num_evals=2, eval_episodes=1,
        max_episode_steps=25, train_seeds=2, population=4, generations=1, front_max=2,
        eval_batch=4, perturb_scales=(0.5, 2.0)),
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

