"""instability-proxies: data split, LR-sensitivity formula, smoke end to end, resume, errors."""

import dataclasses

import numpy as np
import pytest

from selftaught.cli import main
from selftaught.core import runner
from selftaught.core.errors import ConfigError
from selftaught.core.rundir import RunDir
from selftaught.recipes import instability_proxies as ip

SEEDS = 2


def _cells(path):
    ev = RunDir.open(path).events("cell")
    return sorted((e["intervention"], e["width"], e["lr"], e["seed"], e["val_loss"],
                   e["attn_logit_max"], e["log_z"]) for e in ev)


def test_data_is_stdlib_split_by_file():
    files = ip.stdlib_files()
    assert any(p.name == "os.py" for p in files)
    cfg = ip.RECIPE.preset("smoke")
    train, val = ip.load_text(cfg.train_bytes, 4096, cfg.val_every)
    assert len(train) == cfg.train_bytes and len(val) == 4096
    assert train.min() >= 0 and train.max() < 256
    # the first validation file's bytes start the validation stream, and it is not in train
    import sysconfig
    from pathlib import Path
    root = Path(sysconfig.get_paths()["stdlib"])
    first_val = next(p for p in files if ip.is_val_file(str(p.relative_to(root)), 10))
    head = np.frombuffer(first_val.read_bytes()[:256], np.uint8).astype(np.int32)
    n = len(head)
    np.testing.assert_array_equal(val[:n], head)
    assert first_val.read_bytes()[:256] not in bytes(train.astype(np.uint8))


def test_lr_sensitivity_and_flat_decades_formulas():
    loss = np.array([3.0, 2.0, 2.5, np.nan])
    # capped at init 4: [3, 2, 2.5, 4] -> mean 2.875 - min 2
    assert ip.lr_sensitivity(loss, 4.0) == pytest.approx(0.875)
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]
    assert ip.flat_decades(lrs, np.array([3.0, 2.1, 2.0, 2.2, np.nan]), 0.25) == pytest.approx(2)
    assert ip.flat_decades(lrs, np.array([2.0, 9.0, 2.0, 2.1, 9.0]), 0.25) == pytest.approx(1)
    assert ip.flat_decades(lrs, np.full(5, np.nan), 0.25) == 0.0


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("ip") / "smoke"
    cfg = ip.RECIPE.preset("smoke")
    _, summary = runner.execute(ip.RECIPE, cfg, preset="smoke", seeds=SEEDS, run_dir=path)
    return path, summary


@pytest.mark.slow
def test_smoke_end_to_end(smoke_run):
    path, summary = smoke_run
    cfg = ip.RECIPE.preset("smoke")
    names = [c["name"] for c in summary["claims"]]
    assert names == ["attn_logit_growth_fixed_by_qk_ln", "logit_divergence_fixed_by_z_loss",
                     "qk_ln_lowers_lr_sensitivity", "z_loss_lowers_lr_sensitivity",
                     "combined_flat_over_decades"]
    ev = RunDir.open(path).events("cell")
    n_main = len(cfg.widths) * len(ip.MAIN) * len(cfg.lrs) * SEEDS
    n_extra = len(ip.EXTRA) * len(cfg.lrs) * SEEDS
    assert len(ev) == n_main + n_extra
    for e in ev:
        assert e["init_loss"] == pytest.approx(np.log(256), abs=0.3)
        finite = np.isfinite(e["val_loss"])
        assert finite == (e["diverged_at"] < 0)
    low = [e for e in ev if e["lr"] == 1e-3]
    assert all(np.isfinite(e["val_loss"]) and e["val_loss"] < e["init_loss"] for e in low)
    report = (path / "report.md").read_text()
    for section in ("## Final validation loss", "## LR sensitivity", "attn_logit_vs_step.png"):
        assert section in report
    for png in ("loss_vs_lr.png", "lr_sensitivity.png", "attn_logit_vs_step.png"):
        assert (path / "plots" / png).stat().st_size > 0
    again = runner.finalize(ip.RECIPE, RunDir.open(path))
    assert again["claims"] == summary["claims"]


@pytest.mark.slow
def test_resume_after_interruption_gives_same_metrics(smoke_run, tmp_path, killed_at):
    path_ref, summary_ref = smoke_run
    cfg = ip.RECIPE.preset("smoke")
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 2):
        runner.execute(ip.RECIPE, cfg, preset="smoke", seeds=SEEDS, run_dir=path)
    assert len(RunDir.open(path).done_phases()) == 1
    _, summary = runner.execute(ip.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert _cells(path) == _cells(path_ref)
    assert summary["claims"] == summary_ref["claims"]


def test_config_errors():
    cfg = ip.RECIPE.preset("smoke")
    with pytest.raises(ConfigError, match="the lr grid is empty"):
        dataclasses.replace(cfg, lrs=()).validate()
    with pytest.raises(ConfigError, match="multiple of head_dim"):
        dataclasses.replace(cfg, widths=(20,)).validate()


def test_cli_empty_lr_grid_exits_2(tmp_path, capsys):
    rc = main(["run", "instability-proxies", "--preset", "smoke", "--run-dir",
               str(tmp_path / "r"), "--lrs"])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "lr grid is empty" in err


def test_a_run_records_its_corpus_and_refuses_another_on_resume(tmp_path):
    """The corpus is this Python's standard library: a run records its SHA-256 once, a resume
    with the same corpus adds nothing, one with another corpus stops with one line."""
    import hashlib
    import platform

    from selftaught.core.errors import DataError

    run = RunDir.create(tmp_path / "r", recipe="instability-proxies", preset="smoke", seeds=1,
                        config={}, resume=False)
    data = {"train": np.arange(300, dtype=np.int32) % 256,
            "val": (np.arange(40, dtype=np.int32) * 7 % 256).reshape(4, 10)}
    ip.check_corpus(run, data)
    (ev,) = run.events("corpus")
    want = hashlib.sha256(np.asarray(data["train"], np.uint8).tobytes()
                          + np.asarray(data["val"], np.uint8).tobytes()).hexdigest()
    assert ev["sha256"] == want and ev["python"] == platform.python_version()
    assert (ev["train_bytes"], ev["val_bytes"]) == (300, 40)
    ip.check_corpus(RunDir.open(run.path), data)  # the same corpus: nothing new
    assert len(RunDir.open(run.path).events("corpus")) == 1
    other = {**data, "train": data["train"][::-1].copy()}
    with pytest.raises(DataError) as exc:
        ip.check_corpus(RunDir.open(run.path), other)
    msg = str(exc.value)
    assert f"SHA-256 {want[:12]}" in msg and "start a new run" in msg and "\n" not in msg
