"""The chain task (left-to-right arithmetic mod m): solutions verify, every scratchpad step is
right, splits are disjoint, human styles are uneven, the verifier never raises."""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selftaught import tasks
from selftaught.core.errors import ConfigError
from selftaught.tasks.base import SPLITS
from selftaught.tasks.chain import apply_op

SETTINGS = [{}, {"steps": 2, "modulus": 7, "ops": "+*"}, {"steps": (1, 3), "modulus": 13}]
_STEP = re.compile(r"^(\d+)([-+*])(\d+)=(?:(-?\d+)=)?(\d+)$")


def _left_to_right(operands, m):
    v = operands[0]
    for op, b in zip(operands[1::2], operands[2::2]):
        v = eval(f"({v}){op}({b})") % m  # an independent reference (Python's own arithmetic)
    return v


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_reference_and_human_solutions_verify_and_steps_are_right(kwargs):
    task = tasks.get("chain", **kwargs)
    rng = np.random.default_rng(0)
    for p in task.problems("train", 200, seed=1):
        assert p.answer == str(_left_to_right(p.operands, task.modulus))
        ref, human = task.reference_solution(p), task.human_solution(p, rng)
        for text in (ref, human):
            assert task.verify(p, text) and task.extract_answer(text) == p.answer
            assert set(task.prompt(p) + text) <= set(task.alphabet)
            assert len(text) <= task.max_solution_len
            for step in text.split("\n")[0].split():
                if step.startswith("="):
                    continue
                a, op, b, raw, r = _STEP.match(step).groups()
                assert int(r) == apply_op(int(a), op, int(b), task.modulus)
                assert raw is None or int(raw) == eval(f"{a}{op}{b}")
        assert len(task.prompt(p)) <= task.max_prompt_len
        body = ref.rpartition("\n")[0]
        wrong = (int(p.answer) + 1) % task.modulus
        assert not task.verify(p, f"{body}\n={wrong}") and not task.verify(p, body)


def test_example_format_and_bounds_are_tight():
    task = tasks.get("chain", steps=4, modulus=10)
    p = task.make_problem((7, "+", 8, "*", 6, "-", 9, "+", 4))
    assert task.prompt(p) == "7+8*6-9+4="
    assert task.reference_solution(p) == "7+8=5 5*6=0 0-9=1 1+4=5\n=5"
    assert task._steps(p.operands, loose=True) == ["7+8=15=5", "5*6=30=0", "0-9=-9=1", "1+4=5"]
    widest = task.make_problem((9, "*", 9, "*", 9, "*", 9, "*", 9))
    assert len(task.prompt(widest)) == task.max_prompt_len
    assert max(len(" ".join(task._steps(widest.operands, True)) + "\n=1"),
               len(task.reference_solution(widest))) <= task.max_solution_len


@pytest.mark.parametrize("modulus", [10, 17])
def test_without_loose_human_solutions_the_length_bound_is_the_reference_one(modulus):
    """human_loose_prob=0: no solution shows an unreduced value, so the sampler budget is the
    widest reference solution's length exactly (no room left for 'a*b=RAW=R')."""
    task = tasks.get("chain", steps=(10, 12), modulus=modulus, human_loose_prob=0.0)
    top = modulus - 1  # 16+16=15, 15+16=14, ...: two digits at every step for modulus 17
    widest = task.make_problem((top, *(["+" if modulus > 10 else "*", top] * 12)))
    n = len(task.reference_solution(widest))
    assert n == task.max_solution_len if modulus == 10 else n <= task.max_solution_len
    rng = np.random.default_rng(0)
    assert all(len(task.human_solution(p, rng)) <= task.max_solution_len
               for p in task.problems("train", 100, seed=0))
    loose = tasks.get("chain", steps=(10, 12), modulus=modulus)
    assert loose.max_solution_len > task.max_solution_len


@pytest.mark.parametrize("kwargs", [{}, {"steps": 2, "modulus": 5}])
def test_problems_deterministic_prefix_stable_distinct_and_splits_disjoint(kwargs):
    task = tasks.get("chain", **kwargs)
    a = task.problems("train", 200, seed=7)
    assert a == tasks.get("chain", **kwargs).problems("train", 200, seed=7)
    assert task.problems("train", 50, seed=7) == a[:50]
    assert len({p.operands for p in a}) == len(a)
    by_split = {s: task.problems(s, 20, seed=3) for s in SPLITS}
    for s in SPLITS:
        assert all(task.split_of(p.operands) == s for p in by_split[s])
    ids = [{p.operands for p in by_split[s]} for s in SPLITS]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])


