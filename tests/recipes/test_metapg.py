"""metapg: pair-aware hashing against hand gradients, the objectives' formulas, front
selection, invalid graphs scored as failures, bad input (exit 2); several searches batched
into one evaluation per generation, the claims over search seeds and the paired re-test
recomputed from the events, resume after a kill (with a stand-in SAC evaluator); smoke end
to end and resume with SAC (slow). The continuous space: its searches start from SAC's point
and stay in the box, resume, its config errors exit 2, its parameter-drift table, the
continuous-smoke preset end to end with SAC (~31 CPU-s), and SAC's point training exactly as
SAC's graph pair (slow)."""

import dataclasses
import hashlib

import numpy as np
import pytest

from selftaught import stats
from selftaught.cli import main
from selftaught.core import runner
from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.core.rundir import RunDir
from selftaught.evolve import actor_critic as ac
from selftaught.evolve import sac_family as sf
from selftaught.evolve.program import Node, Program
from selftaught.recipes import metapg
from selftaught.rl.control import PhysicsError


def _with_nodes(prog: Program, extra: list[Node]) -> Program:
    return Program(prog.inputs, prog.nodes + tuple(extra))


def test_pair_hasher_hashes_the_gradients_that_reach_the_networks():
    cs, as_ = ac.critic_space(), ac.actor_space()
    h = ac.PairHasher(cs, as_)
    sac = ac.sac_pair()
    # the critic gradient d/dq1 sum_B loss = 2 (q1 - y), y = r + d (min(q1', q2') - a logp')
    x = h.inputs[0]
    y = x["reward"] + x["discount"] * (np.minimum(x["q1_next"], x["q2_next"])
                                        - x["alpha"] * x["logp_next"])
    g = ac.input_gradients(sac.critic, x, ac.CRITIC_GRAD_INPUTS)
    np.testing.assert_allclose(g[0], 2 * (x["q1"] - y), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g[1], 2 * (x["q2"] - y), rtol=1e-4, atol=1e-4)
    xa = h.inputs[1]
    ga = ac.input_gradients(sac.actor, xa, ac.ACTOR_GRAD_INPUTS)
    np.testing.assert_allclose(ga[0], -(xa["q1_pi"] <= xa["q2_pi"]).astype(float), atol=1e-6)
    np.testing.assert_allclose(ga[2], xa["alpha"], rtol=1e-5)

    n_c, n_a = len(ac.CRITIC_INPUTS), len(ac.ACTOR_INPUTS)
    out_c, out_a = n_c + len(sac.critic.nodes) - 1, n_a + len(sac.actor.nodes) - 1
    # + reward: a constant shift, trains identically -> same hash
    shifted = ac.Pair(_with_nodes(sac.critic, [Node("add", (out_c, 5))]), sac.actor)
    # sg(loss): no gradient reaches q1, q2 -> a different algorithm
    frozen = ac.Pair(_with_nodes(sac.critic, [Node("stop_grad", (out_c,))]), sac.actor)
    # 2 * actor loss: a different gradient
    doubled = ac.Pair(sac.critic, _with_nodes(sac.actor, [Node("add", (out_a, out_a))]))
    bad = ac.Pair(sac.critic, Program(sac.actor.inputs, (Node("no_such_op", (0, 1)),)))
    hs = h.hash_many([sac, shifted, frozen, doubled, sac, bad])
    assert hs[0] == hs[1] == hs[4]
    assert len({hs[0], hs[2], hs[3], hs[5]}) == 4  # an invalid graph hashes, never raises
    # pair-aware: the same critic with another actor is another pair
    assert hs[3][:16] == hs[0][:16] and hs[3][16:] != hs[0][16:]


def test_readable_formulas_name_shared_subexpressions():
    sac = ac.sac_pair()
    assert sac.readable() == {
        "critic": "t1 = sg((reward + (discount * (min(q1_next, q2_next) - (alpha * logp_next)))))"
                  "; (((q1 - t1))^2 + ((q2 - t1))^2)",
        "actor": sac.formulas()["actor"]}  # nothing shared: the plain formula


