"""DistillSpec recipe: config errors (fast); smoke mechanics and resume after kill (slow)."""

import dataclasses
import json

import pytest

from selftaught import recipes
from selftaught.core import ConfigError, runner
from selftaught.core import config as cfglib
from selftaught.recipes import distillspec

RECIPE = recipes.get("distillspec")
SMOKE = RECIPE.preset("smoke")

# wall-clock figures vary run to run; everything else must match exactly
TIMING = {"wall_seconds", "seconds", "peak_rss_mib", "resumed", "spec_seconds", "speedup",
          "theory_speedup", "target_seconds", "draft_seconds", "cost_ratio", "spec_cpu",
          "wall_speedup", "target_cpu", "draft_cpu", "wall_cost_ratio"}


def test_bad_configs_raise_config_error():
    for bad, match in ((dict(gammas=(0, 2)), "gammas"), (dict(epsilons=(1.0, 1.5)), "epsilons"),
                       (dict(epsilons=(0.0,)), "epsilons"), (dict(divergences=("kl",)), "kl"),
                       (dict(lossy_gamma=0), "lossy_gamma")):
        with pytest.raises(ConfigError, match=match):
            cfglib.validate(dataclasses.replace(SMOKE, **bad))


def _counted(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING}
            for r in lines if r["event"] in ("spec", "baseline", "train")]


@pytest.mark.slow
def test_smoke_run_and_resume_after_kill(tmp_path, killed_at):
    _, ref = runner.execute(RECIPE, SMOKE, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    assert {c["name"] for c in ref["claims"]} == {
        f"{k}_{m}" for k in ("distilled_raises_alpha", "distilled_raises_speedup",
                             "speedup_vs_theory") for m in ("t1", "greedy")}
    specs = [e for e in _counted(tmp_path / "ref") if e.get("gamma") is not None]
    # greedy + T=1 at each gamma, plus the lossy epsilons, for the base and each distilled draft
    n = 2 * len(SMOKE.gammas) + sum(e < 1 for e in SMOKE.epsilons)
    assert len(specs) == n * (1 + len(SMOKE.divergences))
    for e in specs:
        assert 0 <= e["alpha"] <= 1 and 1 <= e["tau"] <= e["gamma"] + 1
    for p in ("speedup_t1", "speedup_greedy", "lossy_accuracy", "lossy_speedup"):
        assert (tmp_path / "ref" / "plots" / f"{p}.png").stat().st_size > 0
    with killed_at(distillspec, "measure", 2):  # killed while measuring the second draft
        runner.execute(RECIPE, SMOKE, preset="smoke", seeds=1, run_dir=tmp_path / "kill")
    runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill", resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")
