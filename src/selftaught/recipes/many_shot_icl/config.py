"""Many-shot ICL: the configuration, its checks and the token-budget arithmetic."""

from __future__ import annotations

import dataclasses
import functools

from selftaught import stats
from selftaught.core import check
from selftaught.core.errors import check_at_least_one
from selftaught.lm import TrainConfig, TransformerConfig
from selftaught.lm.model import ModelSize
from selftaught.lm.tokenizer import NUM_SPECIAL
from selftaught.tasks.base import split_of
from selftaught.tasks.icl import (
    FAMILIES,
    BaseAdditionTask,
    LinearClassFamily,
    SymbolRuleFamily,
)

KINDS = ("heldout", "flipped", "abstract", "default")


@dataclasses.dataclass(frozen=True)
class ManyShotConfig:
    """Meta-train on random symbol rules, evaluate held-out rules in context (experiments
    1, 3, 5); base-addition rationales (2) and linear classification (4) get their own
    decoders. Measured figures and claims: the module docstring."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i (init, meta-training data, eval tasks)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    n_symbols: int = 16
    """input symbols of the symbol-rule family (a rule is a hidden half of them)"""
    prior: float = 0.5
    """fraction of meta-training sequences that use the default rule (the instilled prior)"""
    context: int = 2048
    """tokens of a meta-training sequence (BOS + 3 tokens per shot); bounds the eval shots"""
    model: ModelSize = ModelSize(pos_encoding="rope", attention="blocked")
    """decoder shape (the many-shot contexts need attention='blocked')"""
    train: TrainConfig = TrainConfig(lr=1e-2, warmup_steps=30, total_steps=30, batch_size=4,
                                     weight_decay=0.1, final_lr_ratio=0.1)
    """meta-training optimiser (batch_size sequences of `context` tokens per step)"""
    train_phases: int = 2
    """the full-context meta-training is split into this many resumable phases"""
    short_steps: int = 650
    """curriculum: optimizer steps on `short_context`-token sequences before the full-context
    steps (one cosine schedule over both; 0 = none)"""
    short_context: int = 256
    """tokens of a curriculum sequence"""
    short_batch: int = 8
    """sequences per curriculum step"""
    shots: tuple[int, ...] = (1, 4, 16, 64, 256, 512)
    """shot counts evaluated (each needs 3 * shots + 3 tokens within the context)"""
    eval_tasks: int = 16
    """held-out tasks (and prefix draws of the flipped/abstract/default rules) per seed"""
    eval_queries: int = 16
    """test-split queries scored against each task's many-shot prefix"""
    # ---- experiment 2: reinforced and unsupervised ICL on a reasoning family
    reason_family: str = "base-addition"
    """task family of experiment 2; it needs step-by-step rationales (base-addition has them)"""
    reason_bases: tuple[int, ...] = (5, 6, 7, 8, 9, 10)
    """bases of experiment 2's meta-training sequences (one hidden base per sequence)"""
    reason_eval_bases: tuple[int, ...] = (7,)
    """bases of its evaluation tasks (test-split problems; a base not in reason_bases is a
    held-out task)"""
    reason_digits: int = 2
    """digits of each addend"""
    reason_context: int = 288
    """tokens of a meta-training sequence (BOS, then shots `prompt SEP rationale EOS`)"""
    reason_model: ModelSize = ModelSize(pos_encoding="rope", attention="blocked")
    """decoder shape of experiment 2"""
    reason_train: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=30, total_steps=250,
                                            batch_size=8, weight_decay=0.1, final_lr_ratio=0.1)
    """its meta-training optimiser (batch_size sequences of reason_context tokens per step)"""
    reason_shots: tuple[int, ...] = (1, 2, 4, 8)
    """shot counts of experiment 2 (each must fit reason_context with its query)"""
    reason_seed_shots: int = 2
    """ground-truth shots in the prompt that samples the model's own rationales"""
    reason_samples: int = 4
    """rationales sampled per candidate problem (temperature 1); the first verified one is
    kept as a reinforced-ICL shot"""
    reason_eval_tasks: int = 4
    """evaluation tasks (shot and query draws) per seed"""
    reason_queries: int = 16
    """test problems solved (greedy) per task and shot count"""
    # ---- experiment 4: linear classification vs kNN / logistic regression
    linear_dims: tuple[int, ...] = (16, 32, 64)
    """input dimensions d (one meta-trained model per d)"""
    linear_levels: int = 8
    """quantisation levels (symbols) of each input coordinate"""
    linear_context: int = 512
    """tokens of a meta-training sequence (BOS, then shots of d + 1 tokens)"""
    linear_model: ModelSize = ModelSize(pos_encoding="rope", attention="blocked")
    """decoder shape of experiment 4"""
    linear_train: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=20, total_steps=40,
                                            batch_size=4, weight_decay=0.1, final_lr_ratio=0.1)
    """its meta-training optimiser (per d)"""
    linear_shots: tuple[int, ...] = (1, 2, 4, 8, 16, 28)
    """shot counts of experiment 4; each d uses those that fit linear_context"""
    linear_eval_tasks: int = 8
    """held-out hidden planes w per seed and d"""
    linear_queries: int = 16
    """test points classified per task and shot count"""
    linear_knn: int = 5
    """k of the k-nearest-neighbours baseline (at most the shot count)"""
    linear_l2: float = 1.0
    """L2 penalty of the logistic-regression baseline (on weights and bias)"""

    def validate(self) -> None:
        check_at_least_one(self, "context", "train_phases", "eval_tasks", "eval_queries")
        _check_shots("shots", self.shots)
        need = prefix_len(max(self.shots)) + 2
        check(need <= self.context,
              f"{max(self.shots)} shots need {need} tokens (BOS + 3 per shot + a 2-token "
              f"query) but the model's context is {self.context}; lower --shots to at most "
              f"{(self.context - 3) // 3} or raise --context")
        check(self.context >= 7, f"context must hold at least 2 shots, got {self.context}")
        check(self.short_steps >= 0, f"short_steps must be >= 0, got {self.short_steps}")
        if self.short_steps:
            check_at_least_one(self, "short_batch")
            check(7 <= self.short_context <= self.context,
                  f"short_context must be in [7, context={self.context}], "
                  f"got {self.short_context}")
        check(self.train.total_steps >= self.train_phases,
              f"train.total_steps ({self.train.total_steps}) must be >= train_phases "
              f"({self.train_phases})")
        SymbolRuleFamily(self.n_symbols, self.prior)  # checks n_symbols and prior
        test_inputs = self.n_symbols**2 // 10  # about 10% of the inputs are test queries
        check(self.eval_queries <= test_inputs * 3 // 4,
              f"eval_queries={self.eval_queries} is more than the ~{test_inputs} test-split "
              f"inputs of {self.n_symbols} symbols allow; lower it or raise n_symbols")
        self._validate_reasoning()
        self._validate_linear()

    def _validate_reasoning(self) -> None:
        family = FAMILIES.get(self.reason_family)
        check(family is not None, f"unknown task family {self.reason_family!r}; choose one "
              f"of: {', '.join(sorted(FAMILIES))}")
        check(family.has_rationales,
              f"reinforced ICL needs a task family with step-by-step rationales, and "
              f"{self.reason_family!r} has none (its solution is the answer alone); "
              "use --reason-family base-addition")
        check_at_least_one(self, "reason_context", "reason_seed_shots", "reason_samples",
                           "reason_eval_tasks", "reason_queries")
        check(1 <= self.reason_digits <= 4,
              f"reason_digits must be in [1, 4], got {self.reason_digits}")
        for name in ("reason_bases", "reason_eval_bases"):
            bases = getattr(self, name)
            check(len(bases) >= 1 and all(2 <= b <= 10 for b in bases),
                  f"{name} must be bases in [2, 10], got {bases}")
        _check_shots("reason_shots", self.reason_shots)
        need = {"train": self.reason_seed_shots + 2 * max(self.reason_shots),
                "test": self.reason_queries}
        for base in self.reason_eval_bases:
            for split, n in need.items():
                have = split_size(base, self.reason_digits, split)
                check(have >= n, f"base {base} with {self.reason_digits} digit(s) has "
                      f"{have} {split}-split problems, {n} needed (reason_seed_shots + 2 x the "
                      "most shots; reason_queries); raise --reason-digits or ask for fewer")
        need = reason_prompt_len(self, max(self.reason_shots)) + reason_max_new(self)
        check(need <= self.reason_context,
              f"{max(self.reason_shots)} reasoning shots can need {need} tokens (worst-case "
              f"shots, query and rationale) but reason_context is {self.reason_context}; "
              "lower --reason-shots or raise --reason-context")

    def _validate_linear(self) -> None:
        check_at_least_one(self, "linear_context", "linear_eval_tasks", "linear_queries",
                           "linear_knn")
        check(len(self.linear_dims) >= 1 and all(d >= 1 for d in self.linear_dims),
              f"linear_dims must be dimensions >= 1, got {self.linear_dims}")
        check(self.linear_l2 > 0, f"linear_l2 must be > 0, got {self.linear_l2}")
        _check_shots("linear_shots", self.linear_shots)
        LinearClassFamily(max(self.linear_dims), self.linear_levels)  # checks levels
        for d in self.linear_dims:
            fit = linear_shots_for(self, d)
            check(len(fit) >= 2,
                  f"at d={d} only {list(fit)} of linear_shots {self.linear_shots} fit "
                  f"linear_context={self.linear_context} (BOS + {d + 1} tokens per shot + a "
                  f"{d}-token query); at least two must: raise --linear-context")


