"""Training rows for `lm.train.Trainer`: prompt+completion packing, loss masks, pair batches,
padding to a fixed capacity.

Every function returns a dict of NumPy arrays with one row per example and a "weight" column
(1 for real rows, 0 for padding): the trainer samples only rows with weight > 0, so a dataset
padded to a fixed `capacity` keeps one shape (one compilation) however many rows are real.

    rows  = pack_sft(tok, prompts, completions, max_len, capacity=1024)   # SFT / ORM rows
    pairs = pack_pairs(tok, prompts, chosen, rejected, max_len)           # DPO rows
    seeds = stack_rows([rows_seed0, rows_seed1])                          # for run_seeds

Layout and loss-mask convention: `CharTokenizer.encode_sft` (right-padded
`BOS prompt SEP completion EOS`; mask[t] = 1 iff token t+1 is a completion token or the EOS).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from selftaught import tasks
from selftaught.lm.model import ModelSize, TransformerConfig
from selftaught.lm.tokenizer import CharTokenizer


@dataclasses.dataclass
class TaskSetting:
    """What one seed of an LM recipe derives from its config before training anything: the
    task, its tokenizer and model shape, the problem splits and the human solutions."""

    task: Any
    tok: CharTokenizer
    model_cfg: TransformerConfig
    train: list  # the sampling pool; its first len(human) problems have a human solution
    valid: list
    test: list
    human: list[str]
    max_new: int  # sampler budget: the task's longest solution + EOS

    def clip(self, text: str) -> str:
        """A sample cut to fit a training row (a sample that never wrote EOS can be one token
        too long once EOS is appended)."""
        return text[: self.max_new - 1]

    def pack(self, problems: Sequence, texts: Sequence[str], capacity: int | None = None,
             **columns) -> dict:
        """`pack_sft` rows `BOS prompt(problem) SEP clip(text) EOS`, one per (problem, text)."""
        return pack_sft(self.tok, [self.task.prompt(p) for p in problems],
                        [self.clip(t) for t in texts], self.model_cfg.max_len, capacity,
                        **columns)

    def sample(self, params, problems: Sequence, n: int, key, *, temperature: float,
               top_k: int, batch_size: int, greedy: bool = False,
               description: str = "sampling"):
        """`lm.generate.generate`: `n` verified samples per problem from `params`, with this
        setting's model, tokenizer, task and sampling budget (`max_new`)."""
        from selftaught.lm.generate import generate  # lm.generate does not import lm.data

        return generate(params, self.model_cfg, self.tok, self.task, problems, n, key,
                        max_new_tokens=self.max_new, temperature=temperature, top_k=top_k,
                        greedy=greedy, batch_size=batch_size, description=description)

    def pack_pairs(self, problems: Sequence, chosen: Sequence[str], rejected: Sequence[str],
                   capacity: int | None = None) -> dict:
        """`pack_pairs` rows of (problem, chosen text, rejected text) triples, clipped."""
        return pack_pairs(self.tok, [self.task.prompt(p) for p in problems],
                          [self.clip(t) for t in chosen], [self.clip(t) for t in rejected],
                          self.model_cfg.max_len, capacity)


def task_setting(task: str, task_args: str, model: ModelSize, human_problems: int,
                 train_problems: int, eval_problems: int, seed: int,
                 valid_problems: int | None = None) -> TaskSetting:
    """Build the task (`tasks.get`), a character tokenizer, a model config sized for the
    task's longest prompt + solution, `train_problems` training problems (the first
    `human_problems` with one uneven human solution each, drawn with rng [seed, 7]) and
    `eval_problems` test problems and `valid_problems` (default: `eval_problems`) validation
    problems (disjoint splits)."""
    t = tasks.get(task, **tasks.parse_task_args(task_args))
    tok = CharTokenizer(t.alphabet)
    max_new = t.max_solution_len + 1  # + EOS
    model_cfg = model.config(tok.vocab_size, t.max_prompt_len + 2 + max_new)
    rng = np.random.default_rng([seed, 7])
    train = t.problems("train", train_problems, seed)
    human = [t.human_solution(p, rng) for p in train[:human_problems]]
    return TaskSetting(task=t, tok=tok, model_cfg=model_cfg, train=train,
                       valid=t.problems("valid", eval_problems if valid_problems is None
                                        else valid_problems, seed),
                       test=t.problems("test", eval_problems, seed), human=human,
                       max_new=max_new)


