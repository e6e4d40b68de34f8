"""DistillSpec recipe: config errors (fast); smoke mechanics and resume after kill (slow)."""

import dataclasses
import json

import jax
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
                       (dict(lossy_gamma=0), "lossy_gamma"), (dict(lossy_gamma=2), "lossy_gamma"),
                       (dict(lossy_margin=-0.1), "lossy_margin"),
                       (dict(eval_batches=0), "eval_batches")):
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
        for m in ("t1", "greedy")} | {"lossy_raises_tau_t1", "lossy_accuracy_noninferior_t1"}
    assert {e["model"] for e in _counted(tmp_path / "ref") if e["event"] == "train"} >= {
        "base", "base_matched", "tvd", "tvd_lam0"}
    specs = [e for e in _counted(tmp_path / "ref") if e["event"] == "spec"]
    # validation: exact decoding for every distilled candidate and the control, mode and γ;
    # the lossy ε < 1 for the candidates only; and nothing else
    val = [e for e in _counted(tmp_path / "ref") if e["event"] == "val_spec"]
    lossy = [e for e in SMOKE.epsilons if e < 1]
    assert sorted((e["draft"], e["mode"], e["gamma"], e["epsilon"]) for e in val) == sorted(
        [(d, m, g, 1.0) for d in (*SMOKE.divergences, "base_matched")
         for m in distillspec.MODES for g in SMOKE.gammas]
        + [(d, "t1", SMOKE.lossy_gamma, e) for d in SMOKE.divergences for e in lossy])
    # greedy + T=1 at each gamma, plus the lossy epsilons, for the base and each distilled draft
    n = 2 * len(SMOKE.gammas) + sum(e < 1 for e in SMOKE.epsilons)
    assert len(specs) == n * len(distillspec.draft_names(SMOKE))
    for e in specs:
        assert 0 <= e["alpha"] <= 1 and 1 <= e["tau"] <= e["gamma"] + 1
    for p in ("speedup_t1", "speedup_greedy", "lossy_accuracy", "lossy_speedup"):
        assert (tmp_path / "ref" / "plots" / f"{p}.png").stat().st_size > 0
    # killed mid-measurement: 4 baseline and 4 validation timings, then the 2nd test setting
    with killed_at(distillspec, "_timed_together", 10):
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
    K, B = SMOKE.eval_batches, SMOKE.eval_problems
    assert st.prompts["tokens"].shape[:2] == st.val_prompts["tokens"].shape[:2] == (K, B)
    flat = lambda x: {tuple(r) for r in x.reshape(K * B, -1).tolist()}  # noqa: E731
    val, test = flat(st.val_prompts["tokens"]), flat(st.prompts["tokens"])
    assert val and test and not val & test


def _synthetic_run(tmp_path, val_alpha, test_alpha, config=CFG2, seeds=(0, 1, 2),
                   val_acc=None, test_acc=None, test_tau=None, val_cpu=None, test_cpu=None):
    """A run directory with validation and test α per draft; optional per-ε accuracies and
    τ (T=1, lossy γ), validation CPU seconds per γ and test CPU seconds per (draft, γ)
    (defaults: constant)."""
    from selftaught.core.rundir import RunDir

    val_acc, test_acc, test_tau = val_acc or {}, test_acc or {}, test_tau or {}
    val_cpu, test_cpu = val_cpu or {}, test_cpu or {}
    lossy = [e for e in config.epsilons if e < 1]
    rd = RunDir(tmp_path)
    ctrl = "base_matched" if config.matched_control else "base"
    for sd in seeds:
        for m in distillspec.MODES:
            rd.log("baseline", seed=sd, mode=m, cost_ratio=0.1, wall_cost_ratio=0.1,
                   target_cpu=1.0, target_seconds=1.0, target_acc=1.0)
        for d in (*config.divergences, ctrl):
            for m in distillspec.MODES:
                for g in config.gammas:
                    for e in [1.0] + (lossy if m == "t1" and g == config.lossy_gamma
                                      and d != ctrl else []):
                        rd.log("val_spec", seed=sd, draft=d, mode=m, gamma=g, epsilon=e,
                               alpha=val_alpha.get(d, 0.0) + 0.01 * sd, tau=2.0,
                               acc=val_acc.get(e, 0.9), spec_cpu=val_cpu.get(g, 1.0))
        for d in distillspec.draft_names(config):
            for m in distillspec.MODES:
                eps_list = [1.0] + (lossy if m == "t1" else [])
                for g in config.gammas:
                    for e in eps_list if g == config.lossy_gamma else [1.0]:
                        a = test_alpha[d] + 0.01 * sd
                        cpu = test_cpu.get((d, g), 1.0 / (1 + a)) * (1 + 0.01 * sd)
                        rd.log("spec", seed=sd, draft=d, mode=m, gamma=g, epsilon=e,
                               alpha=a, tau=test_tau.get(e, 1 + a) + 0.01 * sd,
                               speedup=1.0 / cpu, theory_speedup=1 + a,
                               wall_speedup=1 + a, acc=test_acc.get(e, 0.9) - 0.01 * sd)
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


