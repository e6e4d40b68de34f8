"""GKD recipe: config errors (fast); smoke mechanics and resume after kill (slow)."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from selftaught import recipes
from selftaught.core import ConfigError, runner
from selftaught.core import config as cfglib
from selftaught.core.errors import DataError
from selftaught.lm import TrainConfig
from selftaught.lm.distill import load_teacher, prompt_completion_rows
from selftaught.lm.model import ModelSize, TransformerConfig, init_params
from selftaught.recipes import gkd
from selftaught.tasks.chain import apply_op

RECIPE = recipes.get("gkd")
SMOKE = RECIPE.preset("smoke")
TINY = dataclasses.replace(SMOKE, methods=("sft", "supervised_kd", "gkd_beta0.5"))


def test_bad_configs_raise_config_error():
    for bad in (dict(methods=("sft", "kd")), dict(distill_temperature=0.0),
                dict(train_problems=0), dict(teacher_kind="oracle"), dict(lrs=()),
                dict(lrs=(1e-3, 1e-3)), dict(teacher_eps=0.0),
                dict(methods=("sft", "seqkd"))):  # seqkd = SFT with the algorithmic teacher
        with pytest.raises(ConfigError):
            cfglib.validate(dataclasses.replace(SMOKE, **bad))
    with pytest.raises(ConfigError, match="needs --task chain"):
        gkd.make_setting(dataclasses.replace(SMOKE, task="addition", task_args="digits=2"))


def test_gain_multiple():
    assert gkd.gain_multiple(np.array([4.0, 2.0]), np.array([1.0, 2.0])) == pytest.approx(2.0)
    assert np.isnan(gkd.gain_multiple(np.array([1.0]), np.array([0.0])))


def test_teacher_checkpoint_of_another_shape_is_a_data_error(tmp_path):
    from flax import serialization

    cfg = TransformerConfig(vocab_size=20, max_len=16, d_model=16, n_layers=1, n_heads=2)
    other = dataclasses.replace(cfg, d_model=8)
    path = tmp_path / "teacher.msgpack"
    path.write_bytes(serialization.msgpack_serialize(serialization.to_state_dict(
        init_params(other, jax.random.key(0)))))
    like = init_params(cfg, jax.random.key(1))
    with pytest.raises(DataError, match="does not match the config's model"):
        load_teacher(str(path), like)
    with pytest.raises(DataError, match="does not exist"):
        load_teacher(str(tmp_path / "missing.msgpack"), like)
    path.write_bytes(serialization.msgpack_serialize(serialization.to_state_dict(like)))
    restored = load_teacher(str(path), like)
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, restored, like))


def _counted(path):
    lines = [json.loads(x) for x in (path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("wall_seconds", "seconds", "peak_rss_mib",
                                                      "resumed")}
            for r in lines if r["event"] == "eval"]


@pytest.mark.slow
def test_smoke_run_and_resume_after_kill(tmp_path, killed_at):
    _, ref = runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    names = {c["name"] for c in ref["claims"]}
    assert names == {"gkd_beats_supervised_kd", "gkd_beats_sft",
                     "gain_multiple_vs_supervised_kd"}
    assert (tmp_path / "ref" / "plots" / "accuracy.png").stat().st_size > 0
    assert (tmp_path / "ref" / "plots" / "step_errors.png").stat().st_size > 0
    # init, sft done; killed while evaluating supervised_kd
    with killed_at(gkd, "evaluate", 3):
        runner.execute(RECIPE, TINY, preset="smoke", seeds=1, run_dir=tmp_path / "kill")
    _, resumed = runner.execute(RECIPE, None, preset="", seeds=0, run_dir=tmp_path / "kill",
                                resume=True)
    assert _counted(tmp_path / "kill") == _counted(tmp_path / "ref")
    same = lambda c: json.dumps(c, sort_keys=True)  # noqa: E731  (NaN == NaN as text)
    assert same(resumed["claims"]) == same(ref["claims"])
    assert {e["model"] for e in _counted(tmp_path / "ref")} == {
        "init", "sft", "supervised_kd", "gkd_beta0.5"}


LEARNED = dataclasses.replace(
    SMOKE, task="addition", task_args="digits=(1, 2)", teacher_kind="learned",
    teacher=ModelSize(d_model=16, n_layers=1, n_heads=2),
    teacher_train=TrainConfig(lr=1e-2, warmup_steps=5, total_steps=30, batch_size=16),
    methods=("sft", "supervised_kd", "seqkd", "gkd_beta0"))


@pytest.mark.slow
def test_learned_teacher_runs_and_its_checkpoint_is_reusable(tmp_path):
    _, ref = runner.execute(RECIPE, LEARNED, preset="smoke", seeds=1, run_dir=tmp_path / "ref")
    assert "gkd_beats_seqkd" in {c["name"] for c in ref["claims"]}
    cfg = dataclasses.replace(LEARNED, methods=("sft",),
                              teacher_checkpoint=str(tmp_path / "ref/checkpoints/teacher.msgpack"))
    runner.execute(RECIPE, cfg, preset="smoke", seeds=1, run_dir=tmp_path / "reuse")
    t_ref = [e for e in _counted(tmp_path / "ref") if e["model"] == "teacher"][0]
    t_new = [e for e in _counted(tmp_path / "reuse") if e["model"] == "teacher"][0]
    assert t_new["greedy_acc"] == t_ref["greedy_acc"]
    bad = dataclasses.replace(cfg, teacher=ModelSize(d_model=8, n_layers=1, n_heads=2))
    with pytest.raises(DataError, match="does not match"):
        runner.execute(RECIPE, bad, preset="smoke", seeds=1, run_dir=tmp_path / "bad")


def test_validation_and_test_problems_are_disjoint():
    st = gkd.make_setting(SMOKE)
    key = lambda ps: {st.s.task.prompt(p) for p in ps}  # noqa: E731
    assert not key(st.s.valid) & key(st.s.test)
    assert not (key(st.s.valid) | key(st.s.test)) & key(st.s.train)


def _synthetic_run(tmp_path, val, test, seeds=(0, 1, 2), lr=1e-2):
    """A run directory holding only evaluation events: per model, (greedy, t1) accuracy on
    validation and on test, identical across seeds except a small seed offset."""
    from selftaught.core.rundir import RunDir

    rd = RunDir(tmp_path)
    for sd in seeds:
        for m in ("init", *val):
            (vg, vt), (tg, tt) = val[m], test[m]
            rd.log("eval", model=m, seed=sd, greedy_acc=tg + 0.01 * sd, t1_acc=tt + 0.01 * sd,
                   val_greedy_acc=vg + 0.01 * sd, val_t1_acc=vt + 0.01 * sd,
                   **({} if m == "init" else {"lr": lr}))
    rd.log("eval", model="teacher", seed=seeds[0], greedy_acc=0.9, t1_acc=0.9)  # if learned
    return rd


def test_report_selects_beta_on_validation_not_test(tmp_path):
    """Validation prefers gkd_beta0 (greedy) / gkd_beta1 (T=1), test prefers gkd_beta1 /
    gkd_beta0: the report must pick by validation and report the picked arm's test numbers."""
    val = {"init": (0.4, 0.1), "sft": (0.3, 0.3), "supervised_kd": (0.3, 0.3),
           "seqkd": (0.3, 0.3), "gkd_beta0": (0.8, 0.2), "gkd_beta1": (0.2, 0.8)}
    test = {"init": (0.1, 0.1), "sft": (0.3, 0.3), "supervised_kd": (0.4, 0.3),
            "seqkd": (0.2, 0.3), "gkd_beta0": (0.5, 0.9), "gkd_beta1": (0.9, 0.5)}
    cfg = dataclasses.replace(SMOKE, methods=tuple(val.keys() - {"init"}),
                              teacher_kind="learned")
    rep = gkd.report(cfg, _synthetic_run(tmp_path, val, test), [0, 1, 2])
    claims = {c.name: c for c in rep.claims}
    beats_kd = claims["gkd_beats_supervised_kd"]
    assert "gkd_beta0" in beats_kd.statement and "gkd_beta1" not in beats_kd.statement
    # the estimate is gkd_beta0's test accuracy minus supervised KD's: 50 - 40 points
    assert beats_kd.value == pytest.approx(10.0)
    assert claims["gkd_beats_seqkd"].value == pytest.approx(30.0)
    assert claims["gkd_beats_sft"].value == pytest.approx(20.0)
    assert not any(c.untested for c in rep.claims)  # the start (40% validation) passes
    assert "temperature-1 sampling gkd_beta1 (on validation" in rep.markdown
    # had the test split chosen, greedy would be gkd_beta1 (+50 over supervised KD)
    swapped = gkd.report(cfg, _synthetic_run(tmp_path / "swap", test, val), [0, 1, 2])
    assert "gkd_beta1" in {c.name: c for c in swapped.claims}[
        "gkd_beats_supervised_kd"].statement


