"""instability-proxies: the byte-level corpus (the Python standard library's sources, split by
file), the on-device batch and validation functions and the model."""

from __future__ import annotations

import functools
import hashlib
import platform
import sysconfig
import zlib
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import ConfigError, DataError, check
from selftaught.lm import sweep as sw
from selftaught.lm.model import Transformer, TransformerConfig
from selftaught.recipes.instability_proxies.config import (
    VOCAB,
    InstabilityConfig,
)


def stdlib_files() -> list[Path]:
    """The standard library's .py files (sorted), found via sysconfig; no download."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py")
                   if "site-packages" not in p.parts and "test" not in p.parts[len(root.parts):])
    if not files:
        raise ConfigError(f"no Python source files found under {root}; this recipe reads the "
                          "standard library's sources, install a full Python")
    return files


def is_val_file(rel: str, val_every: int) -> bool:
    return zlib.crc32(rel.encode()) % val_every == 0


@functools.lru_cache(maxsize=4)
def load_text(train_bytes: int, val_bytes: int, val_every: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) uint8 streams: files concatenated in sorted order, split by file."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, val, nt, nv = [], [], 0, 0
    for p in stdlib_files():
        rel = str(p.relative_to(root))
        is_val = is_val_file(rel, val_every)
        if (nv >= val_bytes) if is_val else (nt >= train_bytes):
            if nt >= train_bytes and nv >= val_bytes:
                break
            continue
        data = p.read_bytes()
        (val if is_val else train).append(data)
        if is_val:
            nv += len(data)
        else:
            nt += len(data)
    tr = np.frombuffer(b"".join(train), np.uint8)[:train_bytes]
    va = np.frombuffer(b"".join(val), np.uint8)[:val_bytes]
    return tr.astype(np.int32), va.astype(np.int32)


def make_data(cfg: InstabilityConfig) -> dict:
    T = cfg.seq_len
    train, val = load_text(cfg.train_bytes, cfg.val_windows * (T + 1), cfg.val_every)
    check(len(val) >= cfg.val_windows * (T + 1),
          f"only {len(val)} validation bytes; lower --val-windows or --val-every")
    return {"train": jnp.asarray(train), "val": jnp.asarray(val.reshape(cfg.val_windows, T + 1))}


def check_corpus(run_dir, data: dict) -> None:
    """The corpus is this Python's standard library, so it differs between Python builds: a
    run records its SHA-256 (and the Python version) once as a `corpus` event, and a resume
    on a Python whose corpus differs stops with one line instead of mixing two corpora."""
    h = hashlib.sha256()
    for k in ("train", "val"):
        h.update(np.asarray(data[k], np.uint8).tobytes())
    digest, version = h.hexdigest(), platform.python_version()
    before = run_dir.events("corpus")
    if not before:
        run_dir.log("corpus", sha256=digest, python=version,
                    train_bytes=int(np.size(data["train"])), val_bytes=int(np.size(data["val"])))
    elif before[0]["sha256"] != digest:
        raise DataError(
            f"{run_dir.path} was trained on the standard-library corpus of Python "
            f"{before[0]['python']} (SHA-256 {before[0]['sha256'][:12]}), this Python "
            f"{version} gives another ({digest[:12]}); resume it with that Python, or start "
            "a new run")


def make_batch_fn(cfg: InstabilityConfig):
    T, B = cfg.seq_len, cfg.batch_size

    def batch_fn(data, rng):
        stream = data["train"]
        off_B = jax.random.randint(rng, (B,), 0, stream.shape[0] - T - 1)
        win_BxT1 = jax.vmap(lambda o: jax.lax.dynamic_slice(stream, (o,), (T + 1,)))(off_B)
        return {"tokens": win_BxT1[:, :-1], "targets": win_BxT1[:, 1:],
                "mask": jnp.ones((B, T), jnp.float32)}

    return batch_fn


def model_config(cfg: InstabilityConfig, width: int, qk_ln: bool) -> TransformerConfig:
    return TransformerConfig(vocab_size=VOCAB, max_len=cfg.seq_len, d_model=width,
                             n_layers=cfg.n_layers, n_heads=width // cfg.head_dim,
                             qk_layernorm=qk_ln)


def make_eval_fn(mcfg: TransformerConfig):
    model = Transformer(mcfg)

    def eval_fn(params, data):
        win = data["val"]
        logits = model.apply(params, win[:, :-1])
        xent, logz, _ = sw.xent_and_logz(logits, win[:, 1:], jnp.ones(win[:, 1:].shape))
        return {"val_loss": xent, "val_log_z": logz}

    return eval_fn
