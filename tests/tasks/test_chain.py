"""The chain task (left-to-right arithmetic mod m): solutions verify, every scratchpad step is
right, splits are disjoint, human styles are uneven, the verifier never raises."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught import tasks
from selftaught.core.errors import ConfigError
from selftaught.tasks.base import SPLITS
from selftaught.tasks.chain import apply_op

SETTINGS = [{}, {"steps": 2, "modulus": 7, "ops": "+*"}, {"steps": (1, 3), "modulus": 13}]
_STEP = re.compile(r"^(\d+)([-+*])(\d+)=(?:(-?\d+)=)?(\d+)$")


def _left_to_right(operands, m):
    v = operands[0]
    for op, b in zip(operands[1::2], operands[2::2]):
        v = eval(f"({v}){op}({b})") % m  # an independent reference (Python's own arithmetic)
    return v


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_reference_and_human_solutions_verify_and_steps_are_right(kwargs):
    task = tasks.get("chain", **kwargs)
    rng = np.random.default_rng(0)
    for p in task.problems("train", 200, seed=1):
        assert p.answer == str(_left_to_right(p.operands, task.modulus))
        ref, human = task.reference_solution(p), task.human_solution(p, rng)
        for text in (ref, human):
            assert task.verify(p, text) and task.extract_answer(text) == p.answer
            assert set(task.prompt(p) + text) <= set(task.alphabet)
            assert len(text) <= task.max_solution_len
            for step in text.split("\n")[0].split():
                if step.startswith("="):
                    continue
                a, op, b, raw, r = _STEP.match(step).groups()
                assert int(r) == apply_op(int(a), op, int(b), task.modulus)
                assert raw is None or int(raw) == eval(f"{a}{op}{b}")
        assert len(task.prompt(p)) <= task.max_prompt_len
        body = ref.rpartition("\n")[0]
        wrong = (int(p.answer) + 1) % task.modulus
        assert not task.verify(p, f"{body}\n={wrong}") and not task.verify(p, body)


def test_example_format_and_bounds_are_tight():
    task = tasks.get("chain", steps=4, modulus=10)
    p = task.make_problem((7, "+", 8, "*", 6, "-", 9, "+", 4))
    assert task.prompt(p) == "7+8*6-9+4="
    assert task.reference_solution(p) == "7+8=5 5*6=0 0-9=1 1+4=5\n=5"
    assert task._steps(p.operands, loose=True) == ["7+8=15=5", "5*6=30=0", "0-9=-9=1", "1+4=5"]
    widest = task.make_problem((9, "*", 9, "*", 9, "*", 9, "*", 9))
    assert len(task.prompt(widest)) == task.max_prompt_len
    assert max(len(" ".join(task._steps(widest.operands, True)) + "\n=1"),
               len(task.reference_solution(widest))) <= task.max_solution_len


@pytest.mark.parametrize("kwargs", [{}, {"steps": 2, "modulus": 5}])
def test_problems_deterministic_prefix_stable_distinct_and_splits_disjoint(kwargs):
    task = tasks.get("chain", **kwargs)
    a = task.problems("train", 200, seed=7)
    assert a == tasks.get("chain", **kwargs).problems("train", 200, seed=7)
    assert task.problems("train", 50, seed=7) == a[:50]
    assert len({p.operands for p in a}) == len(a)
    by_split = {s: task.problems(s, 20, seed=3) for s in SPLITS}
    for s in SPLITS:
        assert all(task.split_of(p.operands) == s for p in by_split[s])
    ids = [{p.operands for p in by_split[s]} for s in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_small_space_is_enumerated_and_partitioned_exactly():
    task = tasks.get("chain", steps=1, modulus=4, ops="+-")  # 4 * 2 * 4 = 32 problems
    seen = {}
    for split in SPLITS:
        capacity = len(task._enumerated(split)[0])
        for p in task.problems(split, capacity, seed=0):
            assert p.operands not in seen
            seen[p.operands] = split
        with pytest.raises(ConfigError, match=f"{split} split .* has only {capacity}"):
            task.problems(split, capacity + 1, seed=0)
    assert len(seen) == 32 == task.space_size


def test_human_styles_are_uneven():
    task = tasks.get("chain", steps=5)
    rng = np.random.default_rng(0)
    problems = task.problems("train", 400, seed=0)
    humans = [task.human_solution(p, rng) for p in problems]
    refs = [task.reference_solution(p) for p in problems]
    answer_only = np.mean([h.count("\n") == 0 for h in humans])
    exact = np.mean([h == r for h, r in zip(humans, refs)])
    loose = np.mean([any(s.count("=") == 2 for s in h.split()) for h in humans])
    assert 0.15 < answer_only < 0.35 and 0.15 < exact < 0.4 and loose > 0.2
    none = tasks.get("chain", steps=5, human_skip_prob=0.0, human_loose_prob=0.0)
    assert all(none.human_solution(p, rng) == r for p, r in zip(problems[:50], refs))


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps must satisfy"),
    ({"modulus": 1}, "modulus must be an int in"),
    ({"ops": "+/"}, "ops must be a non-empty string"),
    ({"human_skip_prob": 2.0}, "human_skip_prob must be a probability"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tasks.get("chain", **kwargs)


TASK = tasks.get("chain")
PROBLEM = TASK.problems("test", 1, seed=0)[0]


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789+-*= \n\t", max_size=80), st.text(max_size=200),
                 st.none(), st.integers(), st.binary()))
def test_verify_never_raises(text):
    got = TASK.extract_answer(text)
    assert TASK.verify(PROBLEM, text) == (got is not None and got == PROBLEM.answer)
