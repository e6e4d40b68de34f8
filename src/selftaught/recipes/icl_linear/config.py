"""icl-linear's configuration and the model it trains (see the package docstring)."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from selftaught.core import check
from selftaught.lm.model import ModelSize, Transformer
from selftaught.lm.train import EvalSchedule, TrainConfig


@dataclasses.dataclass(frozen=True)
class IclLinearConfig:
    """Design B of small-scale.md §4 (see the module docstring)."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i (init and data both change)"""
    num_seeds: int = 3
    """training seeds when --seeds is not given"""
    dim: int = 8
    """d: input dimension (the curriculum's last d_eff; validation and test use all d)"""
    dim_start: int = 4
    """the curriculum's first effective dimension d_eff"""
    curriculum_every: int = 150
    """training steps per +1 of d_eff (d_eff = min(d, dim_start + step // curriculum_every))"""
    max_shots: int = 64
    """labelled pairs before the last token: a sequence has max_shots + 1 tokens"""
    carry: bool = True
    """token i = [x_i, x_{i-1}, y_{i-1}] (the previous pair next to the query) instead of
    [x_i, y_{i-1}] (tasks.icl.linear_pairs)"""
    model: ModelSize = ModelSize(d_model=64, n_layers=3, n_heads=2, mlp_ratio=4,
                                 pos_encoding="rope")
    """the transformer (the [x, y] input projection is added)"""
    train: TrainConfig = TrainConfig(lr=2e-3, warmup_steps=100, total_steps=2000,
                                     batch_size=32, weight_decay=0.0, final_lr_ratio=0.1)
    """AdamW, warm-up then cosine decay"""
    evals: EvalSchedule = EvalSchedule(every=250, batch=512, test_rounds=2)
    """phases of `every` training steps, each ending with a validation measurement of `batch`
    sequences (one query per shot count each); the test measures test_rounds x batch per
    seed"""
    shots: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    """shot counts reported in the test (each <= max_shots)"""
    knn: int = 5
    """k of the kNN baseline (min(k, shots) neighbours)"""
    l2: float = 0.1
    """L2 penalty of the logistic-regression baseline (bias included)"""
    low_shots: int = 2
    """the 'rises with shots' claim compares claim_shots with low_shots"""
    claim_shots: int = 32
    """shot count of the three claims"""
    margin: float = 0.05
    """non-inferiority margin of 'ICL tracks logistic regression' and 'reinforced tracks
    ground truth', and the no-gain margin of the unsupervised control (accuracy)"""
    seed_shots: int = 4
    """reinforced experiment: ground-truth shots the trained model sees before it labels the
    pool (the few-shot prompt that generates the demonstrations; 0 = zero-shot labelling)"""
    pool: int = 256
    """reinforced experiment: unlabelled inputs per held-out w, in random order; every arm
    takes its shots from it (>= max_shots)"""
    queries: int = 16
    """reinforced experiment: fresh query points per held-out w, the same for every arm"""
    ricl_batch: int = 64
    """reinforced experiment: held-out w per round"""
    ricl_rounds: int = 4
    """reinforced experiment: rounds (ricl_rounds x ricl_batch held-out w per seed)"""

    def validate(self) -> None:
        check(self.dim >= 1 and 1 <= self.dim_start <= self.dim,
              f"dim_start={self.dim_start} must be in [1, dim={self.dim}]")
        check(self.curriculum_every >= 1,
              f"curriculum_every={self.curriculum_every} must be >= 1")
        check(self.max_shots >= 2, f"max_shots={self.max_shots} must be >= 2")
        self.evals.check_fits(self.train)
        check(len(self.shots) >= 1 and all(1 <= s <= self.max_shots for s in self.shots),
              f"shots={self.shots} must lie in [1, max_shots={self.max_shots}]")
        check(list(self.shots) == sorted(set(self.shots)), f"shots={self.shots} must increase")
        for name in ("low_shots", "claim_shots"):
            check(getattr(self, name) in self.shots,
                  f"{name}={getattr(self, name)} must be one of shots={self.shots}")
        check(self.low_shots < self.claim_shots,
              f"low_shots={self.low_shots} must be < claim_shots={self.claim_shots}")
        check(self.knn >= 1 and self.l2 > 0, "knn must be >= 1 and l2 > 0")
        check(0 <= self.margin < 1, f"margin={self.margin} must be in [0, 1)")
        check(0 <= self.seed_shots <= self.max_shots,
              f"seed_shots={self.seed_shots} must be in [0, max_shots={self.max_shots}]")
        check(self.pool >= self.max_shots,
              f"pool={self.pool} must be >= max_shots={self.max_shots} (the arms take up to "
              "max_shots shots from it)")
        check(min(self.queries, self.ricl_batch, self.ricl_rounds) >= 1,
              "queries, ricl_batch and ricl_rounds must be >= 1")



VOCAB = 5  # lm.model's minimum; every token id is 0, the inputs enter as vectors


def model_config(config: IclLinearConfig):
    return dataclasses.replace(config.model.config(VOCAB, config.max_shots + 1),
                               input_dim=in_dim(config)).validate()


def in_dim(config: IclLinearConfig) -> int:
    return config.dim * (2 if config.carry else 1) + 1


def label_logits(params, cfg, inputs_BxTxI):
    """Logits [B, T, 2] of y_i in {-1, +1} at every token (classes 0 = -1, 1 = +1)."""
    tokens = jnp.zeros(inputs_BxTxI.shape[:2], jnp.int32)
    return Transformer(cfg).apply(params, tokens, vectors_BxTxI=inputs_BxTxI)[..., :2]


def d_eff(config: IclLinearConfig, step):
    """The curriculum's effective dimension at a training step."""
    return jnp.minimum(config.dim, config.dim_start + step // config.curriculum_every)

