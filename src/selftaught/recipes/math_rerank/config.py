"""math-rerank: the configuration."""

from __future__ import annotations

import dataclasses

from selftaught import tasks
from selftaught.core import check
from selftaught.core.errors import check_at_least_one
from selftaught.lm.metrics import (
    k_grid,
)
from selftaught.lm.model import ModelSize
from selftaught.lm.train import (
    TrainConfig,
)

STYLES = ("detailed", "terse")


EVALUATORS = ("ce", "margin")


STAGES = ("sft", "samples", "evaluators", "sequential")


@dataclasses.dataclass(frozen=True)
class MathRerankConfig:
    """Solution FT, evaluator, cluster re-ranking, sequential FT (see the module docstring)."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i (data, init and sampling all change)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    task: str = "chain"
    """registered task (chain, addition, multiplication) or a plug-in package.module:factory;
    it must have a verifier and final answers on a last line "=ANSWER" """
    task_args: str = "steps=(2, 4)"
    """keyword arguments for the task factory, e.g. "steps=(3, 6), modulus=10" """
    sft_problems: int = 12800
    """training problems with a solution (detailed or terse): the generators' data (the
    default's 400 x 64 SFT rows are 2 epochs over 12,800 distinct problems, so the generator
    does not memorise them: issue 24's non-memorising setting; preset `memorising` has 500)"""
    pool_problems: int = 7000
    """further training problems (answers only, disjoint from the SFT problems) on which
    G_detailed samples the evaluator's training data"""
    eval_problems: int = 2000
    """held-out test problems (the claims' test set; each seed draws its own)"""
    valid_problems: int = 400
    """fresh validation problems (disjoint from the test problems): the generalisation gate
    and the choice of the evaluators' step count read these, never the test problems"""
    model: ModelSize = ModelSize()
    """shape of the decoder (generator and evaluator) trained from scratch"""
    sft: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=40, total_steps=400, batch_size=64,
                                   weight_decay=0.1, final_lr_ratio=0.1)
    """solution fine-tuning of G_detailed and G_terse (the two styles train as one vmapped
    program)"""
    pool_samples: int = 8
    """samples per pool problem from G_detailed (the evaluator's data: pool_problems x this
    labelled solutions), and per problem of the generalisation gate"""
    temperature: float = 0.7
    """sampling temperature of the pool samples and the test candidates"""
    top_k: int = 0
    """top-k filter of the sampler (0: the whole vocabulary)"""
    evaluator: TrainConfig = TrainConfig(lr=1e-3, warmup_steps=50, total_steps=1500,
                                         batch_size=32, weight_decay=0.0, final_lr_ratio=0.1)
    """optimiser of both evaluators (cross-entropy and margin), initialised from G_detailed:
    one training run each, of total_steps steps, checkpointed at `evaluator_checkpoints`"""
    evaluator_checkpoints: tuple[int, ...] = (250, 750, 1500)
    """the evaluator step counts to choose from, within its one training run: at each, the
    evaluator scores G_detailed's candidates on the validation problems (disjoint from the
    test problems) and the checkpoint with the best within-problem pair accuracy there
    (ties: the fewest steps) re-ranks the test candidates; increasing, the last equal to
    evaluator.total_steps"""
    margin: float = 1.0
    """lambda of the margin loss max(0, log S(X-) - log S(X+) + lambda)"""
    verdict: str = "10"
    """two characters of the task's alphabet: the evaluator's "correct" and "incorrect"
    tokens"""
    max_pairs_per_problem: int = 8
    """cap on (correct, incorrect) pairs drawn per pool problem for the evaluators"""
    candidates: int = 64
    """N: candidates per test problem (paper: 64)"""
    top_clusters: tuple[int, ...] = (2, 4, 8)
    """the K values of top-K cluster re-ranking (keep the K largest clusters; paper: 8 of
    64): each K is a selector of its own, with its own claims"""
    cluster_aggregate: str = "sum"
    """how top-K re-ranking scores a cluster from its members' S: sum | mean | max"""
    claim_k: int = 64
    """k (candidates voted / re-ranked) at which the claims compare the selectors"""
    vote_repeats: int = 8
    """each selector's accuracy averages every k-subset of a problem's candidates, or this
    many random ones (the same for every selector) when there are more"""
    seq_ft: TrainConfig = TrainConfig(lr=1e-3, warmup_steps=20, total_steps=200,
                                      batch_size=64, weight_decay=0.1, final_lr_ratio=0.1)
    """the last generator FT of sequential multi-task FT (from E_ce), and of its baseline
    (from G_detailed): same data, same steps, one vmapped program"""
    noninferiority: float = 2.0
    """points: 'sequential >= solution FT' holds when the CI's lower end of (G_seq - G_cont)
    lies above -noninferiority"""
    sample_batch: int = 1024
    """rows per sampler call (fixed, so the sampler compiles once)"""
    chunk_steps: int = 100
    """training steps per compiled chunk (progress-bar and NaN-check granularity)"""
    max_generalisation_gap: float = 5.0
    """points: the generalisation gate. Before G_detailed samples the evaluators' data, its
    sample accuracy on its own training problems (the first min(valid_problems, sft_problems)
    solution-FT problems) and on as many fresh validation problems (pool_samples each) is
    logged; when the mean gap over seeds (train - fresh) is >= this,
    the claims about the evaluators (the re-ranking, loss and sequential-FT claims) are
    reported as not tested"""
    min_auroc: float = 0.75
    """precondition logged in report.md (small-scale.md §2): the evaluator's within-problem
    AUROC (pair accuracy) on the test candidates at or above which re-ranking is expected
    to beat voting; a diagnostic, it gates nothing"""
    min_headroom: float = 15.0
    """precondition logged in report.md: pass@N - maj@N (points) at or above which a
    selector has room to beat majority vote; a diagnostic, it gates nothing"""

    def validate(self) -> None:
        check_at_least_one(self, "sft_problems", "pool_problems", "eval_problems",
                           "valid_problems", "pool_samples", "max_pairs_per_problem",
                           "candidates", "claim_k", "vote_repeats", "sample_batch",
                           "chunk_steps")
        check(len(self.top_clusters) > 0 and all(k >= 1 for k in self.top_clusters)
              and len(set(self.top_clusters)) == len(self.top_clusters),
              f"top_clusters must be distinct cluster counts >= 1, got {self.top_clusters}; "
              "change --top-clusters")
        check(self.claim_k <= self.candidates,
              f"claim_k ({self.claim_k}) must be <= candidates ({self.candidates}): a "
              "selector needs k candidates per problem; raise --candidates or lower --claim-k")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.top_k >= 0, f"top_k must be >= 0 (0 = no top-k), got {self.top_k}")
        check(self.margin >= 0, f"margin must be >= 0, got {self.margin}")
        check(self.max_generalisation_gap > 0,
              f"max_generalisation_gap must be > 0 points, got {self.max_generalisation_gap}")
        check(self.noninferiority >= 0,
              f"noninferiority must be >= 0 points, got {self.noninferiority}")
        ck = self.evaluator_checkpoints
        check(len(ck) > 0 and all(a < b for a, b in zip((0, *ck), ck))
              and ck[-1] == self.evaluator.total_steps,
              f"evaluator_checkpoints must be increasing positive step counts ending at "
              f"evaluator.total_steps ({self.evaluator.total_steps}), got {ck}; change "
              "--evaluator-checkpoints or --evaluator.total-steps")
        check(self.cluster_aggregate in ("sum", "mean", "max"),
              f"cluster_aggregate must be sum, mean or max, got {self.cluster_aggregate!r}")
        task = tasks.get(self.task, **tasks.parse_task_args(self.task_args))
        check(callable(getattr(task, "verify", None)),
              f"task {self.task!r} has no verifier (a verify(problem, text) method); the "
              "evaluator learns from verified samples, so choose a verifiable task")
        check(len(self.verdict) == 2 and self.verdict[0] != self.verdict[1]
              and set(self.verdict) <= set(task.alphabet),
              f"verdict must be two different characters of the task's alphabet "
              f"{task.alphabet!r} (yes, no), got {self.verdict!r}")

    @property
    def ks(self) -> list[int]:
        """k values of the accuracy-vs-k curves: powers of two below N, and N."""
        return k_grid(self.candidates)