def _check_shots(name: str, shots: tuple[int, ...]) -> None:
    check(len(shots) >= 2 and all(s >= 1 for s in shots) and list(shots) == sorted(set(shots)),
          f"{name} must be at least two increasing counts >= 1, got {shots}")


@functools.lru_cache(maxsize=64)
def split_size(base: int, digits: int, split: str) -> int:
    """Problems a+b (ordered pairs) of `BaseAdditionTask(base, digits)` in `split` (counted
    when there are at most 10^5 pairs; more are taken as plenty)."""
    top = base**digits
    if top * top > 100_000:
        return top * top
    return sum(split_of(BaseAdditionTask.name, f"{min(a, b)}|{max(a, b)}|{base}") == split
               for a in range(top) for b in range(top))


def reason_prompt_len(config: ManyShotConfig, shots: int) -> int:
    """Worst-case tokens of BOS + `shots` shots + the query `prompt SEP` (base-addition)."""
    d = config.reason_digits
    prompt, rationale = 2 * d + 2, 10 * d + 2  # "a+b=", steps + "\n=" + answer
    return 1 + shots * (prompt + rationale + 2) + prompt + 1


def reason_max_new(config: ManyShotConfig) -> int:
    """Generated tokens allowed: the longest rationale and its EOS."""
    return 10 * config.reason_digits + 3


def linear_shots_for(config: ManyShotConfig, d: int) -> tuple[int, ...]:
    """The linear_shots that fit the context at dimension d."""
    return tuple(k for k in config.linear_shots if 1 + (d + 1) * k + d <= config.linear_context)


def prefix_len(shots: int) -> int:
    return 1 + 3 * shots


def train_shots(context: int, shot_len: int = 3) -> int:
    return (context - 1) // shot_len


def model_config(config: ManyShotConfig, family: SymbolRuleFamily) -> TransformerConfig:
    return config.model.config(NUM_SPECIAL + len(family.alphabet), config.context)


MODES = ("ground_truth", "reinforced", "unsupervised")


def _cells(values_S) -> str:
    return stats.ci_cell(stats.bootstrap_ci(values_S), ".3f")
