"""The run directory and CLI under a hostile user: failed starts, concurrent runs, damaged
checkpoints and data files, malformed metrics/config files, unfinished runs (issue 17)."""

import json
import os
import shlex

import numpy as np
import pytest
import toy_recipe

from selftaught import cli
from selftaught.core import DataError, RunDir, RunDirError, runner
from selftaught.core.rundir import locked


def one_line_error(capsys, *fragments):
    err = capsys.readouterr().err.strip()
    assert err.startswith("selftaught: error: "), err
    assert "\n" not in err and "Traceback" not in err
    for f in fragments:
        assert f in err, (f, err)
    return err


def kill_after(monkeypatch, n_train_events):
    real_log = RunDir.log
    count = {"n": 0}

    def dying_log(self, event, phase=None, **fields):
        real_log(self, event, phase=phase, **fields)
        if event == "train":
            count["n"] += 1
            if count["n"] == n_train_events:
                raise KeyboardInterrupt

    monkeypatch.setattr(RunDir, "log", dying_log)
    return lambda: monkeypatch.setattr(RunDir, "log", real_log)


# ------------------------------------------------------------------ (2) failed starts
def test_failed_start_does_not_block_the_corrected_command(tmp_path, toy, capsys):
    rd = tmp_path / "r"
    # diverges in its first phase: config.json and metrics were written, no phase finished
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(rd), "--lr", "1000",
                     "--steps", "3", "--inner.width", "2", "--tags", "p", "q r"]) == 2
    err = one_line_error(capsys, "loss became nan", "rerun: `selftaught run toy --preset smoke")
    assert (rd / "config.json").exists()
    # the advice is a command the user can run as printed: the same flags, a third of the lr
    advice = err.split("rerun: `")[1].split("`")[0]
    argv = shlex.split(advice)[1:]
    assert argv == ["run", "toy", "--preset", "smoke", "--seeds", "2", "--run-dir", str(rd),
                    "--steps", "3", "--inner.width", "2", "--tags", "p", "q r",
                    "--lr", "333.333"]
    assert cli.main(argv) == 2
    one_line_error(capsys, "now 333.333, try 111.111")  # the new lr ran (and diverged again)
    stored = json.loads((rd / "config.json").read_text())["config"]
    assert stored["steps"] == 3 and stored["inner"] == {"width": 2} and stored["tags"] == [
        "p", "q r"]
    # the corrected command runs in the same directory
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(rd), "--lr", "0.1"]) == 0
    assert json.loads((rd / "config.json").read_text())["config"]["lr"] == 0.1


def test_a_directory_that_holds_other_files_is_not_cleared(tmp_path, toy, capsys):
    rd = tmp_path / "r"
    rd.mkdir()
    (rd / "notes.txt").write_text("mine")
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(rd)]) == 2
    one_line_error(capsys, "not empty and holds no run")
    assert (rd / "notes.txt").read_text() == "mine"


def test_invalid_stored_config_of_a_failed_start_says_how_to_start_afresh(tmp_path, toy, capsys):
    rd = tmp_path / "r"
    RunDir.create(rd, recipe="toy", preset="smoke", seeds=1, config={"steps": 0}, resume=False)
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 2
    one_line_error(capsys, "steps must be positive", "start afresh in the same directory",
                   f"--run-dir {rd}")


def test_run_dir_naming_a_file(tmp_path, toy, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(f)]) == 2
    one_line_error(capsys, f"--run-dir {f} is a file")
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(f / "sub")]) == 2
    one_line_error(capsys, "cannot create run directory", "Not a directory")


# ------------------------------------------------------------------ (6) lock
def test_second_process_on_a_run_dir_names_the_pid_and_exits_2(tmp_path, toy, capsys):
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(rd)]) == 0
    capsys.readouterr()
    with locked(rd):  # another open file description: flock conflicts as with another process
        assert cli.main(["run", "toy", "--resume", str(rd)]) == 2
        one_line_error(capsys, f"is in use by process {os.getpid()}")
        with pytest.raises(RunDirError, match="in use by process"):
            with locked(rd):
                pass
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 0  # released