def pad_rows(arrays: dict[str, np.ndarray], capacity: int | None = None) -> dict:
    """Pad every array (same first dimension n) with zero rows to `capacity` rows (None: n)
    and add "weight" = 1 for the n real rows, 0 for the padding."""
    n = len(next(iter(arrays.values()))) if arrays else 0
    if any(len(v) != n for v in arrays.values()):
        raise ValueError(f"arrays have different row counts: "
                         f"{ {k: len(v) for k, v in arrays.items()} }")
    capacity = n if capacity is None else capacity
    if n > capacity:
        raise ValueError(f"{n} rows exceed capacity {capacity}")
    out = {k: np.concatenate([v, np.zeros((capacity - n, *v.shape[1:]), v.dtype)])
           for k, v in arrays.items()}
    out["weight"] = np.concatenate([np.ones(n, np.float32), np.zeros(capacity - n, np.float32)])
    return out


def pack_sft(tok: CharTokenizer, prompts: Sequence[str], completions: Sequence[str],
             max_len: int, capacity: int | None = None, **columns: Sequence) -> dict:
    """SFT rows: tokens int32[C, max_len], loss_mask float32[C, max_len], weight float32[C].

    Extra keyword columns (e.g. `label=[1, 0, ...]` for an ORM) are added as arrays, one
    value per example, padded like the rest.
    """
    n = len(completions)
    if n:
        enc = tok.encode_sft(prompts, completions, max_len)
    else:
        enc = {"tokens": np.zeros((0, max_len), np.int32),
               "loss_mask": np.zeros((0, max_len), np.float32)}
    for name, values in columns.items():
        if len(values) != n:
            raise ValueError(f"column {name!r} has {len(values)} values for {n} rows")
        enc[name] = np.asarray(values)
    return pad_rows(enc, capacity)


def pack_pairs(tok: CharTokenizer, prompts: Sequence[str], chosen: Sequence[str],
               rejected: Sequence[str], max_len: int, capacity: int | None = None) -> dict:
    """Preference rows for DPO: chosen_tokens/chosen_mask, rejected_tokens/rejected_mask
    (each as in `pack_sft`) and weight. Add the reference log-probs with `add_columns`."""
    if not len(prompts) == len(chosen) == len(rejected):
        raise ValueError(f"{len(prompts)} prompts, {len(chosen)} chosen, "
                         f"{len(rejected)} rejected: need one of each per pair")
    c = pack_sft(tok, prompts, chosen, max_len)
    r = pack_sft(tok, prompts, rejected, max_len)
    return pad_rows({"chosen_tokens": c["tokens"], "chosen_mask": c["loss_mask"],
                     "rejected_tokens": r["tokens"], "rejected_mask": r["loss_mask"]},
                    capacity)


def add_columns(rows: dict, **columns: np.ndarray) -> dict:
    """A copy of `rows` with columns for its REAL rows (weight > 0, which come first) added,
    zero-padded to the capacity."""
    n, cap = int(np.sum(rows["weight"] > 0)), len(rows["weight"])
    out = dict(rows)
    for name, values in columns.items():
        values = np.asarray(values)
        if len(values) != n:
            raise ValueError(f"column {name!r} has {len(values)} values for {n} real rows")
        out[name] = np.concatenate([values, np.zeros((cap - n, *values.shape[1:]),
                                                     values.dtype)])
    return out


def preference_pairs(correct: Sequence[Sequence[str]], incorrect: Sequence[Sequence[str]],
                     max_pairs: int, rng: np.random.Generator) -> list[tuple[int, str, str]]:
    """(problem index, chosen, rejected) pairs of the same problem: up to `max_pairs` per
    problem drawn without replacement from all correct x incorrect combinations."""
    pairs = []
    for i, (good, bad) in enumerate(zip(correct, incorrect)):
        m = len(good) * len(bad)
        if m == 0:
            continue
        pick = rng.choice(m, size=min(max_pairs, m), replace=False)
        pairs += [(i, good[j // len(bad)], bad[j % len(bad)]) for j in sorted(pick)]
    return pairs


def stack_rows(datasets: Sequence[dict]) -> dict:
    """Stack per-seed datasets (same keys and shapes) along a new leading seed axis."""
    return {k: np.stack([d[k] for d in datasets]) for k in datasets[0]}
