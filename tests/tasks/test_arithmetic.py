"""Arithmetic tasks: solutions verify, scratchpad steps are right, splits are disjoint."""

from __future__ import annotations

import re

import numpy as np
import pytest

from selftaught import tasks
from selftaught.core.errors import ConfigError
from selftaught.tasks.base import SPLITS

SETTINGS = [
    ("addition", {"digits": (1, 4)}),
    ("addition", {"digits": 12}),
    ("multiplication", {"digits_a": (1, 4), "digits_b": 1}),
    ("multiplication", {"digits_a": (2, 3), "digits_b": (1, 2)}),
    ("multiplication", {"digits_a": 3, "digits_b": 3}),
]
IDS = [f"{name}-{kw}" for name, kw in SETTINGS]


@pytest.fixture(params=SETTINGS, ids=IDS)
def task(request):
    name, kwargs = request.param
    return tasks.get(name, **kwargs)


def _texts(task, problems, seed=0):
    rng = np.random.default_rng(seed)
    for p in problems:
        yield task.prompt(p), task.reference_solution(p), task.human_solution(p, rng)


def test_reference_and_human_solutions_verify(task):
    problems = task.problems("train", 150, seed=1)
    op = {"addition": lambda a, b: a + b, "multiplication": lambda a, b: a * b}[task.name]
    for p, (_, ref, human) in zip(problems, _texts(task, problems)):
        assert p.answer == str(op(*p.operands))
        assert task.answer(p) == p.answer
        assert task.verify(p, ref), ref
        assert task.verify(p, human), human
        assert task.extract_answer(human) == p.answer


def test_corrupted_final_answer_fails(task):
    for p in task.problems("test", 50, seed=2):
        ref = task.reference_solution(p)
        body, _, _ = ref.rpartition("\n")
        for wrong in (int(p.answer) + 1, int(p.answer) * 10 + 3, max(int(p.answer) - 1, 1)):
            if str(wrong) != p.answer:
                assert not task.verify(p, f"{body}\n={wrong}")
        assert not task.verify(p, body)  # no final-answer line at all
        assert not task.verify(p, ref + "\n4+4+0=08")  # the answer must be the last line


def test_alphabet_covers_all_text_and_lengths_within_bounds(task):
    alphabet = set(task.alphabet)
    assert len(alphabet) == len(task.alphabet)
    problems = task.problems("train", 200, seed=3) + task.problems("valid", 50, seed=3)
    for prompt, ref, human in _texts(task, problems):
        assert set(prompt + ref + human) <= alphabet
        assert len(prompt) <= task.max_prompt_len
        assert len(ref) <= task.max_solution_len and len(human) <= task.max_solution_len
    # The bounds are tight: the widest problem (all nines) reaches them.
    widest = task.make_problem(tuple(10**hi - 1 for _, hi in task.operand_digits))
    assert len(task.prompt(widest)) == task.max_prompt_len
    assert len(task.reference_solution(widest)) == task.max_solution_len


_ADD_STEP = re.compile(r"(\d)\+(\d)\+(\d)=(\d\d)")
_MUL_STEP = re.compile(r"(\d)\*(\d)\+(\d)=(\d\d)")