def test_lock_is_released_by_a_dying_process(tmp_path):
    import subprocess
    import sys

    rd = tmp_path / "r"
    code = ("import os, sys; from selftaught.core.rundir import locked\n"
            f"with locked({str(rd)!r}): os._exit(0)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    with locked(rd):
        assert (rd / ".lock").exists()


# ------------------------------------------------------------------ (3) integrity
def test_flipped_bit_in_a_checkpoint_is_named_and_recomputed(tmp_path, toy, capsys):
    ref, rd = tmp_path / "ref", tmp_path / "r"
    assert cli.main(["run", "toy", "--run-dir", str(ref)]) == 0
    assert cli.main(["run", "toy", "--run-dir", str(rd)]) == 0
    ckpt = rd / "checkpoints" / "seed0__step1.msgpack"
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0x01  # one flipped bit in the weights
    ckpt.write_bytes(bytes(data))
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 2
    err = one_line_error(capsys, f"{ckpt} is damaged", f"rm {ckpt}",
                         "phase 'seed0/step1'", f"selftaught run toy --resume {rd}")
    assert "SHA-256" in err
    ckpt.unlink()
    resume_recomputes_from_seed0_step1(rd, ref)


@pytest.mark.parametrize("content", [b"", b"\x85\xa1w", b"not msgpack at all \xff\x00"])
def test_truncated_or_foreign_checkpoint_is_a_named_error(tmp_path, content):
    run = RunDir.create(tmp_path / "r", recipe="toy", preset="smoke", seeds=1, config={},
                        resume=False)
    path = run.save_checkpoint("seed0/a", {"w": np.arange(50.0)})
    with pytest.raises(DataError, match="is damaged: its SHA-256 differs"):
        path.write_bytes(path.read_bytes()[:-7])
        run.load_checkpoint("seed0/a")
    path.write_bytes(content)
    run.seal(path)  # damaged before it was sealed: the checksum matches, the content is bad
    with pytest.raises(DataError, match=f"checkpoint {path} is not a readable msgpack"):
        run.load_checkpoint("seed0/a")


def test_checkpoint_without_its_checksum_is_refused_then_recomputed(tmp_path, toy, capsys):
    ref, rd = tmp_path / "ref", tmp_path / "r"
    assert cli.main(["run", "toy", "--run-dir", str(ref)]) == 0
    assert cli.main(["run", "toy", "--run-dir", str(rd)]) == 0
    ckpt = rd / "checkpoints" / "seed0__step1.msgpack"
    side = ckpt.parent / (ckpt.name + ".sha256")
    side.unlink()  # e.g. the run directory was copied without its .sha256 files
    data = bytearray(ckpt.read_bytes())
    data[-3] ^= 0x01  # and its weights changed: nothing could tell
    ckpt.write_bytes(bytes(data))
    capsys.readouterr()
    toy_recipe.CALLS.clear()
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 2
    one_line_error(capsys, f"{ckpt} has no checksum file {side.name}", "cannot be verified",
                   f"rm {ckpt}", "phase 'seed0/step1'", f"selftaught run toy --resume {rd}")
    assert toy_recipe.CALLS == []  # refused before any work
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 2  # refused until fixed
    capsys.readouterr()
    ckpt.unlink()  # as the message says: delete it and resume
    resume_recomputes_from_seed0_step1(rd, ref)
    assert side.exists()
    assert json.loads((rd / "summary.json").read_text())["claims"] == json.loads(
        (ref / "summary.json").read_text())["claims"]


def test_sealed_file_without_checksum_and_no_record_of_its_phase(tmp_path):
    # a run whose phase_done events do not list their files (written before they did):
    # the file is refused all the same, and the advice is a new run
    run = RunDir.create(tmp_path / "r", recipe="toy", preset="smoke", seeds=1, config={},
                        resume=False)
    path = run.save_checkpoint("seed0/a", {"w": np.arange(5.0)})
    run.log("phase_done", phase="seed0/a", wall_seconds=0.1)
    (path.parent / (path.name + ".sha256")).unlink()
    with pytest.raises(DataError, match=(f"{path} has no checksum file .*copy .* from the run it "
                                         "came from, or start again in a new directory")):
        run.load_checkpoint("seed0/a")
    f = run.path / "data" / "seed0.jsonl"  # a data file without one is read (its reader
    f.parent.mkdir()                          # validates every line): an edit on purpose
    f.write_text("{}\n")
    assert run.verify(f) == b"{}\n"


def test_a_phase_lists_the_files_it_sealed(tmp_path):
    run = RunDir.create(tmp_path / "r", recipe="toy", preset="smoke", seeds=1, config={},
                        resume=False)
    run.save_checkpoint("seed0/a", {"w": np.zeros(2)})
    run.mark_phase_done("seed0/a", 0.1)
    run.mark_phase_done("seed0/b", 0.1)  # sealed nothing
    a, b = run.events("phase_done")
    assert a["files"] == ["checkpoints/seed0__a.msgpack"] and "files" not in b
    # so a checkpoint deleted with its checksum file is known lost: that phase and the
    # phases after it are recomputed
    for p in run.checkpoints.iterdir():
        p.unlink()
    resumed = RunDir.create(run.path, recipe="toy", preset="", seeds=0, config={}, resume=True)
    assert resumed.done_phases() == set()


def test_checkpoint_of_another_shape_is_a_named_error(tmp_path):
    run = RunDir.create(tmp_path / "r", recipe="toy", preset="smoke", seeds=1, config={},
                        resume=False)
    run.save_checkpoint("a", {"w": np.zeros(3)})
    with pytest.raises(DataError, match="does not fit the model"):
        run.load_checkpoint("a", {"v": np.zeros(3)})


def test_sealed_data_file_round_trip_and_damage(tmp_path):
    run = RunDir.create(tmp_path / "r", recipe="toy", preset="smoke", seeds=1, config={},
                        resume=False)
    f = run.path / "data" / "seed0.jsonl"
    f.parent.mkdir()
    f.write_text('{"a": 1}\n')
    run.seal(f)
    run.mark_phase_done("seed0/collect", 0.1)
    side = json.loads((f.parent / "seed0.jsonl.sha256").read_text())
    assert side["phase"] == "seed0/collect" and len(side["sha256"]) == 64
    assert run.verify(f) == b'{"a": 1}\n'
    f.write_text('{"a": 2}\n')
    with pytest.raises(DataError, match=r"seed0.jsonl is damaged.*phase 'seed0/collect'"):
        run.verify(f)
    f.unlink()
    with pytest.raises(RunDirError, match="is missing; phase 'seed0/collect'"):
        run.verify(f)
    resumed = RunDir.create(run.path, recipe="toy", preset="", seeds=0, config={}, resume=True)
    assert resumed.done_phases() == set()  # the phase that wrote it will be recomputed


# ------------------------------------------------------------------ (4) malformed files
@pytest.mark.parametrize(
    "line, fragment",
    [
        (b"42\n", "is not an event"),
        (b'{"x": 1}\n', "is not an event"),
        (b'{"event": 3}\n', "is not an event"),
        (b'{"event": "a", "phase": 5}\n', "is not an event"),
        (b"\x00\x00\x00\x00\n", "NUL bytes"),
        (b'{"event": "a\xff\xfe"}\n', "not valid UTF-8"),
    ],
)
def test_bad_metrics_lines_are_one_line_errors(tmp_path, toy, capsys, line, fragment):
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--preset", "smoke", "--seeds", "1", "--run-dir", str(rd)]) == 0
    capsys.readouterr()
    with open(rd / "metrics.jsonl", "r+b") as fh:
        first = fh.readline()
        rest = fh.read()
        fh.seek(0)
        fh.write(first + line + rest)
        fh.truncate()
    assert cli.main(["report", str(rd)]) == 2
    one_line_error(capsys, f"{rd / 'metrics.jsonl'}: line 2", fragment)
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 2
    one_line_error(capsys, "line 2", fragment)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"{}", "has no key 'recipe'"),
        (b"[1, 2]", "holds a list"),
        (b'{"recipe": "toy", "preset": "smoke", "seeds": "2", "config": {}}', "key 'seeds'"),
        (b'{"recipe": "toy", "preset": "smoke", "seeds": 1, "config": []}', "key 'config'"),
        (b'{"recipe": "toy", "preset": "smoke", "seeds": 1, "config": {"steps": "many"}}',
         "field 'config.steps' must be an integer"),
        (b'{"recipe": "toy", "preset": "smoke", "seeds": 1, "config": {"inner": {"width": 1.5}}}',
         "field 'config.inner.width' must be an integer"),
        (b'{"recipe": "toy", "preset": "smoke", "seeds": 1, "config": {"tags": "ab"}}',
         "field 'config.tags' must be a list"),
        (b'{"recipe": "toy", "preset": "sm\xffoke"}', "not valid UTF-8"),
        (b'{"recipe": ', "not valid JSON"),
    ],
)
def test_bad_config_json_is_a_one_line_error(tmp_path, toy, capsys, content, fragment):
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--preset", "smoke", "--seeds", "1", "--run-dir", str(rd)]) == 0
    capsys.readouterr()
    (rd / "config.json").write_bytes(content)
    assert cli.main(["report", str(rd)]) == 2
    one_line_error(capsys, str(rd / "config.json"), fragment)
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 2
    one_line_error(capsys, "config.json", fragment)