def test_report_refuses_a_run_without_validation_numbers(tmp_path):
    from selftaught.core.rundir import RunDir

    rd = RunDir(tmp_path)
    for m in ("init", "sft"):
        rd.log("eval", model=m, seed=0, greedy_acc=0.5, t1_acc=0.5)
    with pytest.raises(ConfigError, match="predates the validation split"):
        gkd.report(dataclasses.replace(SMOKE, methods=("sft",), lrs=(0.5,)), rd, [0])


def test_a_weak_start_leaves_every_claim_untested_with_the_measured_accuracy(tmp_path):
    val = {"init": (0.2, 0.1), "sft": (0.3, 0.3), "supervised_kd": (0.3, 0.3),
           "gkd_beta0": (0.8, 0.2)}
    cfg = dataclasses.replace(SMOKE, methods=("sft", "supervised_kd", "gkd_beta0"))
    rep = gkd.report(cfg, _synthetic_run(tmp_path, val, val), [0, 1, 2])
    assert {c.name for c in rep.claims} == {"gkd_beats_supervised_kd", "gkd_beats_sft",
                                            "gain_multiple_vs_supervised_kd"}
    for c in rep.claims:
        assert not c.holds and "reaches 21.0%" in c.untested and "below the 30%" in c.untested


def test_lr_is_chosen_per_method_on_the_first_seeds_validation(tmp_path):
    """The first seed trains each method at every lr: the table reports the lr that wins on
    validation, whatever the test numbers say; later seeds have one lr (the chosen one)."""
    from selftaught.core.rundir import RunDir

    cfg = dataclasses.replace(SMOKE, methods=("sft", "gkd_beta0"), lrs=(1e-3, 1e-2))
    rd = RunDir(tmp_path)
    ev = lambda m, sd, v, t, **kw: rd.log(  # noqa: E731
        "eval", model=m, seed=sd, greedy_acc=t, t1_acc=t, val_greedy_acc=v, val_t1_acc=v, **kw)
    for sd in (0, 1):
        ev("init", sd, 0.4, 0.4)
    ev("sft", 0, 0.5, 0.9, lr=1e-3)  # validation prefers 1e-3, test 1e-2
    ev("sft", 0, 0.4, 0.95, lr=1e-2)
    ev("gkd_beta0", 0, 0.5, 0.6, lr=1e-3)  # validation prefers 1e-2 (ties go to the first)
    ev("gkd_beta0", 0, 0.7, 0.5, lr=1e-2)
    ev("sft", 1, 0.5, 0.8, lr=1e-3)
    ev("gkd_beta0", 1, 0.7, 0.4, lr=1e-2)
    t = gkd._table(rd, cfg, [0, 1])
    np.testing.assert_allclose(t["greedy_acc"]["sft"], [90.0, 80.0])
    np.testing.assert_allclose(t["greedy_acc"]["gkd_beta0"], [50.0, 40.0])
    first = rd.events("eval", seed=0)
    assert gkd.choose_lr(first, "sft", cfg.lrs) == 1e-3
    assert gkd.choose_lr(first, "gkd_beta0", cfg.lrs) == 1e-2
    with pytest.raises(ConfigError, match="unfinished"):
        gkd.choose_lr(first, "gkd_beta0", (1e-3, 3e-3))


