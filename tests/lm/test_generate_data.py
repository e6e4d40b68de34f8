"""lm.data (packing, pairs, padding) and lm.generate (N verified samples per prompt)."""

import jax
import numpy as np
import pytest

from selftaught import tasks
from selftaught.lm.data import (
    add_columns,
    pack_pairs,
    pack_sft,
    pad_rows,
    preference_pairs,
    stack_rows,
)
from selftaught.lm.generate import call_rows, generate
from selftaught.lm.model import TransformerConfig, init_params
from selftaught.lm.sampler import sample
from selftaught.lm.tokenizer import EOS, PAD, CharTokenizer

TOK = CharTokenizer("0123456789+=")


def test_pack_sft_pads_to_capacity_with_zero_weight_and_extra_columns():
    rows = pack_sft(TOK, ["1+2=", "10+5="], ["3", "15"], 12, capacity=4, label=[1, 0])
    enc = TOK.encode_sft(["1+2=", "10+5="], ["3", "15"], 12)
    np.testing.assert_array_equal(rows["tokens"][:2], enc["tokens"])
    np.testing.assert_array_equal(rows["loss_mask"][:2], enc["loss_mask"])
    assert (rows["tokens"][2:] == PAD).all() and (rows["loss_mask"][2:] == 0).all()
    assert rows["weight"].tolist() == [1, 1, 0, 0] and rows["label"].tolist() == [1, 0, 0, 0]
    assert rows["tokens"].dtype == np.int32 and rows["loss_mask"].dtype == np.float32
    empty = pack_sft(TOK, [], [], 12, capacity=3)
    assert empty["tokens"].shape == (3, 12) and empty["weight"].sum() == 0
    assert pack_sft(TOK, ["1="], ["1"], 12)["weight"].tolist() == [1]  # capacity None = n
    with pytest.raises(ValueError, match="exceed capacity 1"):
        pack_sft(TOK, ["1=", "2="], ["1", "2"], 12, capacity=1)
    with pytest.raises(ValueError, match="column 'label' has 1 values for 2 rows"):
        pack_sft(TOK, ["1=", "2="], ["1", "2"], 12, label=[1])
    with pytest.raises(ValueError, match="different row counts"):
        pad_rows({"a": np.zeros(2), "b": np.zeros(3)})


def test_pack_pairs_add_columns_and_stack():
    pairs = pack_pairs(TOK, ["1+1=", "2+2="], ["2", "4"], ["3", "44"], 10, capacity=3)
    np.testing.assert_array_equal(pairs["chosen_tokens"][:2],
                                  TOK.encode_sft(["1+1=", "2+2="], ["2", "4"], 10)["tokens"])
    np.testing.assert_array_equal(pairs["rejected_mask"][:2],
                                  TOK.encode_sft(["1+1=", "2+2="], ["3", "44"], 10)["loss_mask"])
    assert pairs["weight"].tolist() == [1, 1, 0]
    with_ref = add_columns(pairs, ref_chosen_lp=np.array([-1.0, -2.0], np.float32))
    assert with_ref["ref_chosen_lp"].tolist() == [-1.0, -2.0, 0.0] and "ref_chosen_lp" not in pairs
    with pytest.raises(ValueError, match="2 real rows"):
        add_columns(pairs, x=np.zeros(3))
    with pytest.raises(ValueError, match="one of each per pair"):
        pack_pairs(TOK, ["1="], ["1", "2"], ["3"], 10)
    stacked = stack_rows([pairs, pairs])
    assert stacked["chosen_tokens"].shape == (2, 3, 10) and stacked["weight"].shape == (2, 3)


def test_preference_pairs_same_problem_distinct_and_capped():
    correct = [["a", "b"], [], ["c"], ["d", "e", "f"]]
    wrong = [["x", "y", "z"], ["w"], [], ["v"]]
    pairs = preference_pairs(correct, wrong, max_pairs=4, rng=np.random.default_rng(0))
    by_problem = {i: [(c, r) for j, c, r in pairs if j == i] for i in range(4)}
    assert len(by_problem[0]) == 4 and len(set(by_problem[0])) == 4  # 4 of the 6 combinations
    assert by_problem[1] == [] and by_problem[2] == []  # no correct or no incorrect sample
    assert sorted(by_problem[3]) == [("d", "v"), ("e", "v"), ("f", "v")]
    for i, c, r in pairs:
        assert c in correct[i] and r in wrong[i]


