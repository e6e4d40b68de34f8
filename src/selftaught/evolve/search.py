"""Search over programs: regularized evolution (aging) and NSGA-II (multi-objective).

Both are host-side loops over *batches* of candidates, so one batch is evaluated by a
single (vmapped, pooled or Ray) backend call; fitness is cached by functional hash and
only cache misses count as real evaluations.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable

import numpy as np

from selftaught.evolve.hashing import FitnessCache
from selftaught.evolve.program import Program, Space, mutate, random_program

Evaluate = Callable[[list[Program]], np.ndarray]
# mutate_batch(parents, rng) -> children; the plain operator is `mutate` per parent.
MutateBatch = Callable[[list[Program], np.random.Generator], list[Program]]


@dataclasses.dataclass
class Individual:
    program: Program
    fitness: float
    born: int  # index in the history
    parent: int = -1  # history index of the parent it was mutated from (-1: initial)


@dataclasses.dataclass
class EvolutionResult:
    history: list[Individual]        # every candidate, in evaluation order
    real_evals: list[int]            # real evaluations so far, after each candidate
    best: Individual

    def best_curve(self, budget: int) -> np.ndarray:
        """Best fitness among candidates seen by 1..budget real evaluations (-inf before)."""
        fit = np.array([ind.fitness for ind in self.history])
        n = np.asarray(self.real_evals)
        running = np.maximum.accumulate(fit)
        last = np.searchsorted(n, np.arange(1, budget + 1), side="right") - 1
        return np.where(last >= 0, running[np.maximum(last, 0)], -np.inf)


def plain_mutation(space: Space, p_fresh: float = 0.05, p_edge: float = 0.0) -> MutateBatch:
    return lambda parents, rng: [mutate(space, p, rng, p_fresh, p_edge) for p in parents]


def novel_mutation(space: Space, cache: FitnessCache, tries: int = 8,
                   p_fresh: float = 0.05, p_edge: float = 0.0) -> MutateBatch:
    """Mutate each parent up to `tries` times until the child's function is not in the
    cache yet (a known function costs nothing but teaches nothing); keep the last try."""

    def mutate_batch(parents, rng):
        children = [mutate(space, p, rng, p_fresh, p_edge) for p in parents]
        for _ in range(tries - 1):
            known = cache.known(children)
            if not known.any():
                break
            children = [mutate(space, p, rng, p_fresh, p_edge) if k else c
                        for p, c, k in zip(parents, children, known)]
        return children

    return mutate_batch


def regularized_evolution(
    space: Space,
    evaluate: Evaluate,
    cache: FitnessCache,
    *,
    rng: np.random.Generator,
    population_size: int,
    tournament_size: int,
    max_evaluations: int,
    batch_size: int = 16,
    mutate_batch: MutateBatch | None = None,
    initial: list[Program] | None = None,
    on_batch: Callable[[list[Individual], list[bool]], None] | None = None,
    max_candidates: int | None = None,
    stop_fitness: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> EvolutionResult:
    """Regularized evolution (Real et al. 2019): tournament selection of parents, mutated
    children replace the *oldest* members. Runs until `max_evaluations` real
    (cache-miss) evaluations or `max_candidates` candidates (default 20x evaluations),
    or until a candidate reaches `stop_fitness` (then `best_curve` carries it forward),
    or until `stop()` is true (asked after each evaluated batch, e.g. an evaluator's own
    budget of expensive second-stage evaluations is spent).

    `initial` seeds the population (e.g. the DQN loss graph), topped up with random
    programs. `on_batch(individuals, is_new)` sees every evaluated batch (the
    discriminator's training data); a child's `parent` is its parent's history index."""
    mutate_batch = mutate_batch or plain_mutation(space)
    max_candidates = max_candidates or 20 * max_evaluations
    history: list[Individual] = []
    real: list[int] = []
    population: collections.deque[Individual] = collections.deque()

    def run_batch(programs: list[Program], parents: list[int] | None = None
                  ) -> list[Individual]:
        fit, is_new = cache.evaluate(programs, evaluate)
        fit = np.asarray(fit, np.float64).reshape(len(programs), -1)[:, 0]
        inds = []
        before = cache.real_evaluations - sum(is_new)
        count = before
        for k, (p, f, new) in enumerate(zip(programs, fit, is_new)):
            count += int(new)
            f = float(f) if np.isfinite(f) else -np.inf
            ind = Individual(p, f, len(history), -1 if parents is None else parents[k])
            history.append(ind)
            real.append(count)
            inds.append(ind)
        if on_batch is not None:
            on_batch(inds, is_new)
        return inds

    seeds = list(initial or [])
    while len(seeds) < population_size:
        seeds.append(random_program(space, rng))
    for start in range(0, population_size, batch_size):
        population.extend(run_batch(seeds[start:start + batch_size]))

    def reached() -> bool:
        return ((stop_fitness is not None and max(i.fitness for i in history) >= stop_fitness)
                or (stop is not None and stop()))

    while (cache.real_evaluations < max_evaluations and len(history) < max_candidates
           and not reached()):
        parents = []
        pop = list(population)
        for _ in range(batch_size):
            idx = rng.choice(len(pop), size=min(tournament_size, len(pop)), replace=False)
            parents.append(max((pop[i] for i in idx), key=lambda ind: ind.fitness))
        children = mutate_batch([p.program for p in parents], rng)
        for ind in run_batch(children, [p.born for p in parents]):
            population.append(ind)
            population.popleft()
    best = max(history, key=lambda ind: ind.fitness)
    return EvolutionResult(history, real, best)


def evaluations_to_reach(result: EvolutionResult, target: float,
                         budget: int | None = None) -> int | None:
    """Real evaluations spent when a candidate first reached `target` fitness (None: never,
    or only after `budget` real evaluations: a search whose last batch crosses its budget
    does not count a success past it, which would score worse than a failure censored at
    the budget)."""
    for ind, n in zip(result.history, result.real_evals):
        if ind.fitness >= target:
            return n if budget is None or n <= budget else None
    return None


# ---------------------------------------------------------------------------- NSGA-II
def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """a dominates b (maximisation): no worse in every objective, better in one."""
    return bool(np.all(a >= b) and np.any(a > b))


def non_dominated_sort(F: np.ndarray) -> list[np.ndarray]:
    """Fronts (index arrays) of the rows of F [n, m] (maximise all), best front first."""
    F = np.asarray(F, np.float64)
    n = F.shape[0]
    ge = np.all(F[:, None, :] >= F[None, :, :], axis=-1)
    gt = np.any(F[:, None, :] > F[None, :, :], axis=-1)
    dom = ge & gt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)  # how many dominate j
    fronts, current = [], np.flatnonzero(count == 0)
    remaining = count.copy()
    assigned = np.zeros(n, bool)
    while current.size:
        fronts.append(current)
        assigned[current] = True
        remaining = remaining - dom[current].sum(axis=0)
        current = np.flatnonzero((remaining == 0) & ~assigned)
    return fronts


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """Crowding distance of each row within one front; boundary points get +inf."""
    F = np.asarray(F, np.float64)
    n, m = F.shape
    d = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for k in range(m):
        order = np.argsort(F[:, k], kind="stable")
        lo, hi = F[order[0], k], F[order[-1], k]
        d[order[0]] = d[order[-1]] = np.inf
        if hi > lo:
            d[order[1:-1]] += (F[order[2:], k] - F[order[:-2], k]) / (hi - lo)
    return d


