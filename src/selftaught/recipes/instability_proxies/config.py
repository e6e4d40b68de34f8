"""instability-proxies: the configuration (widths, learning rates, interventions, budget)."""

from __future__ import annotations

import dataclasses

from selftaught.core.errors import check, check_at_least_one

VOCAB = 256  # bytes


@dataclasses.dataclass(frozen=True)
class InstabilityConfig:
    """LR x width sweeps of a byte-level LM on the Python standard library's sources."""

    seed: int = 0
    """first seed; a seed sets both weight init and data order"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    widths: tuple[int, ...] = (16, 32, 64)
    """model widths d_model (head dim `head_dim`, so heads = width / head_dim)"""
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
    """peak learning rates of the sweep (log-spaced; >= 3 orders of magnitude)"""
    n_layers: int = 2
    """transformer layers"""
    head_dim: int = 16
    """attention head dimension"""
    seq_len: int = 64
    """training context (bytes)"""
    steps: int = 200
    """optimizer steps per run"""
    batch_size: int = 8
    """sequences per step"""
    warmup_steps: int = 20
    """linear warmup steps of every run (the 'long warmup' intervention uses warmup_long)"""
    warmup_long: int = 100
    """warmup of the long-warmup intervention"""
    weight_decay: float = 1e-4
    """weight decay (coupled: multiplied by lr_t, as AdamW; independent: by lr_t / lr)"""
    z_loss: float = 1e-4
    """z-loss coefficient of the z-loss intervention (paper: 1e-4 log^2 Z)"""
    eps: float = 1e-8
    """AdamW epsilon of every run but the small-eps intervention (1e-15)"""
    extra_width: int = 32
    """width of the extra interventions (warmup, independent wd, muParam, eps); 0 = skip"""
    mup_base_width: int = 16
    """simple muParam: hidden-matrix lr scaled by mup_base_width / width"""
    train_bytes: int = 2_000_000
    """bytes of training text taken from the train files"""
    val_windows: int = 128
    """validation windows of seq_len bytes (from the validation files)"""
    val_every: int = 10
    """1 in val_every source files (by a hash of its path) is a validation file"""
    band: float = 0.25
    """combined claim: losses within this many nats of the best count as flat"""
    flat_decades: float = 2.0
    """combined claim: the flat lr range must span at least this many decades"""
    chunk: int = 100
    """steps per compiled chunk (a checkpoint per chunk)"""

    def validate(self) -> None:
        check(len(self.lrs) >= 1, "the lr grid is empty; give at least one --lrs value")
        check(all(lr > 0 for lr in self.lrs), f"lrs must be positive, got {self.lrs}")
        check(len(self.widths) >= 1, "give at least one --widths value")
        for w in self.widths:
            check(w % self.head_dim == 0 and w >= self.head_dim,
                  f"width {w} must be a multiple of head_dim={self.head_dim}")
        check(self.extra_width == 0 or self.extra_width % self.head_dim == 0,
              f"extra_width={self.extra_width} must be 0 or a multiple of head_dim")
        check_at_least_one(self, "num_seeds", "n_layers", "head_dim", "seq_len", "steps",
                           "batch_size", "val_windows", "chunk")
        check(self.val_every >= 2, f"val_every must be at least 2, got {self.val_every}")
        check(0 <= self.warmup_steps <= self.steps and 0 <= self.warmup_long <= self.steps,
              f"warmup_steps and warmup_long must be in [0, steps={self.steps}]")
        check(self.train_bytes > 10 * self.seq_len, "train_bytes is too small for seq_len")
