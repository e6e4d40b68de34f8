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
from selftaught.lm.tokenizer import NUM_SPECIAL
from selftaught.recipes import many_shot_icl as msi
from selftaught.tasks.icl import SymbolRuleFamily

RECIPE = recipes.get("many-shot-icl")
TINY = dataclasses.replace(
    RECIPE.preset("smoke"), num_seeds=2, context=64, shots=(1, 4, 16),
    model=msi.ModelSize(d_model=16, n_layers=1, n_heads=2, attn_block=16),
    train=TrainConfig(lr=3e-3, warmup_steps=2, total_steps=10, batch_size=2),
    short_steps=4, short_context=32, short_batch=2, eval_tasks=2, eval_queries=8)


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


@pytest.mark.parametrize("change, message", [
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


def _counted(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "peak_rss_mib")}
            for r in lines if r["event"] in ("eval", "train")]


@pytest.mark.slow
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch):
    _, ref = runner.execute(RECIPE, TINY, preset="smoke", seeds=2, run_dir=tmp_path / "ref")
    real = msi.evaluate_kind
    calls = {"n": 0}

    def dying(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # killed in the second evaluation phase
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(msi, "evaluate_kind", dying)
    with pytest.raises(KeyboardInterrupt):
        runner.execute(RECIPE, TINY, preset="smoke", seeds=2, run_dir=tmp_path / "kill")
    monkeypatch.setattr(msi, "evaluate_kind", real)
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")
    assert resumed["claims"] == ref["claims"]
    assert {c["name"] for c in ref["claims"]} == {
        "accuracy_rises_with_shots", "flipped_labels_override", "abstract_labels_override",
        "nll_and_accuracy_decouple"}
    evals = [e for e in _counted(tmp_path / "ref") if e["event"] == "eval"]
    assert len(evals) == 2 * len(msi.KINDS) * 3
    assert all(0 <= e["acc"] <= 1 and e["nll"] > 0 for e in evals)
    for name in ("accuracy_vs_shots", "bias_override", "nll_vs_accuracy"):
        assert (tmp_path / "ref" / "plots" / f"{name}.png").stat().st_size > 0