@pytest.fixture(scope="module")
def setting():
    task = tasks.get("addition", digits=1)
    tok = CharTokenizer(task.alphabet)
    cfg = TransformerConfig(vocab_size=tok.vocab_size, max_len=task.max_prompt_len + 3
                            + task.max_solution_len, d_model=16, n_layers=1, n_heads=2)
    params = init_params(cfg, jax.random.PRNGKey(0))
    return task, tok, cfg, params, task.problems("train", 5, 0)


def test_generate_verifies_decodes_and_matches_one_sampler_call(setting):
    task, tok, cfg, params, problems = setting
    key = jax.random.PRNGKey(3)
    out = generate(params, cfg, tok, task, problems, 3, key, temperature=1.0, batch_size=16)
    L = task.max_solution_len + 1
    assert out.tokens.shape == out.mask.shape == out.logprobs.shape == (5, 3, L)
    assert out.correct.shape == (5, 3) and len(out.texts) == 5 and len(out.texts[0]) == 3
    # one call (16 rows >= 15) with the key fold_in(key, 0) and the 15 prompts repeated
    enc = tok.encode_prompts([task.prompt(p) for p in problems for _ in range(3)],
                             task.max_prompt_len + 2)
    idx = np.arange(16) % 15
    ref = sample(params, cfg, enc["tokens"][idx], enc["mask"][idx], jax.random.fold_in(key, 0),
                 max_new_tokens=L, temperature=1.0)
    np.testing.assert_array_equal(out.tokens.reshape(15, L), np.asarray(ref.tokens_BxN)[:15])
    np.testing.assert_allclose(out.logprobs.reshape(15, L), np.asarray(ref.logprobs_BxN)[:15])
    lengths = np.asarray(ref.lengths_B)[:15]
    np.testing.assert_array_equal(out.mask.reshape(15, L).sum(1), lengths)
    for p, ts, ans, ok, toks in zip(problems, out.texts, out.answers, out.correct, out.tokens):
        for t, a, c, row in zip(ts, ans, ok, toks):
            assert t == tok.decode(row) and a == task.extract_answer(t)
            assert c == task.verify(p, t)
    # a model that always writes the right answer: every sample is correct and kept per cap
    good = generate(params, cfg, tok, _Oracle(task), problems, 3, key, batch_size=4)
    assert good.correct.all() and good.num_correct.tolist() == [3] * 5
    probs, texts = good.correct_texts(max_per_problem=2)
    assert probs == [p for p in problems for _ in range(2)] and len(texts) == 10
    corr, wrong = good.split_by_correctness()
    assert [len(c) for c in corr] == [3] * 5 and wrong == [[]] * 5
    # batch size changes the keys but never the layout
    assert (good.mask.sum(-1) >= 1).all() and (good.tokens[good.mask] != PAD).all()
    ends = good.tokens[np.arange(5)[:, None], np.arange(3), good.mask.sum(-1) - 1]
    assert ((ends == EOS) | (good.mask.sum(-1) == L)).all()


def test_call_rows_rounds_up_to_an_eighth_of_the_batch():
    assert [call_rows(m, 1024) for m in (1, 128, 129, 176, 576, 1000, 1024)] == [
        128, 128, 256, 256, 640, 1024, 1024]
    assert [call_rows(m, 4) for m in (1, 3, 4)] == [1, 3, 4]  # batch < 8: no padding
    assert len({call_rows(m, 1000) for m in range(1, 1001)}) == 8  # at most 8 shapes


