"""extract_answer / verify never raise and parse only a final ``=DIGITS`` line."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught import tasks
from selftaught.tasks.base import extract_final_answer, normalize_answer

TASKS = [tasks.get("addition", digits=(1, 3)), tasks.get("multiplication", digits_b=(1, 2))]
PROBLEMS = [t.problems("test", 5, seed=0) for t in TASKS]

# text built from the tasks' own characters hits the parser's edge cases far more often
task_like = st.text(alphabet="0123456789+*= \n\t", max_size=80)
weird = st.text(max_size=200)  # arbitrary unicode, including surrogates and line separators


@settings(max_examples=300, deadline=None)
@given(st.one_of(task_like, weird), st.integers(0, 1), st.integers(0, 4))
def test_extract_and_verify_never_raise(text, t, i):
    task, problem = TASKS[t], PROBLEMS[t][i]
    got = task.extract_answer(text)
    assert got is None or (got.isascii() and got.isdigit() and (got == "0" or got[0] != "0"))
    ok = task.verify(problem, text)
    assert ok == (got == problem.answer)


@settings(max_examples=150, deadline=None)
@given(
    st.one_of(task_like, weird), st.integers(0, 10**30), st.sampled_from(["", " ", "\n", "\n\n "])
)
def test_a_final_answer_line_is_always_found(prefix, value, trailing):
    text = f"{prefix}\n={value}{trailing}"
    assert extract_final_answer(text) == str(value)
    assert extract_final_answer(f"{prefix}\n= {value:05d} ") == str(value)


@pytest.mark.parametrize(
    "text",
    [
        "=" + "9" * 2_000_000,
        "\n" * 1_000_000 + "=5",
        " " * 1_000_000 + "=" + " " * 1_000_000,
        "=" * 1_000_000,
        "1+" * 500_000 + "\n" + "= " * 500_000,
    ],
)
def test_huge_strings_are_handled(text):
    task, problem = TASKS[0], PROBLEMS[0][0]
    got = task.extract_answer(text)
    assert task.verify(problem, text) == (got == problem.answer)


@pytest.mark.parametrize("value", [None, 12, b"=12", ["=12"], object()])
def test_non_strings_are_rejected_not_raised(value):
    task, problem = TASKS[0], PROBLEMS[0][0]
    assert task.extract_answer(value) is None
    assert task.verify(problem, value) is False


@pytest.mark.parametrize(
    "text,expected",
    [
        ("=12", "12"),
        ("4+8+0=12\n=0012", "12"),
        ("=0", "0"),
        ("=000", "0"),
        ("steps\n  =  7  \n\n", "7"),
        ("=12\nmore", None),  # the answer must be the last non-blank line
        ("4+8+0=12", None),  # a step is not an answer
        ("=1 2", None),
        ("=-3", None),
        ("=١٢", None),  # non-ASCII digits are not answers
        ("=12\u2028", "12"),
        ("", None),
        ("answer", None),
    ],
)
def test_extract_examples(text, expected):
    assert extract_final_answer(text) == expected


def test_normalize_answer():
    assert normalize_answer(" 007 ") == "7"
    assert normalize_answer("0") == "0"
    assert normalize_answer("1e3") is None
    assert normalize_answer(7) is None


ADD = tasks.get("addition", digits=(1, 30))
MUL = tasks.get("multiplication", digits_a=(1, 12), digits_b=(1, 3))


@settings(max_examples=120, deadline=None)
@given(
    st.sampled_from([ADD, MUL]),
    st.integers(0, 10**30 - 1),
    st.integers(0, 10**12 - 1),
    st.integers(0, 999),
    st.integers(0, 2**32),
)
def test_any_operands_give_verified_in_alphabet_bounded_solutions(task, x, y, z, seed):
    operands = (x, y) if task is ADD else (y, z)
    problem = task.make_problem(operands)
    rng = np.random.default_rng(seed)
    texts = [task.reference_solution(problem), task.human_solution(problem, rng)]
    for text in texts:
        assert task.verify(problem, text)
        assert set(text) <= set(task.alphabet)
        assert len(text) <= task.max_solution_len
    assert len(task.prompt(problem)) <= task.max_prompt_len
    wrong = f"{texts[0].rpartition(chr(10))[0]}\n={int(problem.answer) + 1}"
    assert not task.verify(problem, wrong)