def test_step_errors_count_local_errors_from_the_solutions_own_prefix():
    """Reference solutions: every step reached, none wrong. A wrong result at step k, then
    correct steps *from that wrong value*: only step k is wrong (exposure-bias counting is
    local). A solution that stops after step 1: later steps are not reached, and step 1's
    separator (EOS instead of a space) makes it wrong."""
    st = gkd.make_setting(dataclasses.replace(SMOKE, task_args="steps=4, modulus=10, "
                                              "human_loose_prob=0.0"))
    s, N = st.s, st.s.max_new
    ps = s.test[:3]
    ref = [s.task.reference_solution(p) for p in ps]
    ops = ps[1].operands
    wrong1 = (int(ref[1].split()[1][-1]) + 3) % 10
    value, lines = int(ops[0]), []
    for i in range(1, len(ops), 2):
        new = wrong1 if len(lines) == 1 else apply_op(value, ops[i], int(ops[i + 1]), 10)
        lines.append(f"{value}{ops[i]}{ops[i + 1]}={new}")
        value = new
    texts = [ref[0], " ".join(lines) + f"\n={value}", ref[2].split()[0]]
    rows = prompt_completion_rows(s.tok, [s.task.prompt(p) for p in ps], texts,
                                  st.prompt_len, N)
    comp = rows["tokens"][:, st.prompt_len:]
    out = gkd.step_errors(st, ps, comp, comp != 0)
    assert out["step_reached"] == [3, 2, 2, 2]
    assert out["step_wrong"] == [1, 1, 0, 0]
    assert out["first_wrong"] == [1, 1, 0, 0, 1]


def test_starting_sft_checks_validation_every_chunk_and_stops_at_the_target():
    """student_init_target: the starting SFT evaluates validation greedy accuracy after every
    chunk_steps and stops at the first check that reaches it (or after student_init_steps);
    an unreachable target (1.0) runs every step."""
    cfg = dataclasses.replace(SMOKE, student_init_steps=30, chunk_steps=10)
    st = gkd.make_setting(cfg)
    like = init_params(st.student_cfg, jax.random.key(0))
    events = []

    def log(event, **fields):
        events.append((event, fields))
    log.headline = lambda **k: None
    for target in (1.0, 1e-12):
        events.clear()
        c = dataclasses.replace(cfg, student_init_target=target)
        trainers = {"init": gkd.make_trainers(c, st, None)["init"]}
        gkd.init_student(log, c, st, 0, jax.random.PRNGKey(1), like, {"ground": st.ground},
                         trainers)
        prog = [f for e, f in events if e == "init_progress"]
        final = [f for e, f in events if e == "eval"][0]
        assert [f["step"] for f in prog] == [10, 20, 30][:len(prog)]
        assert final["init_steps"] == prog[-1]["step"]
        reached = [f["val_greedy_acc"] >= target for f in prog]
        assert not any(reached[:-1]) and (reached[-1] or prog[-1]["step"] == 30)
        if target == 1.0:
            assert len(prog) == 3