# ------------------------------------------------------------------ (1) unfinished runs
def test_report_of_an_unfinished_run_says_so_and_marks_claims(tmp_path, toy, monkeypatch, capsys):
    rd = tmp_path / "r"
    restore = kill_after(monkeypatch, 6)  # seed0 done, seed1/step0 done, killed in seed1/step1
    with pytest.raises(KeyboardInterrupt):
        runner.execute(toy, toy.preset("default"), preset="default", seeds=2, run_dir=rd)
    restore()
    assert cli.main(["report", str(rd)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("INCOMPLETE run (missing phases: seed1/step1, seed1/step2")
    assert "1 of 2 seeds finished" in out and f"selftaught run toy --resume {rd}" in out
    summary = json.loads((rd / "summary.json").read_text())
    assert summary["complete"] is False and summary["finished_seeds"] == [0]
    assert summary["missing_phases"] == ["seed1/step1", "seed1/step2", "seed1/step3"]
    assert all(c["partial"] for c in summary["claims"])
    report = (rd / "report.md").read_text()
    assert "1 of 2 seed(s) finished" in report and "**Incomplete run**" in report
    assert "(partial data) |" in report
    # resumed to the end, the same report is final again
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 0
    summary = json.loads((rd / "summary.json").read_text())
    assert "complete" not in summary and not any(c.get("partial") for c in summary["claims"])


def test_report_that_cannot_be_built_from_partial_data(tmp_path, toy, monkeypatch, capsys):
    rd = tmp_path / "r"
    restore = kill_after(monkeypatch, 5)  # seed1 has no finished phase: the toy report fails
    with pytest.raises(KeyboardInterrupt):
        runner.execute(toy, toy.preset("default"), preset="default", seeds=2, run_dir=rd)
    restore()
    assert cli.main(["report", str(rd)]) == 2
    one_line_error(capsys, "incomplete run (missing phases: seed1/step0", "cannot be built",
                   f"selftaught run toy --resume {rd}")


def test_recipe_phase_list_names_phases_no_seed_reached(tmp_path, toy, monkeypatch):
    import dataclasses

    rec = dataclasses.replace(toy, phases=lambda cfg, seeds: [
        f"seed{s}/step{i}" for s in seeds for i in range(cfg.steps)] + ["final"])
    rd = tmp_path / "r"
    runner.execute(rec, rec.preset("smoke"), preset="smoke", seeds=1, run_dir=rd)
    summary = runner.finalize(rec, RunDir.open(rd))
    assert summary["complete"] is False and summary["missing_phases"] == ["final"]


def resume_recomputes_from_seed0_step1(rd, ref):
    """`--resume rd` recomputes phase seed0/step1 and every phase finished after it, nothing
    before, and ends with the train events and seed0/step1 checkpoint of the run `ref`."""
    toy_recipe.CALLS.clear()
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 0
    assert toy_recipe.CALLS == ["seed0/step1", "seed0/step2", "seed0/step3",
                                "seed1/step0", "seed1/step1", "seed1/step2", "seed1/step3"]

    def train(path):
        return [ln for ln in (path / "metrics.jsonl").read_text().splitlines() if '"train"' in ln]

    assert train(rd) == train(ref)
    ckpt = "checkpoints/seed0__step1.msgpack"
    assert (rd / ckpt).read_bytes() == (ref / ckpt).read_bytes()
