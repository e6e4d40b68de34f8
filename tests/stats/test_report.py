"""The report toolkit: collect (events -> arrays), ci_cell, markdown_table."""

import numpy as np
import pytest

from selftaught import cli, stats
from selftaught.core import DataError, IncompleteRunError, RunDir, UserError


def make(tmp_path):
    return RunDir.create(tmp_path / "run", recipe="rest-em", preset="smoke", seeds=2, config={},
                         resume=False)


def write_evals(run, seeds, iterations, skip=()):
    for sd in seeds:
        for i in range(iterations):
            if (sd, i) in skip:
                continue
            run.phase(f"seed{sd}/iter{i}", lambda log, sd=sd, i=i: log(
                "eval", seed=sd, iteration=i, acc=np.float32(sd + i / 10), n=10 * sd + i))


def test_collect_round_trips_events_written_with_rundir(tmp_path):
    run = make(tmp_path)
    write_evals(run, [0, 1], 3)
    run.log("eval", seed=5, iteration=0, acc=9.0, n=0)  # a seed not asked for: ignored
    t = stats.collect(run, "eval", by={"seed": [1, 0], "iteration": range(3)},
                      values=("acc", "n"))
    assert set(t) == {"acc", "n"} and t["acc"].shape == (2, 3)
    np.testing.assert_allclose(t["acc"], [[1.0, 1.1, 1.2], [0.0, 0.1, 0.2]], rtol=1e-6)
    np.testing.assert_array_equal(t["n"], [[10, 11, 12], [0, 1, 2]])
    # one key: 1-D; `where` filters on other fields
    run.log("eval", seed=0, split="test", acc=0.5)
    run.log("eval", seed=0, split="valid", acc=0.25)
    one = stats.collect(run, "eval", by={"seed": [0]}, values=["acc"], where={"split": "valid"})
    np.testing.assert_array_equal(one["acc"], [0.25])


def test_a_missing_cell_is_one_line_naming_the_cells_and_resume(tmp_path):
    run = make(tmp_path)
    write_evals(run, [0, 1], 3, skip={(1, 1), (1, 2)})
    run.log("eval", phase="seed1/iter1", seed=1, iteration=1, acc=0.0, n=0)  # not done: ignored
    with pytest.raises(IncompleteRunError) as exc:
        stats.collect(run, "eval", by={"seed": [0, 1], "iteration": range(3)}, values=["acc"])
    msg = str(exc.value)
    assert isinstance(exc.value, UserError) and "\n" not in msg
    assert msg == (f"{run.path} is an unfinished run: no 'eval' event for seed=1, iteration=1; "
                   f"seed=1, iteration=2; finish it with `selftaught run rest-em --resume "
                   f"{run.path}`")
    # five cells missing: three shown
    with pytest.raises(IncompleteRunError, match=r"iteration=2; seed=2, iteration=0 and 2 more;"):
        stats.collect(run, "eval", by={"seed": [0, 1, 2], "iteration": range(3)}, values=["acc"])


def test_an_event_without_the_field_is_a_data_error(tmp_path):
    run = make(tmp_path)
    run.log("eval", seed=0, acc=1.0)
    with pytest.raises(DataError, match="the 'eval' event for seed=0 has no field 'loss'"):
        stats.collect(run, "eval", by={"seed": [0]}, values=["acc", "loss"])


