"""V-STaR end to end on tiny settings: files and claims, resume, user errors (exit 2, no
half-written run)."""

import dataclasses
import json

import numpy as np
import pytest
from recipe_checks import TINY_LM_FLAGS, check_failed_phase_left_behind, one_line_cli_error

from selftaught import recipes
from selftaught.core import ConfigError, runner
from selftaught.core import config as cfglib
from selftaught.lm import TrainConfig
from selftaught.lm.model import ModelSize
from selftaught.lm.tokenizer import EOS
from selftaught.recipes import v_star

RECIPE = recipes.get("v-star")

# Tiny: only checks mechanics (phases, resume, files), not the claims.
TINY = dataclasses.replace(
    RECIPE.preset("smoke"), num_seeds=1, task_args="steps=(1, 2), modulus=5",
    human_problems=40, train_problems=60, eval_problems=10, valid_problems=8,
    model=ModelSize(d_model=16, n_layers=1, n_heads=2),
    sft=TrainConfig(lr=1e-2, warmup_steps=5, total_steps=60, batch_size=16), iterations=2,
    samples_per_problem=4,
    verifier=TrainConfig(lr=1e-3, warmup_steps=5, total_steps=20, batch_size=8),
    candidates=4, claim_k=2, vote_repeats=2, sample_batch=64, chunk_steps=10,
    oracle_verifier=True,
)


def _counted(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "seconds", "peak_rss_mib",
                                                      "resumed")}
            for r in lines if r["event"] in ("eval", "sample", "train", "gate")]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, killed_at):
    run, ref = runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    names = {c["name"] for c in ref["claims"]}
    assert names == {"vstar_beats_maj_at_2", "maj_at_2_beats_pass1", "dpo_beats_orm_at_4",
                     "iteration_2_beats_1", "oracle_auroc_beats_dpo"}
    evals = {e["iteration"]: e for e in run.events("eval")}
    assert set(evals) == {0, 1, 2}
    last = evals[2]
    for k in (1, 2, 4):  # every estimate is a rate, and Best-of-k never beats the oracle
        for name in ("bok_dpo", "bok_orm", "bok_oracle", "maj", "passk"):
            assert 0.0 <= last[f"{name}_{k}"] <= 1.0
        for name in ("bok_dpo", "bok_orm", "bok_oracle"):
            assert last[f"{name}_{k}"] <= last[f"passk_{k}"] + 1e-9
    assert last["bok_dpo_1"] == pytest.approx(last["sample_acc"])  # Best-of-1 = random pick
    assert "bok_orm_1" not in evals[1]  # the ORM baseline is trained at the last iteration
    assert "auroc_orm" not in evals[1] and "auroc_orm" in last
    assert "auroc_oracle" in evals[1] and "auroc_oracle" in last  # every iteration
    train = {e["iteration"]: e for e in run.events("train")}[2]
    assert 0.0 < train["step_error_rate"] < 1.0 and 0.0 <= train["oracle_step_accuracy"] <= 1.0
    for t in (1, 2):  # within-problem AUROC: a rate, NaN only when no problem has both kinds
        for name in ("auroc_dpo", "auroc_orm", "auroc_oracle") if t == 2 else (
                "auroc_dpo", "auroc_oracle"):
            v = evals[t][name]
            assert v != v or 0.0 <= v <= 1.0
    assert "## Verifier ranking quality" in (run.path / "report.md").read_text()
    gates = {e["iteration"]: e for e in run.events("gate")}
    assert set(gates) == {0, 1}  # G_sft and G_1 sample verifier data; G_2 does not
    assert [gates[t]["phase"] for t in (0, 1)] == ["seed0/sft", "seed0/iter1"]
    for g in gates.values():
        assert 0.0 <= g["train_accuracy"] <= 1.0 and 0.0 <= g["fresh_accuracy"] <= 1.0
        assert g["train_problems"] == g["fresh_problems"] == TINY.valid_problems
    assert "## Generalisation gate" in (run.path / "report.md").read_text()
    per = {e["iteration"]: e for e in run.events("test_problems")}
    assert set(per) == {1, 2}
    for t, e in per.items():  # each test problem's own value; the scalars are their means
        names = {"pass1", "bok_dpo_2", "maj_2", "bok_oracle_2", "bok_dpo_4", "maj_4",
                 "bok_oracle_4"} | ({"bok_orm_2", "bok_orm_4"} if t == 2 else set())
        assert names <= set(e) and "bok_dpo_1" not in e  # only the claims' k
        for name in names:
            assert len(e[name]) == TINY.eval_problems
            assert np.mean(e[name]) == pytest.approx(evals[t][name], abs=1e-6)
    assert "## Resolution of the test set: paired bootstrap over the 10 test problems" in (
        run.path / "report.md").read_text()
    assert (run.path / "plots" / "best_of_k.png").stat().st_size > 0
    assert "| 4 |" in (run.path / "report.md").read_text()

    with killed_at(v_star, "train_dpo", 2):  # killed inside iteration 2, after iteration 1 finished
        runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "kill")
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")
    assert resumed["claims"] == ref["claims"]


