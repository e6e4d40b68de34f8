"""N verified samples per prompt: the E-step / candidate-generation building block.

    out = generate(params, model_cfg, tok, task, problems, n=16, rng=key,
                   temperature=0.7, top_k=40)
    out.correct        # bool[P, n]: the task's verifier on each sample
    out.texts[p][j]    # decoded completion j of problem p
    out.answers[p][j]  # its parsed final answer (None if malformed)
    out.tokens, out.mask, out.logprobs   # [P, n, L] completion tokens (EOS included, PAD
                                         # after), their mask, per-token sampling log-probs
    probs, texts = out.correct_texts(max_per_problem=2)   # ReST^EM / V-STaR's D_gen

Every sampler call is the jitted KV-cached `lm.sampler.sample` on `batch_size` rows; the
last call's rows are padded (by repeating rows) only up to a multiple of `batch_size // 8`
(`call_rows`), so there are at most 8 call shapes per batch size (8 compilations) and a
call for 200 rows decodes 256, not 1024. There is no Python loop per token or per problem
on the device. Rows are ordered problem-major (row p * n + j) and the call that starts at
row r samples with `fold_in(rng, r)`: results depend on `batch_size`, not on the padding
(a row's random draws depend on the call's key and the row's index in the call, never on
how many rows follow it: JAX's partitionable threefry, on by default, is required).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from selftaught.core import progress
from selftaught.lm.model import TransformerConfig
from selftaught.lm.sampler import sample
from selftaught.lm.tokenizer import EOS, PAD, CharTokenizer


@dataclasses.dataclass
class Samples:
    """`n` completions for each of P problems (see the module docstring)."""

    problems: list
    tokens: np.ndarray  # int32 [P, n, L]
    mask: np.ndarray  # bool [P, n, L]: generated tokens, the EOS included
    logprobs: np.ndarray  # float32 [P, n, L]: log-prob of each token under the sampling dist.
    texts: list[list[str]]
    answers: list[list[Any]]
    correct: np.ndarray  # bool [P, n]

    @property
    def num_correct(self) -> np.ndarray:
        """int [P]: correct samples per problem."""
        return self.correct.sum(axis=1)

    def correct_texts(self, max_per_problem: int | None = None) -> tuple[list, list[str]]:
        """(problems, texts) of the correct samples, at most `max_per_problem` per problem
        (the first ones in sampling order), problem by problem."""
        probs, texts = [], []
        for p, ts, ok in zip(self.problems, self.texts, self.correct):
            good = [t for t, c in zip(ts, ok) if c][:max_per_problem]
            probs += [p] * len(good)
            texts += good
        return probs, texts

    def split_by_correctness(self) -> tuple[list[list[str]], list[list[str]]]:
        """Per problem, (correct texts, incorrect texts)."""
        good = [[t for t, c in zip(ts, ok) if c] for ts, ok in zip(self.texts, self.correct)]
        bad = [[t for t, c in zip(ts, ok) if not c] for ts, ok in zip(self.texts, self.correct)]
        return good, bad


def call_rows(m: int, batch_size: int) -> int:
    """Rows of a sampler call that holds `m` (1 <= m <= batch_size) real rows: m rounded up
    to a multiple of `max(1, batch_size // 8)`, at most `batch_size`."""
    step = max(1, batch_size // 8)
    return min(batch_size, -(-m // step) * step)


def generate(params, model_cfg: TransformerConfig, tok: CharTokenizer, task, problems: Sequence,
             n: int, rng: jax.Array, *, max_new_tokens: int | None = None,
             prompt_len: int | None = None, temperature: float = 1.0, top_k: int = 0,
             greedy: bool = False, batch_size: int = 1024,
             description: str = "sampling") -> Samples:
    """`n` samples per problem from `params`, decoded, parsed and verified with `task`.

    `max_new_tokens` defaults to `task.max_solution_len + 1` (room for the EOS) and
    `prompt_len` to `task.max_prompt_len + 2` (BOS and SEP): fixed shapes per task.
    """
    if n < 1:
        raise ValueError(f"n={n} samples per problem must be >= 1")
    max_new = task.max_solution_len + 1 if max_new_tokens is None else max_new_tokens
    plen = task.max_prompt_len + 2 if prompt_len is None else prompt_len
    prompts = [task.prompt(p) for p in problems for _ in range(n)]
    rows, P = len(prompts), len(problems)
    toks = np.full((rows, max_new), PAD, np.int32)
    lps = np.zeros((rows, max_new), np.float32)
    if rows:
        enc = tok.encode_prompts(prompts, plen)
        with progress.bar(description, total=rows) as bar:
            for start in range(0, rows, batch_size):
                m = min(batch_size, rows - start)
                idx = np.arange(start, start + call_rows(m, batch_size)) % rows  # padded
                out = sample(params, model_cfg, enc["tokens"][idx], enc["mask"][idx],
                             jax.random.fold_in(rng, start), max_new_tokens=max_new,
                             temperature=temperature, top_k=top_k, greedy=greedy)
                toks[start:start + m] = np.asarray(out.tokens_BxN)[:m]
                lps[start:start + m] = np.asarray(out.logprobs_BxN)[:m]
                bar.advance(m)
    # generated = up to and including the first EOS (PAD after it, never sampled before)
    after_eos = np.cumsum(toks == EOS, axis=1) - (toks == EOS) > 0
    mask = (toks != PAD) & ~after_eos
    texts = tok.decode_batch(toks)
    answers = [task.extract_answer(t) for t in texts]
    correct = np.array([task.verify(problems[r // n], texts[r]) for r in range(rows)], bool)
    shape = (P, n, max_new)
    return Samples(
        problems=list(problems),
        tokens=toks.reshape(shape),
        mask=mask.reshape(shape),
        logprobs=lps.reshape(shape),
        texts=[texts[i * n:(i + 1) * n] for i in range(P)],
        answers=[answers[i * n:(i + 1) * n] for i in range(P)],
        correct=correct.reshape(P, n),
    )
