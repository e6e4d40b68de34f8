import json

import numpy as np
import pytest

from selftaught import cli
from selftaught.core import config as cfglib
from selftaught.core.errors import ConfigError, DataError, UnknownNameError
from selftaught.core.runner import execute
from selftaught.evolve.program import Node, Program, compile_program, validate
from selftaught.evolve.rl_loss import (
    ChainTask,
    dqn_program,
    dqnreg_program,
    make_space,
    myopic_program,
    remap_inputs,
    td_likeness,
    td_probe_inputs,
)
from selftaught.recipes import evolve_rl_loss as erl

PAPER = make_space("small", 7, paper_inputs=True)
FULL = make_space("small", 9)


def _paper(*nodes):
    return Program(PAPER.input_names, tuple(Node(o, a) for o, a in nodes))


N = len(PAPER.inputs)
IDX = {k: i for i, k in enumerate(PAPER.input_names)}
TD = _paper(("select", (IDX["q"], IDX["action"])), ("max_a", (IDX["q_target"],)),
            ("mul", (IDX["discount"], N + 1)), ("add", (IDX["reward"], N + 2)),
            ("sub", (N, N + 3)), ("square", (N + 4,)))
MYOPIC = _paper(("select", (IDX["q"], IDX["action"])), ("sub", (N, IDX["reward"])),
                ("square", (N + 1,)))
AVOID = _paper(("select", (IDX["q"], IDX["action"])), ("mul", (N, IDX["reward"])))


