import numpy as np
import pytest

from selftaught import stats


def test_bootstrap_ci_brackets_mean_and_shrinks_with_n():
    rng = np.random.default_rng(0)
    small = rng.normal(1.0, 1.0, size=10)
    large = rng.normal(1.0, 1.0, size=400)
    pt, lo, hi = stats.bootstrap_ci(small)
    assert pt == pytest.approx(small.mean())
    assert lo < pt < hi
    _, lo2, hi2 = stats.bootstrap_ci(large)
    assert (hi2 - lo2) < (hi - lo)
    # normal-theory width for n=400: 2*1.96/20 ~ 0.196
    assert 0.15 < hi2 - lo2 < 0.25


def test_bootstrap_is_deterministic_and_leaves_global_rng_alone():
    x = np.arange(10.0)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    assert stats.bootstrap_ci(x) == stats.bootstrap_ci(x)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


def test_iqm_matches_trimmed_mean():
    x = np.array([0.0, 1, 2, 3, 4, 5, 6, 100])
    pt, _, _ = stats.bootstrap_ci(x, "iqm")
    assert pt == pytest.approx(np.mean([2, 3, 4, 5]))


def test_single_run_collapses_ci():
    assert stats.bootstrap_ci([2.5]) == (2.5, 2.5, 2.5)


def test_probability_of_improvement_matches_brute_force():
    x = np.array([1.0, 3, 5, 7])
    y = np.array([2.0, 3, 4, 9, 0])
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in x for b in y])
    pt, lo, hi = stats.probability_of_improvement(x, y)
    assert pt == pytest.approx(brute)
    assert lo <= pt <= hi


def test_paired_difference_ci():
    a = np.array([1.0, 2, 3, 4])
    b = a - 0.5
    assert stats.paired_difference_ci(a, b) == (0.5, 0.5, 0.5)
    pt, lo, hi = stats.paired_difference_ci([1.0, 2, 3], [0.0, 2.5, 1.0])
    assert pt == pytest.approx(np.mean([1.0, -0.5, 2.0])) and lo < pt < hi


def test_claim_greater_uses_lower_bound():
    est = lambda *v: stats.Estimate(*v, 3)  # noqa: E731
    u = "training seeds"
    assert stats.claim_greater("c", "s", est(1.0, 0.1, 2.0), unit=u).holds
    assert not stats.claim_greater("c", "s", est(1.0, -0.1, 2.0), unit=u).holds
    assert not stats.claim_greater("c", "s", est(0.6, 0.4, 0.8), threshold=0.5, unit=u).holds
    assert stats.claim_less("c", "s", est(0.2, 0.1, 0.29), 0.3, unit=u).holds
    assert not stats.claim_less("c", "s", est(0.2, 0.1, 0.31), 0.3, unit=u).holds


def test_plots_write_pngs(tmp_path):
    p = stats.plot_curves(tmp_path / "c.png", [0, 1, 2], {"a": np.ones((3, 3))},
                          xlabel="x", ylabel="y", hlines={"base": [0.5, 0.6]})
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    p = stats.plot_profiles(tmp_path / "p.png", {"a": np.random.rand(5, 2)},
                            np.linspace(0, 1, 11), xlabel="score", reps=50)
    assert p.stat().st_size > 0


# ------------------------------------------------------------------ issue 17
def test_estimates_remember_their_run_count_and_unpack_like_tuples():
    est = stats.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert est.n == 4 and len(est) == 3
    pt, lo, hi = est
    assert est == (pt, lo, hi) and lo <= pt <= hi
    assert stats.probability_of_improvement([1.0, 2, 3], [0.0, 1]).n == 2
    assert stats.paired_difference_ci([1.0, 2], [0.0, 1]).n == 2
    import pickle

    back = pickle.loads(pickle.dumps(est))
    assert back == est and back.n == 4


def test_too_few_units_make_a_claim_undetermined():
    assert stats.MIN_UNITS_FOR_CI == stats.MIN_SEEDS_FOR_CI == 3
    two = stats.claim_greater("c", "s", stats.bootstrap_ci([1.0, 2.0]), unit="training seeds")
    assert two.undetermined and not two.holds and two.n == 2
    assert two.note == "too few training seeds for a CI (2 < 3)"
    assert two.as_dict()["undetermined"] is True
    three = stats.claim_greater("c", "s", stats.bootstrap_ci([1.0, 2.0, 1.5]),
                                unit="training seeds")
    assert three.holds and not three.undetermined and "undetermined" not in three.as_dict()
    assert (three.as_dict()["n"], three.as_dict()["unit"]) == (3, "training seeds")


