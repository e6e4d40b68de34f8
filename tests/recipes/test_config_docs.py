"""Every flag of every recipe is documented, and no flag is stored only to be ignored.

Recipes are discovered (selftaught.recipes.all_recipes), so a new recipe is covered too."""

import ast
import dataclasses
import inspect
import textwrap
import typing

import pytest

from selftaught import cli, recipes

RECIPES = recipes.all_recipes()


def _field_docstrings(cls) -> dict[str, str]:
    """{field: docstring} from the string literal right after each annotated field (the form
    tyro turns into --help text)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body
    docs = {}
    for st, nxt in zip(body, body[1:] + [None]):
        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
            if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                    and isinstance(nxt.value.value, str) and nxt.value.value.strip()):
                docs[st.target.id] = nxt.value.value
    return docs


def _config_classes(cls, seen=None):
    seen = {} if seen is None else seen
    if cls in seen:
        return seen
    seen[cls] = None
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        for t in (hints[f.name], *typing.get_args(hints[f.name])):
            if dataclasses.is_dataclass(t):
                _config_classes(t, seen)
    return seen


def test_recipes_are_discovered():
    assert {"rest-em", "bbf", "value-classification"} <= {r.name for r in RECIPES}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_every_config_field_has_a_docstring(recipe):
    missing = []
    for cls in _config_classes(recipe.config_cls):
        docs = _field_docstrings(cls)
        missing += [f"{cls.__qualname__}.{f.name}" for f in dataclasses.fields(cls)
                    if f.name not in docs]
    assert not missing, f"fields without a docstring (their --help is empty): {missing}"


def _has_field(cls, dotted: str) -> bool:
    head, _, rest = dotted.partition(".")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if head not in fields:
        return False
    if not rest:
        return True
    return _has_field(typing.get_type_hints(cls)[head], rest)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_not_flags_name_real_fields(recipe):
    for name in recipe.not_flags:
        assert _has_field(recipe.config_cls, name), name


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "value-classification", "--dqn.loop.env", "Acrobot-v1"],
         "--dqn.loop.env is not a flag of value-classification: each cell's environment"),
        (["run", "value-classification", "--dqn.loss=c51"], "--dqn.loss is not a flag"),
        (["run", "value-classification", "--dqn.width", "2"], "--dqn.width is not a flag"),
        (["run", "bbf", "--bbf.loop.env", "Asterix-MinAtar"],
         "--bbf.loop.env is not a flag of bbf"),
    ],
)
def test_flags_the_recipe_overrides_are_refused(argv, message, capsys, tmp_path):
    assert cli.main([*argv, "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "\n" not in err.strip()
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda r: r.name)
def test_rerun_advice_flags_rebuild_the_config(recipe):
    """The runner prints commands with a config's flags (its differences from a preset):
    parsed by the CLI on top of that preset they give back exactly that config."""
    import tyro

    from selftaught.core import config as cfglib
    from selftaught.core import runner

    names = list(recipe.presets)
    for a, b in zip(names, names[1:] + names[:1]):
        base, target = recipe.presets[a], recipe.presets[b]
        fa, fb = runner._flat(cfglib.to_dict(base)), runner._flat(cfglib.to_dict(target))
        argv = [t for k, v in fb.items() if fa.get(k) != v for t in runner._flag_tokens(k, v)]
        assert tyro.cli(recipe.config_cls, default=base, args=argv) == target, (a, b)