def test_generate_pads_the_last_call_only_to_call_rows_with_the_same_draws(setting):
    """23 rows in calls of 16: the second call (7 real rows) decodes call_rows(7, 16) = 8
    rows, yet every row is what the old full-batch padding gave: the same key, and a row's
    draws do not depend on how many rows follow it in its call."""
    task, tok, cfg, params, _ = setting
    problems = task.problems("train", 23, 1)
    key = jax.random.PRNGKey(5)
    L = task.max_solution_len + 1
    enc = tok.encode_prompts([task.prompt(p) for p in problems], task.max_prompt_len + 2)
    full = [sample(params, cfg, enc["tokens"][idx], enc["mask"][idx],
                   jax.random.fold_in(key, start), max_new_tokens=L, temperature=1.0)
            for start, idx in ((0, np.arange(16)), (16, np.arange(16, 32) % 23))]
    ref_toks = np.concatenate([np.asarray(o.tokens_BxN) for o in full])[:23]
    ref_lps = np.concatenate([np.asarray(o.logprobs_BxN) for o in full])[:23]
    out = generate(params, cfg, tok, task, problems, 1, key, temperature=1.0, batch_size=16)
    np.testing.assert_array_equal(out.tokens[:, 0], ref_toks)
    np.testing.assert_allclose(out.logprobs[:, 0], ref_lps, rtol=1e-6, atol=1e-6)
    greedy = generate(params, cfg, tok, task, problems, 1, key, greedy=True, batch_size=16)
    one = sample(params, cfg, enc["tokens"], enc["mask"], key, max_new_tokens=L, greedy=True)
    np.testing.assert_array_equal(greedy.tokens[:, 0], np.asarray(one.tokens_BxN))


class _Oracle:
    """The addition task with a verifier that accepts everything (to test bookkeeping)."""

    def __init__(self, task):
        self._task = task

    def __getattr__(self, name):
        return getattr(self._task, name)

    def verify(self, problem, text):
        return True


def test_task_setting_sizes_the_model_for_the_task_and_splits_are_disjoint():
    from selftaught.lm.data import task_setting
    from selftaught.lm.model import ModelSize

    s = task_setting("chain", "steps=(2, 3)", ModelSize(d_model=16, n_heads=2), 5, 12, 6, seed=4)
    assert (len(s.train), len(s.valid), len(s.test), len(s.human)) == (12, 6, 6, 5)
    assert all(s.task.verify(p, h) for p, h in zip(s.train, s.human))
    assert not {p.id for p in s.train} & {p.id for p in s.test}
    assert s.max_new == s.task.max_solution_len + 1
    assert s.model_cfg.max_len == s.task.max_prompt_len + 2 + s.max_new
    assert (s.model_cfg.d_model, s.model_cfg.n_heads, s.model_cfg.vocab_size) == (
        16, 2, s.tok.vocab_size)
    # valid_problems sizes the validation split alone; each split is prefix-stable in n
    v = task_setting("chain", "steps=(2, 3)", ModelSize(d_model=16, n_heads=2), 5, 12, 9,
                     seed=4, valid_problems=3)
    assert (len(v.valid), len(v.test)) == (3, 9)
    assert [p.id for p in v.valid] == [p.id for p in s.valid[:3]]
    assert [p.id for p in v.test[:6]] == [p.id for p in s.test]
    assert not {p.id for p in v.valid} & {p.id for p in v.test}
    # the longest prompt plus the longest solution fits one training row
    rows = pack_sft(s.tok, ["9" * s.task.max_prompt_len], ["9" * s.task.max_solution_len],
                    s.model_cfg.max_len)
    assert rows["tokens"].shape == (1, s.model_cfg.max_len)


def test_task_setting_pack_clips_overlong_samples_and_pairs_match_pack_pairs():
    from selftaught.lm.data import task_setting
    from selftaught.lm.model import ModelSize

    s = task_setting("chain", "steps=(1, 2)", ModelSize(d_model=16, n_heads=2), 0, 3, 2, seed=1)
    long = "1" * s.max_new  # a sample that never wrote EOS
    rows = s.pack(s.train[:2], [long, "=3"], capacity=4, label=[1, 0])
    assert rows["tokens"].shape == (4, s.model_cfg.max_len) and rows["label"].tolist() == [
        1, 0, 0, 0]
    assert s.tok.decode(rows["tokens"][0]) == s.task.prompt(s.train[0]) + long[:-1]
    ref = pack_sft(s.tok, [s.task.prompt(p) for p in s.train[:2]], [long[:-1], "=3"],
                   s.model_cfg.max_len, 4, label=[1, 0])
    for k in ref:
        np.testing.assert_array_equal(rows[k], ref[k])
    pr = s.pack_pairs(s.train[:2], ["=1", long], ["=2", "=0"])
    c = s.pack(s.train[:2], ["=1", long])
    np.testing.assert_array_equal(pr["chosen_tokens"], c["tokens"])
    np.testing.assert_array_equal(pr["chosen_mask"], c["loss_mask"])
