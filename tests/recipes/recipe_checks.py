"""Checks every recipe test makes the same way: the claims of a finished run, and a run
killed in a phase and resumed against an uninterrupted one."""

from selftaught import cli
from selftaught.core import RunDir, runner

TIMING = {"wall_seconds", "seconds", "peak_rss_mib", "resumed"}
"""event keys that measure the machine, not the run: left out when runs are compared"""


def counted(path, events, timing=TIMING) -> list[dict]:
    """The run's events named in `events`, in that order, without the timing keys."""
    run = RunDir.open(path)
    return [{k: v for k, v in e.items() if k not in timing}
            for name in events for e in run.events(name)]


def check_claims(summary, names, n: int, unit: str = "training seeds") -> dict:
    """The summary states exactly the claims `names`, each with its value inside its CI, its
    unit of replication and n. -> {name: claim}."""
    claims = {c["name"]: c for c in summary["claims"]}
    assert set(claims) == set(names), sorted(claims)
    for c in claims.values():
        assert c["ci_low"] <= c["value"] <= c["ci_high"], c
        assert c["unit"] == unit and c["n"] == n, c
    return claims


def check_resume_after_kill(recipe, cfg, tmp_path, killed_at, kill, events, seeds: int = 1):
    """Runs `cfg` into tmp_path/ref; runs it again into tmp_path/kill, killed by
    `killed_at(*kill)` (e.g. (module, "train_chunk", 2): the 2nd call), and resumes that run:
    the resumed run's `events` (without timings) and claims equal the uninterrupted run's.
    -> (the uninterrupted RunDir, its summary)."""
    run, ref = runner.execute(recipe, cfg, preset="smoke", seeds=seeds, run_dir=tmp_path / "ref")
    with killed_at(*kill):
        runner.execute(recipe, cfg, preset="smoke", seeds=seeds, run_dir=tmp_path / "kill")
    _, resumed = runner.execute(recipe, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert counted(tmp_path / "kill", events) == counted(tmp_path / "ref", events)
    assert resumed["claims"] == ref["claims"]
    return run, ref


def check_plots(path, names) -> None:
    """The run directory holds a non-empty plots/NAME.png for each name."""
    for name in names:
        assert (path / "plots" / f"{name}.png").stat().st_size > 0, name


def run_smoke(recipe, tmp_path):
    """The recipe's smoke preset with its own seed count into tmp_path/run.
    -> (config, RunDir, summary)."""
    cfg = recipe.preset("smoke")
    run, summary = runner.execute(recipe, cfg, preset="smoke", seeds=cfg.num_seeds,
                                  run_dir=tmp_path / "run")
    return cfg, run, summary


TINY_LM_FLAGS = ["--preset", "smoke", "--seeds", "1", "--task-args", "steps=1, modulus=7",
                 "--model.d-model", "8", "--model.n-layers", "1", "--model.n-heads", "1",
                 "--sft.total-steps", "1", "--sft.warmup-steps", "0", "--sft.lr", "1e-6",
                 "--chunk-steps", "1", "--candidates", "2", "--claim-k", "2"]
"""CLI flags of a one-seed run of a verified-sampling recipe (v-star, math-rerank) on the
smallest chain task with a generator that solves nothing: 1 layer of width 8, one SFT step"""


def one_line_cli_error(capsys, argv, message: str) -> str:
    """`selftaught ARGV` exits 2 with one line on stderr that holds `message` and no
    traceback. -> that line."""
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def check_failed_phase_left_behind(run_dir, done, failed: str) -> None:
    """After a run stopped in phase `failed`: exactly the phases `done` are marked done
    (resumable), each with its checkpoint, and no event of the failed phase was kept."""
    run = RunDir.open(run_dir)
    assert run.done_phases() == set(done)
    assert not [e for e in run.events() if e.get("phase") == failed]
    assert sorted(p.name for p in run.checkpoints.iterdir() if not p.name.endswith(".sha256")
                  ) == sorted(f"{d.replace('/', '__')}.msgpack" for d in done)