@pytest.mark.parametrize("change, message", [
    ({"claim_k": 8}, "claim_k (8) must be <= candidates (4)"),
    ({"temperature": 0.0}, "temperature must be > 0"),
    ({"dpo_beta": 0.0}, "dpo_beta must be > 0"),
    ({"human_problems": 61}, "human_problems (61) must be <= train_problems (60)"),
    ({"task_args": "steps=(1, 2), modulus=1"}, "modulus must be an int"),
    ({"task": "addition", "task_args": ""}, "pass --no-oracle-verifier"),
])
def test_config_errors(change, message):
    with pytest.raises(ConfigError) as exc:
        cfglib.validate(dataclasses.replace(TINY, **change))
    assert message in str(exc.value)
    assert dataclasses.replace(TINY, candidates=6).ks == [1, 2, 4, 6]


def test_empty_d_ver_is_a_one_line_error_and_leaves_no_iteration_behind(tmp_path, capsys):
    """G_sft after 1 step of training solves nothing: no correct sample, no DPO pairs."""
    run_dir = tmp_path / "r"
    one_line_cli_error(capsys, [
        "run", "v-star", *TINY_LM_FLAGS, "--run-dir", str(run_dir), "--human-problems", "10",
        "--train-problems", "10", "--eval-problems", "4", "--valid-problems", "4",
        "--samples-per-problem", "1", "--sample-batch", "16"],
        "no training problem has both a correct and an incorrect sample")
    # the finished phase stays, resumable
    check_failed_phase_left_behind(run_dir, ["seed0/sft"], "seed0/iter1")


def test_oracle_step_labels_sit_on_the_token_that_ends_each_step():
    """pack_steps: the mask marks the last token of each written step (its result digit) and
    the EOS (the final line), the label the task's step_labels verdict."""
    s = v_star.make_setting(dataclasses.replace(TINY, task_args="steps=4, modulus=10"), 0)
    p = s.task.make_problem((7, "+", 8, "*", 6, "-", 9, "+", 4))
    texts = ["7+8=5 5*6=1 1-9=2 2+4=6\n=6", "=5"]
    rows = v_star.pack_steps(s, [p, p], texts)
    for i, text in enumerate(texts):
        at = np.flatnonzero(rows["step_mask"][i])
        got = s.tok.decode_batch(rows["tokens"][i:i + 1, at[:-1]])[0] if len(at) > 1 else ""
        assert got == "".join(text[o] for o, _ in s.task.step_labels(p, text)[:-1])
        assert rows["tokens"][i, at[-1]] == EOS  # EOS carries the final line's label
        assert rows["step_label"][i, at].tolist() == [
            float(ok) for _, ok in s.task.step_labels(p, text)]
    assert rows["step_label"][0, np.flatnonzero(rows["step_mask"][0])].tolist() == [
        1, 0, 1, 1, 1]


def test_step_diagnostics_against_brute_force():
    """The rank AUROC equals the pairwise count (lm.metrics.ranking_accuracy, ties 1/2); the
    true-label ceiling and the lucky fraction follow their definitions on a hand-made case."""
    from selftaught.lm.metrics import auroc, ranking_accuracy

    rng = np.random.default_rng(0)
    z = rng.integers(0, 5, 300).astype(float)  # many ties
    y = rng.random(300) < 0.4
    assert auroc(z, y) == pytest.approx(ranking_accuracy(z[None], y[None]))
    # 1 problem, 3 candidates: all steps right & correct; a wrong step but correct (lucky);
    # a wrong step and wrong
    mask = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 0]], np.float32)
    label = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 0]], np.float32)
    z = np.where(label > 0, 2.0, -2.0)
    d = v_star.step_diagnostics({"step_mask": mask, "step_label": label}, z,
                                np.array([[True, True, False]]))
    assert d["lucky_correct"] == 0.5 and d["auroc_true_steps"] == 0.75
    assert d["oracle_step_accuracy_test"] == 1.0 and d["oracle_step_auroc_test"] == 1.0


