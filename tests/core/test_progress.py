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