def test_the_unfinished_run_error_exits_2_without_traceback(tmp_path, capsys, monkeypatch):
    from selftaught import recipes

    def report(config, run_dir, seeds):
        stats.collect(run_dir, "eval", by={"seed": seeds}, values=["acc"])

    rec = recipes.get("rest-em")
    import dataclasses

    fake = dataclasses.replace(rec, report=report)
    monkeypatch.setattr(recipes, "get", lambda name: fake)
    run = RunDir.create(tmp_path / "run", recipe="rest-em", preset="smoke", seeds=1,
                        config={}, resume=False)
    run.log("session_end", seconds=1.0, peak_rss_mib=1.0, resumed=False)
    assert cli.main(["report", str(run.path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "is an unfinished run: no 'eval' event for seed=0" in err and "--resume" in err


@pytest.mark.parametrize("estimate, fmt, text", [
    ((12.345, 10.06, 14.0), ".1f", "12.3 [10.1, 14.0]"),
    (stats.Estimate(0.5, 0.25, 0.75, 3), ".2f", "0.50 [0.25, 0.75]"),
    ((3.0, -1.0, 7.0), ".0f", "3 [-1, 7]"),
    ((0.000123, 0.0001, 0.0002), ".3g", "0.000123 [0.0001, 0.0002]"),
])
def test_ci_cell(estimate, fmt, text):
    assert stats.ci_cell(estimate, fmt) == text


def test_ci_cell_of_a_bootstrap_estimate_defaults_to_one_decimal():
    assert stats.ci_cell(stats.bootstrap_ci(np.array([10.0, 10.0, 10.0]))) == (
        "10.0 [10.0, 10.0]")


def test_markdown_table():
    text = stats.markdown_table(["iteration", "pass@1", "kept"],
                                [[0, "1.0 [0.5, 1.5]", "300 (human)"], (1, 2.5, 7)])
    assert text.splitlines() == [
        "| iteration | pass@1 | kept |",
        "|---|---|---|",
        "| 0 | 1.0 [0.5, 1.5] | 300 (human) |",
        "| 1 | 2.5 | 7 |",
    ]
    assert stats.markdown_table(["a"], []) == "| a |\n|---|"
    with pytest.raises(ValueError, match="a row has 1 cells, the header 2"):
        stats.markdown_table(["a", "b"], [[1]])


def test_values_none_takes_the_fields_every_cell_has(tmp_path):
    run = make(tmp_path)
    run.log("eval", seed=0, acc=1.0, extra=3, n=1)
    run.log("eval", seed=1, acc=0.5, n=2)
    t = stats.collect(run, "eval", by={"seed": [0, 1]}, values=None)
    assert sorted(t) == ["acc", "n"]
    np.testing.assert_array_equal(t["n"], [1, 2])


def test_collect_events_gives_each_cells_record_under_the_same_rules(tmp_path):
    run = make(tmp_path)
    write_evals(run, [0, 1], 2, skip={(1, 1)})
    recs = stats.collect_events(run, "eval", by={"seed": [0], "iteration": range(2)})
    assert list(recs) == [(0, 0), (0, 1)] and recs[(0, 1)]["n"] == 1
    with pytest.raises(IncompleteRunError, match="seed=1, iteration=1; finish it"):
        stats.collect_events(run, "eval", by={"seed": [0, 1], "iteration": range(2)})
    run.complete = False
    recs = stats.collect_events(run, "eval", by={"seed": [1, 0], "iteration": range(2)},
                                partial="seed")
    assert list(recs) == [(0, 0), (0, 1)]
    run.log("best", formula="x")  # an event logged once: no key
    assert stats.collect_events(run, "best", by={}) == {(): {"event": "best", "formula": "x"}}
    assert stats.collect_events(run, "none", by={}, optional=True) is None
    run.complete = None
    with pytest.raises(IncompleteRunError, match="no 'none' event; finish it with `selftaught"):
        stats.collect_events(run, "none", by={})


def test_list_valued_fields_keep_their_axes_and_ragged_lists_become_objects(tmp_path):
    run = make(tmp_path)
    for sd in (0, 1):
        for i in range(2):
            run.log("curve", seed=sd, arm=i, y=[sd, i, 10 * sd + i], z=list(range(sd + i + 1)))
    t = stats.collect(run, "curve", by={"seed": [0, 1], "arm": range(2)}, values=["y", "z"])
    assert t["y"].shape == (2, 2, 3)
    np.testing.assert_array_equal(t["y"][1, 0], [1, 0, 10])
    assert t["z"].shape == (2, 2) and t["z"].dtype == object
    np.testing.assert_array_equal(t["z"][1, 1], [0, 1, 2])


def test_partial_keeps_the_finished_seeds_of_an_unfinished_run_only(tmp_path):
    run = make(tmp_path)
    write_evals(run, [0, 1, 2], 2, skip={(1, 1)})
    by = {"seed": [0, 1, 2], "iteration": range(2)}
    with pytest.raises(IncompleteRunError, match="seed=1, iteration=1"):  # not known unfinished
        stats.collect(run, "eval", by=by, values=["n"], partial="seed")
    run.complete = True  # the core says finished: a missing event is still an error
    with pytest.raises(IncompleteRunError, match="seed=1, iteration=1"):
        stats.collect(run, "eval", by=by, values=["n"], partial="seed")
    run.complete = False
    t = stats.collect(run, "eval", by=by, values=["n"], partial="seed")
    assert t["seed"] == [0, 2]
    np.testing.assert_array_equal(t["n"], [[0, 1], [20, 21]])
    with pytest.raises(IncompleteRunError, match="seed=1, iteration=1"):  # none finished
        stats.collect(run, "eval", by={"seed": [1], "iteration": range(2)}, values=["n"],
                      partial="seed")
    with pytest.raises(IncompleteRunError):  # without `partial` an unfinished run raises
        stats.collect(run, "eval", by=by, values=["n"])
    # optional: an unfinished run without every cell gives None; a finished one raises
    assert stats.collect(run, "eval", by={"seed": [1], "iteration": range(2)}, values=["n"],
                         partial="seed", optional=True) is None
    assert stats.collect(run, "eval", by=by, values=["n"], optional=True) is None
    run.complete = True
    with pytest.raises(IncompleteRunError, match="seed=1, iteration=1"):
        stats.collect(run, "eval", by=by, values=["n"], optional=True)
    with pytest.raises(ValueError, match="not a key"):
        stats.collect(run, "eval", by=by, values=["n"], partial="step")


def test_report_of_an_unfinished_run_uses_its_finished_seeds_marked_partial(tmp_path,
                                                                            monkeypatch):
    import dataclasses

    from selftaught import recipes
    from selftaught.core import Report, runner
    from selftaught.core.recipe import Claim

    def report(config, run_dir, seeds):
        t = stats.collect(run_dir, "eval", by={"seed": seeds}, values=["acc"], partial="seed")
        return Report([Claim("c", "acc > 0", float(t["acc"].mean()), 0.0, 1.0, True,
                             unit="seeds", n=len(t["seed"]))], f"seeds {list(t['seed'])}")

    rec = dataclasses.replace(recipes.get("rest-em"), report=report,
                              phases=lambda config, seeds: [f"seed{s}/e" for s in seeds])
    run = RunDir.create(tmp_path / "run", recipe="rest-em", preset="smoke", seeds=3,
                        config={}, resume=False)
    seeds = runner.seed_list(runner.stored_config(rec, run, run.read_config()).seed, 3)
    for sd in seeds[:2]:
        run.phase(f"seed{sd}/e", lambda log, sd=sd: log("eval", seed=sd, acc=1.0))
    summary = runner.finalize(rec, run)
    assert summary["complete"] is False and summary["claims"][0]["partial"]
    assert f"seeds {seeds[:2]}" in (run.path / "report.md").read_text()


def test_t_interval_equals_scipys_student_interval_and_needs_two_units():
    """stats.t_interval = scipy.stats.t.interval(confidence, n - 1, mean, sem); with 3 units
    it is wider than the percentile bootstrap, whose lower end is the smallest unit."""
    import pytest
    from scipy.stats import sem, t

    from selftaught import stats

    for x in ([0.011, 0.031, 0.041], [1.0, 2.0, 4.0, 8.0, 3.0]):
        for conf in (0.9, 0.95):
            want = t.interval(conf, len(x) - 1, loc=np.mean(x), scale=sem(x))
            assert stats.t_interval(x, conf) == pytest.approx(want, rel=1e-12)
    x = [0.011, 0.031, 0.041]
    boot = stats.mean_ci(np.asarray(x), unit="search seeds")
    assert boot[1] == pytest.approx(min(x)) and stats.t_interval(x)[0] < 0 < boot[1]
    assert all(np.isnan(stats.t_interval([0.5])))


def test_resolution_md_puts_each_claims_seed_ci_beside_its_pooled_problem_ci():
    claims = [stats.claim_greater("a_beats_b", "a > b", stats.Estimate(2.0, 1.0, 3.5, 3),
                                  unit="training seeds"),
              stats.claim_greater("c_beats_d", "c > d", stats.Estimate(-1.0, -2.0, 0.25, 3),
                                  unit="training seeds")]
    md = stats.resolution_md(claims, {"c_beats_d": stats.Estimate(-1.0, -1.5, -0.5, 3000),
                                      "a_beats_b": stats.Estimate(2.0, 1.25, 2.75, 3000)},
                             units="the 3000 test problems")
    assert md[0] == "## Resolution of the test set: paired bootstrap over the 3000 test problems"
    rows = [x for x in "\n".join(md).splitlines() if x.startswith(("| a_", "| c_"))]
    assert rows == ["| a_beats_b | 2.00 [1.00, 3.50] | 2.00 [1.25, 2.75] |",  # claims' order
                    "| c_beats_d | -1.00 [-2.00, 0.25] | -1.00 [-1.50, -0.50] |"]
    with pytest.raises(ValueError, match="no claim named"):
        stats.resolution_md(claims, {"e_beats_f": stats.Estimate(0, 0, 0, 1)}, units="x")
