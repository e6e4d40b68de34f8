"""The claim contract (issue 30): every claim names its unit of replication and n; no claim
comes from a plain tuple; fewer than MIN_UNITS_FOR_CI units leave it undetermined."""

import inspect
import pickle

import numpy as np
import pytest

from selftaught import stats
from selftaught.core import Claim
from selftaught.core import runner as runner_mod

U = "training seeds"


def test_claim_requires_unit_and_n():
    params = inspect.signature(Claim).parameters
    for name in ("unit", "n"):
        assert params[name].default is inspect.Parameter.empty
    with pytest.raises(TypeError):
        Claim("c", "s", 1.0, 0.5, 1.5, True)  # the pre-contract form
    with pytest.raises(TypeError):
        Claim("c", "s", 1.0, 0.5, 1.5, True, unit=U)
    with pytest.raises(TypeError):
        Claim("c", "s", 1.0, 0.5, 1.5, True, n=5)
    for unit in ("", "  ", None, 3):
        with pytest.raises(ValueError, match="unit"):
            Claim("c", "s", 1.0, 0.5, 1.5, True, unit=unit, n=5)
    for n in (None, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="n must be"):
            Claim("c", "s", 1.0, 0.5, 1.5, True, unit=U, n=n)
    ok = Claim("c", "s", 1.0, 0.5, 1.5, True, unit=U, n=np.int64(5))
    assert ok.holds and ok.n == 5 and type(ok.n) is int


def test_claim_builders_refuse_plain_tuples_and_unnamed_units():
    for build in (stats.claim_greater, stats.claim_less):
        with pytest.raises(TypeError, match="stats.Estimate"):
            build("c", "s", (1.0, 0.5, 1.5), unit=U)
        with pytest.raises(TypeError, match="stats.Estimate"):
            build("c", "s", [1.0, 0.5, 1.5], unit=U)
    with pytest.raises(TypeError, match="stats.Estimate"):
        stats.claim("c", "s", (1.0, 0.5, 1.5), True, unit=U)
    # an Estimate without a unit needs the claim to name one
    with pytest.raises(ValueError, match="unit of replication"):
        stats.claim_greater("c", "s", stats.bootstrap_ci([1.0, 2.0, 3.0]))
    named = stats.claim_greater("c", "s", stats.bootstrap_ci([1.0, 2.0, 3.0], unit="tasks"))
    assert (named.unit, named.n) == ("tasks", 3)


def test_estimate_needs_n():
    with pytest.raises(TypeError):
        stats.Estimate(1.0, 0.5, 1.5)
    for n in (None, -2, 1.5, False):
        with pytest.raises(ValueError, match="needs n"):
            stats.Estimate(1.0, 0.5, 1.5, n)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_fewer_than_three_units_are_undetermined_whatever_the_value(n):
    far_above = stats.Estimate(100.0, 99.0, 101.0, n)
    c = stats.claim_greater("c", "s", far_above, 0.0, unit="search seeds")
    assert c.undetermined and not c.holds
    assert c.note == f"too few search seeds for a CI ({n} < 3)"
    d = c.as_dict()
    assert d["undetermined"] is True and d["holds"] is False
    assert (d["n"], d["unit"]) == (n, "search seeds")
    # a caller's own holds=True does not survive either
    assert not stats.claim("c", "s", far_above, True, unit="tasks").holds
    assert not Claim("c", "s", 100.0, 99.0, 101.0, True, unit="tasks", n=n).holds
    three = stats.claim_greater("c", "s", stats.Estimate(100.0, 99.0, 101.0, 3), unit="tasks")
    assert three.holds and not three.undetermined and "note" not in three.as_dict()


def test_restating_n_only_downwards_and_the_claim_records_what_the_ci_was_over():
    over_scenarios = stats.Estimate(5.0, 3.0, 7.0, 200, "test scenarios")
    c = stats.claim_greater("c", "s", over_scenarios, unit="training seeds", n=1)
    assert c.undetermined and not c.holds and c.ci_over == "200 test scenarios"
    assert c.as_dict()["ci_over"] == "200 test scenarios"
    with pytest.raises(ValueError, match="resamples only 3"):
        stats.claim_greater("c", "s", stats.Estimate(5.0, 3.0, 7.0, 3), unit=U, n=10)
    same = stats.claim_greater("c", "s", stats.Estimate(5.0, 3.0, 7.0, 3, U))
    assert same.ci_over == "" and "ci_over" not in same.as_dict()


