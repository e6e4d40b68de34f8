"""Verifiable tasks: seeded generators with disjoint splits, prompts, reference and "human"
solutions, and a verifier that never raises (the binary reward of self-training recipes).

    >>> from selftaught import tasks
    >>> task = tasks.get("addition", digits=(1, 4))
    >>> problem = task.problems("train", n=1, seed=0)[0]
    >>> task.verify(problem, task.reference_solution(problem))
    True

``get`` also loads a plug-in ``"package.module:factory"``: the factory is called with the
keyword arguments and must return an object with the attributes and methods of
:class:`selftaught.tasks.base.Task`.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.tasks.arithmetic import AdditionTask, MultiplicationTask
from selftaught.tasks.base import (
    SPLITS,
    Problem,
    Task,
    check_task,
    extract_final_answer,
    normalize_answer,
)
from selftaught.tasks.chain import ChainTask

__all__ = [
    "SPLITS",
    "AdditionTask",
    "ChainTask",
    "MultiplicationTask",
    "Problem",
    "Task",
    "check_task",
    "extract_final_answer",
    "get",
    "names",
    "normalize_answer",
    "parse_task_args",
]

_REGISTRY: dict[str, Callable[..., Task]] = {
    "addition": AdditionTask,
    "chain": ChainTask,
    "multiplication": MultiplicationTask,
}


def names() -> list[str]:
    """Registered task names (plug-ins are named ``package.module:factory`` instead)."""
    return sorted(_REGISTRY)


def get(spec: str, **kwargs: Any) -> Task:
    """The task named ``spec`` (a registered name or ``package.module:factory``), built with
    ``kwargs``. Raises UnknownNameError / ConfigError with a message that says what to fix."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(
            f"task must be a name ({', '.join(names())}) or 'package.module:factory'; got {spec!r}"
        )
    if ":" in spec:
        return _load_plugin(spec, kwargs)
    if spec not in _REGISTRY:
        raise UnknownNameError("task", spec, names())
    factory = _REGISTRY[spec]
    accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(
            f"task {spec!r} has no option {', '.join(unknown)}; its options are "
            f"{', '.join(accepted)}"
        )
    return factory(**kwargs)


def _load_plugin(spec: str, kwargs: dict[str, Any]) -> Any:
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path or ":" in attr_path:
        raise ConfigError(f"task plug-in {spec!r} must look like 'package.module:factory'")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"task plug-in {spec!r}: cannot import module {module_name!r} "
            f"({type(exc).__name__}: {exc}); install it or add its folder to PYTHONPATH"
        ) from exc
    factory: Any = module
    for part in attr_path.split("."):
        if not hasattr(factory, part):
            raise ConfigError(
                f"task plug-in {spec!r}: module {module_name!r} has no attribute {attr_path!r}; "
                f"define it there or fix the name after ':'"
            )
        factory = getattr(factory, part)
    if not callable(factory):
        raise ConfigError(
            f"task plug-in {spec!r}: {attr_path!r} is a {type(factory).__name__}, not callable; "
            f"point to a function or class that returns a task"
        )
    try:
        task = factory(**kwargs)
    except Exception as exc:
        raise ConfigError(
            f"task plug-in {spec!r}: {attr_path}(**{kwargs!r}) raised {type(exc).__name__}: {exc}; "
            f"fix the factory or the task options"
        ) from exc
    return check_task(task, spec)


def parse_task_args(text: str) -> dict[str, Any]:
    """'digits=(1, 4), human_skip_prob=0.5' -> {'digits': (1, 4), 'human_skip_prob': 0.5}
    (the `--task-args` flag of the LM recipes; literal values only)."""
    if not text.strip():
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        assert isinstance(call, ast.Call) and not call.args
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
    except (SyntaxError, ValueError, AssertionError):
        raise ConfigError(
            f"task_args {text!r} is not a list of name=value pairs with literal values, "
            "e.g. --task-args 'digits=(1, 4), human_skip_prob=0.5'"
        ) from None
