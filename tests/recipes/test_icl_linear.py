"""icl-linear: no label leak, the baselines' shots, the curriculum, the reinforced
experiment's token format, packed queries, verification filter and yield, mechanics and
resume on a tiny config, the smoke preset, user errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from recipe_checks import check_claims, check_plots, check_resume_after_kill, run_smoke

from selftaught import cli, recipes
from selftaught.core import ConfigError
from selftaught.core import config as cfglib
from selftaught.core.seeding import stream_keys
from selftaught.lm.model import ModelSize
from selftaught.lm.train import EvalSchedule, TrainConfig
from selftaught.recipes import icl_linear
from selftaught.recipes.icl_linear import classify, reinforced_icl
from selftaught.recipes.icl_linear import config as lc
from selftaught.tasks.icl import context_inputs, linear_pairs, pair_inputs

RECIPE = recipes.get("icl-linear")

# Tiny: checks mechanics (phases, resume, files, metric ranges), not the claims.
TINY = dataclasses.replace(
    RECIPE.preset("smoke"), num_seeds=1, dim=4, dim_start=2, curriculum_every=10,
    max_shots=8, shots=(1, 2, 4, 8), low_shots=2, claim_shots=4,
    model=ModelSize(d_model=16, n_layers=2, n_heads=2, mlp_ratio=2,
                               pos_encoding="rope"),
    train=TrainConfig(lr=3e-3, warmup_steps=5, total_steps=60, batch_size=8),
    evals=EvalSchedule(every=20, batch=16, test_rounds=2), seed_shots=2, pool=16, queries=4,
    ricl_batch=4, ricl_rounds=2)


def _tiny_params(cfg=TINY):
    init, _, _ = classify.programs(cfg)
    return jax.tree_util.tree_map(lambda a: a[0], init(jax.random.PRNGKey(0)[None]).params)


@pytest.mark.parametrize("carry", [True, False])
def test_the_model_cannot_see_the_label_it_predicts(carry):
    """Changing y_k (and every later label) leaves the logits of tokens 0..k unchanged; the
    logits of token k + 1 (which carries y_k) do change."""
    tiny = dataclasses.replace(TINY, carry=carry)
    cfg = lc.model_config(tiny)
    init, _, _ = classify.programs(tiny)
    params = jax.tree_util.tree_map(lambda a: a[0], init(jax.random.PRNGKey(0)[None]).params)
    b = linear_pairs(jax.random.PRNGKey(1), 4, tiny.max_shots + 1, tiny.dim, tiny.dim, carry)
    base = lc.label_logits(params, cfg, b["inputs"])
    for k in (0, 3, tiny.max_shots - 1):
        y = b["y"].at[:, k:].multiply(-1.0)
        out = lc.label_logits(params, cfg, pair_inputs(b["x"], y, carry))
        np.testing.assert_allclose(out[:, :k + 1], base[:, :k + 1], rtol=0, atol=1e-6)
        assert float(jnp.abs(out[:, k + 1] - base[:, k + 1]).max()) > 1e-4


def test_baselines_fit_the_shots_before_the_query_pair():
    rng = np.random.default_rng(0)
    n, T, d, shots = 50, 9, 3, [1, 2, 4, 8]
    for k in shots:
        # pair 0 sits next to the query pair k, with the opposite label: a 1-NN fitted on
        # pairs 0..k-1 answers -y_k (accuracy 0); one that saw pair k itself would answer y_k
        x, y = rng.normal(size=(n, T, d)), rng.choice([-1.0, 1.0], size=(n, T))
        x[:, k] = x[:, 0] + 1e-6
        y[:, k] = -y[:, 0]
        r = classify.baselines(x, y, [k], knn=1, l2=0.1)
        np.testing.assert_array_equal(r["knn"], [0.0])
    # a query equal to a shot with the same label: 1-NN is right; logistic regression on
    # well-separated shots (labels = sign of coordinate 0) gets the query right too
    x = rng.normal(size=(n, T, d))
    x[..., 0] = np.where(rng.random((n, T)) < 0.5, -3.0, 3.0)
    y = np.sign(x[..., 0])
    r = classify.baselines(x, y, [4, 8], knn=1, l2=0.1)
    np.testing.assert_array_equal(r["logistic"], 1.0)


@pytest.mark.parametrize("k", [0, 1, 5, 8])
def test_packed_queries_equal_one_sequence_per_query(k):
    """query_logits (M queries in one forward, masked from each other, all at position k)
    equals the last token of the k + 1-token sequence [shots, query] for each query."""
    cfg, params = lc.model_config(TINY), _tiny_params()
    rng = np.random.default_rng(1)
    N, M, d = 3, 5, TINY.dim
    x, q = jnp.asarray(rng.normal(size=(N, k, d))), jnp.asarray(rng.normal(size=(N, M, d)))
    y = jnp.asarray(rng.choice([-1.0, 1.0], size=(N, k)))
    packed = reinforced_icl.query_logits(params, cfg, x, y, q, TINY.carry)
    for j in range(M):
        one = context_inputs(x, y, q[:, j:j + 1], TINY.carry)
        ref = lc.label_logits(params, cfg, one)[:, -1]
        np.testing.assert_allclose(packed[:, j], ref, rtol=1e-4, atol=1e-5)


def test_verification_filter_by_hand():
    own = jnp.asarray([[1, -1, 1, 1, -1], [-1, -1, -1, -1, -1], [1, 1, 1, 1, 1]], jnp.float32)
    true = jnp.asarray([[1, 1, 1, -1, -1], [1, 1, 1, 1, -1], [-1, -1, -1, -1, -1]],
                       jnp.float32)
    kept, idx, count = reinforced_icl.verify_and_select(own, true, 3)
    np.testing.assert_array_equal(kept, [[1, 0, 1, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])
    np.testing.assert_array_equal(count, [3, 1, 0])
    # the first kept inputs in pool order; too few: repeated cyclically; none: input 0
    np.testing.assert_array_equal(idx, [[0, 2, 4], [4, 4, 4], [0, 0, 0]])
    _, idx5, _ = reinforced_icl.verify_and_select(own, true, 5)
    np.testing.assert_array_equal(idx5[0], [0, 2, 4, 0, 2])


def test_reinforced_arms_yield_and_shots_by_hand():
    """One seed of the experiment on untrained tiny parameters, recomputed by hand: the
    model's own labels (each pool input after the seed shots, one sequence each), the yield
    (fraction of own labels equal to sign(w . x)), each arm's shots and labels."""
    cfg, params = lc.model_config(TINY), _tiny_params()
    m = jax.device_get(reinforced_icl.reinforced_program(TINY)(
        jax.tree_util.tree_map(lambda a: a[None], params), stream_keys([0], 5, 0)))
    m = jax.tree_util.tree_map(lambda a: a[0], m)
    K, P = TINY.max_shots, TINY.pool
    sign = lambda x, w: np.where(x @ w > 0, 1.0, -1.0)
    for b in range(TINY.ricl_batch):
        w, pool, seed_x = m["w"][b], m["pool_x"][b], m["seed_x"][b]
        true = sign(pool, w)
        own = []
        for p in range(P):
            t = context_inputs(jnp.asarray(seed_x[None]), jnp.asarray(sign(seed_x, w)[None]),
                               jnp.asarray(pool[None, p:p + 1]), TINY.carry)
            lg = np.asarray(lc.label_logits(params, cfg, t))[0, -1]
            own.append(1.0 if lg[1] > lg[0] else -1.0)
        np.testing.assert_array_equal(m["own"][b], own)
        kept = np.flatnonzero(np.asarray(own) == true)
        assert m["yield_"][b] == pytest.approx(len(kept) / P)
        assert m["count"][b] == len(kept)
        np.testing.assert_allclose(m["x"]["ground_truth"][b], pool[:K])
        np.testing.assert_array_equal(m["y"]["ground_truth"][b], true[:K])
        np.testing.assert_array_equal(m["y"]["self_labelled"][b], np.asarray(own)[:K])
        pick = kept[np.arange(K) % len(kept)] if len(kept) else np.zeros(K, int)
        np.testing.assert_allclose(m["x"]["reinforced"][b], pool[pick])
        np.testing.assert_array_equal(m["y"]["reinforced"][b], np.asarray(own)[pick])
        if len(kept):  # verified: the model's labels are the true ones
            np.testing.assert_array_equal(m["y"]["reinforced"][b], true[pick])
        np.testing.assert_array_equal(m["q_y"][b], sign(m["q_x"][b], w))
        for c, k in enumerate(TINY.shots):  # the selection diagnostics of the first k shots
            for i, arm in enumerate(("ground_truth", "reinforced")):
                want = np.abs(m["x"][arm][b, :k] @ w).mean() / np.linalg.norm(w)
                assert m["margin"][b, i, c] == pytest.approx(want, rel=1e-4)
            for i, arm in enumerate(reinforced_icl.LABELLED):
                v = m["y"][arm][b, :k] @ m["x"][arm][b, :k]
                want = v @ w / (np.linalg.norm(v) * np.linalg.norm(w))
                assert m["align"][b, i, c] == pytest.approx(want, rel=1e-4, abs=1e-5)