def test_small_space_is_enumerated_and_partitioned_exactly():
    task = tasks.get("chain", steps=1, modulus=4, ops="+-")  # 4 * 2 * 4 = 32 problems
    seen = {}
    for split in SPLITS:
        capacity = len(task._enumerated(split)[0])
        for p in task.problems(split, capacity, seed=0):
            assert p.operands not in seen
            seen[p.operands] = split
        with pytest.raises(ConfigError, match=f"{split} split .* has only {capacity}"):
            task.problems(split, capacity + 1, seed=0)
    assert len(seen) == 32 == task.space_size


def test_human_styles_are_uneven():
    task = tasks.get("chain", steps=5)
    rng = np.random.default_rng(0)
    problems = task.problems("train", 400, seed=0)
    humans = [task.human_solution(p, rng) for p in problems]
    refs = [task.reference_solution(p) for p in problems]
    answer_only = np.mean([h.count("\n") == 0 for h in humans])
    exact = np.mean([h == r for h, r in zip(humans, refs)])
    loose = np.mean([any(s.count("=") == 2 for s in h.split()) for h in humans])
    assert 0.15 < answer_only < 0.35 and 0.15 < exact < 0.4 and loose > 0.2
    none = tasks.get("chain", steps=5, human_skip_prob=0.0, human_loose_prob=0.0)
    assert all(none.human_solution(p, rng) == r for p, r in zip(problems[:50], refs))


