"""Checks every recipe test makes the same way: the claims of a finished run, and a run
killed in a phase and resumed against an uninterrupted one."""

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
