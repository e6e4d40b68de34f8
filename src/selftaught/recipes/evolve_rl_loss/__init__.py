"""Evolving RL algorithms: loss functions as typed DAGs, found by regularized evolution
(Co-Reyes et al. 2021; rl.md §3).

    selftaught run evolve-rl-loss --preset default
    # Measured under load (load average 10-12 from other jobs on the 2 cores), 2026-12-06:
    # /usr/bin/time -v: 1 h 03 min wall, 1594 CPU-s (user + sys), peak RSS 1.01 GiB;
    # idle (2026-12-06, nothing else running): 22 min 23 s wall, 1734 CPU-s, 1.11 GiB, the
    # same claims. 84% of the wall is the 5 searches
    # (8000 real evaluations each; failing searches hash 87k-152k mostly known children).
    # -> scratch_td_rediscovery_rate 0.40 [0.12, 0.77] (2 of 5 search seeds; holds: > 0):
    #    search seeds 1 and 4 found the TD loss ((r + γ max Q̄ - Q(s,a))², TD-likeness 1.00)
    #    after 2678 and 2166 evaluations; seeds 0, 2, 3 found nothing over the chain hurdle
    #    in 8000 (best chain 0.87, 0.88, 0.74; seed 2's (r + γ Q̄(s',a) - Q(s,a))², TD with
    #    the taken action's target, TD-likeness 0.86). Only 3 of 40 004 real evaluations
    #    cleared the hurdle (the return fitness chose among at most 2 programs a search).
    #    scratch_minus_dqn_cartpole -0.254 [-0.461, -0.047] (5 search seeds; does not hold:
    #    the 3 failed searches' bests score -0.03, 0.25, -0.03 vs DQN 0.489).
    #    evolved_minus_dqn_heldout 0 [0, 0] (8 training seeds; does not hold): the
    #    bootstrapped search's best after 49 CartPole evaluations is DQN's loss itself
    #    (every mutant scored <= 0.117), so the held-out test is DQN against itself.

Algorithm box:
    references: train DQN with the TD loss and with DQNReg (δ² + 0.1·Q(s,a)) on CartPole
    from scratch, `scratch_searches` times (search seeds seed, seed+1, ...):
        regularized evolution over random programs (the paper's inputs Q, Q̄, a, r, γ, s,
        s'; observations are dropped when no op of the set reads them), mutation = replace
        a node or (p = scratch_p_edge) rewire one input, children re-drawn while their
        function is already known. Fitness (HurdleThenReturn): the chain-MDP hurdle
        (ChainTask: tabular learning with the candidate loss on random chains with varying
        length, discount, reward scale and sign, scored by optimal greedy policy and by
        |Q - Q*|) is a cheap first filter only; a program under the hurdle scores
        chain - 2, below every return; a program over it is trained with DQN on CartPole
        and scores the normalised return (as the paper scores a loss). A search stops
        after `scratch_return_evaluations` CartPole trainings or `scratch_evaluations`
        real evaluations. Success = its best program cleared the hurdle and is TD-like
        (TD-likeness >= success_td_likeness: descent moves Q(s,a) toward r + γ max Q̄).
        Claims: the success rate over search seeds (Wilson CI); each search's best
        re-trained on the references' CartPole seeds minus DQN (CI over search seeds)
    bootstrapped: regularized evolution seeded with the DQN graph, fitness = normalised
        CartPole return of a DQN trained with the candidate loss
    held-out: the bootstrapped search's best loss vs DQN on environments never used in the
        search (paired training seeds; when the best is DQN's own function, it is reported
        as such and not trained twice)
Every DQN training of a batch of candidates is one compiled program (the loss is an
interpreter of the program encoding; candidates x seeds are vmapped).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selftaught.core import progress
from selftaught.core.errors import ConfigError, DataError
from selftaught.core.recipe import Recipe
from selftaught.core.rundir import RunDir
from selftaught.evolve.backends import LazyBackend
from selftaught.evolve.hashing import FitnessCache, FunctionalHasher
from selftaught.evolve.program import from_json, mutate, to_formula, to_json, validate
from selftaught.evolve.rl_loss import (
    ChainTask,
    dqn_program,
    dqnreg_program,
    make_space,
    remap_inputs,
    td_likeness,
)
from selftaught.evolve.search import novel_mutation, regularized_evolution
from selftaught.recipes.evolve_rl_loss.config import (  # noqa: F401
    SEARCH_ENV,
    EvolveRLLossConfig,
)
from selftaught.recipes.evolve_rl_loss.report import (  # noqa: F401
    SEARCH,
    report,
)


def _seeds_scores(evaluate, program, n: int) -> list[float]:
    """n independent runs of one program (slot j of a batch has its own seed)."""
    return np.asarray(evaluate([program] * n)).tolist()


def _load_bootstrap(config: EvolveRLLossConfig, space):
    if not config.bootstrap_program:
        return dqn_program(space.input_names)
    path = Path(config.bootstrap_program)
    if not path.exists():
        raise DataError(f"--bootstrap-program {path} does not exist; give a program JSON file")
    program = from_json(path.read_text(), where=str(path))
    try:
        program = remap_inputs(program, space.input_names)
    except ConfigError as exc:
        raise DataError(f"{path}: {exc}") from None
    validate(space, program)
    return program


def phases(config: EvolveRLLossConfig, seeds: list[int]) -> list[str]:
    """The plan: references, one phase per from-scratch search, the searches' best
    programs on CartPole, the search bootstrapped from DQN, then one held-out test per
    environment."""
    return ["references", *[f"scratch/search/{k}" for k in range(config.scratch_searches)],
            "scratch/cartpole", "bootstrap", *[f"heldout/{e}" for e in config.heldout_envs]]


def run(config: EvolveRLLossConfig, run_dir: RunDir, seeds: list[int]) -> None:
    n = len(seeds)
    space = make_space(config.op_set, config.num_nodes)
    boot_seed = _load_bootstrap(config, space)  # fail early on a bad file
    task = config.task(SEARCH_ENV, config.total_steps)
    # the CartPole evaluator (local or Ray), started when a phase first needs it
    with LazyBackend(config.backend, task, workers=config.workers,
                     address=config.ray_address or None) as cartpole:
        run_dir.phase("references", references, space, cartpole, n)
        for k in range(config.scratch_searches):
            run_dir.phase(f"scratch/search/{k}", scratch_search, config, k, space, cartpole)
        run_dir.phase("scratch/cartpole", scratch_cartpole, config, run_dir, space, cartpole, n)
        run_dir.phase("bootstrap", bootstrapped_search, config, space, boot_seed, cartpole, n)
        for env in config.heldout_envs:
            run_dir.phase(f"heldout/{env}", heldout, config, run_dir, space, env, n)


def references(log, space, cartpole, n: int) -> None:
    """DQN's and DQNReg's losses on the search environment, n training seeds each."""
    for name, prog in (("dqn", dqn_program(space.input_names)),
                       ("dqnreg", dqnreg_program(space.input_names))):
        log("reference", env=SEARCH_ENV, loss=name, formula=to_formula(prog),
            scores=_seeds_scores(cartpole(), prog, n))


class HurdleThenReturn:
    """The from-scratch fitness: the chain-MDP hurdle first, the agent's return second.

    A program under the hurdle scores chain - 2 (in [-2, -1): below every return, so the
    chain score only steers the search toward the hurdle); a program over it is trained
    with DQN on CartPole and scores that training's normalised return (as the paper
    scores a loss; >= -1, NaN returns count -1). `chain` and `returns` are called with the
    cache misses only, so `chain_scores` lists every real evaluation's chain score in order
    and `spent()` says when `budget` CartPole trainings have been used."""

    def __init__(self, chain, returns, hurdle: float, budget: int, to_dqn_inputs):
        self.chain, self.returns, self.hurdle, self.budget = chain, returns, hurdle, budget
        self.to_dqn_inputs = to_dqn_inputs
        self.chain_scores: list[float] = []
        self.trained = 0

    def __call__(self, programs):
        c = np.asarray(self.chain(programs), np.float64)
        self.chain_scores += c.tolist()
        fit = c - 2.0
        ok = np.flatnonzero(c >= self.hurdle)
        if ok.size:
            fit[ok] = self.returns([self.to_dqn_inputs(programs[i]) for i in ok])
            self.trained += int(ok.size)
        return fit

    def spent(self) -> bool:
        return self.trained >= self.budget


def scratch_search(log, config: EvolveRLLossConfig, k: int, space, cartpole) -> None:
    """Search `k` (search seed config.seed + k): regularized evolution from random programs
    with the HurdleThenReturn fitness, until `scratch_return_evaluations` CartPole
    trainings or `scratch_evaluations` real evaluations are spent. Logs its best program
    (the highest return over the hurdle, else the best chain score), whether it is TD-like
    (the success criterion), and its best-chain-score curve."""
    s_space = make_space(config.op_set, config.scratch_num_nodes, paper_inputs=True)
    chain = ChainTask(length=config.chain_length, instances=config.chain_instances,
                      steps=config.chain_steps, seed=config.seed).build_space(s_space)
    fitness = HurdleThenReturn(chain, lambda progs: cartpole()(progs), config.hurdle,
                               config.scratch_return_evaluations,
                               lambda p: remap_inputs(p, space.input_names))
    cache = FitnessCache(FunctionalHasher(s_space))
    with progress.bar(f"scratch search {k} (real evaluations)",
                      total=config.scratch_evaluations) as bar:
        res = regularized_evolution(
            s_space, fitness, cache, rng=np.random.default_rng([config.seed + k, 5]),
            population_size=config.scratch_population,
            tournament_size=config.scratch_tournament,
            max_evaluations=config.scratch_evaluations,
            batch_size=config.scratch_batch, stop=fitness.spent,
            mutate_batch=novel_mutation(s_space, cache, p_edge=config.scratch_p_edge),
            on_batch=lambda inds, new: bar.advance(sum(new)))
    chain_scores = np.asarray(fitness.chain_scores)
    grid = np.linspace(1, config.scratch_evaluations, 30).astype(int)
    best_chain = np.maximum.accumulate(chain_scores)
    curve = best_chain[np.minimum(grid, len(chain_scores)) - 1]
    passed = np.flatnonzero(chain_scores >= config.hurdle)
    best = res.best
    cleared = bool(chain([best.program])[0] >= config.hurdle)
    td = float(td_likeness(s_space, [best.program])[0])
    log("scratch_search", search=k, search_seed=config.seed + k,
        real_evaluations=cache.real_evaluations, candidates=len(res.history),
        cache_hits=cache.hits, best_chain=float(chain_scores.max()),
        first_pass=int(passed[0]) + 1 if passed.size else None,
        cartpole_trainings=fitness.trained, curve_x=grid.tolist(), curve=curve.tolist(),
        formula=to_formula(best.program), program=to_json(best.program),
        fitness=best.fitness, cleared_hurdle=cleared, td_likeness=td,
        success=scratch_success(cleared, td, config.success_td_likeness))
    log.headline(search=k, success=scratch_success(cleared, td, config.success_td_likeness),
                 real_evaluations=cache.real_evaluations)


def scratch_success(cleared_hurdle: bool, td_likeness: float, threshold: float) -> bool:
    """The stated success criterion of one from-scratch search: its best program cleared
    the chain hurdle (so its fitness is a CartPole return) and is TD-like."""
    return bool(cleared_hurdle and td_likeness >= threshold)


def scratch_cartpole(log, config: EvolveRLLossConfig, run_dir: RunDir, space, cartpole,
                     n: int) -> None:
    """Each from-scratch search's best program (over the DQN's input list) re-scored on
    CartPole on the n training seeds of the references (paired with DQN)."""
    s_space = make_space(config.op_set, config.scratch_num_nodes, paper_inputs=True)
    done: dict[str, list[float]] = {}
    for ev in sorted(run_dir.events("scratch_search"), key=lambda e: e["search"]):
        best = remap_inputs(from_json(ev["program"], s_space), space.input_names)
        key = to_json(best)  # a program found by two searches is trained once
        if key not in done:
            done[key] = _seeds_scores(cartpole(), best, n)
        log("scratch_result", search=ev["search"], formula=to_formula(best),
            scores=done[key])


def bootstrapped_search(log, config: EvolveRLLossConfig, space, boot_seed, cartpole,
                        n: int) -> None:
    """Regularized evolution started from the bootstrap program (DQN's loss) and its
    mutants, scored on CartPole; the best program re-scored on n training seeds."""
    rng = np.random.default_rng([config.seed, 6])
    initial = [boot_seed] + [mutate(space, boot_seed, rng, 0.0)
                             for _ in range(config.bootstrap_population - 1)]
    cache = FitnessCache(FunctionalHasher(space))
    res = regularized_evolution(
        space, cartpole(), cache, rng=rng,
        population_size=config.bootstrap_population,
        tournament_size=config.bootstrap_tournament,
        max_evaluations=config.bootstrap_evaluations,
        batch_size=config.eval_batch, initial=initial,
        mutate_batch=novel_mutation(space, cache))
    top = sorted(res.history, key=lambda i: -i.fitness)[:5]
    best = top[0].program
    same = cache.hasher.hash_many([best, dqn_program(space.input_names)])
    log("bootstrap_result", formula=to_formula(best), program=to_json(best),
        search_fitness=top[0].fitness, td_likeness=float(td_likeness(space, [best])[0]),
        is_dqn=same[0] == same[1],
        top_formulas=[to_formula(i.program) for i in top],
        top_fitness=[i.fitness for i in top], real_evaluations=cache.real_evaluations,
        scores=_seeds_scores(cartpole(), best, n))


def heldout(log, config: EvolveRLLossConfig, run_dir: RunDir, space, env: str, n: int
            ) -> None:
    """DQN's loss and the bootstrapped search's best loss on a held-out environment, n
    paired training seeds each (when the best is DQN's function, it is not trained twice:
    its scores are DQN's)."""
    ev = config.task(env, config.heldout_total_steps).build()
    boot = run_dir.events("bootstrap_result")[0]
    dqn = _seeds_scores(ev, dqn_program(space.input_names), n)
    best = dqn if boot["is_dqn"] else _seeds_scores(ev, from_json(boot["program"], space), n)
    log("heldout", env=env, loss="dqn", scores=dqn)
    log("heldout", env=env, loss="evolved", formula=boot["formula"], is_dqn=boot["is_dqn"],
        scores=best)


PRESETS = {
    "smoke": EvolveRLLossConfig(
        num_seeds=2, chain_steps=40, chain_instances=5, scratch_population=16,
        scratch_tournament=4, scratch_batch=8, scratch_evaluations=32, hurdle=0.5,
        scratch_searches=2, scratch_return_evaluations=1,
        total_steps=1_500, learning_starts=256, num_evals=2, eval_episodes=2, eval_batch=2,
        bootstrap_population=2, bootstrap_tournament=2, bootstrap_evaluations=4,
        heldout_total_steps=1_500),
    "default": EvolveRLLossConfig(),
    "paper": EvolveRLLossConfig(
        num_seeds=16, op_set="full", num_nodes=12, scratch_num_nodes=10,
        scratch_population=300, scratch_tournament=25, scratch_batch=256,
        scratch_searches=10, scratch_evaluations=50_000, scratch_return_evaluations=64,
        total_steps=100_000, eval_batch=32,
        bootstrap_population=300, bootstrap_tournament=25, bootstrap_evaluations=5_000,
        heldout_envs=("Acrobot-v1", "Breakout-MinAtar", "Asterix-MinAtar"),
        heldout_total_steps=500_000),
}


RECIPE = Recipe(
    name="evolve-rl-loss",
    description="Evolving RL algorithms: DQN loss functions as typed DAGs found by "
                "regularized evolution (from scratch over search seeds, scored by return; "
                "and from DQN); the best evolved loss vs DQN held out",
    config_cls=EvolveRLLossConfig,
    presets=PRESETS,
    run=run,
    report=report,
    phases=phases,
)