def test_addition_scratchpad_steps_are_correct_column_sums():
    task = tasks.get("addition", digits=(1, 6))
    for p in task.problems("train", 100, seed=4):
        a, b = p.operands
        lines = task.reference_solution(p).split("\n")
        assert len(lines) == 2 and lines[1] == f"={a + b}"
        steps = lines[0].split(" ")
        assert len(steps) == max(len(str(a)), len(str(b)))
        carry, digits = 0, []
        for i, step in enumerate(steps):
            x, y, c, s = map(int, _ADD_STEP.fullmatch(step).groups())
            assert (x, y) == ((a // 10**i) % 10, (b // 10**i) % 10)
            assert c == carry and s == x + y + c
            digits.append(s % 10)
            carry = s // 10
        assert int(str(carry) + "".join(map(str, reversed(digits)))) == a + b


def test_multiplication_scratchpad_rows_partials_and_column_sums():
    task = tasks.get("multiplication", digits_a=(1, 4), digits_b=(2, 3))
    for p in task.problems("train", 60, seed=5):
        a, b = p.operands
        lines = task.reference_solution(p).split("\n")
        nb = len(str(b))
        assert len(lines) == nb + 2 and lines[-1] == f"={a * b}"
        partials = []
        for j, line in enumerate(lines[:nb]):
            *steps, partial = line.split(" ")
            bj, carry = (b // 10**j) % 10, 0
            for i, step in enumerate(steps):
                x, y, c, s = map(int, _MUL_STEP.fullmatch(step).groups())
                assert (x, y, c) == ((a // 10**i) % 10, bj, carry) and s == x * y + c
                carry = s // 10
            assert partial == f"={a * bj * 10**j}"
            partials.append(a * bj * 10**j)
        assert sum(partials) == a * b
        sums = lines[nb].split(" ")
        assert len(sums) == len(str(max(partials)))
        assert all(eval(s.split("=")[0]) == int(s.split("=")[1]) for s in sums)


def test_multiplication_single_digit_b_has_one_row():
    task = tasks.get("multiplication", digits_a=4, digits_b=1)
    p = task.make_problem((1234, 6))
    assert task.prompt(p) == "1234*6="
    assert task.reference_solution(p) == "4*6+0=24 3*6+2=20 2*6+2=14 1*6+1=07\n=7404"


def test_addition_example_format():
    task = tasks.get("addition", digits=4)
    p = task.make_problem((1234, 5678))
    assert task.prompt(p) == "1234+5678="
    assert task.reference_solution(p) == "4+8+0=12 3+7+1=11 2+6+1=09 1+5+0=06\n=6912"


@pytest.mark.parametrize("name,kwargs", SETTINGS[:3], ids=IDS[:3])
def test_problems_are_deterministic_prefix_stable_and_distinct(name, kwargs):
    task = tasks.get(name, **kwargs)
    a = task.problems("train", 300, seed=7)
    assert a == tasks.get(name, **kwargs).problems("train", 300, seed=7)
    assert task.problems("train", 100, seed=7) == a[:100]
    assert len({p.operands for p in a}) == len(a)
    b = task.problems("train", 300, seed=8)
    assert len({p.operands for p in a} & {p.operands for p in b}) < 100


def test_small_space_is_partitioned_exactly():
    task = tasks.get("addition", digits=1)  # 100 problems in all
    sizes = {}
    seen = {}
    for split in SPLITS:
        capacity = len(task._enumerated(split)[0])
        problems = task.problems(split, capacity, seed=0)
        sizes[split] = len(problems)
        for p in problems:
            assert p.operands not in seen
            seen[p.operands] = split
        with pytest.raises(ConfigError, match=f"{split} split .* has only {capacity} problems"):
            task.problems(split, capacity + 1, seed=0)
    assert sum(sizes.values()) == 100 and sizes["train"] > sizes["test"] > 0
    # commutative pairs share a split, so a+b in train never leaks b+a into test
    assert all(seen[(a, b)] == seen[(b, a)] for a, b in seen)


@pytest.mark.parametrize("name,kwargs", SETTINGS, ids=IDS)
def test_splits_are_disjoint_by_construction(name, kwargs):
    task = tasks.get(name, **kwargs)
    by_split = {s: task.problems(s, 150, seed=11) for s in SPLITS}
    operand_sets = {s: {frozenset(p.operands) for p in ps} for s, ps in by_split.items()}
    for s in SPLITS:
        assert all(task.split_of(p.operands) == s for p in by_split[s])
        for t in SPLITS:
            if s < t:
                assert not operand_sets[s] & operand_sets[t]


def test_splits_stay_disjoint_across_difficulty_settings():
    easy, hard = tasks.get("addition", digits=(1, 2)), tasks.get("addition", digits=(1, 3))
    test_easy = {p.operands for p in easy.problems("test", 800, seed=0)}
    train_hard = {p.operands for p in hard.problems("train", 20000, seed=0)}
    assert len(train_hard & {p.operands for p in easy.problems("train", 800, seed=0)}) > 0
    assert not test_easy & train_hard


def test_too_many_problems_in_a_large_space_is_a_config_error():
    task = tasks.get("addition", digits=2)  # 8100 problems, enumerated
    with pytest.raises(ConfigError, match="test split .* ask for fewer"):
        task.problems("test", 5000, seed=0)
    big = tasks.get("multiplication", digits_a=4, digits_b=2)  # 8.1e5 pairs, sampled
    with pytest.raises(ConfigError, match=r"ask for at most \d+"):
        big.problems("valid", 10**6, seed=0)


def test_digit_counts_are_uniform_within_the_range():
    task = tasks.get("addition", digits=(1, 4))
    lengths = [len(str(a)) for p in task.problems("train", 2000, seed=0) for a in p.operands]
    counts = np.bincount(lengths, minlength=5)[1:]
    assert all(abs(c - 1000) < 150 for c in counts), counts


@pytest.mark.parametrize("name,kwargs", [SETTINGS[0], SETTINGS[3]], ids=[IDS[0], IDS[3]])
def test_human_skip_prob_controls_skipped_steps(name, kwargs):
    problems = tasks.get(name, **kwargs).problems("train", 400, seed=0)

    def skipped_fraction(skip):
        task = tasks.get(name, human_skip_prob=skip, **kwargs)
        rng = np.random.default_rng(0)
        # every step and partial product has one "=", so a skipped step means fewer of them
        skipped = sum(
            task.human_solution(p, rng).count("=") < task.reference_solution(p).count("=")
            for p in problems
        )
        return skipped / len(problems)

    assert skipped_fraction(0.0) == 0.0
    assert skipped_fraction(1.0) == 1.0
    assert 0.4 < skipped_fraction(0.5) < 0.6


def test_human_styles_are_mixed():
    task = tasks.get("addition", digits=(3, 4))
    rng = np.random.default_rng(0)
    problems = task.problems("train", 300, seed=0)
    humans = [task.human_solution(p, rng) for p in problems]
    refs = [task.reference_solution(p) for p in problems]
    answer_only = sum(h.count("\n") == 0 for h in humans)
    identical = sum(h == r for h, r in zip(humans, refs))
    loose = sum(bool(re.search(r"(^| )\d\+\d=", h)) for h in humans)
    assert 40 < answer_only < 110  # ~ 0.5 * 0.5
    assert 40 < identical < 110  # complete and canonical ~ 0.5 * 0.5
    assert loose > 40


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"digits": 0}, "digits must satisfy 1 <= min <= max <= 100"),
        ({"digits": (4, 2)}, "digits must satisfy"),
        ({"digits": "3"}, "digits must be an int or a"),
        ({"digits": (1, 2, 3)}, "digits must be an int or a"),
        ({"digits": True}, "digits must be an int"),
        ({"human_skip_prob": 1.5}, r"human_skip_prob must be a probability in \[0, 1\]"),
        ({"human_loose_prob": -0.1}, "human_loose_prob must be a probability"),
    ],
)
def test_bad_addition_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tasks.get("addition", **kwargs)


def test_bad_multiplication_options_and_problem_arguments():
    with pytest.raises(ConfigError, match="digits_b must satisfy 1 <= min <= max <= 4"):
        tasks.get("multiplication", digits_b=5)
    task = tasks.get("multiplication")
    with pytest.raises(ConfigError, match="split must be one of train, valid, test; got 'dev'"):
        task.problems("dev", 3, seed=0)
    with pytest.raises(ConfigError, match="non-negative int; got -1"):
        task.problems("train", -1, seed=0)
    with pytest.raises(ConfigError, match="seed must be an int"):
        task.problems("train", 1, seed=0.5)
    assert task.problems("train", 0, seed=0) == []
