"""length-generalization: the token ids, the variants (position encoding and format
switches), the configuration and the seed grid."""

from __future__ import annotations

import dataclasses
import math

from selftaught.core.errors import UnknownNameError, check, check_at_least_one

PAD, BOS, EOS, SEP = 0, 1, 2, 3
DIGIT0, PLUS, HINT0 = 4, 14, 15


def seq_len(digits: int, v: Variant) -> int:
    """Tokens of the longest example with operands of `digits` digits."""
    per = 2 if v.index_hints else 1
    return 1 + per * digits + 1 + per * digits + 1 + per * (digits + 1) + 1


@dataclasses.dataclass(frozen=True)
class Variant:
    """One configuration: a position encoding and the format switches."""

    name: str
    pos_encoding: str
    randomized_positions: bool = True
    reversed_output: bool = True
    index_hints: bool = True


VARIANTS = {
    "fire+randpos": Variant("fire+randpos", "fire"),
    "fire": Variant("fire", "fire", randomized_positions=False),
    "fire+randpos-hints": Variant("fire+randpos-hints", "fire", index_hints=False),
    "fire+randpos-reverse": Variant("fire+randpos-reverse", "fire", reversed_output=False),
    "learned": Variant("learned", "learned", randomized_positions=False),
    "rope": Variant("rope", "rope", randomized_positions=False),
    "nope": Variant("nope", "nope", randomized_positions=False),
}


BASELINES = ("learned", "rope", "nope")


@dataclasses.dataclass(frozen=True)
class LengthGenConfig:
    """Addition length generalization over position encodings x formats x seed grids."""

    seed: int = 0
    """first weight-init and data-order seed (the grid uses seed .. seed + n - 1)"""
    num_seeds: int = 3
    """unused: the seed grid is init_seeds x data_seeds"""
    init_seeds: int = 3
    """weight-initialisation seeds"""
    data_seeds: int = 3
    """data-order seeds (the training set is fixed; the batch order changes)"""
    baseline_data_seeds: int = 0
    """data-order seeds of the baselines (learned / RoPE / NoPE); 0 = data_seeds"""
    variants: tuple[str, ...] = ("fire+randpos", "learned", "rope", "nope")
    """configurations to train (see VARIANTS)"""
    train_digits: int = 8
    """L: training operands have 1..L digits"""
    test_factor: float = 2.5
    """test lengths 1..ceil(test_factor * L) digits"""
    hint_offsets: bool = False
    """index hints of a training example start at a random place offset (uniform in
    0..test_digits - L, fixed per example; test examples start at 0), so every hint token a
    test length uses is trained; off = the hints of places > L never occur in an operand"""
    max_positions: int = 128
    """positions the model can represent (learned table size; randomized-position range)"""
    d_model: int = 64
    """model width"""
    n_layers: int = 2
    """transformer layers"""
    n_heads: int = 4
    """attention heads"""
    steps: int = 600
    """training steps per cell"""
    batch_size: int = 16
    """examples per step"""
    lr: float = 1e-3
    """peak learning rate (warmup then cosine)"""
    warmup_steps: int = 100
    """linear warmup steps"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    train_examples: int = 20_000
    """size of the fixed training set"""
    test_examples: int = 50
    """test examples per length"""
    threshold: float = 0.9
    """exact-match accuracy that counts as 'solves this length'"""
    target_factor: float = 0.0
    """extrapolation claim: the best seeds solve up to ceil(target_factor * L) digits
    (the paper: 2.5); 0 = beyond L, i.e. L + 1 digits"""
    chunk: int = 200
    """steps per compiled chunk (a checkpoint per chunk)"""

    def validate(self) -> None:
        for v in self.variants:
            if v not in VARIANTS:
                raise UnknownNameError("length-generalization variant", v, list(VARIANTS))
        check(len(self.variants) >= 1, "name at least one --variants value")
        check_at_least_one(self, "init_seeds", "data_seeds", "train_digits", "max_positions",
                           "d_model", "n_layers", "n_heads", "steps", "batch_size",
                           "train_examples", "test_examples", "chunk")
        check(self.test_factor >= 1, f"test_factor must be >= 1, got {self.test_factor}")
        check(self.target_digits <= self.test_digits,
              f"the extrapolation target ({self.target_digits} digits) lies beyond the tested "
              f"lengths (1..{self.test_digits}); raise --test-factor or lower --target-factor")
        check(self.lr > 0, f"lr must be > 0, got {self.lr}")
        check(0 <= self.warmup_steps <= self.steps, "warmup_steps must be in [0, steps]")
        check(self.d_model % self.n_heads == 0, "d_model must be divisible by n_heads")
        need = max(seq_len(self.test_digits, v) for v in (VARIANTS[x] for x in self.variants))
        check(need <= self.max_positions,
              f"test length {self.test_digits} digits needs {need} positions but the model "
              f"represents only max_positions={self.max_positions}; raise --max-positions to "
              f"at least {need} or lower --test-factor / --train-digits")

    @property
    def target_digits(self) -> int:
        return (self.train_digits + 1 if self.target_factor <= 0
                else math.ceil(self.target_factor * self.train_digits))

    @property
    def test_digits(self) -> int:
        return math.ceil(self.test_factor * self.train_digits)


UNIT = "training seeds (init x data-order grid cells)"
"""The unit of replication of every claim: one cell of the weight-init x data-order seed
grid is one training run; `--seeds` is unused (set --init-seeds / --data-seeds)."""


def seed_grid(cfg: LengthGenConfig, variant: str = "") -> list[tuple[int, int]]:
    """(init seed, data-order seed) cells of a variant: init_seeds x data_seeds, or
    init_seeds x baseline_data_seeds for a baseline when that is set."""
    nd = (cfg.baseline_data_seeds if variant in BASELINES and cfg.baseline_data_seeds
          else cfg.data_seeds)
    return [(cfg.seed + i, cfg.seed + j) for i in range(cfg.init_seeds) for j in range(nd)]
