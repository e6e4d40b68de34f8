import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


import pytest  # noqa: E402
import toy_recipe  # noqa: E402

from selftaught import recipes  # noqa: E402


@pytest.fixture
def toy(monkeypatch):
    """The toy recipe (tests/core/toy_recipe.py), registered as "toy" for the CLI, with its
    record of computed phases cleared."""
    real_get = recipes.get
    monkeypatch.setattr(recipes, "get", lambda n: toy_recipe.RECIPE if n == "toy" else real_get(n))
    toy_recipe.CALLS.clear()
    return toy_recipe.RECIPE