def nsga2_select(F: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k survivors: whole fronts in order, the last one cut by crowding."""
    chosen: list[int] = []
    for front in non_dominated_sort(F):
        if len(chosen) + len(front) <= k:
            chosen += front.tolist()
        else:
            cd = crowding_distance(F[front])
            order = np.argsort(-cd, kind="stable")
            chosen += front[order[: k - len(chosen)]].tolist()
            break
    return np.asarray(chosen, int)


def rank_and_crowding(F: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rank = np.zeros(len(F), int)
    crowd = np.zeros(len(F))
    for r, front in enumerate(non_dominated_sort(F)):
        rank[front] = r
        crowd[front] = crowding_distance(F[front])
    return rank, crowd


def nsga2_parents(pop: list, F: np.ndarray, rng: np.random.Generator,
                  k: int | None = None) -> list:
    """k (default len(pop)) parents by binary tournament on (rank, -crowding) over objectives F
    [pop, m] (maximised; non-finite already mapped below every finite value). One NSGA-II
    generation is `nsga2_survivors(pop, F, children, F_children, k)` with
    `children = mutate(nsga2_parents(pop, F, rng))`: split so that a caller can evaluate
    the children of several independent searches in one batch."""
    rank, crowd = rank_and_crowding(F)
    parents = []
    for _ in range(len(pop) if k is None else k):
        i, j = rng.integers(len(pop), size=2)
        better = i if (rank[i], -crowd[i]) < (rank[j], -crowd[j]) else j
        parents.append(pop[better])
    return parents


def nsga2_survivors(pop: list, F: np.ndarray, children: list, Fc: np.ndarray,
                    k: int) -> tuple[list, np.ndarray]:
    """(population, objectives) kept by `nsga2_select` from parents + children; failed
    (non-finite) objectives become -1e30, below every finite one."""
    allp, allF = pop + children, np.concatenate([F, np.asarray(Fc, np.float64)])
    allF = np.where(np.isfinite(allF), allF, -1e30)
    keep = nsga2_select(allF, k)
    return [allp[i] for i in keep], allF[keep]


@dataclasses.dataclass
class NSGA2Result:
    population: list[Program]
    objectives: np.ndarray            # [pop, m]
    front: list[int]                  # indices of the first front in `population`
    real_evaluations: int
    # every candidate evaluated, in order: (program, objectives [m]), cache hits included
    history: list = dataclasses.field(default_factory=list)


def nsga2(
    space: Space,
    evaluate: Evaluate,
    cache: FitnessCache,
    *,
    rng: np.random.Generator,
    population_size: int,
    generations: int,
    initial: list[Program] | None = None,
    mutate_batch: MutateBatch | None = None,
    on_generation: Callable[[int, list[Program], np.ndarray], None] | None = None,
) -> NSGA2Result:
    """NSGA-II (Deb et al. 2002) over programs; `evaluate` returns [n, m] objectives to
    maximise. Parents by binary tournament on (rank, -crowding); children by mutation;
    survivors by `nsga2_select` over parents + children. Non-finite objectives (failed
    candidates) rank below every finite one. `on_generation(g, population, objectives)`
    sees the population after the initial evaluation (g = 0) and after each generation;
    the result's `history` lists every evaluated candidate."""
    mutate_batch = mutate_batch or plain_mutation(space)
    history: list = []
    pop = list(initial or [])
    while len(pop) < population_size:
        pop.append(random_program(space, rng))
    F, _ = cache.evaluate(pop, evaluate)
    F = np.asarray(F, np.float64).reshape(len(pop), -1)
    history += list(zip(pop, F))
    F = np.where(np.isfinite(F), F, -1e30)
    if on_generation is not None:
        on_generation(0, pop, F)
    for gen in range(generations):
        children = mutate_batch(nsga2_parents(pop, F, rng, population_size), rng)
        Fc, _ = cache.evaluate(children, evaluate)
        Fc = np.asarray(Fc, np.float64).reshape(len(children), -1)
        history += list(zip(children, Fc))
        pop, F = nsga2_survivors(pop, F, children, Fc, population_size)
        if on_generation is not None:
            on_generation(gen + 1, pop, F)
    front = non_dominated_sort(F)[0].tolist()
    return NSGA2Result(pop, F, front, cache.real_evaluations, history)