def test_reference_programs_compute_td_and_dqnreg():
    inputs, delta = td_probe_inputs(0, batch=32)
    a = inputs["action"]
    q_sa = inputs["q"][np.arange(32), a]
    np.testing.assert_allclose(compile_program(dqn_program())(inputs), delta**2, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(compile_program(dqnreg_program())(inputs),
                               delta**2 + 0.1 * q_sa, rtol=1e-4, atol=1e-4)
    validate(FULL, dqnreg_program(FULL.input_names))
    np.testing.assert_allclose(compile_program(myopic_program())(inputs),
                               (q_sa - inputs["reward"]) ** 2, rtol=1e-4, atol=1e-5)
    assert myopic_program(PAPER.input_names) == MYOPIC


def test_small_op_set_spaces_drop_the_unreadable_observations():
    assert "obs" not in PAPER.input_names and "q_next_online" not in PAPER.input_names
    assert {"obs", "next_obs"} <= set(make_space("full", 9).input_names)


def test_remap_inputs_preserves_the_function():
    moved = remap_inputs(TD, FULL.input_names)
    validate(FULL, moved)
    assert moved == dqn_program(FULL.input_names)
    assert remap_inputs(moved, PAPER.input_names) == TD  # unread inputs may be dropped
    inputs, _ = td_probe_inputs(0, batch=8)
    np.testing.assert_allclose(compile_program(moved)(inputs), compile_program(TD)(inputs))
    online = Program(FULL.input_names, (Node("max_a", (FULL.input_names.index(
        "q_next_online"),)),))
    with pytest.raises(ConfigError, match="cannot remap.*q_next_online"):
        remap_inputs(online, PAPER.input_names)


def test_td_likeness_separates_td_from_other_losses():
    s = td_likeness(PAPER, [TD, MYOPIC, AVOID, _paper(("const_1", ()),)])
    assert s[0] == 1.0
    assert s[1] < 0.8 and s[2] < 0.8 and s[3] == 0.0
    # dqnreg's small regulariser keeps the sign of most TD gradients
    assert td_likeness(FULL, [dqnreg_program()])[0] >= 0.9


def test_chain_mdps_optimal_values_satisfy_bellman():
    task = ChainTask(length=5, instances=12, seed=3)
    d = task.mdps()
    K, N = d["best"].shape
    q_star = d["q_star"].reshape(K, 2 * N)                     # transition order: (s, a)
    v_next = np.concatenate([d["q_star"].max(-1), np.zeros((K, 1))], axis=1)  # absorbing: 0
    backup = d["r"] + d["discount"] * np.take_along_axis(v_next, d["next"], axis=1)
    on = np.repeat(d["on_path"], 2, axis=1)
    np.testing.assert_allclose(q_star[on], backup[on], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(d["q_star"].argmax(-1)[d["on_path"]], d["best"][d["on_path"]])
    gap = np.abs(d["q_star"][..., 0] - d["q_star"][..., 1])[d["on_path"]]
    assert gap.min() > 0.09 * d["scale"].min()                # every decision has a margin
    stop = np.arange(K) % 2 == 1                              # stop chains quit at state 0
    quits = d["best"] != d["fwd"]
    assert quits[stop, 0].all() and not quits[:, 1:].any() and not quits[~stop].any()
    assert (d["r"] > 0).any() and (d["r"] < 0).any()          # prizes and penalties


def test_chain_hurdle_needs_bootstrapping():
    ev = ChainTask().build_space(PAPER)
    n, i = len(PAPER.inputs), IDX
    no_gamma = _paper(("select", (i["q"], i["action"])), ("max_a", (i["q_target"],)),
                      ("add", (i["reward"], n + 1)), ("sub", (n, n + 2)),
                      ("square", (n + 3,)))
    td, myopic, avoid, const, nog = ev([TD, MYOPIC, AVOID, _paper(("const_1", ()),),
                                       no_gamma])
    assert td > 0.98                                   # every chain solved, values ~ Q*
    assert myopic < 0.75 and nog < 0.9                 # partial credit, no pass
    assert avoid < 0.5 and const < 0.5


# The smoke preset's searches with shorter DQN trainings (CartPole and held-out): the
# recipe's real code path, not its claims' values.
TINY = cfglib.replace(erl.RECIPE.preset("smoke"), total_steps=400, learning_starts=128,
                      heldout_total_steps=400, eval_episodes=1, hurdle=0.2)
# (hurdle 0.2: both smoke searches find programs over it, so they train agents in the loop)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    path = tmp_path_factory.mktemp("erl") / "run"
    return execute(erl.RECIPE, TINY, preset="smoke", seeds=2, run_dir=path)


def test_smoke_end_to_end(smoke):
    run, summary = smoke
    claims = {c["name"]: c for c in summary["claims"]}
    assert set(claims) == {"scratch_td_rediscovery_rate", "scratch_minus_dqn_cartpole",
                           "evolved_minus_dqn_heldout"}
    refs = {e["loss"]: e for e in run.events("reference")}
    assert set(refs) == {"dqn", "dqnreg"} and len(refs["dqn"]["scores"]) == 2
    # one search per search seed; success is the stated criterion; the rate is over them
    searches = sorted(run.events("scratch_search"), key=lambda e: e["search"])
    assert [e["search_seed"] for e in searches] == [TINY.seed, TINY.seed + 1]
    for e in searches:
        assert e["success"] == (e["cleared_hurdle"]
                                and e["td_likeness"] >= TINY.success_td_likeness)
        assert e["real_evaluations"] <= TINY.scratch_evaluations + TINY.scratch_batch
        assert 1 <= e["cartpole_trainings"] <= (TINY.scratch_return_evaluations
                                                + TINY.scratch_batch)
        assert e["cleared_hurdle"]  # a program over the hurdle outranks every other
    rate = claims["scratch_td_rediscovery_rate"]
    assert rate["unit"] == "search seeds" and rate["n"] == 2
    assert rate["value"] == np.mean([e["success"] for e in searches])
    assert 0.0 <= rate["ci_low"] <= rate["value"] <= rate["ci_high"] <= 1.0
    # each search's best re-trained on the references' seeds (paired with DQN)
    results = sorted(run.events("scratch_result"), key=lambda e: e["search"])
    assert [r["search"] for r in results] == [0, 1]
    diff = np.mean([np.mean(r["scores"]) for r in results]) - np.mean(refs["dqn"]["scores"])
    np.testing.assert_allclose(claims["scratch_minus_dqn_cartpole"]["value"], diff, atol=1e-6)
    assert claims["scratch_minus_dqn_cartpole"]["n"] == 2
    # the bootstrapped search's best (not the hand-coded DQNReg) is tested held out
    boot = run.events("bootstrap_result")[0]
    held = {e["loss"]: e for e in run.events("heldout")}
    assert set(held) == {"dqn", "evolved"} and held["evolved"]["formula"] == boot["formula"]
    if boot["is_dqn"]:
        assert held["evolved"]["scores"] == held["dqn"]["scores"]
    d = claims["evolved_minus_dqn_heldout"]
    np.testing.assert_allclose(d["value"], np.mean(held["evolved"]["scores"])
                               - np.mean(held["dqn"]["scores"]), atol=1e-6)
    assert "q" in boot["formula"] and len(boot["scores"]) == 2
    assert (run.path / "plots" / "returns.png").exists()
    assert (run.path / "plots" / "scratch_chain_search.png").exists()


def test_hurdle_then_return_trains_only_programs_over_the_hurdle():
    trained = []

    def returns(programs):
        trained.extend(programs)
        return np.full(len(programs), 0.25)

    fit = erl.HurdleThenReturn(ChainTask().build_space(PAPER), returns, hurdle=0.95,
                               budget=2, to_dqn_inputs=lambda p: remap_inputs(
                                   p, FULL.input_names))
    f = fit([MYOPIC, TD, AVOID])
    chain = np.asarray(fit.chain_scores)
    # the chain score steers programs under the hurdle and ranks them below every return
    np.testing.assert_allclose(f[[0, 2]], chain[[0, 2]] - 2.0)
    assert f[1] == 0.25 and f[[0, 2]].max() < -1.0
    assert trained == [dqn_program(FULL.input_names)] and fit.trained == 1
    assert not fit.spent()
    fit([TD])
    assert fit.spent() and len(fit.chain_scores) == 4


def test_scratch_success_needs_the_hurdle_and_td_likeness():
    td, myopic = td_likeness(PAPER, [TD, MYOPIC])
    assert erl.scratch_success(True, td, 0.9) and not erl.scratch_success(False, td, 0.9)
    assert not erl.scratch_success(True, myopic, 0.9)


@pytest.mark.slow
def test_resume_after_interruption(smoke, tmp_path, monkeypatch):
    _, summary = smoke
    real = erl.td_likeness
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 1:  # inside scratch/cartpole or bootstrap (phases 3-4 of 5)
            raise KeyboardInterrupt("simulated kill")
        return real(*a, **k)

    monkeypatch.setattr(erl, "td_likeness", flaky)
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        execute(erl.RECIPE, TINY, preset="smoke", seeds=2, run_dir=path)
    monkeypatch.setattr(erl, "td_likeness", real)
    _, resumed = execute(erl.RECIPE, None, preset="", seeds=0, run_dir=path, resume=True)
    assert json.dumps(resumed["claims"]) == json.dumps(summary["claims"])


def test_user_errors(tmp_path, capsys):
    base = erl.RECIPE.preset("smoke")
    with pytest.raises(UnknownNameError, match="unknown op set 'huge'"):
        cfglib.validate(cfglib.replace(base, op_set="huge"))
    with pytest.raises(UnknownNameError, match="unknown environment 'Pong'"):
        cfglib.validate(cfglib.replace(base, heldout_envs=("Pong",)))
    with pytest.raises(ConfigError, match="num_nodes must be >= 9"):
        cfglib.validate(cfglib.replace(base, num_nodes=5))
    bad = tmp_path / "prog.json"
    bad.write_text('{"inputs": ["q"], "nodes": [{"op": "select"')
    with pytest.raises(DataError, match="not valid JSON"):
        erl._load_bootstrap(cfglib.replace(base, bootstrap_program=str(bad)), FULL)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"inputs": list(FULL.input_names),
                                   "nodes": [{"op": "teleport", "args": [0]}]}))
    rc = cli.main(["run", "evolve-rl-loss", "--preset", "smoke", "--run-dir",
                   str(tmp_path / "r"), "--bootstrap-program", str(unknown)])
    assert rc == 2 and "unknown op 'teleport'" in capsys.readouterr().err
    rc = cli.main(["run", "evolve-rl-loss", "--preset", "smoke", "--run-dir",
                   str(tmp_path / "r2"), "--bootstrap-program", str(bad)])
    assert rc == 2 and "not valid JSON" in capsys.readouterr().err
