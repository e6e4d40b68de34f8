"""Progress when not in a terminal: one plain line per finished phase on stdout, and the
same line in the run directory's run.log for every run (issue 29, item 5)."""

import numpy as np

from selftaught import cli
from selftaught.core import RunDir, progress


def phase_lines(text):
    return [ln for ln in text.splitlines() if ln.startswith("[toy] ")]


EXPECTED = [f"seed{s}/step{i}" for s in (0, 1) for i in range(4)]  # the toy default, 2 seeds


def test_one_line_per_finished_phase_when_not_a_terminal(tmp_path, toy, capsys, monkeypatch):
    monkeypatch.delenv("SELFTAUGHT_QUIET", raising=False)  # capsys's stdout is not a terminal
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--run-dir", str(rd)]) == 0
    lines = phase_lines(capsys.readouterr().out)
    assert [ln.split()[1] for ln in lines] == EXPECTED  # once per phase, in order
    for ln in lines:
        assert " done in " in ln and ln.endswith(" s")
        float(ln.split(" done in ")[1][:-2])  # the elapsed seconds are a number
    logged = (rd / "run.log").read_text().splitlines()  # the same lines, time-stamped
    assert len(logged) == len(lines) and all(lg.endswith(" " + ln) for lg, ln in zip(logged, lines))
    # a resume recomputes nothing here and prints no phase line; run.log is appended to
    assert cli.main(["run", "toy", "--resume", str(rd)]) == 0
    assert phase_lines(capsys.readouterr().out) == []
    assert len((rd / "run.log").read_text().splitlines()) == len(EXPECTED)


def test_quiet_prints_no_line_but_run_log_is_written(tmp_path, toy, capsys, monkeypatch):
    monkeypatch.setenv("SELFTAUGHT_QUIET", "1")
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--run-dir", str(rd)]) == 0
    assert phase_lines(capsys.readouterr().out) == []
    assert len((rd / "run.log").read_text().splitlines()) == len(EXPECTED)


def test_no_line_on_a_terminal_where_the_bars_show(tmp_path, toy, capsys, monkeypatch):
    monkeypatch.delenv("SELFTAUGHT_QUIET", raising=False)
    monkeypatch.setattr(progress, "_is_tty", lambda stream: True)
    rd = tmp_path / "r"
    assert cli.main(["run", "toy", "--preset", "smoke", "--run-dir", str(rd)]) == 0
    assert phase_lines(capsys.readouterr().out) == []
    assert len((rd / "run.log").read_text().splitlines()) == 4


def test_the_line_shows_scalar_fields_as_the_key_metric(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SELFTAUGHT_QUIET", raising=False)
    run = RunDir.create(tmp_path / "r", recipe="rest-em", preset="smoke", seeds=1, config={},
                        resume=False)
    run.mark_phase_done("seed1/iter2", 41.33, test_pass1=np.float32(0.625), kept=7,
                        curve=[1.0, 2.0])
    out = capsys.readouterr().out
    assert out == "[rest-em] seed1/iter2 done in 41.3 s (test_pass1=0.625, kept=7)\n"
    assert (run.path / "run.log").read_text().rstrip("\n").endswith(out.rstrip("\n"))


def _bar_phase(log, n):
    with progress.bar("chunks", total=n) as b:
        for _ in range(n):
            b.advance(1)


def test_a_long_phase_logs_its_bar_counts(tmp_path, capsys, monkeypatch):
    """Inside a phase, a bar's count goes to run.log (and stdout off a terminal): every
    advance with SELFTAUGHT_LOG_EVERY=0, else throttled, and always at completion."""
    monkeypatch.delenv("SELFTAUGHT_QUIET", raising=False)
    monkeypatch.setenv("SELFTAUGHT_LOG_EVERY", "0")
    run = RunDir.create(tmp_path / "r", recipe="bbf", preset="smoke", seeds=1, config={},
                        resume=False)
    run.phase("Breakout/w4", _bar_phase, 3)
    out = capsys.readouterr().out.splitlines()
    assert [ln.rsplit(" (", 1)[0] for ln in out[:3]] == [
        f"[bbf] Breakout/w4: chunks {i}/3" for i in (1, 2, 3)]
    assert out[3].startswith("[bbf] Breakout/w4 done in ")
    logged = (run.path / "run.log").read_text().splitlines()
    assert len(logged) == 4 and all(lg.endswith(" " + ln) for lg, ln in zip(logged, out))
    monkeypatch.setenv("SELFTAUGHT_LOG_EVERY", "3600")  # throttled: only the completion
    run.phase("p2", _bar_phase, 5)
    out = capsys.readouterr().out.splitlines()
    assert [ln.rsplit(" (", 1)[0] for ln in out[:-1]] == ["[bbf] p2: chunks 5/5"]
    monkeypatch.setenv("SELFTAUGHT_QUIET", "1")  # quiet: run.log only
    run.phase("p3", _bar_phase, 2)
    assert capsys.readouterr().out == ""
    assert (run.path / "run.log").read_text().splitlines()[-2].split("] ", 1)[1].startswith(
        "p3: chunks 2/2 (")


def test_bars_outside_a_phase_log_nothing(capsys, monkeypatch):
    monkeypatch.delenv("SELFTAUGHT_QUIET", raising=False)
    monkeypatch.setenv("SELFTAUGHT_LOG_EVERY", "0")
    _bar_phase(None, 3)
    assert capsys.readouterr().out == ""