def test_profile_legend_entries_are_the_lines_of_their_algorithms(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    captured = {}
    monkeypatch.setattr(plt, "close", lambda fig: captured.setdefault("fig", fig))
    rng = np.random.default_rng(0)
    stats.plot_profiles(tmp_path / "p.png", {"MSE": rng.random((5, 2)),
                                             "HL-Gauss": rng.random((5, 2)) + 0.5},
                        np.linspace(0, 1.5, 11), xlabel="score", reps=20)
    ax = captured["fig"].axes[0]
    legend = ax.get_legend()
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts == ["MSE", "HL-Gauss"]
    for text, handle in zip(texts, legend.legend_handles):
        assert handle.get_color() == lines[text].get_color()  # a line, not another's band


def test_long_bar_labels_do_not_overlap(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    captured = {}
    monkeypatch.setattr(plt, "close", lambda fig: captured.setdefault("fig", fig))
    names = [f"a rather long label number {i}" for i in range(5)]
    stats.plot_bars(tmp_path / "b.png", {n: (1.0, 0.5, 1.5) for n in names}, ylabel="y")
    fig = captured["fig"]
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in fig.axes[0].get_xticklabels()]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_iqm_difference_point_and_ci():
    x = np.array([[0.0], [1.0], [2.0], [3.0]])  # IQM of 4 runs = mean of the middle two = 1.5
    est = stats.iqm_difference(x + 1.0, x, reps=200)
    pt, lo, hi = est
    assert pt == pytest.approx(1.0) and lo <= pt <= hi and est.n == 4
    one = stats.iqm_difference(x[:1], x[:1])
    assert one == (0.0, 0.0, 0.0) and one.n == 1
    assert stats.iqm_difference(x, x[:2], unit="training seeds").n == 2


def test_proportion_ci_is_the_wilson_interval():
    # Newcombe (1998), Stat. Med. 17:857, Table I: 81 of 263 -> Wilson 0.2553 to 0.3662
    p, lo, hi = stats.proportion_ci(81, 263)
    assert p == pytest.approx(81 / 263) and lo == pytest.approx(0.2553, abs=5e-5)
    assert hi == pytest.approx(0.3662, abs=5e-5)
    # at 0/n and n/n it does not collapse onto the point, unlike a bootstrap of 0/1 values
    zero, full = stats.proportion_ci(0, 5, unit="search seeds"), stats.proportion_ci(5, 5)
    assert zero[:2] == (0.0, 0.0) and 0.4 < zero[2] < 0.6 and zero.n == 5
    assert zero.unit == "search seeds" and full[1:] == pytest.approx((1 - zero[2], 1.0))
    # symmetric in successes and failures, and narrower with more trials at the same rate
    a, b = stats.proportion_ci(2, 5), stats.proportion_ci(3, 5)
    assert a[1] == pytest.approx(1 - b[2]) and a[2] == pytest.approx(1 - b[1])
    wide, narrow = stats.proportion_ci(2, 5), stats.proportion_ci(40, 100)
    assert narrow[2] - narrow[1] < wide[2] - wide[1] and narrow[1] < 0.4 < narrow[2]
    with pytest.raises(ValueError, match="0 <= successes <= n"):
        stats.proportion_ci(6, 5)


def test_unit_bootstrap_resamples_whole_rows():
    rng = np.random.default_rng(0)
    a = rng.normal(size=12)
    rows = np.stack([a, a + 1.0], 1)  # paired columns: b - a is exactly 1 in every unit
    est = stats.unit_bootstrap(rows, lambda r: np.mean(r[:, 1] - r[:, 0]), unit="search seeds")
    assert tuple(est) == pytest.approx((1.0, 1.0, 1.0))
    assert est.n == 12 and est.unit == "search seeds"
    # the percentile CI of the mean equals a hand-rolled bootstrap with the same draws
    est = stats.unit_bootstrap(rows, lambda r: r[:, 0].mean(), unit="seeds", reps=500, seed=3)
    g = np.random.default_rng(3)
    boot = [a[g.integers(0, 12, 12)].mean() for _ in range(500)]
    assert tuple(est[1:]) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])))
    assert est[1] < a.mean() < est[2]
    # non-finite resamples are dropped; one row collapses the CI to the point
    est = stats.unit_bootstrap(rows, lambda r: np.nan if len(set(r[:, 0])) < 3 else 1.0,
                               unit="seeds")
    assert tuple(est[1:]) == (1.0, 1.0)
    one = stats.unit_bootstrap(rows[:1], lambda r: r.sum(), unit="seeds")
    assert one.n == 1 and one[0] == one[1] == one[2]


def test_mean_ci_is_a_percentile_bootstrap_of_the_mean_over_units():
    rng = np.random.default_rng(4)
    v = rng.normal(2.0, 1.0, size=(10, 3))  # 10 units, 3 measurements each
    est = stats.mean_ci(v, unit="seeds", reps=300, seed=7)
    per_unit = v.mean(1)
    g = np.random.default_rng(7)
    boot = per_unit[g.integers(0, 10, size=(300, 10))].mean(1)
    assert tuple(est) == pytest.approx((per_unit.mean(), *np.quantile(boot, [0.025, 0.975])))
    assert est.n == 10 and est.unit == "seeds"
    # a paired difference is the mean CI of a - b, draw for draw
    b = rng.normal(size=(10, 3))
    assert tuple(stats.paired_difference_ci(v, b, seed=7)) == tuple(stats.mean_ci(v - b, seed=7))
    one = stats.mean_ci(v[:1])
    assert one.n == 1 and one[0] == one[1] == one[2]


