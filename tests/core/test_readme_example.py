"""The README's example recipe ("Writing a recipe") runs as printed: claims with n and
unit, and a run killed inside a phase resumes to the same events and claims."""

import json
import re
from pathlib import Path

from selftaught.core import runner
from selftaught.core.rundir import RunDir

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> dict:
    text = README.read_text()
    section = text.split("## Writing a recipe", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, "README.md: Writing a recipe", "exec"), namespace)  # noqa: S102
    return namespace


def _counted(run):
    return [json.dumps(e, sort_keys=True) for e in run.events()
            if e["event"] not in ("phase_done", "session_end", "session_start")]


def test_readme_example_runs_and_resumes(tmp_path, killed_at):
    ns = _example()
    recipe = ns["RECIPE"]
    run, summary = runner.execute(recipe, recipe.preset("smoke"), preset="smoke", seeds=3,
                                  run_dir=tmp_path / "a")
    (claim,) = summary["claims"]
    assert claim["name"] == "converges" and claim["holds"]
    assert claim["n"] == 3 and claim["unit"] == "training seeds"
    assert run.done_phases() == set(ns["phases"](recipe.preset("smoke"), [0, 1, 2]))
    with killed_at(RunDir, "mark_phase_done", 2):
        runner.execute(recipe, recipe.preset("smoke"), preset="smoke", seeds=3,
                       run_dir=tmp_path / "b")
    assert len(RunDir.open(tmp_path / "b").done_phases()) == 1
    resumed, again = runner.execute(recipe, None, preset="", seeds=0,
                                    run_dir=tmp_path / "b", resume=True)
    assert _counted(resumed) == _counted(run) and again["claims"] == summary["claims"]


def test_readme_example_with_two_seeds_is_undetermined(tmp_path):
    recipe = _example()["RECIPE"]
    _, summary = runner.execute(recipe, recipe.preset("smoke"), preset="smoke", seeds=2,
                                run_dir=tmp_path / "r")
    (claim,) = summary["claims"]
    assert claim.get("undetermined") and not claim["holds"]
