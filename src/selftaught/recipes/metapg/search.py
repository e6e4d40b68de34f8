"""metapg: the searches (one NSGA-II generation of every search per phase), the re-test."""

from __future__ import annotations

import math

import numpy as np

from selftaught.core.rundir import RunDir
from selftaught.evolve.actor_critic import metapg_objectives as objectives
from selftaught.evolve.search import non_dominated_sort, nsga2_parents, nsga2_survivors
from selftaught.recipes.metapg.config import OBJECTIVES, MetaPGConfig


def _phases(config: MetaPGConfig, seeds: list[int] | None = None) -> list[str]:
    return [f"search/gen{g}" for g in range(config.generations + 1)] + ["reeval"]


def _nan_list(x) -> list:
    return np.asarray(x, np.float64).tolist()


def _search_state(run_dir: RunDir, space, k: int):
    """(population, raw table {hash: [2, seeds]}, rng state, last event) of search k after
    its last finished generation."""
    evs = run_dir.events("generation", search=k)
    table = {}
    for e in evs:
        table.update({h: np.asarray(v, np.float64) for h, v in e["new"].items()})
    last = evs[-1]
    pop = [space.from_dict(d) for d in last["population"]]
    return pop, table, last["rng_state"], last


def search_generation(log, config: MetaPGConfig, run_dir: RunDir, g: int, space,
                      evaluator) -> None:
    """Generation g of every search (`config.searches` independent NSGA-II runs; search k
    mutates with search seed config.seed + k and trains every candidate on its own seed
    block k, common to its candidates). Generation 0 is SAC's pair and its mutants; a
    later one continues each search from the population, fitness table and random state of
    its last `generation` event (so a resumed search draws what an uninterrupted one
    draws). `space` (`spaces.make_space`) gives SAC, the mutation and the hash of either
    search space. The new candidates of all searches are trained in one evaluator call (batched
    together), then each search keeps its survivors (`nsga2_survivors`) and logs one
    `generation` event."""
    hurdle = config.stability_hurdle
    states = []
    for k in range(config.searches):
        if g == 0:
            rng = np.random.default_rng([config.seed + k, 14])
            base = space.sac()
            pop, F = [], None
            cands = [base] + space.mutate([base] * (config.population - 1), rng)
            table = {}
            prev = {"real_evaluations": 0, "candidates": 0, "cache_hits": 0, "failures": 0}
        else:
            pop, table, rng_state, prev = _search_state(run_dir, space, k)
            rng = np.random.default_rng()
            rng.bit_generator.state = rng_state
            F = objectives(np.stack([table[h] for h in space.hash_many(pop)]), hurdle)
            F = np.where(np.isfinite(F), F, -1e30)
            cands = space.mutate(nsga2_parents(pop, F, rng, config.population), rng)
        states.append((pop, F, cands, table, rng, prev))
    todo = search_items(space, [(s[2], s[3]) for s in states])
    raw = np.asarray(evaluator()([(pair, k) for k, _, pair in todo])) if todo else []
    new: list[dict[str, np.ndarray]] = [{} for _ in states]
    for (k, h, _), v in zip(todo, raw):
        new[k][h] = v
    for k, (pop, F, cands, table, rng, prev) in enumerate(states):
        raw_of = {**table, **new[k]}
        Fc = objectives(np.stack([raw_of[h] for h in space.hash_many(cands)]), hurdle)
        if g == 0:
            pop = cands
        else:
            pop, _ = nsga2_survivors(pop, F, cands, Fc, config.population)
        hashes = space.hash_many(pop)
        F_pop = objectives(np.stack([raw_of[h] for h in hashes]), hurdle)
        log("generation", search=k, search_seed=config.seed + k, generation=g,
            population=[space.to_dict(p) for p in pop], hashes=hashes,
            objectives=_nan_list(F_pop),
            front=non_dominated_sort(np.where(np.isfinite(F_pop), F_pop, -1e30))[0].tolist(),
            formulas=[space.formulas(p) for p in pop],
            new={h: _nan_list(v) for h, v in new[k].items()},
            candidates=prev["candidates"] + len(cands),
            real_evaluations=prev["real_evaluations"] + len(new[k]),
            cache_hits=prev["cache_hits"] + len(cands) - len(new[k]),
            failures=prev.get("failures", 0) + int(sum(
                not np.isfinite(v).all() for v in new[k].values())),
            rng_state=rng.bit_generator.state)


def search_items(hasher, searches) -> list[tuple[int, str, object]]:
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


def reevaluate_front(log, config: MetaPGConfig, run_dir: RunDir, space, evaluator,
                     seeds: list[int]) -> None:
    """The re-test with common random numbers: SAC's pair and every search's chosen front
    members (`_front_members`) trained on the same fresh training seeds (seed blocks
    `searches`, `searches` + 1, ..., beyond every search's own), so each member's
    difference to SAC is paired seed by seed. A function chosen by several searches is
    trained once (its fresh results do not depend on the search that found it)."""
    sac_hash = space.hash_many([space.sac()])[0]
    pairs, index = [space.sac()], {sac_hash: 0}
    per_search = []
    for k in range(config.searches):
        pop, table, _, last = _search_state(run_dir, space, k)
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
    log("reeval", formulas=[space.formulas(p) for p in pairs],
        pairs=[space.to_dict(p) for p in pairs], searches=per_search,
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


