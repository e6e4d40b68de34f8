"""length-generalization: the addition format (reversed output, index hints), train / validation
/ test pairs by length, the on-device batch and evaluation functions, the model and its sweep."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import check
from selftaught.core.seeding import np_rng
from selftaught.lm import sweep as sw
from selftaught.lm.model import Transformer, TransformerConfig
from selftaught.recipes.length_generalization.config import (
    BOS,
    DIGIT0,
    EOS,
    HINT0,
    PAD,
    PLUS,
    SEP,
    LengthGenConfig,
    Variant,
    seq_len,
)


def encode(a: int, b: int, v: Variant, hint_offset: int = 0) -> tuple[list[int], int]:
    """Token ids of `a+b=c` in the variant's format, and the index where the answer starts.
    The hint of place i is HINT0 + hint_offset + i."""

    def number(x: int, reverse: bool) -> list[int]:
        ds = [int(c) for c in str(x)][::-1]  # least significant first, place i = index i
        items = [[HINT0 + hint_offset + i, DIGIT0 + d] if v.index_hints else [DIGIT0 + d]
                 for i, d in enumerate(ds)]
        if not reverse:
            items = items[::-1]
        return [t for item in items for t in item]

    toks = [BOS, *number(a, False), PLUS, *number(b, False), SEP]
    start = len(toks)
    return toks + number(a + b, v.reversed_output) + [EOS], start


def encode_batch(pairs, v: Variant, T: int, hint_offsets=None) -> dict[str, np.ndarray]:
    """Right-padded tokens, next-token targets and the answer loss mask (answer + EOS);
    hint_offsets: one hint offset per pair (default 0)."""
    n = len(pairs)
    tokens = np.zeros((n, T), np.int32)
    mask = np.zeros((n, T), np.float32)
    offsets = np.zeros(n, np.int64) if hint_offsets is None else np.asarray(hint_offsets)
    for i, (a, b) in enumerate(pairs):
        toks, start = encode(int(a), int(b), v, int(offsets[i]))
        tokens[i, :len(toks)] = toks
        mask[i, start - 1:len(toks) - 1] = 1.0  # position t predicts token t+1
    targets = np.concatenate([tokens[:, 1:], np.zeros((n, 1), np.int32)], axis=1)
    return {"tokens": tokens, "targets": targets, "mask": mask}


def random_numbers(rng: np.random.Generator, digits: np.ndarray) -> list[int]:
    """One uniform number with exactly digits[i] digits per entry (Python ints: any size)."""
    out = []
    for d in digits:
        ds = rng.integers(0, 10, int(d))
        if d > 1:
            ds[0] = rng.integers(1, 10)
        out.append(int("".join(map(str, ds))))
    return out


def train_pairs(cfg: LengthGenConfig, seed: int) -> list[tuple[int, int]]:
    rng = np_rng(seed, 1)
    na = rng.integers(1, cfg.train_digits + 1, cfg.train_examples)
    nb = rng.integers(1, cfg.train_digits + 1, cfg.train_examples)
    return list(zip(random_numbers(rng, na), random_numbers(rng, nb), strict=True))


def test_pairs(cfg: LengthGenConfig, seed: int, split: str = "test"
               ) -> list[list[tuple[int, int]]]:
    """Per length n = 1..test_digits: test_examples pairs with both operands of n digits.
    split "val" draws an independent set from another stream: the validation pairs on which
    choices (lr, steps, model) are made; "test" pairs are only reported."""
    check(split in ("test", "val"), f"split must be 'test' or 'val', got {split!r}")
    rng = np_rng(seed, 2 if split == "test" else 3)
    out = []
    for n in range(1, cfg.test_digits + 1):
        d = np.full(cfg.test_examples, n)
        out.append(list(zip(random_numbers(rng, d), random_numbers(rng, d), strict=True)))
    return out


def make_data(cfg: LengthGenConfig, v: Variant, seed: int) -> dict:
    T_train = seq_len(cfg.train_digits, v)
    T_test = seq_len(cfg.test_digits, v)
    offsets = None
    if cfg.hint_offsets and v.index_hints:  # answer places 0..L shifted into 0..test_digits
        offsets = np_rng(seed, 4).integers(0, cfg.test_digits - cfg.train_digits + 1,
                                           cfg.train_examples)
    train = encode_batch(train_pairs(cfg, seed), v, T_train, offsets)
    out = {"train": {k: jnp.asarray(x) for k, x in train.items()}}
    for split in ("test", "val"):
        per = [encode_batch(p, v, T_test) for p in test_pairs(cfg, seed, split)]
        out[split] = {k: jnp.asarray(np.stack([t[k] for t in per])) for k in per[0]}  # L x N x T
    return out


def make_batch_fn(cfg: LengthGenConfig, v: Variant):
    B, P = cfg.batch_size, cfg.max_positions

    def batch_fn(data, rng):
        r_idx, r_pos = jax.random.split(rng)
        tr = data["train"]
        idx = jax.random.randint(r_idx, (B,), 0, tr["tokens"].shape[0])
        batch = {k: x[idx] for k, x in tr.items()}
        T = batch["tokens"].shape[1]
        batch["attn_mask"] = batch["tokens"] != PAD
        if v.randomized_positions:
            keys = jax.random.split(r_pos, B)
            pick = lambda k: jnp.sort(jax.random.permutation(k, P)[:T])
            batch["positions"] = jax.vmap(pick)(keys).astype(jnp.int32)
        else:
            batch["positions"] = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
        return batch

    return batch_fn


def make_eval_fn(mcfg: TransformerConfig):
    model = Transformer(mcfg)

    def per_length(params, t):
        logits = model.apply(params, t["tokens"], None, t["tokens"] != PAD)
        right = (jnp.argmax(logits, -1) == t["targets"]) | (t["mask"] == 0)
        return jnp.mean(jnp.all(right, axis=-1))

    def eval_fn(params, data):
        return {"exact_match": jax.lax.map(lambda t: per_length(params, t), data["test"]),
                "val_exact_match": jax.lax.map(lambda t: per_length(params, t), data["val"])}

    return eval_fn


def model_config(cfg: LengthGenConfig, v: Variant) -> TransformerConfig:
    return TransformerConfig(vocab_size=HINT0 + cfg.test_digits + 2, max_len=cfg.max_positions,
                             d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                             pos_encoding=v.pos_encoding)


@functools.lru_cache(maxsize=16)
def _sweep(cfg: LengthGenConfig, v: Variant) -> sw.Sweep:
    mcfg = model_config(cfg, v)
    scfg = sw.SweepConfig(total_steps=cfg.steps, batch_size=cfg.batch_size, b2=0.98,
                          final_lr_ratio=0.0, chunk=cfg.chunk)
    return sw.make_sweep(mcfg, scfg, make_batch_fn(cfg, v), make_eval_fn(mcfg))
