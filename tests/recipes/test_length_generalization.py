"""length-generalization: formats, solved-length metric, smoke end to end, resume, errors."""

import dataclasses
import json

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


def test_hint_offsets_shift_every_hint_and_stay_in_vocab():
    full = lg.VARIANTS["fire+randpos"]
    base, start = lg.encode(95, 7, full)
    shifted, start2 = lg.encode(95, 7, full, hint_offset=3)
    assert start2 == start
    is_hint = np.array(base) >= H0
    assert (np.array(shifted)[is_hint] == np.array(base)[is_hint] + 3).all()
    assert (np.array(shifted)[~is_hint] == np.array(base)[~is_hint]).all()
    cfg = dataclasses.replace(lg.RECIPE.preset("smoke"), hint_offsets=True, train_examples=400)
    data = lg.make_data(cfg, full, 0)
    vocab = lg.model_config(cfg, full).vocab_size
    train, test = np.asarray(data["train"]["tokens"]), np.asarray(data["test"]["tokens"])
    # training hints reach the largest place a test answer uses (test_digits), never beyond
    assert train.max() == H0 + cfg.test_digits < vocab
    assert test.max() == H0 + cfg.test_digits
    # test examples start at place 0: the first operand's first hint names its top place
    assert test[0, 0, 1] == H0  # 1-digit operands
    plain = lg.make_data(dataclasses.replace(cfg, hint_offsets=False), full, 0)
    assert np.asarray(plain["train"]["tokens"]).max() == H0 + cfg.train_digits
    assert (np.asarray(plain["test"]["tokens"]) == test).all()


def test_validation_split_is_independent_of_test_split():
    cfg = lg.RECIPE.preset("smoke")
    val, test = lg.test_pairs(cfg, 0, "val"), lg.test_pairs(cfg, 0, "test")
    assert val == lg.test_pairs(cfg, 0, "val")  # deterministic
    assert len(val) == len(test) == cfg.test_digits
    longest = cfg.test_digits - 1  # long numbers: a collision would be a shared stream
    assert not set(val[longest]) & set(test[longest])
    assert all(len(str(a)) == len(str(b)) == n + 1 for n, ps in enumerate(val) for a, b in ps)
    with pytest.raises(ConfigError, match="split must be 'test' or 'val'"):
        lg.test_pairs(cfg, 0, "train")


def test_seed_grid_baselines_can_use_fewer_data_seeds():
    cfg = dataclasses.replace(lg.RECIPE.preset("smoke"), init_seeds=3, data_seeds=3,
                              baseline_data_seeds=1, seed=5)
    assert len(lg.seed_grid(cfg, "fire+randpos")) == 9
    assert lg.seed_grid(cfg, "learned") == [(5, 5), (6, 5), (7, 5)]
    assert len(lg.seed_grid(dataclasses.replace(cfg, baseline_data_seeds=0), "rope")) == 9


def _fake_run(tmp_path, cfg, cells):
    """A run directory holding `cells`: {variant: [exact match per length, one per cell of
    its seed grid]}."""
    run = RunDir.create(tmp_path / "fake", recipe="length-generalization", preset="x",
                        seeds=1, config={}, resume=False)
    run.plots.mkdir(parents=True, exist_ok=True)
    for name, accs in cells.items():
        grid = lg.seed_grid(cfg, name)
        assert len(grid) == len(accs)
        for (i, d), acc in zip(grid, accs):
            run.log("cell", phase=name, variant=name, init_seed=i, data_seed=d,
                    exact_match=list(acc), val_exact_match=list(acc), diverged_at=-1,
                    final_loss=0.0)
        run.mark_phase_done(name, 0.0)
    return run