def test_report_puts_the_problem_bootstrap_beside_each_selector_claim(tmp_path):
    """Synthetic run (the report reads only events): beside each Best-of-k / maj@k / DPO-vs-ORM
    / iteration claim's CI over seeds, the paired bootstrap over the test problems of every
    seed pooled, its point the mean per-problem difference, by hand; a run from before the
    test_problems events has no such section."""
    from selftaught.core import RunDir

    config = RECIPE.preset("smoke")  # T = 2, k = 1, 2, 4, 8, 16, claim_k = 8
    T, ks, seeds = config.iterations, config.ks, [0, 1, 2]
    rng = np.random.default_rng(0)
    events, per = [], {}
    for sd in seeds:
        events.append(("eval", {"seed": sd, "iteration": 0, "pass1": 0.1}))
        for t in range(1, T + 1):
            names = ["pass1", "sample_acc", *(f"{m}_{k}" for k in ks
                                              for m in ("bok_dpo", "bok_orm", "maj", "passk"))]
            events += [
                ("eval", {"seed": sd, "iteration": t,
                          **{n: float(rng.uniform(0.1, 0.9)) for n in names}}),
                ("sample", {"seed": sd, "iteration": t, "sample_accuracy": 0.5, "d_gen": 10,
                            "d_ver": 20, "pairs": 5}),
                ("train", {"seed": sd, "iteration": t, "dpo_reward_accuracy": 0.9})]
            per[(sd, t)] = {n: rng.integers(0, 2, 4 + sd).astype(float).tolist() for n in (
                "pass1", "bok_dpo_8", "maj_8", "bok_orm_8", "bok_dpo_16", "bok_orm_16")}
            events.append(("test_problems", {"seed": sd, "iteration": t, **per[(sd, t)]}))
        events += [("gate", {"seed": sd, "iteration": t, "train_accuracy": 0.3,
                             "fresh_accuracy": 0.3}) for t in range(T)]

    def report(name, keep):
        run = RunDir.create(tmp_path / name, recipe="v-star", preset="smoke", seeds=3,
                            config={}, resume=False)
        run.plots.mkdir(parents=True, exist_ok=True)
        for event, fields in events:
            if keep(event):
                run.log(event, **fields)
        return RECIPE.report(config, run, seeds)

    rep = report("new", lambda e: True)
    assert "paired bootstrap over the 15 test problems (3 seed(s) pooled" in rep.markdown
    rows = {r.split(" | ")[0].strip("| "): r.split(" | ")[1:]
            for r in rep.markdown.splitlines() if r.startswith("| ") and "_beats_" in r}
    compared = {"vstar_beats_maj_at_8": ((T, "bok_dpo_8"), (T, "maj_8")),
                "maj_at_8_beats_pass1": ((T, "maj_8"), (T, "pass1")),
                "dpo_beats_orm_at_8": ((T, "bok_dpo_8"), (T, "bok_orm_8")),
                "dpo_beats_orm_at_16": ((T, "bok_dpo_16"), (T, "bok_orm_16")),
                "iteration_2_beats_1": ((T, "bok_dpo_8"), (1, "bok_dpo_8"))}
    assert set(rows) == set(compared)
    claims = {c.name: c for c in rep.claims}
    for name, ((ta, a), (tb, b)) in compared.items():
        diffs = [x - y for sd in seeds for x, y in zip(per[(sd, ta)][a], per[(sd, tb)][b])]
        seed_ci, problem_ci = rows[name]
        assert seed_ci.startswith(f"{claims[name].value:.2f} [")
        assert problem_ci.startswith(f"{100 * sum(diffs) / len(diffs):.2f} [")
    old = report("old", lambda e: e != "test_problems")
    assert "Resolution of the test set" not in old.markdown
    assert [c.as_dict() for c in old.claims] == [c.as_dict() for c in rep.claims]