def test_curriculum_grows_the_dimension():
    cfg = dataclasses.replace(TINY, dim=8, dim_start=4, curriculum_every=250)
    got = [int(lc.d_eff(cfg, s)) for s in (0, 249, 250, 999, 1000, 5000)]
    assert got == [4, 4, 5, 7, 8, 8]


def _check_mechanics(run, summary, cfg):
    seeds = list(range(cfg.num_seeds))
    claims = check_claims(summary, {"icl_rises_with_shots", "icl_tracks_logistic",
                                    "icl_beats_knn", "reinforced_tracks_ground_truth",
                                    "unsupervised_no_gain"}, cfg.num_seeds)
    assert run.done_phases() == set(RECIPE.phases(cfg, seeds))
    every = cfg.evals.every
    steps = [every * (i + 1) for i in range(cfg.train.total_steps // every)]
    assert sorted((e["seed"], e["step"], e["shots"]) for e in run.events("valid")) == [
        (s, t, k) for s in seeds for t in steps for k in (0, *cfg.shots)]
    assert [e["d_eff"] for e in run.events("train")][-1] == cfg.dim
    test = run.events("test")
    assert sorted((e["seed"], e["shots"]) for e in test) == [
        (s, k) for s in seeds for k in cfg.shots]
    for e in test + run.events("valid"):
        for m in ("icl", "logistic", "knn", "acc"):
            assert 0.0 <= e.get(m, 0.0) <= 1.0, e
    ricl = run.events("ricl")
    assert sorted((e["seed"], e["shots"]) for e in ricl) == [
        (s, k) for s in seeds for k in (0, *cfg.shots)]
    for e in ricl:
        assert all(0.0 <= e[a] <= 1.0 for a in reinforced_icl.ARMS), e
        if e["shots"] == 0:  # zero shots: every arm is the same query token
            assert len({e[a] for a in reinforced_icl.ARMS}) == 1, e
    for e in run.events("ricl_ref"):
        # verified shots never lie closer to the boundary than pool order allows: both > 0
        assert e["margin_ground_truth"] > 0 and e["margin_reinforced"] > 0, e
    pools = run.events("ricl_pool")
    assert sorted(e["seed"] for e in pools) == seeds
    assert all(0.0 <= e["yield_"] <= 1.0 and 0.0 <= e["short"] <= 1.0 for e in pools)
    check_plots(run.path, ("shots", "training", "reinforced"))
    return claims


def test_tiny_run_and_resume_after_kill_match(tmp_path, killed_at):
    run, ref = check_resume_after_kill(  # killed in the 2nd training phase
        RECIPE, TINY, tmp_path, killed_at, (icl_linear, "train_chunk", 2),
        ("train", "valid", "test", "ricl", "ricl_ref", "ricl_pool"))
    _check_mechanics(run, ref, TINY)


@pytest.mark.slow  # the smoke preset's claims (~20 s idle, ~50 s on a loaded 2-core machine)
def test_smoke_preset_learns_in_context(tmp_path):
    """The smoke preset (2 seeds: claims undetermined by design) learns in context: test
    accuracy at claim_shots beats 0.5 + a margin and the low-shot accuracy. Directions only,
    no pinned number."""
    cfg, run, summary = run_smoke(RECIPE, tmp_path)
    _check_mechanics(run, summary, cfg)
    assert all(c["undetermined"] for c in summary["claims"])
    test = run.events("test")
    at = lambda k: np.mean([e["icl"] for e in test if e["shots"] == k])
    assert at(cfg.claim_shots) > 0.6 and at(cfg.claim_shots) > at(1) + 0.05, test
    # reinforced experiment: the model labels the pool above chance after the seed shots,
    # and labelled shots help where unlabelled ones cannot (directions only)
    assert all(e["yield_"] > 0.55 for e in run.events("ricl_pool"))
    arm = lambda a: np.mean([e[a] for e in run.events("ricl") if e["shots"] == cfg.claim_shots])
    assert arm("ground_truth") > arm("unsupervised") + 0.1
    assert arm("reinforced") > arm("unsupervised") + 0.1


@pytest.mark.parametrize("change, message", [
    ({"evals": EvalSchedule(every=7)}, "must be a multiple of evals.every=7"),
    ({"dim_start": 9}, "dim_start=9 must be in [1, dim=8]"),
    ({"shots": (1, 2, 64)}, "must lie in [1, max_shots=32]"),
    ({"claim_shots": 3}, "claim_shots=3 must be one of shots="),
    ({"low_shots": 32}, "low_shots=32 must be < claim_shots=32"),
    ({"margin": 1.5}, "margin=1.5 must be in [0, 1)"),
    ({"pool": 16}, "pool=16 must be >= max_shots=32"),
    ({"seed_shots": 33}, "seed_shots=33 must be in [0, max_shots=32]"),
])
def test_config_errors(change, message):
    with pytest.raises(ConfigError) as exc:
        cfglib.validate(dataclasses.replace(RECIPE.preset("smoke"), **change))
    assert message in str(exc.value)


def test_cli_bad_config_exits_2(tmp_path, capsys):
    assert cli.main(["run", "icl-linear", "--preset", "smoke", "--run-dir",
                     str(tmp_path / "a"), "--dim-start", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "dim_start=0 must be in [1, dim=8]" in err and "Traceback" not in err


def test_cli_eval_schedule_flags(tmp_path, capsys):
    """The phase plan is one nested config (`lm.train.EvalSchedule`): its flags are
    --evals.every etc., and the old flat flag is refused with exit 2."""
    assert cli.main(["run", "icl-linear", "--preset", "smoke", "--run-dir",
                     str(tmp_path / "a"), "--evals.every", "7"]) == 2
    err = capsys.readouterr().err.strip()
    assert "must be a multiple of evals.every=7" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_:  # tyro: unrecognized option, did you mean ...
        cli.main(["run", "icl-linear", "--preset", "smoke", "--run-dir",
                  str(tmp_path / "b"), "--eval-every", "200"])
    assert exit_.value.code == 2 and not (tmp_path / "b").exists()
    assert "--evals.every" in capsys.readouterr().err