def test_claims_gate_extrapolation_and_undetermined_baselines(tmp_path):
    cfg = dataclasses.replace(lg.RECIPE.preset("smoke"), train_digits=2, test_factor=2.0,
                              init_seeds=3, data_seeds=3, baseline_data_seeds=1,
                              variants=("fire+randpos", "learned", "rope", "nope"))
    # 4 test lengths, target = 3; 9 seed cells for fire+randpos, 3 for each baseline
    learned2 = [1.0, 1.0, 0.0, 0.0]
    fire = [learned2] * 6 + [[1.0, 1.0, 1.0, 0.0]] * 3  # the best third extrapolates to 3
    run = _fake_run(tmp_path, cfg, {
        "fire+randpos": fire,
        "learned": [learned2] * 3,  # learned 1..L, 0 beyond: fails beyond L (n = 3)
        "rope": [learned2] * 2 + [[0.5, 0.0, 0.0, 0.0]],  # only 2 learned: undetermined
        "nope": [[0.0] * 4] * 3,  # none learned: undetermined, n = 0
    })
    rep = lg.report(cfg, run, [0])
    c = {x.name: x for x in rep.claims}
    assert c["best_config_learns_1_to_L"].value == 1.0 and c["best_config_learns_1_to_L"].holds
    ext = c["best_config_extrapolates_beyond_L"]
    assert ext.value == 3.0 and ext.n == 3 and ext.holds
    assert c["learned_fails_beyond_L"].holds and c["learned_fails_beyond_L"].n == 3
    assert c["rope_fails_beyond_L"].undetermined and c["rope_fails_beyond_L"].n == 2
    assert c["nope_fails_beyond_L"].undetermined and c["nope_fails_beyond_L"].n == 0
    assert "| rope |" in rep.markdown and "3 / 3" in rep.markdown  # learned-cells column
    # a best configuration that did not learn 1..L: the gate fails, nothing extrapolates
    cfg2 = dataclasses.replace(cfg, variants=("fire+randpos",))
    run2 = _fake_run(tmp_path / "b", cfg2, {"fire+randpos": [[1.0, 0.5, 0.0, 0.0]] * 9})
    c2 = {x.name: x for x in lg.report(cfg2, run2, [0]).claims}
    assert not c2["best_config_learns_1_to_L"].holds and c2["best_config_learns_1_to_L"].n == 9
    assert not c2["best_config_extrapolates_beyond_L"].holds
    # the paper's target: 2.5 L
    cfg3 = dataclasses.replace(cfg, target_factor=2.0)
    c3 = {x.name: x for x in lg.report(cfg3, run, [0]).claims}
    assert not c3["best_config_reaches_target"].holds  # solves 3 < 2 L = 4


