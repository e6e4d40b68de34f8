"""length-generalization: formats, solved-length metric, smoke end to end, resume, errors."""

import dataclasses

import jax
import numpy as np
import pytest

from selftaught.cli import main
from selftaught.core import runner
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.rundir import RunDir
from selftaught.recipes import length_generalization as lg

D0, H0 = lg.DIGIT0, lg.HINT0


def test_formats():
    full = lg.VARIANTS["fire+randpos"]
    toks, start = lg.encode(95, 7, full)  # 95 + 7 = 102; hints = place of each digit
    assert toks == [lg.BOS, H0 + 1, D0 + 9, H0, D0 + 5, lg.PLUS, H0, D0 + 7, lg.SEP,
                    H0, D0 + 2, H0 + 1, D0 + 0, H0 + 2, D0 + 1, lg.EOS]
    assert start == 9
    plain = lg.Variant("x", "fire", index_hints=False, reversed_output=False)
    toks, start = lg.encode(95, 7, plain)
    assert toks == [lg.BOS, D0 + 9, D0 + 5, lg.PLUS, D0 + 7, lg.SEP, D0 + 1, D0 + 0, D0 + 2,
                    lg.EOS]
    assert len(toks) <= lg.seq_len(2, plain) and lg.seq_len(2, full) == 18  # 99 + 99 = 198
    b = lg.encode_batch([(95, 7)], plain, 12)
    # the mask selects exactly the positions whose target is an answer digit or EOS
    tgt = b["targets"][0][b["mask"][0] > 0]
    assert tgt.tolist() == [D0 + 1, D0 + 0, D0 + 2, lg.EOS]


def test_numbers_have_exact_digit_counts():
    rng = np.random.default_rng(0)
    xs = lg.random_numbers(rng, np.array([1, 5, 40, 40]))
    assert [len(str(x)) for x in xs] == [1, 5, 40, 40]


def test_randomized_positions_are_sorted_subsets():
    cfg = lg.RECIPE.preset("smoke")
    v = lg.VARIANTS["fire+randpos"]
    data = lg.make_data(cfg, v, 0)
    batch = lg.make_batch_fn(cfg, v)(data, jax.random.PRNGKey(0))
    pos = np.asarray(batch["positions"])
    assert (np.diff(pos, axis=1) > 0).all() and pos.max() < cfg.max_positions
    assert data["test"]["tokens"].shape[0] == cfg.test_digits


def test_max_solved_length():
    assert lg.max_solved_length(np.array([1.0, 0.95, 0.5, 1.0]), 0.9) == 2
    assert lg.max_solved_length(np.array([1.0, 1.0]), 0.9) == 2
    assert lg.max_solved_length(np.array([0.1, 1.0]), 0.9) == 0
    assert lg.max_solved_length(np.array([np.nan, 1.0]), 0.9) == 0


def test_config_errors():
    cfg = lg.RECIPE.preset("smoke")
    with pytest.raises(ConfigError, match="needs 54 positions but the model represents only"):
        dataclasses.replace(cfg, max_positions=30).validate()
    with pytest.raises(UnknownNameError, match="unknown length-generalization variant 'alibi'"):
        dataclasses.replace(cfg, variants=("alibi",)).validate()


def test_cli_test_lengths_beyond_positions_exit_2(tmp_path, capsys):
    rc = main(["run", "length-generalization", "--preset", "smoke", "--run-dir",
               str(tmp_path / "r"), "--test-factor", "10"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "raise --max-positions" in err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("lg") / "smoke"
    cfg = lg.RECIPE.preset("smoke")
    _, summary = runner.execute(lg.RECIPE, cfg, preset="smoke", seeds=1, run_dir=path)
    return path, summary


def _cells(path):
    return sorted((e["variant"], e["init_seed"], e["data_seed"], tuple(e["exact_match"]),
                   e["final_loss"]) for e in RunDir.open(path).events("cell"))


@pytest.mark.slow
def test_smoke_end_to_end(smoke_run):
    path, summary = smoke_run
    cfg = lg.RECIPE.preset("smoke")
    names = [c["name"] for c in summary["claims"]]
    assert names == ["best_config_reaches_2L", "seed_spread_is_large", "learned_fails_beyond_L"]
    ev = RunDir.open(path).events("cell")
    assert len(ev) == len(cfg.variants) * cfg.init_seeds * cfg.data_seeds
    for e in ev:
        assert len(e["exact_match"]) == cfg.test_digits
        assert all(0.0 <= a <= 1.0 for a in e["exact_match"])
        assert np.isfinite(e["final_loss"])
    report = (path / "report.md").read_text()
    assert "## Per seed" in report and "plots/heatmap.png" in report
    for png in ("heatmap.png", "exact_match_by_length.png"):
        assert (path / "plots" / png).stat().st_size > 0


@pytest.mark.slow
def test_resume_after_interruption_gives_same_metrics(smoke_run, tmp_path, monkeypatch):
    path_ref, summary_ref = smoke_run
    cfg = lg.RECIPE.preset("smoke")
    real = RunDir.save_checkpoint
    calls = {"n": 0}

    def kill_after_first_chunk(self, name, tree):
        real(self, name, tree)
        calls["n"] += 1
        if calls["n"] == 2:  # mid-way through the second variant
            raise RuntimeError("simulated kill")

    monkeypatch.setattr(RunDir, "save_checkpoint", kill_after_first_chunk)
    path = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated kill"):
        runner.execute(lg.RECIPE, cfg, preset="smoke", seeds=1, run_dir=path)
    monkeypatch.setattr(RunDir, "save_checkpoint", real)
    assert len(RunDir.open(path).done_phases()) == 1
    _, summary = runner.execute(lg.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert _cells(path) == _cells(path_ref)
    assert summary["claims"] == summary_ref["claims"]
