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
            for r in lines if r["event"] in ("spec", "baseline", "train", "val_spec")]


@pytest.mark.slow
def test_smoke_run_and_resume_after_kill(tmp_path, killed_at):
    _, ref = runner.execute(RECIPE, SMOKE, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    assert {c["name"] for c in ref["claims"]} == {
        f"{k}_{m}" for k in ("distilled_raises_alpha", "distilled_raises_speedup",
                             "speedup_vs_theory", "on_policy_beats_fixed_alpha")
        for m in ("t1", "greedy")}
    assert {e["model"] for e in _counted(tmp_path / "ref") if e["event"] == "train"} >= {
        "base", "base_matched", "tvd", "tvd_lam0"}
    specs = [e for e in _counted(tmp_path / "ref") if e["event"] == "spec"]
    # validation α: every distilled candidate, mode and γ, and nothing else
    val = [e for e in _counted(tmp_path / "ref") if e["event"] == "val_spec"]
    assert sorted((e["draft"], e["mode"], e["gamma"]) for e in val) == sorted(
        (d, m, g) for d in SMOKE.divergences for m in distillspec.MODES for g in SMOKE.gammas)
    # greedy + T=1 at each gamma, plus the lossy epsilons, for the base and each distilled draft
    n = 2 * len(SMOKE.gammas) + sum(e < 1 for e in SMOKE.epsilons)
    assert len(specs) == n * len(distillspec.draft_names(SMOKE))
    for e in specs:
        assert 0 <= e["alpha"] <= 1 and 1 <= e["tau"] <= e["gamma"] + 1
    for p in ("speedup_t1", "speedup_greedy", "lossy_accuracy", "lossy_speedup"):
        assert (tmp_path / "ref" / "plots" / f"{p}.png").stat().st_size > 0
    with killed_at(distillspec, "measure", 2):  # killed while measuring the second draft
        runner.execute(RECIPE, SMOKE, preset="smoke", seeds=1, run_dir=tmp_path / "kill")
    runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill", resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")


CFG2 = dataclasses.replace(SMOKE, divergences=("fkl", "tvd"), ablation_divergence="fkl",
                           ablation_lambdas=(0.0, 0.5))


def test_draft_specs_control_and_lambda_ablation():
    specs = distillspec.draft_specs(CFG2)
    assert specs == {"base": ("xent", 0.0), "fkl": ("fkl", 1.0), "tvd": ("tvd", 1.0),
                     "base_matched": ("xent", 0.0), "fkl_lam0": ("fkl", 0.0),
                     "fkl_lam0.5": ("fkl", 0.5)}
    for bad, match in ((dict(ablation_divergence="rkl"), "ablation_divergence"),
                       (dict(ablation_lambdas=(1.0,)), "ablation_lambdas"),
                       (dict(divergences=()), "at least one")):
        with pytest.raises(ConfigError, match=match):
            cfglib.validate(dataclasses.replace(CFG2, **bad))


def test_validation_and_test_prompts_are_disjoint():
    st = distillspec.make_setting(SMOKE)
    val = {tuple(r) for r in st.val_prompts["tokens"].tolist()}
    test = {tuple(r) for r in st.prompts["tokens"].tolist()}
    assert val and test and not val & test


def _synthetic_run(tmp_path, val_alpha, test_alpha, config=CFG2, seeds=(0, 1, 2)):
    """A run directory with validation and test α per draft (other metrics constant)."""
    from selftaught.core.rundir import RunDir

    rd = RunDir(tmp_path)
    for sd in seeds:
        for m in distillspec.MODES:
            rd.log("baseline", seed=sd, mode=m, cost_ratio=0.1, wall_cost_ratio=0.1,
                   target_cpu=1.0, target_seconds=1.0, target_acc=1.0)
        for d in config.divergences:
            for m in distillspec.MODES:
                for g in config.gammas:
                    rd.log("val_spec", seed=sd, draft=d, mode=m, gamma=g,
                           alpha=val_alpha[d] + 0.01 * sd)
        for d in distillspec.draft_names(config):
            for m in distillspec.MODES:
                eps_list = [1.0] + ([e for e in config.epsilons if e < 1] if m == "t1" else [])
                for g in config.gammas:
                    for e in eps_list if g == config.lossy_gamma else [1.0]:
                        a = test_alpha[d] + 0.01 * sd
                        rd.log("spec", seed=sd, draft=d, mode=m, gamma=g, epsilon=e,
                               alpha=a, tau=1 + a, speedup=1 + a, theory_speedup=1 + a,
                               wall_speedup=1 + a, acc=0.9)
    return rd


def test_report_selects_divergence_on_validation_and_compares_with_matched_control(tmp_path):
    """Validation prefers tvd, test prefers fkl: the claims use tvd's test α, against
    base_matched (not base), and the λ ablation compares fkl (λ=1) with fkl_lam0."""
    val = {"fkl": 0.3, "tvd": 0.6}
    test = {"base": 0.1, "base_matched": 0.4, "fkl": 0.9, "tvd": 0.5, "fkl_lam0": 0.7,
            "fkl_lam0.5": 0.8}
    rep = distillspec.report(CFG2, _synthetic_run(tmp_path, val, test), [0, 1, 2])
    claims = {c.name: c for c in rep.claims}
    for m in ("t1", "greedy"):
        c = claims[f"distilled_raises_alpha_{m}"]
        assert "(tvd)" in c.statement and "compute-matched" in c.statement
        assert c.value == pytest.approx(0.5 - 0.4)  # tvd − base_matched, not fkl − base
        assert claims[f"on_policy_beats_fixed_alpha_{m}"].value == pytest.approx(0.9 - 0.7)
    assert "greedy tvd, temperature 1 tvd" in rep.markdown
    assert "| t1 | 0.310 | 0.610 |" in rep.markdown  # the validation means it chose on
    # with the splits swapped the choice follows validation again
    swapped = distillspec.report(CFG2, _synthetic_run(tmp_path / "swap", {"fkl": 0.9,
                                                      "tvd": 0.5}, test), [0, 1, 2])
    assert "(fkl)" in {c.name: c for c in swapped.claims}["distilled_raises_alpha_t1"].statement
    # without the control the comparison is with base, and says so
    no_ctrl = dataclasses.replace(CFG2, matched_control=False, ablation_lambdas=())
    rep = distillspec.report(no_ctrl, _synthetic_run(tmp_path / "nc", val, test, no_ctrl),
                             [0, 1, 2])
    c = {c.name: c for c in rep.claims}["distilled_raises_alpha_t1"]
    assert c.value == pytest.approx(0.5 - 0.1) and "compute-matched" not in c.statement
    assert not any(n.startswith("on_policy") for n in {c.name for c in rep.claims})


def test_report_refuses_a_run_without_validation_numbers(tmp_path):
    from selftaught.core.rundir import RunDir

    with pytest.raises(ConfigError, match="predates the validation split"):
        distillspec.validation_choice(RunDir(tmp_path), [0], SMOKE)