def test_estimate_round_trips_n_and_unit():
    est = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0], unit="tasks")
    for back in (pickle.loads(pickle.dumps(est)), pickle.loads(pickle.dumps([est]))[0]):
        assert back == est and back.n == 4 and back.unit == "tasks"
        assert isinstance(back, stats.Estimate)
    scaled = est.scaled(-100)
    assert scaled.n == 4 and scaled.unit == "tasks" and scaled[1] <= scaled[0] <= scaled[2]


def test_every_estimator_returns_an_estimate_with_n():
    rng = np.random.default_rng(0)
    x, y = rng.random((5, 2)), rng.random((4, 2))
    for est, n in ((stats.bootstrap_ci(x, "iqm"), 5),
                   (stats.paired_difference_ci(x[:4], y), 4),
                   (stats.probability_of_improvement(x, y), 4),
                   (stats.iqm_difference(x, y, reps=50), 4),
                   (stats.iqm_difference(x[:1], y[:1]), 1)):
        assert isinstance(est, stats.Estimate) and est.n == n
    from selftaught.recipes import non_episodic, value_classification

    mats = {(k, w): rng.random((r, 2)) for k, w, r in
            (("hl_gauss", 1.0, 5), ("hl_gauss", 4.0, 4), ("mse", 1.0, 5), ("mse", 4.0, 6))}
    gain = value_classification._width_gain_difference(mats, 1.0, 4.0, reps=50)
    assert isinstance(gain, stats.Estimate) and gain.n == 4
    assert non_episodic._diff_ci(x[:, 0], y[:, 0]).n == 4
    assert non_episodic._spread_diff_ci([x[:, 0], y[:, 0]], [x[:3, 1], y[:, 1]]).n == 3


def test_report_shows_n_and_unit_beside_each_ci():
    held = stats.claim_greater("c", "s", stats.Estimate(0.12, 0.05, 0.2, 3, U))
    assert runner_mod._ci_text(held) == "[0.05, 0.2] (n=3 training seeds)"
    restated = stats.claim_greater("c", "s", stats.Estimate(1.0, 0.5, 1.5, 9, "fresh seeds"),
                                   unit="search seeds", n=1)
    assert runner_mod._ci_text(restated) == (
        "too few search seeds for a CI (1 < 3); CI over 9 fresh seeds")


def test_a_failed_precondition_marks_the_claim_not_tested_whatever_its_value():
    c = stats.claim_greater("full_beats_x", "s", stats.Estimate(0.3, 0.2, 0.4, 5, U))
    assert c.holds and c.gated(True, "unused") is c
    gated = c.gated(False, "  the full agent is at random level: IQM 0.01 [-0.01, 0.02] ")
    assert not gated.holds and gated.value == c.value and gated.n == 5
    assert gated.untested == "the full agent is at random level: IQM 0.01 [-0.01, 0.02]"
    d = gated.as_dict()
    assert d["untested"] == gated.untested and not d["holds"] and "undetermined" not in d
    assert d["note"] == f"not tested: {gated.untested}"
    assert runner_mod._holds_text(gated) == f"not tested: {gated.untested}"
    assert "untested" not in c.as_dict() and runner_mod._holds_text(c) == "yes"
    with pytest.raises(ValueError, match="which precondition failed"):
        c.gated(False, " ")
    with pytest.raises(ValueError, match="untested must be"):
        Claim("c", "s", 0.0, 0.0, 0.0, True, unit=U, n=3, untested=None)
    # fewer than three units stay undetermined first: that is what the report says
    few = stats.claim_greater("c", "s", stats.Estimate(0.3, 0.2, 0.4, 2, U))
    assert runner_mod._holds_text(few.gated(False, "why")) == "undetermined"


def test_cli_summary_counts_claims_not_tested(capsys, tmp_path):
    from selftaught import cli

    ok = stats.claim_greater("a", "s", stats.Estimate(0.3, 0.2, 0.4, 5, U))
    summary = {"claims": [ok.as_dict(), ok.gated(False, "gate failed").as_dict()],
               "wall_seconds": 1.0}
    cli._print_summary(tmp_path, summary)
    out = capsys.readouterr().out
    assert "1/2 claims hold, 1 not tested (precondition not met)" in out