def test_most_lenient_epsilon_within_margin_hand_computed():
    pick = distillspec.most_lenient_within
    acc = {1.0: 0.90, 0.5: 0.88, 0.2: 0.86, 0.1: 0.80, 0.05: 0.87}
    # within 5 points of 0.90: 0.5, 0.2 and 0.05 (not 0.1): the smallest of those
    assert pick(acc, 0.05) == 0.05
    assert pick({1.0: 0.90, 0.5: 0.88, 0.2: 0.86, 0.1: 0.80}, 0.05) == 0.2
    assert pick({1.0: 0.90, 0.5: 0.85, 0.2: 0.80}, 0.05) == 0.5  # exactly at the margin
    assert pick({1.0: 0.90, 0.5: 0.84}, 0.05) == 1.0  # none within: exact decoding
    assert pick({1.0: 0.90, 0.5: 0.95}, 0.0) == 0.5  # a lenient ε may be more accurate
    assert pick({1.0: 0.90}, 0.05) == 1.0


def test_gamma_chosen_on_validation_cpu_time(tmp_path):
    """fastest_gamma reads validation CPU seconds (mean over seeds, smallest γ on ties);
    the speedup claim then compares each draft at its own validation γ, on test."""
    cfg = dataclasses.replace(CFG2, gammas=(1, 2, 3), lossy_gamma=3)
    test = {"base": 0.1, "base_matched": 0.4, "fkl": 0.9, "tvd": 0.5, "fkl_lam0": 0.7,
            "fkl_lam0.5": 0.8}
    # validation: γ = 2 fastest; test: γ = 1 fastest for every draft (must not be used)
    test_cpu = {(d, g): {1: 0.5, 2: 1.0, 3: 2.0}[g] * (0.8 if d == "tvd" else 1.0)
                for d in test for g in (1, 2, 3)}
    rd = _synthetic_run(tmp_path, {"fkl": 0.3, "tvd": 0.6}, test, config=cfg,
                        val_cpu={1: 1.0, 2: 0.7, 3: 0.7}, test_cpu=test_cpu)
    val = distillspec.validation_records(rd, [0, 1, 2], cfg)
    assert distillspec.fastest_gamma(val, [0, 1, 2], cfg.gammas, "tvd", "t1") == 2
    claims = {c.name: c for c in distillspec.report(cfg, rd, [0, 1, 2]).claims}
    c = claims["distilled_raises_speedup_t1"]
    assert "tvd γ=2, base_matched γ=2" in c.statement
    assert c.value == pytest.approx(1 / 0.8 - 1)  # CPU seconds 1.0 (ctrl) vs 0.8 (tvd)