def test_group_bootstrap_resamples_each_group_alone_and_within_columns():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=9), rng.normal(1.0, 2.0, size=6)
    diff = lambda g: g[0].mean() - g[1].mean()  # noqa: E731
    est = stats.group_bootstrap([a, b], diff, unit="training seeds", reps=400, seed=5)
    assert est[0] == pytest.approx(a.mean() - b.mean())
    assert est.n == 6 and est.unit == "training seeds"
    # the same draws by hand: per resample, each group in order, its own indices
    g = np.random.default_rng(5)
    boot = [a[g.integers(0, 9, 9)].mean() - b[g.integers(0, 6, 6)].mean() for _ in range(400)]
    assert tuple(est[1:]) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])))
    # independent groups: a constant offset between two arms is not paired away (unlike
    # unit_bootstrap), so the CI has width
    assert est[2] - est[1] > 0.5
    # a 2-D group (runs x tasks) is resampled within each task column: a column of
    # constants stays constant, so a statistic of that column has a zero-width CI
    m = np.stack([np.full(5, 3.0), rng.normal(size=5)], 1)
    col0 = stats.group_bootstrap([m], lambda g: g[0][:, 0].mean(), reps=200)
    assert tuple(col0) == pytest.approx((3.0, 3.0, 3.0))
    col1 = stats.group_bootstrap([m], lambda g: g[0][:, 1].mean(), reps=200)
    assert col1[2] > col1[1]
    # non-finite resamples dropped; one run in a group collapses the CI to the point
    est = stats.group_bootstrap([a, b], lambda g: np.nan if g[1].std() == 0 else 1.0)
    assert tuple(est[1:]) == (1.0, 1.0)
    one = stats.group_bootstrap([a, b[:1]], diff)
    assert one.n == 1 and one[0] == one[1] == one[2]
    with pytest.raises(ValueError, match="1-D or 2-D"):
        stats.group_bootstrap([], diff)


def test_spearman_matches_scipy_and_ignores_non_finite_pairs():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=20), rng.normal(size=20)
    y[:5] = x[:5]  # a few ties in rank order
    x[3] = x[4]  # a tie
    assert stats.spearman(x, y) == pytest.approx(spearmanr(x, y).statistic)
    xn, yn = np.append(x, np.nan), np.append(y, 5.0)
    assert stats.spearman(xn, yn) == pytest.approx(spearmanr(x, y).statistic)
    assert np.isnan(stats.spearman([1.0, 2.0], [2.0, 1.0]))  # fewer than 3 pairs
    assert np.isnan(stats.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # constant side


def test_pooled_difference_ci_pools_every_blocks_units_and_resamples_them():
    """The paired bootstrap over pooled units (moved from math-rerank): point = the mean of
    the per-unit differences of every block pooled; n = the pooled unit count; the CI is
    `paired_difference_ci` on the concatenated blocks, draw for draw; a constant difference
    has a zero-width CI."""
    a, b = [[1, 1, 0, 1], [0, 1, 1]], [[1, 0, 0, 0], [0, 1, 0]]
    est = stats.pooled_difference_ci(a, b, seed=3)
    assert est[0] == pytest.approx(3 / 7) and est.n == 7 and est.unit == "test problems"
    assert est[1] < est[0] < est[2]
    assert tuple(est) == tuple(stats.paired_difference_ci([1, 1, 0, 1, 0, 1, 1],
                                                          [1, 0, 0, 0, 0, 1, 0], seed=3))
    same = stats.pooled_difference_ci([[1, 0, 1]], [[1, 0, 1]])
    assert tuple(same) == (0.0, 0.0, 0.0) and same.n == 3
    with pytest.raises(ValueError, match="each block pairs the same units"):
        stats.pooled_difference_ci([[1, 0], [1]], [[1, 0], [1, 1]])
    with pytest.raises(ValueError, match="as many a blocks as b blocks"):
        stats.pooled_difference_ci([[1]], [])


@pytest.mark.parametrize("tight", [True, False])
def test_save_figure_writes_a_png_into_a_new_folder_and_closes_the_figure(tmp_path, tight):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2), dpi=50)
    ax.plot([0, 1], [1, 0])
    path = stats.save_figure(fig, tmp_path / "new" / "folder" / "f.png", tight=tight, dpi=40)
    assert path == tmp_path / "new" / "folder" / "f.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # a PNG
    assert not plt.fignum_exists(fig.number)  # closed: no figure left open
    from PIL import Image

    assert Image.open(path).size == (80, 80)  # 2 x 2 inches at the dpi passed on
