"""The generalisation gate of the verifier recipes (issue 24): a generator whose sample
accuracy on its training problems exceeds that on fresh problems by >= max_generalisation_gap
points (mean over seeds) leaves every claim about the verifier "not tested", with the
measured gap; claims that do not use the verifier stay tested. Synthetic run directories:
the report reads only the logged events."""

import dataclasses

import numpy as np
import pytest

from selftaught import recipes
from selftaught.core import RunDir

SEEDS = [0, 1, 2]


def _run(tmp_path, name, config, events):
    run = RunDir.create(tmp_path / name, recipe=name, preset="smoke", seeds=len(SEEDS),
                        config={}, resume=False)
    run.plots.mkdir(parents=True, exist_ok=True)
    for event, fields in events:
        run.log(event, **fields)
    return run


def _rates(rng, names):
    return {n: float(rng.uniform(0.1, 0.9)) for n in names}


def _vstar_events(config, gate):
    """Every event v-star's report reads; `gate(seed, iteration)` -> (train, fresh) or None."""
    rng = np.random.default_rng(0)
    T, ks = config.iterations, config.ks
    out = []
    for sd in SEEDS:
        out.append(("eval", {"seed": sd, "iteration": 0, "pass1": 0.1}))
        for t in range(1, T + 1):
            names = ["pass1", "sample_acc", *(f"{m}_{k}" for k in ks
                                              for m in ("bok_dpo", "bok_orm", "maj", "passk"))]
            out.append(("eval", {"seed": sd, "iteration": t, **_rates(rng, names)}))
            out.append(("sample", {"seed": sd, "iteration": t, "sample_accuracy": 0.5,
                                   "d_gen": 10, "d_ver": 20, "pairs": 5}))
            out.append(("train", {"seed": sd, "iteration": t, "dpo_reward_accuracy": 0.9}))
        for t in range(T):
            acc = gate(sd, t)
            if acc is not None:
                out.append(("gate", {"seed": sd, "iteration": t, "train_accuracy": acc[0],
                                     "fresh_accuracy": acc[1]}))
    return out


def _mr_events(config, gate):
    rng = np.random.default_rng(1)
    ks, out = config.ks, []
    sel = ("maj", "passk", *(f"{m}_{e}" for e in ("ce", "margin") for m in (
        "all", "weighted", *(f"top{K}" for K in config.top_clusters))))
    for sd in SEEDS:
        out += [
            ("sft_eval", {"seed": sd, **_rates(rng, ["pass1_detailed", "pass1_terse"])}),
            ("rerank_eval", {"seed": sd, **_rates(rng, [
                "sample_acc", "ce_test_pair_accuracy", "margin_test_pair_accuracy",
                *(f"{m}_{k}" for k in ks for m in sel)])}),
            ("sequential_eval", {"seed": sd, **_rates(rng, ["pass1_sequential",
                                                              "pass1_continued"])}),
            ("samples", {"seed": sd, **_rates(rng, ["test_solved", "pool_accuracy",
                                                    "pool_mixed"])}),
            ("evaluator_train", {"seed": sd, "pairs": 40, **_rates(rng, [
                "ce_train_pair_accuracy", "margin_train_pair_accuracy"])}),
        ]
        acc = gate(sd, 0)
        if acc is not None:
            out.append(("gate", {"seed": sd, "train_accuracy": acc[0], "fresh_accuracy": acc[1]}))
    return out


CASES = {  # recipe: (events builder, claims that do not use the verifier)
    "v-star": (_vstar_events, {"maj_at_{k}_beats_pass1"}),
    "math-rerank": (_mr_events, {"detailed_beats_terse"}),
}


def _report(tmp_path, name, gate, **change):
    recipe = recipes.get(name)
    config = dataclasses.replace(recipe.preset("smoke"), **change)
    build, free = CASES[name]
    run = _run(tmp_path, name, config, build(config, gate))
    rep = recipe.report(config, run, SEEDS)
    free = {f.format(k=config.claim_k) for f in free}
    return {c.name: c for c in rep.claims}, free, rep.markdown


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_memorising_generator_leaves_the_verifier_claims_not_tested(tmp_path, name):
    # train 60 / 62 / 64 % vs fresh 20 %: gap 42 points (mean over seeds) >= 5
    claims, free, md = _report(tmp_path, name, lambda sd, t: (0.60 + 0.02 * sd, 0.20))
    gated = set(claims) - free
    assert gated and free <= set(claims)
    for n in gated:
        c = claims[n]
        assert "gap 42.0 points" in c.untested and ">= 5" in c.untested, c.untested
        assert "train 62% vs fresh 20%" in c.untested
        assert c.holds is False and "not tested" in c.note
    for n in free:
        assert claims[n].untested == ""
    assert "## Generalisation gate" in md and "| 42.0 [" in md and "**fails**" in md
    assert "60.0 / 20.0" in md and "64.0 / 20.0" in md  # per-seed train / fresh


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_generalising_generator_leaves_every_claim_tested(tmp_path, name):
    claims, _, md = _report(tmp_path, name, lambda sd, t: (0.30 + 0.01 * sd, 0.28))
    assert all(c.untested == "" for c in claims.values())
    assert "| 3.0 [" in md and "passes" in md and "**fails**" not in md


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_threshold_is_the_config_field(tmp_path, name):
    claims, free, _ = _report(tmp_path, name, lambda sd, t: (0.30 + 0.01 * sd, 0.28),
                              max_generalisation_gap=2.5)
    assert all(("gap 3.0 points" in c.untested) == (n not in free) for n, c in claims.items())


def test_vstar_gates_on_every_generator_that_sampled_verifier_data(tmp_path):
    """G_sft generalises, G_1 (it samples iteration 2's data) memorises: not tested."""
    claims, free, md = _report(tmp_path, "v-star",
                               lambda sd, t: (0.30, 0.29) if t == 0 else (0.70, 0.20))
    gated = [c for n, c in claims.items() if n not in free]
    assert gated and all("G_1 memorises" in c.untested and "G_sft" not in c.untested
                         for c in gated)
    assert "| G_sft |" in md and "| G_1 |" in md


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_run_without_gate_events_says_the_gate_was_not_measured(tmp_path, name):
    claims, free, _ = _report(tmp_path, name, lambda sd, t: None)
    for n, c in claims.items():
        assert ("was not measured" in c.untested) == (n not in free)