def test_objectives_formulas_hurdle_and_failures():
    raw = np.array([
        [[0.8, 0.6, 1.0], [0.5, 0.4, 0.6]],     # learns: stability = -std(perf)
        [[0.1, 0.1, 0.1], [0.0, 0.1, 0.2]],     # never learns: stability -1 despite std 0
        [[0.9, np.nan, 0.9], [0.5, 0.5, 0.5]],  # a NaN return: failure
    ])
    f = metapg.objectives(raw, hurdle=0.5)
    np.testing.assert_allclose(f[0], [0.8, 0.5, -np.std([0.8, 0.6, 1.0])])
    np.testing.assert_allclose(f[1], [0.1, 0.1, -1.0])
    assert np.all(f[2] == -np.inf)


def test_front_members_skip_sac_duplicates_and_failures_best_per_objective_first():
    F = [[0.9, 0.1, -0.3],   # 0 best performance
         [0.2, 0.8, -0.2],   # 1 best generalizability
         [0.5, 0.5, -0.01],  # 2 best stability
         [0.6, 0.6, -0.05],  # 3 SAC's function (on the front): excluded
         [-np.inf] * 3,      # 4 failed
         [0.1, 0.1, -0.5]]   # 5 dominated
    last = {"objectives": F, "hashes": ["a", "b", "c", "sac", "e", "f"]}
    cfg = metapg.MetaPGConfig(front_max=2)
    assert metapg._front_members(cfg, last, "sac") == [0, 1]
    assert metapg._front_members(dataclasses.replace(cfg, front_max=5), last, "sac") == [0, 1, 2]


def test_invalid_graphs_score_nan_without_training():
    cfg = metapg.RECIPE.preset("smoke")
    fn = cfg.task().build()
    sac = ac.sac_pair()
    bad_type = ac.Pair(Program(sac.critic.inputs, sac.critic.nodes + (Node("max_a", (0,)),)),
                       sac.actor)
    bad_op = ac.Pair(sac.critic, Program(sac.actor.inputs, (Node("no_such_op", (0, 1)),)))
    out = fn([bad_type, (bad_op, 2)])
    assert out.shape == (2, 2, cfg.train_seeds) and np.isnan(out).all()
    assert np.all(metapg.objectives(out) == -np.inf)


def test_bad_input_raises_user_errors():
    cfg = metapg.RECIPE.preset("smoke")
    with pytest.raises(UnknownNameError, match="continuous-control environment"):
        dataclasses.replace(cfg, env="Walker2d").validate()
    with pytest.raises(PhysicsError, match="must be a positive"):
        dataclasses.replace(cfg, perturb_scales=(0.5, -1.0)).validate()
    with pytest.raises(PhysicsError, match="no physical parameter 'length'"):
        dataclasses.replace(cfg, perturb_param="length").validate()