@pytest.mark.parametrize("kwargs, match", [
    ({"steps": 0}, "steps must satisfy"),
    ({"modulus": 1}, "modulus must be an int in"),
    ({"ops": "+/"}, "ops must be a non-empty string"),
    ({"human_skip_prob": 2.0}, "human_skip_prob must be a probability"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        tasks.get("chain", **kwargs)


TASK = tasks.get("chain")
PROBLEM = TASK.problems("test", 1, seed=0)[0]


@settings(max_examples=120, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789+-*= \n\t", max_size=80), st.text(max_size=200),
                 st.none(), st.integers(), st.binary()))
def test_verify_never_raises(text):
    got = TASK.extract_answer(text)
    assert TASK.verify(PROBLEM, text) == (got is not None and got == PROBLEM.answer)


def _teacher_setting(eps=0.1, steps=(3, 6)):
    from selftaught.lm.distill import prompt_completion_rows
    from selftaught.lm.tokenizer import EOS, CharTokenizer
    from selftaught.tasks.chain import algorithmic_teacher

    task = tasks.get("chain", steps=steps, modulus=10, human_loose_prob=0.0)
    tok = CharTokenizer(task.alphabet)
    P, N = task.max_prompt_len + 2, task.max_solution_len + 1
    fn = algorithmic_teacher(task, {c: tok.encode(c)[0] for c in task.alphabet}, EOS,
                             tok.vocab_size, P, eps)

    def rows(problems, completions):
        return prompt_completion_rows(tok, [task.prompt(p) for p in problems], completions,
                                      P, N)
    return task, tok, jax.jit(fn), rows, P


def _continue_from(task, operands, k, written):
    """Independent reference: the reference text of a chain whose step k wrote `written`
    (then every later step is right from that value)."""
    value, lines = int(operands[0]), []
    for i in range(1, len(operands), 2):
        op, b = operands[i], int(operands[i + 1])
        new = written if len(lines) == k else apply_op(value, op, b, task.modulus)
        lines.append(f"{value}{op}{b}={new}")
        value = new
    return " ".join(lines) + f"\n={value}"


def test_algorithmic_teacher_predicts_the_reference_solution():
    task, tok, fn, rows, P = _teacher_setting()
    ps = task.problems("train", 64, seed=3)
    r = rows(ps, [task.reference_solution(p) for p in ps])
    pred = np.asarray(fn(r["tokens"]).argmax(-1))
    live = r["loss_mask"] > 0  # every completion token and the EOS
    nxt = np.concatenate([r["tokens"][:, 1:], np.zeros_like(r["tokens"][:, :1])], 1)
    assert live.sum() > 64 * 20 and (pred[live] == nxt[live]).all()


def test_algorithmic_teacher_continues_from_an_injected_wrong_result():
    """The student wrote a wrong result at step k: the teacher does not go back to the
    reference; it expects that value as the next line's left operand and every later result
    computed from it, down to the final answer."""
    task, tok, fn, rows, P = _teacher_setting(steps=5)
    rng = np.random.default_rng(0)
    ps = task.problems("train", 32, seed=4)
    texts, wrong_texts = [], []
    for p in ps:
        k = int(rng.integers(0, 4))
        right = int(task.reference_solution(p).split()[k][-1])
        written = (right + 1 + int(rng.integers(0, 9))) % 10
        texts.append(_continue_from(task, p.operands, k, written))
        wrong_texts.append((k, written))
    r = rows(ps, texts)
    pred = np.asarray(fn(r["tokens"]).argmax(-1))
    for i, (k, written) in enumerate(wrong_texts):
        got = tok.decode(pred[i, P - 1:])
        ref = texts[i]
        # identical everywhere except at the injected token, where it wants the right value
        at = 6 * k + 4
        assert got[:at] == ref[:at] and got[at + 1:] == ref[at + 1:]
        assert got[at] == task.reference_solution(ps[i])[at] != ref[at]
        assert ref[at + 2] == str(written)  # the next line starts from the wrong value


def test_algorithmic_teacher_mass_and_normalisation():
    import jax.numpy as jnp

    eps = 0.1
    task, tok, fn, rows, P = _teacher_setting(eps=eps)
    ps = task.problems("train", 8, seed=5)
    logits = fn(rows(ps, [task.reference_solution(p) for p in ps])["tokens"])
    prob = np.asarray(jax.nn.softmax(logits.astype(jnp.float32), -1), np.float64)
    V = tok.vocab_size
    np.testing.assert_allclose(prob.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(prob.max(-1), 1 - eps + eps / V, rtol=1e-5)
    np.testing.assert_allclose(np.sort(prob, -1)[..., 0], eps / V, rtol=1e-4)


def test_algorithmic_teacher_needs_single_digit_values():
    from selftaught.tasks.chain import algorithmic_teacher

    task = tasks.get("chain", steps=3, modulus=17)
    with pytest.raises(ConfigError, match="modulus <= 10"):
        algorithmic_teacher(task, {}, 2, 20, 12)


def test_step_labels_charge_the_error_to_the_step_that_makes_it():
    """Hand-checked: 7+8*6-9+4 mod 10 = 5; the second step writes 5*6=1 (wrong), the third
    computes right from the written 1 (1-9 = -8 = 2 mod 10), so only step 2 is wrong; the
    final line =6 follows from the written state (2+4 = 6) and is right, the answer is not."""
    task = tasks.get("chain", steps=4, modulus=10)
    p = task.make_problem((7, "+", 8, "*", 6, "-", 9, "+", 4))
    text = "7+8=5 5*6=1 1-9=2 2+4=6\n=6"
    assert task.step_labels(p, text) == [(4, True), (10, False), (16, True), (22, True),
                                         (26, True)]
    assert [text[o] for o, _ in task.step_labels(p, text)[:-1]] == ["5", "1", "2", "6"]
    assert not task.verify(p, text)
    ref = task.reference_solution(p)
    assert all(ok for _, ok in task.step_labels(p, ref))
    # skipped steps (the human style) carry the written state through the skipped operations
    assert task.step_labels(p, "7+8=15=5 0-9=1\n=5") == [(7, True), (13, True), (17, True)]
    assert task.step_labels(p, "=5") == [(2, True)] and task.step_labels(p, "=4") == [(2, False)]
    # a wrong loose RAW, a step that does not parse, a missing final line, an empty text
    assert task.step_labels(p, "7+8=14=5\n=5")[0] == (7, False)
    assert task.step_labels(p, "7+8=5 zz 0-9=1 1+4=5\n=5")[1] == (7, False)
    assert task.step_labels(p, "7+8=5 5*6=0") == [(4, True), (10, True), (11, False)]
    assert task.step_labels(p, "") == [(0, False)]


@pytest.mark.parametrize("kwargs", SETTINGS)
def test_step_labels_all_right_iff_a_well_formed_text_verifies(kwargs):
    """Reference and human solutions: every label right. One corrupted character anywhere
    in a reference solution: if it no longer verifies, some label is wrong, and if every
    label is right it verifies (process labels are at least as strict as the outcome)."""
    task = tasks.get("chain", **kwargs)
    rng = np.random.default_rng(0)
    for p in task.problems("train", 100, seed=2):
        for text in (task.reference_solution(p), task.human_solution(p, rng)):
            labels = task.step_labels(p, text)
            assert all(ok for _, ok in labels) and labels[-1][0] == len(text)
        ref = task.reference_solution(p)
        for _ in range(10):
            i = int(rng.integers(len(ref)))
            bad = ref[:i] + str(rng.choice(list(task.alphabet))) + ref[i + 1:]
            oks = [ok for _, ok in task.step_labels(p, bad)]
            assert all(oks) <= task.verify(p, bad)
            if bad != ref and bad[i] in "0123456789" and ref[i] in "0123456789":
                assert not all(oks)  # a changed digit breaks a relation somewhere