def _lossy_claims(tmp_path, val_acc, test_acc, test_tau, margin=0.05):
    cfg = dataclasses.replace(CFG2, epsilons=(1.0, 0.5, 0.2), lossy_margin=margin)
    test = {"base": 0.1, "base_matched": 0.4, "fkl": 0.9, "tvd": 0.5, "fkl_lam0": 0.7,
            "fkl_lam0.5": 0.8}
    rd = _synthetic_run(tmp_path, {"fkl": 0.3, "tvd": 0.6}, test, config=cfg,
                        val_acc=val_acc, test_acc=test_acc, test_tau=test_tau)
    rep = distillspec.report(cfg, rd, [0, 1, 2])
    return {c.name: c for c in rep.claims}, rep.markdown


def test_lossy_frontier_selected_on_validation_and_non_inferiority_direction(tmp_path):
    # validation: ε = 0.5 within 5 points of exact, ε = 0.2 not; test would favour ε = 0.2
    val_acc = {1.0: 0.90, 0.5: 0.87, 0.2: 0.70}
    claims, md = _lossy_claims(tmp_path / "a", val_acc, {1.0: 0.90, 0.5: 0.87, 0.2: 0.90},
                               {1.0: 2.0, 0.5: 2.5, 0.2: 3.0})
    tau, ni = claims["lossy_raises_tau_t1"], claims["lossy_accuracy_noninferior_t1"]
    assert "ε*=0.5" in tau.statement and "selected on validation" in tau.statement
    assert tau.value == pytest.approx(0.5) and tau.holds  # τ 2.5 − 2.0 on test, every seed
    assert ni.value == pytest.approx(-3.0) and ni.holds  # −3 points, CI above −5
    assert "| tvd | 90.0 | 87.0 | 70.0 |" in md  # the validation accuracies it chose on
    # the same validation choice, but on test ε = 0.5 loses 8 points: not non-inferior
    claims, _ = _lossy_claims(tmp_path / "b", val_acc, {1.0: 0.90, 0.5: 0.82, 0.2: 0.90},
                              {1.0: 2.0, 0.5: 2.5, 0.2: 3.0})
    ni = claims["lossy_accuracy_noninferior_t1"]
    assert ni.value == pytest.approx(-8.0) and not ni.holds
    # lenience that does not raise τ on test fails the τ claim
    claims, _ = _lossy_claims(tmp_path / "c", val_acc, {1.0: 0.90, 0.5: 0.90, 0.2: 0.90},
                              {1.0: 2.0, 0.5: 2.0, 0.2: 2.0})
    assert not claims["lossy_raises_tau_t1"].holds


def test_lossy_claims_not_tested_when_no_epsilon_passes_validation(tmp_path):
    claims, md = _lossy_claims(tmp_path, {1.0: 0.90, 0.5: 0.80, 0.2: 0.70},
                               {1.0: 0.90, 0.5: 0.90, 0.2: 0.90}, {1.0: 2.0, 0.5: 3.0, 0.2: 4.0})
    for name in ("lossy_raises_tau_t1", "lossy_accuracy_noninferior_t1"):
        c = claims[name]
        assert not c.holds and "no ε < 1 kept validation accuracy within 5 points" in c.untested
        assert "ε=0.5 80.0" in c.untested


def test_loop_steps_counts_each_batch_until_its_longest_row():
    assert distillspec.loop_steps([[3, 5], [2, 2]]) == 5 + 2
    assert distillspec.loop_steps([4, 1, 2]) == 4  # one batch
    assert distillspec.loop_steps([[0, 0]]) == 1  # never 0 (it divides)


def test_round_robin_timing_keeps_each_result_and_times_every_fn():
    calls = []
    fns = {k: (lambda k=k: calls.append(k) or jax.numpy.ones(2) * len(calls)) for k in "abc"}
    timed = distillspec._timed_together(fns, 2)
    assert calls == list("abc") * 3  # one warm-up round, then 2 rounds in turn
    assert set(timed) == set("abc")
    for k, (out, wall, cpu) in timed.items():
        assert float(out[0]) == 7 + "abc".index(k)  # the result of the last round
        assert 0 <= wall < float("inf") and 0 <= cpu < float("inf")