@pytest.mark.parametrize("flags,msg", [
    (["--env", "Walker2d"], "continuous-control environment"),
    (["--perturb-scales", "0.5", "0"], "narrow the perturbation range"),
    (["--space", "trees"], "search space"),
    (["--preset", "continuous-smoke", "--sigma", "0"], "sigma must be in (0, 1]"),
    (["--preset", "continuous-smoke", "--p-gene", "1.5"], "p_gene must be in [0, 1]"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, flags, msg):
    rc = main(["run", "metapg", "--preset", "smoke", "--run-dir", str(tmp_path / "r"), *flags])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and msg in err


def _metrics(path):
    run = RunDir.open(path)
    gens = [(e["search"], e["generation"], e["hashes"], e["objectives"], e["new"],
             e["real_evaluations"], e["rng_state"]) for e in run.events("generation")]
    return gens, [(e["performance"], e["generalizability"], e["searches"])
                  for e in run.events("reeval")]


class _PointHasher:
    """A continuous point's 32-hex hash (the stand-in seeds its draws from hex digits)."""

    def hash_many(self, points):
        return [hashlib.sha1(p.key().encode()).hexdigest()[:32] for p in points]


class _StandInSAC:
    """A `LazyBackend` stand-in: per-seed (performance, generalizability) drawn from the
    pair's function hash and the seed block (what SAC's results depend on), every call
    recorded."""

    calls: list = []

    def __init__(self, name, task, **kw):
        self.task = task
        self.hasher = (_PointHasher() if isinstance(task, sf.SACFamilyTask)
                       else ac.PairHasher(*task.spaces))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def __call__(self):
        return self.evaluate

    def evaluate(self, items):
        items = [(it, 0) if isinstance(it, (ac.Pair, sf.Point)) else tuple(it) for it in items]
        type(self).calls.append([(h, b) for h, (_, b) in zip(
            self.hasher.hash_many([p for p, _ in items]), items)])
        out = []
        for h, (_, b) in zip(self.hasher.hash_many([p for p, _ in items]), items):
            rng = np.random.default_rng([int(h[:8], 16), int(h[16:24], 16), b])
            out.append(0.6 + 0.1 * rng.standard_normal((2, self.task.seeds)))
        return np.asarray(out)


@pytest.fixture
def stand_in(monkeypatch):
    monkeypatch.setattr(metapg, "LazyBackend", _StandInSAC)
    _StandInSAC.calls = []
    return _StandInSAC


def _execute(path, preset="smoke", **kw):
    cfg = dataclasses.replace(metapg.RECIPE.preset(preset), generations=2, **kw)
    return runner.execute(metapg.RECIPE, cfg, preset=preset, seeds=5, run_dir=path)[1]


def test_searches_are_batched_per_generation_and_claims_are_over_search_seeds(
        stand_in, tmp_path):
    summary = _execute(tmp_path / "r")
    cfg = metapg.RECIPE.preset("smoke")
    calls = stand_in.calls
    # one evaluator call per generation holding every search's new candidates (block k =
    # search k), then one re-test call: every pair on the same fresh blocks 3, 4, 5 (5
    # seeds in blocks of train_seeds = 2, the last cut)
    assert len(calls) == 2 + 1 + 1
    assert {b for _, b in calls[0]} == {0, 1, 2}
    assert all({b for _, b in c} <= {0, 1, 2} for c in calls[:3])
    run = RunDir.open(tmp_path / "r")
    for g in range(3):
        evs = {e["search"]: e for e in run.events("generation", generation=g)}
        assert sorted(evs) == [0, 1, 2]
        for k, e in evs.items():  # each search's new functions are the call's block-k items
            assert sorted(e["new"]) == sorted(h for h, b in calls[g] if b == k)
    assert len({e["hashes"][0] for e in run.events("generation", generation=0)}) == 1  # SAC
    (r,) = run.events("reeval")
    hashes = ac.PairHasher(*cfg.task().spaces).hash_many(
        [ac.pair_from_dict(d, *cfg.task().spaces) for d in r["pairs"]])
    assert sorted(calls[3]) == sorted((h, b) for h in hashes for b in (3, 4, 5))
    # the claims recomputed from the re-test: per search, the member best on each
    # objective by the search's scores, minus SAC on the same 5 fresh seeds
    perf, gen = np.asarray(r["performance"]), np.asarray(r["generalizability"])
    assert perf.shape == (len(hashes), 5)
    diffs = []
    for s in r["searches"]:
        score = np.asarray(s["search_objectives"])[1:]
        j = [s["pair_index"][int(np.argmax(score[:, o]))] for o in range(3)]
        diffs.append([np.mean(perf[j[0]] - perf[0]), np.mean(gen[j[1]] - gen[0]),
                      np.std(perf[0], ddof=1) - np.std(perf[j[2]], ddof=1)])
    diffs = np.asarray(diffs)
    for c, o in zip(summary["claims"], metapg.OBJECTIVES):
        est = stats.mean_ci(diffs[:, metapg.OBJECTIVES.index(o)])
        assert c["unit"] == "search seeds" and c["n"] == 3 and not c.get("undetermined")
        assert c["value"] == pytest.approx(est[0]) and c["ci_low"] == pytest.approx(est[1])
        assert c["ci_high"] == pytest.approx(est[2])
        assert c["holds"] == (est[1] > 0)


def test_fewer_than_three_searches_leave_the_claims_undetermined(stand_in, tmp_path):
    summary = _execute(tmp_path / "r", searches=2)
    assert all(c["undetermined"] and c["n"] == 2 and c["unit"] == "search seeds"
               for c in summary["claims"])


@pytest.mark.parametrize("preset", ["smoke", "continuous-smoke"])
def test_multi_search_resume_after_a_kill_gives_the_same_metrics(stand_in, tmp_path,
                                                                  killed_at, preset):
    ref = _execute(tmp_path / "ref", preset)
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 2):
        _execute(path, preset)
    assert RunDir.open(path).done_phases() == {"search/gen0"}
    _, summary = runner.execute(metapg.RECIPE, None, preset="", seeds=0, run_dir=path,
                                resume=True)
    assert _metrics(path) == _metrics(tmp_path / "ref")
    assert summary["claims"] == ref["claims"]


def test_search_items_dedupe_within_a_search_never_across():
    cs, as_ = ac.critic_space(), ac.actor_space()
    h = ac.PairHasher(cs, as_)
    sac = ac.sac_pair()
    other = ac.mutate_pair(sac, np.random.default_rng(0), cs, as_)
    known = {h.hash_many([other])[0]: np.zeros((2, 3))}
    todo = metapg.search_items(h, [([sac, sac, other], {}), ([other, sac], known)])
    assert [(k, p) for k, _, p in todo] == [(0, sac), (0, other), (1, sac)]


def test_chosen_members_and_paired_differences_formula():
    """3 pairs (SAC, a, b) over 4 fresh seeds; search 0 chose a for performance and
    stability and b for generalizability (by its own scores, not the re-test's); search 1
    found nothing but SAC (its difference is 0)."""
    searches = [{"pair_index": [1, 2],
                 "search_objectives": [[0.5, 0.5, -0.1], [0.9, 0.1, -0.01], [0.1, 0.9, -0.2]]},
                {"pair_index": [], "search_objectives": [[0.5, 0.5, -0.1]]}]
    rows = metapg.chosen_rows(searches)
    np.testing.assert_array_equal(rows, [[1, 2, 1], [0, 0, 0]])
    perf = np.array([[0.5, 0.7, 0.6, 0.8], [0.6, 0.7, 0.8, 0.8], [0.1, 0.2, 0.3, 0.4]])
    gen = perf[::-1] + 0.01
    d = metapg.search_differences(perf, gen, rows)
    np.testing.assert_allclose(d[0], [np.mean(perf[1] - perf[0]), np.mean(gen[2] - gen[0]),
                                      np.std(perf[0], ddof=1) - np.std(perf[1], ddof=1)])
    np.testing.assert_allclose(d[1], 0.0)
    # the paired sd pools the members' variances of member - SAC, seed by seed
    sd, rho = metapg.paired_sd(perf, rows[:, 0])
    assert sd == pytest.approx(np.std(perf[1] - perf[0], ddof=1))
    assert rho == pytest.approx(np.corrcoef(perf[1], perf[0])[0, 1])
    sd2, _ = metapg.paired_sd(perf, [1, 2, 0])
    assert sd2 == pytest.approx(np.sqrt((np.var(perf[1] - perf[0], ddof=1)
                                         + np.var(perf[2] - perf[0], ddof=1)) / 2))
    assert np.isnan(metapg.paired_sd(perf, [0, 0])[0])


def test_too_few_fresh_seeds_is_a_user_error(tmp_path, capsys):
    rc = main(["run", "metapg", "--preset", "smoke", "--seeds", "1", "--run-dir",
               str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--seeds must be >= 2" in err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    path = tmp_path_factory.mktemp("metapg") / "smoke"
    _, summary = runner.execute(metapg.RECIPE, metapg.RECIPE.preset("smoke"), preset="smoke",
                                seeds=4, run_dir=path)
    return path, summary


@pytest.mark.slow  # with the resume test ~70 CPU-s: compiles SAC with two loss interpreters
def test_smoke_end_to_end(smoke_run):
    path, summary = smoke_run
    cfg = metapg.RECIPE.preset("smoke")
    assert [c["name"] for c in summary["claims"]] == [
        f"front_beats_sac_on_{o}" for o in metapg.OBJECTIVES]
    assert all(c["n"] == cfg.searches and c["unit"] == "search seeds"
               for c in summary["claims"])
    gens, reeval = _metrics(path)
    assert sorted((g[0], g[1]) for g in gens) == [
        (k, g) for k in range(cfg.searches) for g in range(cfg.generations + 1)]
    # NSGA-II is elitist: each search's best on each objective never gets worse
    for k in range(cfg.searches):
        best = np.array([np.max(np.asarray(g[3]), 0) for g in gens if g[0] == k])
        assert (np.diff(best, axis=0) >= 0).all()
    perf, gen = (np.asarray(x) for x in reeval[0][:2])
    assert perf.shape == gen.shape and perf.shape[1] == 4 and np.isfinite(perf).all()
    text = (path / "report.md").read_text()
    assert "((alpha * logp_pi) - min(q1_pi, q2_pi))" in text and "+17%" in text
    assert "sd of paired difference" in text
    assert (path / "plots" / "search.png").stat().st_size > 0
    again = runner.finalize(metapg.RECIPE, RunDir.open(path))
    assert again["claims"] == summary["claims"]


@pytest.mark.slow  # reuses the compiled evaluator of the smoke run (same process)
def test_resume_after_interruption_gives_same_metrics(smoke_run, tmp_path, killed_at):
    path_ref, summary_ref = smoke_run
    path = tmp_path / "run"
    with killed_at(RunDir, "mark_phase_done", 2):
        runner.execute(metapg.RECIPE, metapg.RECIPE.preset("smoke"), preset="smoke", seeds=4,
                       run_dir=path)
    assert RunDir.open(path).done_phases() == {"search/gen0"}
    _, summary = runner.execute(metapg.RECIPE, None, preset="", seeds=0, run_dir=path,
                                resume=True)
    assert _metrics(path) == _metrics(path_ref)
    assert summary["claims"] == summary_ref["claims"]


@pytest.mark.slow  # ~185 CPU-s: the pool's two workers and this process each compile
def test_pool_backend_gives_the_inprocess_numbers():
    from selftaught.evolve.backends import make_backend

    task = metapg.RECIPE.preset("smoke").task()
    rng = np.random.default_rng(3)
    cs, as_ = task.spaces
    sac = ac.sac_pair()
    items = [sac, (sac, 1), ac.mutate_pair(sac, rng, cs, as_), (sac, 2)]
    ref = make_backend("inprocess", task)(items)
    pool = make_backend("pool", task, workers=2)
    try:
        got = pool(items)
    finally:
        pool.close()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ref[0], ref[1])  # another seed block: other seeds


def test_power_table_sizes_seeds_from_the_measured_paired_spread():
    """SAC (row 0) and two chosen members over 6 common fresh seeds: independent arms use
    sqrt(2) x SAC's sd, the paired design the measured sd of member - SAC seed by seed,
    pooled over the members the searches chose (root mean of their variances)."""
    cfg = metapg.RECIPE.preset("smoke")
    sac = np.array([0.6, 0.7, 0.8, 0.7, 0.65, 0.75])
    perf = np.stack([sac, sac + 0.02 + np.array([0, .01, -.01, 0, .02, -.02]), sac - 0.1])
    gen = perf[::-1].copy()
    rows = np.array([[1, 2, 1], [2, 1, 2], [1, 0, 1]])  # search k's member per objective
    lines = metapg.power_table(cfg, perf, gen, rows)
    row = next(x for x in lines if x.startswith("| performance |")).split("|")
    mean, sd = sac.mean(), sac.std(ddof=1)
    # member 2's difference is constant (variance 0): pooled sd = sqrt(var(d1) / 2)
    diff_sd = np.sqrt(np.var(perf[1] - sac, ddof=1) / 2)
    assert float(row[2]) == pytest.approx(mean, abs=5e-4)
    assert int(row[4]) == stats.seeds_needed(np.sqrt(2) * sd, 0.05 * mean)
    assert float(row[5]) == pytest.approx(diff_sd, abs=5e-4)
    assert int(row[7]) == stats.seeds_needed(diff_sd, 0.05 * mean)
    search_sd = float(row[8].split("vs")[0])
    assert search_sd == pytest.approx(diff_sd / np.sqrt(cfg.train_seeds), abs=5e-4)
    with pytest.raises(ConfigError, match="power_effect must be > 0"):
        dataclasses.replace(cfg, power_effect=0.0).validate()


def test_report_diagnostics_t_interval_and_seed_level_ci():
    """The t interval over searches (t_{0.975, 2} = 4.303) and the seed-level bootstrap,
    whose point is the claims' statistic: the mean over searches of search_differences."""
    x = np.array([0.01, 0.04, 0.02])
    lo, hi = stats.t_interval(x)
    half = 4.3027 * x.std(ddof=1) / np.sqrt(3)
    assert lo == pytest.approx(x.mean() - half, abs=1e-4)
    assert hi == pytest.approx(x.mean() + half, abs=1e-4)
    assert np.isnan(stats.t_interval([0.1])[0])
    rng = np.random.default_rng(0)
    perf, gen = rng.random((4, 8)), rng.random((4, 8))
    rows = np.array([[1, 2, 3], [3, 1, 2], [2, 3, 0]])
    d = metapg.search_differences(perf, gen, rows)
    for c in range(3):
        est = metapg.seed_level_ci(perf, gen, rows, c)
        assert est[0] == pytest.approx(d[:, c].mean())
        assert est.n == 8 and est[1] <= est[0] <= est[2]


def test_continuous_space_searches_from_sac_in_the_box_and_retests_on_common_seeds(
        stand_in, tmp_path):
    """The continuous space through the same searches and re-test (stand-in SAC): every
    search starts from SAC's point, every member stays in the box, the re-test trains SAC
    and the chosen points on the same fresh blocks, the claims are over the 3 searches."""
    summary = _execute(tmp_path / "r", "continuous-smoke")
    run = RunDir.open(tmp_path / "r")
    for e in run.events("generation"):
        pts = [sf.point_from_dict(d) for d in e["population"]]  # raises outside the box
        assert e["hashes"] == [p.key() for p in pts]
        if e["generation"] == 0:
            assert pts[0] == sf.sac_point() and len(set(pts)) > 1
    (r,) = run.events("reeval")
    assert sf.point_from_dict(r["pairs"][0]) == sf.sac_point()
    keys = [sf.point_from_dict(d).key() for d in r["pairs"]]
    blocks = sorted({b for _, b in stand_in.calls[-1]})
    assert blocks == [3, 4, 5] and len(stand_in.calls[-1]) == len(keys) * 3
    assert all(c["unit"] == "search seeds" and c["n"] == 3 for c in summary["claims"])
    assert "agg(q1_pi, q2_pi; 1)" in (tmp_path / "r" / "report.md").read_text()


def test_continuous_smoke_end_to_end_with_sac(tmp_path):
    """The continuous-smoke preset with the real SAC evaluator (one compiled program for
    every point x seed of a batch): finite results, SAC's point first in every search."""
    _, summary = runner.execute(metapg.RECIPE, metapg.RECIPE.preset("continuous-smoke"),
                                preset="continuous-smoke", seeds=4, run_dir=tmp_path / "r")
    run = RunDir.open(tmp_path / "r")
    (r,) = run.events("reeval")
    assert np.isfinite(np.asarray(r["performance"])).all()
    assert np.asarray(r["performance"]).shape[1] == 4
    assert [c["name"] for c in summary["claims"]] == [
        f"front_beats_sac_on_{o}" for o in metapg.OBJECTIVES]


def test_parameter_drift_is_the_population_mean_per_search():
    pts = [sf.Point((1.0, 1.0, 1.0, 1.0, 0.0)), sf.Point((0.5, 2.0, 0.0, 0.2, 1.0))]
    evs = [[{"population": [p.as_dict() for p in pts]}, {"population": [pts[1].as_dict()]}]]
    lines = metapg.parameter_drift(evs, [3])
    row = [c.strip() for c in lines[-1].split("|")[1:-1]]
    assert row == ["3", "0.75, 0.50", "1.50, 2.00", "0.50, 0.00", "0.60, 0.20", "0.50, 1.00"]


@pytest.mark.slow  # ~60 CPU-s: compiles SAC twice (graph interpreter, continuous family)
def test_sacs_point_trains_as_sacs_graph_pair():
    """Whole SAC trainings on the same seed blocks: the continuous space's SAC point and
    the graph space's SAC pair give the same per-seed performance and generalizability
    (two implementations of one algorithm)."""
    cfg = metapg.RECIPE.preset("continuous-smoke")
    graph = metapg.make_space(dataclasses.replace(cfg, space="graph"))
    cont = metapg.make_space(cfg)
    a = graph.task.build()([graph.sac(), (graph.sac(), 3)])
    b = cont.task.build()([cont.sac(), (cont.sac(), 3)])
    assert np.isfinite(a).all() and not np.allclose(a[0], a[1])  # blocks differ
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4)
