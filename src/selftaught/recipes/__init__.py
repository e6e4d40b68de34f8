"""One module per system. Each defines `RECIPE` (selftaught.core.recipe.Recipe) and is
found by module discovery, so adding a recipe touches no shared file."""

from __future__ import annotations

import importlib
import pkgutil

from selftaught.core.errors import UnknownNameError
from selftaught.core.recipe import Recipe


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def names() -> dict[str, str]:
    """Recipe name -> module name, e.g. {'rest-em': 'rest_em'}."""
    return {m.replace("_", "-"): m for m in _modules()}


def get(name: str) -> Recipe:
    table = names()
    if name not in table:
        raise UnknownNameError("recipe", name, list(table))
    module = importlib.import_module(f"{__name__}.{table[name]}")
    return module.RECIPE


def all_recipes() -> list[Recipe]:
    return [get(n) for n in names()]
