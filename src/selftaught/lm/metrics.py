"""Sample-based evaluation metrics: unbiased pass@k, majority vote, maj@k, Best-of-k,
solution-cluster re-ranking (rerank@k), the pairwise ranking accuracy of a scorer, and the
generalisation gate (train-vs-fresh accuracy gap) checked before a verifier is trained."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from selftaught import stats


def k_grid(n: int) -> list[int]:
    """The k values of an accuracy-vs-k curve over n samples: powers of two below n, and n."""
    if n < 1:
        raise ValueError(f"need n >= 1 samples, got {n}")
    return sorted({*(2**i for i in range(n.bit_length()) if 2**i < n), n})


def pass_at_k(n, c, k: int):
    """Unbiased pass@k = 1 - C(n-c, k) / C(n, k) from n samples of which c are correct.

    Uses the stable product form 1 - prod_{i=n-c+1}^{n} (1 - k / i). `n` and `c` may be
    arrays (one entry per problem); returns a float or an array of the same shape.
    """
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n, np.int64), np.asarray(c, np.int64))
    if np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError("need 0 <= c <= n for every problem")
    if k < 1 or np.any(k > n_arr):
        raise ValueError(f"need 1 <= k <= n, got k={k}, min n={int(n_arr.min())}")
    out = np.empty(n_arr.shape, np.float64)
    for idx in np.ndindex(n_arr.shape):
        ni, ci = int(n_arr[idx]), int(c_arr[idx])
        if ni - ci < k:
            out[idx] = 1.0
        else:
            out[idx] = 1.0 - np.prod(1.0 - k / np.arange(ni - ci + 1, ni + 1))
    return float(out) if out.ndim == 0 else out


def majority_vote(answers: Sequence[str | None]) -> str | None:
    """Most frequent non-None answer; ties go to the one that occurred first; None if none."""
    valid = [a for a in answers if a is not None]
    if not valid:
        return None
    counts = Counter(valid)
    best = max(counts.values())
    return next(a for a in valid if counts[a] == best)


def maj_at_k(
    answers: Sequence[Sequence[str | None]],
    targets: Sequence[str],
    k: int,
    *,
    max_subsets: int = 2000,
    seed: int = 0,
    per_problem: bool = False,
):
    """maj@k from n >= k samples per problem: the chance that the majority vote of k samples
    drawn without replacement equals the target, averaged over problems.

    Like unbiased pass@k it uses all n samples: the vote is averaged over every k-subset of
    a problem's samples (in their original order, so ties go to the earliest), or over
    `max_subsets` random k-subsets (seeded) when there are more subsets than that.
    per_problem=True returns each problem's chance (float64 [P], for a paired bootstrap over
    problems) instead of their mean.
    """
    return _subset_average(lambda a, s: majority_vote(a), answers, None, targets, k,
                           max_subsets, seed, per_problem)


def _subset_average(select, answers, scores, targets, k: int, max_subsets: int,
                    seed: int, per_problem: bool = False):
    """Mean over problems (per_problem: the array [P] of each problem's value) of the chance
    that `select(answers_subset, scores_subset)` equals the target, over every k-subset of a
    problem's samples (in their original order) or `max_subsets` random ones (seeded) when
    there are more."""
    if len(answers) != len(targets):
        raise ValueError(f"{len(answers)} answer lists but {len(targets)} targets")
    if not answers:
        return np.zeros(0) if per_problem else 0.0
    if scores is None:
        scores = [[0.0] * len(a) for a in answers]
    rng = np.random.default_rng(seed)
    out = []
    for a, sc, t in zip(answers, scores, targets):
        a, sc = list(a), [float(x) for x in sc]
        n = len(a)
        if len(sc) != n:
            raise ValueError(f"{n} answers but {len(sc)} scores for one problem")
        if not 1 <= k <= n:
            raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
        if math.comb(n, k) <= max_subsets:
            subsets = itertools.combinations(range(n), k)
        else:
            subsets = (np.sort(rng.choice(n, k, replace=False)) for _ in range(max_subsets))
        hits = [select([a[i] for i in idx], [sc[i] for i in idx]) == t for idx in subsets]
        out.append(np.mean(hits))
    return np.asarray(out, np.float64) if per_problem else float(np.mean(out))


def rerank_at_k(answers: Sequence[Sequence[str | None]], scores, targets: Sequence[str],
                k: int, *, top_clusters: int | None = None, aggregate: str = "sum",
                max_subsets: int = 2000, seed: int = 0, per_problem: bool = False):
    """`cluster_rerank` accuracy from n >= k scored samples per problem, averaged like
    `maj_at_k` over every k-subset (or `max_subsets` random ones; the same subsets as
    `maj_at_k` with the same seed). `scores` is [P][n] (one score per sample); per_problem
    as in `maj_at_k`.

    Special cases: top_clusters=None, aggregate="max" re-ranks every sample (the answer of
    the best-scoring one); top_clusters=None, aggregate="sum" is the score-weighted majority
    vote; top_clusters=1 is the majority vote."""
    if aggregate not in ("sum", "mean", "max"):
        raise ValueError(f"aggregate must be 'sum', 'mean' or 'max', got {aggregate!r}")
    return _subset_average(lambda a, s: cluster_rerank(a, s, top_clusters, aggregate),
                           answers, scores, targets, k, max_subsets, seed, per_problem)


def ranking_accuracy(scores, correct) -> float:
    """Fraction of (correct, incorrect) sample pairs of the same problem that `scores` orders
    right (ties count 1/2), over the problems that have both; NaN if none has."""
    scores, correct = np.asarray(scores, np.float64), np.asarray(correct, bool)
    if scores.shape != correct.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and correct {correct.shape} must be the same "
                         "[P, N] shape")
    wins = pairs = 0.0
    for s, c in zip(scores, correct):
        pos, neg = s[c], s[~c]
        if len(pos) and len(neg):
            d = pos[:, None] - neg[None, :]
            wins += np.sum(d > 0) + 0.5 * np.sum(d == 0)
            pairs += d.size
    return float(wins / pairs) if pairs else float("nan")


def auroc(scores, positive) -> float:
    """Pooled AUROC (Mann-Whitney, ties 1/2) in O(n log n): P(a positive's score > a
    negative's) over all pairs, not within problems (`ranking_accuracy` on one row, fast);
    NaN without both classes."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    npos, nneg = int(positive.sum()), int((~positive).sum())
    if not npos or not nneg:
        return float("nan")
    return float((rankdata(scores)[positive].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def best_of_k(scores, correct, k: int):
    """Unbiased Best-of-k from N >= k scored samples (V-STaR, Hosseini et al. 2024):
    the expected correctness of the highest-scoring of k samples drawn without replacement.

    With the samples sorted by score, descending (ties: earlier sample first, a stable
    sort), and alpha_i the correctness of rank i:
        Best-of-k = sum_{i=0}^{N-k} C(N-i-1, k-1) * alpha_i / C(N, k)
    (rank i is the best of the subset iff the subset holds it and k-1 of the N-i-1 lower
    ranks). `scores`/`correct` are [N] or [P, N] (one row per problem; returns [P]).
    """
    scores, correct = np.asarray(scores, np.float64), np.asarray(correct, np.float64)
    if scores.shape != correct.shape or scores.ndim not in (1, 2):
        raise ValueError(f"scores {scores.shape} and correct {correct.shape} must be the same "
                         "[N] or [P, N] shape")
    n = scores.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= N, got k={k}, N={n}")
    order = np.argsort(-scores, axis=-1, kind="stable")
    alpha = np.take_along_axis(correct, order, axis=-1)
    total = math.comb(n, k)  # exact integer ratios, then one rounding each
    w = np.array([math.comb(n - i - 1, k - 1) / total if i <= n - k else 0.0
                  for i in range(n)])
    return alpha @ w


def cluster_rerank(answers: Sequence[str | None], scores: Sequence[float],
                   top_clusters: int | None = None, aggregate: str = "sum") -> str | None:
    """Solution-cluster re-ranking (Liu et al. 2023): group the samples by final answer
    (None = unparsable, never a cluster), keep the `top_clusters` largest clusters (None:
    all of them, i.e. re-rank every sample), and return the answer whose cluster has the best
    `aggregate` ("sum", "mean" or "max") of member scores. Ties in size or score go to the
    answer that occurred first."""
    if len(answers) != len(scores):
        raise ValueError(f"{len(answers)} answers but {len(scores)} scores")
    if aggregate not in ("sum", "mean", "max"):
        raise ValueError(f"aggregate must be 'sum', 'mean' or 'max', got {aggregate!r}")
    members: dict[str, list[float]] = {}
    for a, s in zip(answers, scores):
        if a is not None:
            members.setdefault(a, []).append(float(s))
    if not members:
        return None
    order = list(members)  # first occurrence
    by_size = sorted(order, key=lambda a: (-len(members[a]), order.index(a)))
    kept = by_size if top_clusters is None else by_size[:top_clusters]
    agg = {"sum": sum, "mean": lambda v: sum(v) / len(v), "max": max}[aggregate]
    return max(kept, key=lambda a: (agg(members[a]), -order.index(a)))


@dataclasses.dataclass(frozen=True)
class GeneralisationGate:
    """Does a generator generalise before its samples train a verifier? Its sample accuracy
    (%) on its own training problems and on fresh problems of the same distribution, one
    value per training seed; the gate passes when the mean gap over seeds (train - fresh,
    points) is below `max_gap`. A generator that memorises its training problems gives the
    verifier an error distribution unlike the test one, so claims about the verifier are
    not tested when the gate fails."""

    generator: str
    """the generator's name in the report (e.g. "G_sft")"""
    train: np.ndarray
    """per-seed sample accuracy (%) on its training problems"""
    fresh: np.ndarray
    """per-seed sample accuracy (%) on fresh (validation) problems, paired with `train`"""
    max_gap: float
    """threshold (points) on the mean gap over seeds"""

    def __post_init__(self):
        train, fresh = (np.asarray(x, np.float64).reshape(-1) for x in (self.train, self.fresh))
        if train.shape != fresh.shape or not train.size:
            raise ValueError(f"gate of {self.generator}: need paired per-seed accuracies, got "
                             f"{train.size} train and {fresh.size} fresh values")
        object.__setattr__(self, "train", train)
        object.__setattr__(self, "fresh", fresh)

    @property
    def gap(self):
        """train - fresh (points): mean over seeds with its bootstrap CI (an Estimate)."""
        return stats.paired_difference_ci(self.train, self.fresh, unit="training seeds")

    @property
    def passed(self) -> bool:
        return bool(self.gap[0] < self.max_gap)

    @property
    def why(self) -> str:
        """The measured reason the gate fails (the text of a not-tested claim)."""
        g = self.gap
        return (f"the generator {self.generator} memorises: train {self.train.mean():.0f}% vs "
                f"fresh {self.fresh.mean():.0f}% sample accuracy, gap {g[0]:.1f} points "
                f"[{g[1]:.1f}, {g[2]:.1f}] over {g.n} seeds >= {self.max_gap:g}")


def gate_verdict(gates: Sequence[GeneralisationGate], seeds: Sequence[int]
                 ) -> tuple[bool, str, list[str]]:
    """(every gate passed, why not (the failing gates' reasons, "" when passed), the
    report's "Generalisation gate" section: per-seed train / fresh accuracy, the gap with its
    CI over seeds, the threshold and the verdict)."""
    failed = [g for g in gates if not g.passed]
    md = ["## Generalisation gate (sample accuracy %, before verifier data is sampled)", "",
          "| generator | " + " | ".join(f"seed {sd} train / fresh" for sd in seeds)
          + " | gap (train - fresh), mean [95% CI] | threshold | verdict |",
          "|---" * (len(seeds) + 4) + "|"]
    for g in gates:
        gap = g.gap
        md.append(f"| {g.generator} | "
                  + " | ".join(f"{a:.1f} / {b:.1f}" for a, b in zip(g.train, g.fresh))
                  + f" | {gap[0]:.1f} [{gap[1]:.1f}, {gap[2]:.1f}] | < {g.max_gap:g} | "
                  + ("passes" if g.passed else "**fails**") + " |")
    md += ["", "The gate passes when the mean gap over seeds is below the threshold; "
           "when it fails, the claims about the verifier are reported as not tested."]
    return not failed, "; ".join(g.why for g in failed), md
