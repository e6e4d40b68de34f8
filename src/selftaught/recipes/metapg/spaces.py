"""metapg: the two search spaces behind one interface, so the searches, the re-test and the
report are the same code for both.

    graph       pairs of typed DAGs (critic loss, actor loss), `evolve.actor_critic`: SAC's
                pair, mutated one node or edge at a time, hashed by the loss gradients
    continuous  five numbers weighting SAC's loss terms, `evolve.sac_family`: SAC's point,
                a Gaussian step per coordinate clipped to the box, hashed by its value
"""

from __future__ import annotations

from selftaught.evolve import actor_critic as ac
from selftaught.evolve import sac_family as sf

SPACES = ("graph", "continuous")


class GraphSpace:
    """Members are `actor_critic.Pair`s."""

    name = "graph"

    def __init__(self, config):
        self.config = config
        self.task = config.task()
        self.spaces = self.task.spaces
        self.hasher = ac.PairHasher(*self.spaces)

    def sac(self) -> ac.Pair:
        return ac.sac_pair()

    def mutate(self, parents: list, rng) -> list:
        c = self.config
        return [ac.mutate_pair(p, rng, *self.spaces, p_critic=c.p_critic, p_edge=c.p_edge)
                for p in parents]

    def hash_many(self, members: list) -> list[str]:
        return self.hasher.hash_many(members)

    def to_dict(self, member) -> dict:
        return ac.pair_to_dict(member)

    def from_dict(self, data):
        return ac.pair_from_dict(data, *self.spaces)

    def formulas(self, member) -> dict[str, str]:
        return member.formulas()

    def readable(self, member) -> dict[str, str]:
        return member.readable()


class ContinuousSpace:
    """Members are `sac_family.Point`s."""

    name = "continuous"

    def __init__(self, config):
        self.config = config
        t = config.task()
        self.task = sf.SACFamilyTask(t.sac, t.perturb, seeds=config.train_seeds,
                                     seed=config.seed, batch=config.eval_batch)

    def sac(self) -> sf.Point:
        return sf.sac_point()

    def mutate(self, parents: list, rng) -> list:
        return [sf.mutate(p, rng, self.config.sigma, self.config.p_gene) for p in parents]

    def hash_many(self, members: list) -> list[str]:
        return [p.key() for p in members]

    def to_dict(self, member) -> dict:
        return member.as_dict()

    def from_dict(self, data):
        return sf.point_from_dict(data)

    def formulas(self, member) -> dict[str, str]:
        return member.formulas()

    def readable(self, member) -> dict[str, str]:
        return member.formulas()


def make_space(config):
    """The search space `config.space` names (validated by the config)."""
    return {"graph": GraphSpace, "continuous": ContinuousSpace}[config.space](config)
