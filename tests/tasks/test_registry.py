"""tasks.get: registered names, plug-ins ``package.module:factory`` and their errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from selftaught import tasks
from selftaught.core.errors import ConfigError, UnknownNameError

PLUGIN = textwrap.dedent(
    '''
    from selftaught.tasks import AdditionTask, Problem
    from selftaught.tasks.base import Task


    class Reverse(Task):
        """Reverse a digit string: a minimal task written against the base class."""

        name = "reverse"
        alphabet = "0123456789=<\\n"
        max_prompt_len = 6
        max_solution_len = 7

        def __init__(self, length=4):
            self.length = length

        def problems(self, split, n, seed):
            return [
                Problem(id=str(i), operands=(str(1000 + i + seed),), answer=str(1000 + i)[::-1])
                for i in range(n)
            ]

        def prompt(self, problem):
            return problem.operands[0] + "<"

        def reference_solution(self, problem):
            return "=" + problem.answer

        def human_solution(self, problem, rng):
            return self.reference_solution(problem)


    def make_addition(**kwargs):
        return AdditionTask(**kwargs)


    def broken(**kwargs):
        raise ValueError("no dice")


    class Incomplete:
        name = "incomplete"
        alphabet = "01"

        def prompt(self, problem):
            return ""


    class BadAttrs(Reverse):
        name = ""
        alphabet = "0123456789=<\\n\\n"
        max_solution_len = 0


    class Factories:
        addition = staticmethod(make_addition)


    NOT_CALLABLE = 3
    '''
)


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_tasks.py").write_text(PLUGIN)
    (tmp_path / "broken_import.py").write_text("import does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_tasks"


def test_names_and_registered_tasks():
    assert tasks.names() == ["addition", "chain", "multiplication"]
    assert isinstance(tasks.get("addition"), tasks.AdditionTask)
    task = tasks.get("multiplication", digits_a=2, digits_b=(1, 2))
    assert (task.digits_a, task.digits_b) == ((2, 2), (1, 2))


def test_unknown_name_lists_known():
    with pytest.raises(
        UnknownNameError,
        match="unknown task 'subtraction'; choose one of: addition, chain, multiplication",
    ):
        tasks.get("subtraction")


@pytest.mark.parametrize("spec", ["", "   ", None, 3])
def test_empty_or_non_string_spec(spec):
    with pytest.raises(ConfigError, match="task must be a name"):
        tasks.get(spec)


def test_unknown_option_names_the_valid_ones():
    with pytest.raises(
        ConfigError,
        match="task 'addition' has no option digit; its options "
        "are digits, human_skip_prob, human_loose_prob",
    ):
        tasks.get("addition", digit=3)


def test_plugin_subclass_works_end_to_end(plugin):
    task = tasks.get(f"{plugin}:Reverse", length=3)
    assert task.length == 3
    (p,) = task.problems("train", 1, seed=0)
    assert task.prompt(p) == "1000<"
    assert task.verify(p, task.reference_solution(p))
    assert task.verify(p, task.human_solution(p, np.random.default_rng(0)))
    assert not task.verify(p, "=2")


def test_plugin_factory_function_and_dotted_attribute(plugin):
    task = tasks.get(f"{plugin}:make_addition", digits=2)
    assert isinstance(task, tasks.AdditionTask) and task.digits == (2, 2)
    task = tasks.get(f"{plugin}:Factories.addition", digits=3)
    assert isinstance(task, tasks.AdditionTask) and task.digits == (3, 3)


@pytest.mark.parametrize(
    "spec,match",
    [
        (
            "no_such_module_xyz:make",
            r"cannot import module 'no_such_module_xyz' "
            r"\(ModuleNotFoundError.*\); install it or add its folder to PYTHONPATH",
        ),
        ("broken_import:make", r"cannot import module 'broken_import' .*does_not_exist_anywhere"),
        ("my_tasks:missing", r"module 'my_tasks' has no attribute 'missing'; define it there"),
        ("my_tasks:NOT_CALLABLE", r"'NOT_CALLABLE' is a int, not callable"),
        ("my_tasks:broken", r"my_tasks:broken.*raised ValueError: no dice; fix the factory"),
        (
            "my_tasks:Incomplete",
            r"returned a Incomplete object that lacks max_prompt_len, "
            r"max_solution_len, problems, answer, reference_solution, human_solution, "
            r"extract_answer, verify; .*subclass selftaught.tasks.base.Task",
        ),
        (
            "my_tasks:BadAttrs",
            r"'my_tasks:BadAttrs' is invalid: name must be a non-empty str.*"
            r"alphabet must not repeat.*max_solution_len must be a positive int",
        ),
        ("my_tasks:", r"must look like 'package.module:factory'"),
        (":Reverse", r"must look like 'package.module:factory'"),
        ("my_tasks:Reverse:x", r"must look like 'package.module:factory'"),
    ],
)
def test_plugin_errors_name_the_spec_and_the_fix(plugin, spec, match):
    with pytest.raises(ConfigError, match=match) as info:
        tasks.get(spec)
    assert repr(spec)[1:-1] in str(info.value)


def test_plugin_factory_given_bad_options(plugin):
    with pytest.raises(
        ConfigError,
        match=r"make_addition\(\*\*\{'digits': 0\}\) raised "
        r"ConfigError: digits must satisfy",
    ):
        tasks.get(f"{plugin}:make_addition", digits=0)
