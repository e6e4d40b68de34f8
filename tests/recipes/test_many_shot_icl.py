"""many-shot-icl: sequence layout, user errors (one line, exit 2), resume, smoke claims."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from selftaught import cli, recipes
from selftaught.core import ConfigError, runner
from selftaught.core import config as cfglib
from selftaught.lm import BOS, TrainConfig
from selftaught.lm.tokenizer import EOS, NUM_SPECIAL, SEP
from selftaught.recipes import many_shot_icl as msi
from selftaught.recipes.many_shot_icl import reasoning as msi_reasoning
from selftaught.recipes.many_shot_icl import rules as msi_rules
from selftaught.tasks.icl import LinearClassFamily, SymbolRuleFamily

RECIPE = recipes.get("many-shot-icl")
TINY = dataclasses.replace(
    RECIPE.preset("smoke"), num_seeds=2, context=64, shots=(1, 4, 16),
    model=msi.ModelSize(d_model=16, n_layers=1, n_heads=2, attn_block=16),
    train=TrainConfig(lr=3e-3, warmup_steps=2, total_steps=10, batch_size=2),
    short_steps=4, short_context=32, short_batch=2, eval_tasks=2, eval_queries=8,
    reason_bases=(3, 5), reason_eval_bases=(5,), reason_digits=2, reason_context=96,
    reason_model=msi.ModelSize(d_model=16, n_layers=1, n_heads=2, pos_encoding="rope",
                               attention="blocked", attn_block=32),
    reason_train=TrainConfig(lr=3e-3, warmup_steps=2, total_steps=6, batch_size=2),
    reason_shots=(1, 2), reason_seed_shots=1, reason_samples=2, reason_eval_tasks=2,
    reason_queries=4,
    linear_dims=(4, 8), linear_context=64, linear_shots=(1, 2, 4),
    linear_model=msi.ModelSize(d_model=16, n_layers=1, n_heads=2, pos_encoding="rope",
                               attention="blocked", attn_block=32),
    linear_train=TrainConfig(lr=3e-3, warmup_steps=2, total_steps=6, batch_size=2),
    linear_eval_tasks=2, linear_queries=4, linear_knn=3)


def test_sequences_put_the_loss_on_the_labels():
    fam = SymbolRuleFamily(n_symbols=16)
    uv, lab = fam.jax_batch(jax.random.PRNGKey(0), 3, 5)
    tokens, mask = map(np.asarray, msi.sequences(uv, lab))
    assert tokens.shape == (3, 16) and (tokens[:, 0] == BOS).all()
    np.testing.assert_array_equal(tokens[:, 1::3], np.asarray(uv[..., 0]) + NUM_SPECIAL)
    np.testing.assert_array_equal(tokens[:, 3::3], np.asarray(lab) + NUM_SPECIAL)
    # position t predicts token t + 1: exactly the label tokens are targets
    targets = np.zeros_like(mask)
    targets[:, :-1] = np.isin(np.arange(1, 16), np.arange(3, 16, 3))
    np.testing.assert_array_equal(mask, targets)


def test_sequences_of_longer_shots_mask_only_the_labels():
    fam = LinearClassFamily(d=4, levels=8)
    x, lab = fam.jax_batch(jax.random.PRNGKey(1), 2, 3)
    tokens, mask = map(np.asarray, msi.sequences(x, lab))
    assert tokens.shape == (2, 16)
    np.testing.assert_array_equal(tokens[:, 5::5], np.asarray(lab) + NUM_SPECIAL)
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), [4, 9, 14])  # predict 5, 10, 15


def _right_in_base(q: int, prompt: str, rationale: str) -> bool:
    """Every scratchpad step `x+y+c=CS` and the final answer are right in base q."""
    x, y = prompt.rstrip("=").split("+")
    steps, answer = rationale.split("\n=")
    digits = [int(c) for c in x + y + rationale if c.isdigit()]
    return max(digits) < q and int(answer, q) == int(x, q) + int(y, q) and all(
        int(t[0]) + int(t[2]) + int(t[4]) == int(t[6]) * q + int(t[7])
        for t in steps.split(" "))


def test_reasoning_sequences_are_verified_shots_with_the_loss_on_rationales():
    config = dataclasses.replace(TINY, reason_digits=2, reason_context=200)
    tok = msi.reason_tokenizer()
    pools = {b: msi.reason_pool(config, tok, b) for b in config.reason_bases}
    tokens, mask = msi.reason_sequences(config, pools, np.random.default_rng(0), 3)
    assert tokens.shape == mask.shape == (3, 200) and (tokens[:, 0] == BOS).all()
    for row, m in zip(tokens, mask):
        ends = np.flatnonzero(row == EOS)
        assert len(ends) >= 3
        starts = np.r_[1, ends[:-1] + 1]
        bases = set(config.reason_bases)
        for a, b in zip(starts, ends):  # complete shots: prompt SEP rationale EOS
            shot = row[a:b]
            sep = a + int(np.flatnonzero(shot == SEP)[0])
            prompt, rationale = tok.decode(row[a:sep]), tok.decode(row[sep + 1:b])
            bases &= {q for q in config.reason_bases if _right_in_base(q, prompt, rationale)}
            # the loss covers exactly the targets rationale + EOS of this shot
            np.testing.assert_array_equal(m[a - 1:b + 1], [0.0] * (sep - a + 1)
                                          + [1.0] * (b - sep) + [0.0])
        assert len(bases) >= 1  # every shot of a row is right in one hidden base
    assert mask[:, -1].sum() == 0


def test_reinforced_shots_keep_the_first_verified_rationale(monkeypatch):
    tok, cfg, _ = msi.reason_trainer(TINY)
    tasks = msi.reason_tasks(TINY, 0)
    cands = [msi.reason_problems(TINY, t, 0, i)[1] for i, t in enumerate(tasks)]
    seen = {}

    def fake(params, cfg_, tok_, config, rows, rng, greedy):
        seen["rows"], seen["greedy"] = rows, greedy
        texts = []
        for r in range(len(rows)):  # rows: task-major, then candidate, then sample
            i, j, k = r // 8, r // 2 % 4, r % 2
            p = cands[i][j]
            if j == 0:  # both samples right: the first one is kept
                texts.append("=" + p.answer if k == 0 else tasks[i].reference_solution(p))
            elif j % 2 == 0 and k == 1:
                texts.append(tasks[i].reference_solution(p))
            else:
                texts.append("=" + p.answer + "1")  # wrong
        return texts

    monkeypatch.setattr(msi_reasoning, "_complete", fake)
    shots = msi.reinforced_shots(TINY, None, cfg, tok, seed=0)
    assert not seen["greedy"] and len(seen["rows"]) == 2 * 4 * 2  # tasks*cands*samples
    assert all(r.count(SEP) == TINY.reason_seed_shots + 1 for r in seen["rows"])
    assert shots == [[(0, "=" + c[0].answer), (2, t.reference_solution(c[2]))]
                     for t, c in zip(tasks, cands)]


def test_reasoning_eval_scores_each_mode_and_shot_count(monkeypatch):
    tok, cfg, _ = msi.reason_trainer(TINY)
    tasks = msi.reason_tasks(TINY, 3)
    calls = []

    def solve(params, cfg_, tok_, config, rows, rng, greedy):
        calls.append(rows)
        out = []
        for r in range(len(rows)):  # the right rationale for every other query
            i = r // (len(TINY.reason_shots) * TINY.reason_queries)
            q = msi.reason_problems(TINY, tasks[i], 3, i)[2][r % TINY.reason_queries]
            out.append(tasks[i].reference_solution(q) if r % 2 == 0 else "=0")
        return out

    monkeypatch.setattr(msi_reasoning, "_complete", solve)
    cands = msi.reason_problems(TINY, tasks[0], 3, 0)[1]
    ricl = [[(1, tasks[0].reference_solution(cands[1]))], []]
    for mode in msi.MODES:
        res = msi.evaluate_reasoning(TINY, None, cfg, tok, 3, mode, ricl)
        assert {k: v[0] for k, v in res.items()} == {1: 0.5, 2: 0.5}
        rows = calls[-1]
        per_k = TINY.reason_queries
        for j, k in enumerate(TINY.reason_shots):
            row = rows[j * per_k]  # task 0, shot count k, first query
            n_used = {"reinforced": 1}.get(mode, k)
            assert row.count(EOS) == n_used and row[0] == BOS
            assert row.count(SEP) == (1 if mode == "unsupervised" else n_used + 1)
        assert res[2][1] == ({"reinforced": 0.5}.get(mode, 2))  # task 1 has no verified shot


@pytest.mark.parametrize("change, message", [
    ({"reason_shots": (1, 3)}, "reasoning shots can need"),
    ({"linear_dims": (4, 40)}, "at d=40 only"),
    ({"reason_family": "nope"}, "unknown task family"),
    ({"reason_digits": 1, "reason_queries": 16}, "has [0-9]+ test-split problems, 16 needed"),
    ({"shots": (1, 4, 30)}, "30 shots need 93 tokens"),
    ({"shots": (4, 1)}, "increasing"),
    ({"eval_queries": 100}, "eval_queries=100"),
    ({"train_phases": 20}, "must be >= train_phases"),
    ({"short_context": 65}, "short_context must be in"),
])
def test_config_errors(change, message):
    with pytest.raises(ConfigError, match=message):
        cfglib.validate(dataclasses.replace(TINY, **change))


def test_cli_too_many_shots_is_one_line_exit_2(tmp_path, capsys):
    argv = ["run", "many-shot-icl", "--preset", "smoke", "--run-dir", str(tmp_path / "a"),
            "--shots", "1", "4", "100"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "100 shots need 303 tokens" in err and "context is 256" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("family", ["sequential-parity", "symbol-rule"])
def test_cli_family_without_rationales_is_one_line_exit_2(tmp_path, capsys, family):
    argv = ["run", "many-shot-icl", "--preset", "smoke", "--run-dir", str(tmp_path / "a"),
            "--reason-family", family]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert f"{family!r} has none" in err and "--reason-family base-addition" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def _counted(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "peak_rss_mib")}
            for r in lines if r["event"] in ("eval", "train", "reason_train", "reason_shots",
                                             "reason_eval", "linear_train", "linear_eval")]


def _dies_on_call(monkeypatch, module, name, n):
    real, calls = getattr(module, name), {"n": 0}

    def dying(*args, **kw):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(module, name, dying)
    return real


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    _, ref = runner.execute(RECIPE, TINY, preset="smoke", seeds=2, run_dir=tmp_path / "ref")
    # killed in the second evaluation phase of experiments 1/3/5, then (resumed) in the
    # second seed of experiment 2's reinforced-ICL evaluation, then resumed to the end
    real = _dies_on_call(monkeypatch, msi_rules, "evaluate_kind", 2)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(RECIPE, TINY, preset="smoke", seeds=2, run_dir=tmp_path / "kill")
    monkeypatch.setattr(msi_rules, "evaluate_kind", real)
    real = _dies_on_call(monkeypatch, msi_reasoning, "evaluate_reasoning", 4)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                       resume=True)
    monkeypatch.setattr(msi_reasoning, "evaluate_reasoning", real)
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")
    assert resumed["claims"] == ref["claims"]
    assert {c["name"] for c in ref["claims"]} == {
        "accuracy_rises_with_shots", "flipped_labels_override", "abstract_labels_override",
        "nll_and_accuracy_decouple", "reinforced_icl_matches_ground_truth",
        "reasoning_accuracy_rises_with_shots", "linear_icl_rises_with_shots",
        "linear_icl_matches_knn", "linear_icl_matches_logistic"}
    counted = _counted(tmp_path / "ref")
    evals = [e for e in counted if e["event"] == "eval"]
    assert len(evals) == 2 * len(msi.KINDS) * 3
    assert all(0 <= e["acc"] <= 1 and e["nll"] > 0 for e in evals)
    reason = [e for e in counted if e["event"] == "reason_eval"]
    assert len(reason) == 2 * len(msi.MODES) * 2 and all(0 <= e["acc"] <= 1 for e in reason)
    linear = [e for e in counted if e["event"] == "linear_eval"]
    assert sorted({(e["d"], e["shots"]) for e in linear}) == [
        (4, 1), (4, 2), (4, 4), (8, 1), (8, 2), (8, 4)]
    assert all(0 <= e[m] <= 1 for e in linear for m in ("icl", "knn", "logistic"))
    for name in ("accuracy_vs_shots", "bias_override", "nll_vs_accuracy",
                 "reinforced_unsupervised", "linear_d4", "linear_d8"):
        assert (tmp_path / "ref" / "plots" / f"{name}.png").stat().st_size > 0
