"""tasks.base.distinct_problems: the sampling every built-in task's `problems` shares."""

import numpy as np
import pytest

from selftaught.core.errors import ConfigError
from selftaught.tasks.base import Problem, distinct_problems


class Toy:
    """Operands (a,) with a in [0, 100); split 'test' = multiples of 4, else 'train'."""

    space_size = 100

    def describe(self):
        return "toy"

    def split_of(self, ops):
        return "test" if ops[0] % 4 == 0 else "train"

    def make_problem(self, ops):
        return Problem(id=str(ops[0]), operands=ops, answer=str(ops[0]))


def _draw(rng):  # a batch of 8 candidates, duplicates and both splits among them
    return [(int(a),) for a in rng.integers(0, 100, 8)]


def test_rejection_keeps_distinct_members_of_the_split_and_is_prefix_stable():
    rng = lambda: np.random.default_rng(7)
    got = distinct_problems(Toy(), "train", 30, rng(), enumerated=None, draw=_draw, hint="h")
    ops = [p.operands for p in got]
    assert len(ops) == len(set(ops)) == 30
    assert all(Toy().split_of(o) == "train" for o in ops)
    short = distinct_problems(Toy(), "train", 11, rng(), enumerated=None, draw=_draw, hint="h")
    assert [p.operands for p in short] == ops[:11]


def test_enumerated_spaces_are_sampled_by_weight_without_replacement():
    members = [(4 * i,) for i in range(25)]
    weights = np.r_[np.full(24, 1e-9), 1.0]  # all the weight on (96,)
    enum = lambda: (members, weights)
    got = distinct_problems(Toy(), "test", 25, np.random.default_rng(0), enumerated=enum,
                            draw=None, hint="h")
    assert sorted(p.operands for p in got) == members  # each member once
    first = distinct_problems(Toy(), "test", 1, np.random.default_rng(0), enumerated=enum,
                              draw=None, hint="h")
    assert first[0].operands == (96,)


def test_too_many_asked_names_the_split_and_the_hint():
    enum = lambda: ([(4 * i,) for i in range(25)], np.ones(25))
    with pytest.raises(ConfigError, match=r"the test split of toy has only 25 problems, 26 "
                                          r"asked; ask for fewer or grow it"):
        distinct_problems(Toy(), "test", 26, np.random.default_rng(0), enumerated=enum,
                          draw=None, hint="grow it")
    # rejection: more than half the split's expected size (100 x its fraction) is refused
    with pytest.raises(ConfigError, match=r"the train split of toy has about \d+ problems, 60 "
                                          r"asked; ask for at most \d+ or grow it"):
        distinct_problems(Toy(), "train", 60, np.random.default_rng(0), enumerated=None,
                          draw=_draw, hint="grow it")