def test_a_missing_cell_is_the_one_line_unfinished_run_error(tmp_path, capsys):
    """A run whose phases are done but whose log lacks a cell: `selftaught report` names it
    and the resume command (exit 2); with that variant's phase undone instead, the report
    covers the finished variant, marked partial."""
    cfg = dataclasses.replace(lg.RECIPE.preset("smoke"), train_digits=2, test_factor=2.0)
    acc = [1.0, 1.0, 0.0, 0.0]
    run = RunDir.create(tmp_path / "r", recipe="length-generalization", preset="smoke",
                        seeds=1, config=dataclasses.asdict(cfg), resume=False)
    for name in cfg.variants:
        for i, d in lg.seed_grid(cfg, name):
            run.log("cell", phase=name, variant=name, init_seed=i, data_seed=d,
                    exact_match=acc, val_exact_match=acc, diverged_at=-1, final_loss=0.0)
        run.mark_phase_done(name, 0.0)
    run.log("session_end", seconds=1.0, peak_rss_mib=1.0, resumed=False)
    lines = run.metrics_path.read_text().splitlines(True)
    i, d = lg.seed_grid(cfg, "learned")[-1]
    drop = [k for k, ln in enumerate(lines) if '"cell"' in ln and '"learned"' in ln][-1]
    run.metrics_path.write_text("".join(lines[:drop] + lines[drop + 1:]))
    assert main(["report", str(run.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.endswith(
        f"is an unfinished run: no 'cell' event (variant=learned) for init_seed={i}, "
        f"data_seed={d}; finish it with `selftaught run length-generalization --resume "
        f"{run.path}`")
    run.metrics_path.write_text("".join(
        ln for ln in lines if not ('"phase_done"' in ln and '"learned"' in ln)))
    assert main(["report", str(run.path)]) == 0
    summary = json.loads((run.path / "summary.json").read_text())
    assert summary["missing_phases"] == ["learned"]
    report = (run.path / "report.md").read_text()
    assert "| fire+randpos | 1.00 |" in report and "| learned | 1.00 |" not in report


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
    # 45 of 50 right is 90%, although its float32 mean is 0.89999998
    right = np.float32(np.mean(np.arange(50, dtype=np.float32) < 45, dtype=np.float32))
    assert lg.max_solved_length(np.array([1.0, right]), 0.9) == 2
    assert lg.max_solved_length(np.array([1.0, np.float32(44 / 50)]), 0.9) == 1


def test_config_errors():
    cfg = lg.RECIPE.preset("smoke")
    with pytest.raises(ConfigError, match="needs 54 positions but the model represents only"):
        dataclasses.replace(cfg, max_positions=30).validate()
    with pytest.raises(UnknownNameError, match="unknown length-generalization variant 'alibi'"):
        dataclasses.replace(cfg, variants=("alibi",)).validate()
    with pytest.raises(ConfigError, match="extrapolation target .* lies beyond the tested"):
        dataclasses.replace(cfg, target_factor=4.0).validate()


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
    assert names == ["best_config_learns_1_to_L", "best_config_extrapolates_beyond_L",
                     "seed_spread_is_large", "learned_fails_beyond_L"]
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
    assert json.dumps(summary["claims"]) == json.dumps(summary_ref["claims"])  # NaN-safe


TINY = dataclasses.replace(
    lg.PRESETS["smoke"], init_seeds=1, data_seeds=2, variants=("fire+randpos",),
    train_digits=2, max_positions=40, d_model=16, n_layers=1, n_heads=2, steps=6,
    warmup_steps=2, chunk=3, train_examples=64, test_examples=4, hint_offsets=True)


def test_tiny_run_end_to_end_and_resume_after_kill(tmp_path, monkeypatch):
    """Default tier: a seconds-sized run writes every cell, the report and its plots, and a
    run killed after its first checkpoint resumes to the uninterrupted run's metrics."""
    ref_path = tmp_path / "ref"
    _, ref = runner.execute(lg.RECIPE, TINY, preset="tiny", seeds=1, run_dir=ref_path)
    cells = RunDir.open(ref_path).events("cell")
    assert sorted((e["variant"], e["init_seed"], e["data_seed"]) for e in cells) == [
        ("fire+randpos", 0, 0), ("fire+randpos", 0, 1)]
    assert all(len(e["val_exact_match"]) == len(e["exact_match"]) == TINY.test_digits
               for e in cells)
    assert [c["name"] for c in ref["claims"]] == [
        "best_config_learns_1_to_L", "best_config_extrapolates_beyond_L",
        "seed_spread_is_large"]
    assert (ref_path / "plots" / "heatmap.png").stat().st_size > 0
    real, calls = RunDir.save_checkpoint, {"n": 0}

    def kill_after_first_checkpoint(self, name, tree):
        real(self, name, tree)
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated kill")

    monkeypatch.setattr(RunDir, "save_checkpoint", kill_after_first_checkpoint)
    path = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated kill"):
        runner.execute(lg.RECIPE, TINY, preset="tiny", seeds=1, run_dir=path)
    assert not RunDir.open(path).done_phases()
    _, summary = runner.execute(lg.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert _cells(path) == _cells(ref_path)
    assert json.dumps(summary["claims"]) == json.dumps(ref["claims"])  # NaN-safe equality
