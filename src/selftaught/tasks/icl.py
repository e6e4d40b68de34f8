"""Task families for many-shot in-context learning (lm.md §6).

A *family* is a distribution over tasks; each drawn *instance* is an ordinary
:class:`~selftaught.tasks.base.Task` (problems, prompt, answer, reference/human solution,
verify), so a meta-training sequence is many shots of one instance and a held-out instance is
learnt purely in context. Instances of the train and test splits are disjoint by a rule on
their parameters (stated per family); within an instance, problems are split by a hash of
their inputs like every task.

- :class:`SymbolRuleFamily` (a, discriminative, with a prior): input ``uv`` (two symbols),
  label ``l1`` if ``v`` is in a hidden half ``S`` of the symbols else ``l0`` (``u`` is a
  distractor that makes each input distinct; ``v`` sits next to the label, so the in-context
  rule is the classic induction pattern "after v comes ..."). Meta-training
  draws the *default* rule (``S0`` = first half, labels ``01``) with probability ``prior``,
  otherwise a random train rule with a random train label pair; ``flipped()`` (labels ``10``)
  and ``abstract()`` (a held-out label pair) test overriding that prior.
- :class:`LinearClassFamily` (b): ``x`` in R^d, each coordinate quantised to one of
  ``levels`` symbols, label ``[w . x_q > 0]`` for a hidden Gaussian ``w`` (``x_q`` = the
  quantised values the model sees).
- :func:`linear_pairs` (b', continuous): the same hidden-plane rule on unquantised x, one
  token per (x, y) pair, drawn on device (the icl-linear recipe); :func:`knn_predict` and
  :func:`logistic_fit` are the baselines fitted on the same shots.
- :class:`BaseAdditionTask` / :class:`BaseAdditionFamily` (c, reasoning with rationales):
  the addition task's column scratchpad in a hidden base ``b`` (the instance), verified by
  its final ``=ANSWER`` line.
- :class:`SequentialParityTask` / :class:`SequentialParityFamily` (d): a bit string, the
  answer is the running parity of the bits at a hidden set of positions.

Families (a) and (b) also draw whole meta-training batches on device (`jax_batch`), so a
jitted training loop never goes back to the host for data.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import ConfigError, check
from selftaught.tasks.base import Problem, Task, check_count, check_split, split_of

SYMBOLS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
LABELS = "0123456789"


def _rng(seed, *salt) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**63, *[zlib.crc32(str(s).encode()) for s in salt]])


def _split_members(name: str, space: Sequence[tuple], split: str) -> list:
    """The members of ``space`` in ``split`` (by hash of the joined input)."""
    split = check_split(split)
    return [x for x in space if split_of(name, "".join(map(str, x))) == split]


def _sample_inputs(name: str, space: Sequence[tuple], split: str, n: int, seed: int) -> list:
    """``n`` distinct members of ``space`` in ``split`` (by hash), deterministic in seed."""
    split, n = check_split(split), check_count(n)
    members = _split_members(name, space, split)
    if n > len(members):
        raise ConfigError(f"the {split} split of {name} has {len(members)} inputs, {n} asked; "
                          "ask for fewer")
    order = _rng(seed, name, split).permutation(len(members))[:n]
    return [members[i] for i in order]


class _LabelTask(Task):
    """A classification instance: one-character label, the solution is the label itself."""

    labels: str = "01"
    max_solution_len = 1

    def reference_solution(self, problem: Problem) -> str:
        return problem.answer

    def human_solution(self, problem: Problem, rng: np.random.Generator) -> str:
        return problem.answer

    def extract_answer(self, text: str) -> str | None:
        """The last non-blank character if it is a label symbol, else None. Never raises."""
        if not isinstance(text, str):
            return None
        body = text.strip()
        return body[-1] if body and body[-1] in LABELS else None

    def verify(self, problem: Problem, text: str) -> bool:
        return self.extract_answer(text) == problem.answer


# ------------------------------------------------------------------------------- family (a)
class SymbolRuleTask(_LabelTask):
    """Label ``labels[1]`` if the second symbol of ``uv`` is in ``subset``, else ``labels[0]``."""

    name = "symbol-rule"
    max_prompt_len = 2

    def __init__(self, n_symbols: int, subset: Sequence[int], labels: str):
        self.n_symbols, self.subset, self.labels = n_symbols, frozenset(subset), labels
        self.alphabet = SYMBOLS[:n_symbols] + LABELS

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        space = list(itertools.product(range(self.n_symbols), repeat=2))
        return [self.make_problem(uv) for uv in _sample_inputs(self.name, space, split, n, seed)]

    def shots(self, k: int, seed: int) -> list[Problem]:
        """``k`` train-split shots: distinct while the split lasts, then drawn again with
        replacement (meta-training draws its inputs with replacement too), so a many-shot
        prompt may be longer than the split. ``shots(j, seed)`` is ``shots(k, seed)[:j]``."""
        space = list(itertools.product(range(self.n_symbols), repeat=2))
        n = len(_split_members(self.name, space, "train"))
        first = self.problems("train", min(check_count(k), n), seed)
        rng = _rng(seed, self.name, "repeats")
        return first + [first[i] for i in rng.integers(0, n, max(0, k - n))]

    def make_problem(self, uv: tuple[int, int]) -> Problem:
        u, v = uv
        text = SYMBOLS[u] + SYMBOLS[v]
        return Problem(f"{self.name}:{text}", (u, v), self.labels[int(v in self.subset)],
                       self.name)

    def prompt(self, problem: Problem) -> str:
        return SYMBOLS[problem.operands[0]] + SYMBOLS[problem.operands[1]]


def subset_is_test(member_N) -> bool:
    """Test-split rule of a subset (as a membership vector): sum of squared members % 10 == 0."""
    idx = np.arange(len(member_N))
    return bool(int(np.sum(np.asarray(member_N) * idx**2)) % 10 == 0)


def pair_is_test(a: int, b: int) -> bool:
    """Test-split rule of an ordered label pair (a, b): (3a + b) % 5 == 0."""
    return (3 * a + b) % 5 == 0


class SymbolRuleFamily:
    """Family (a): rules "second symbol in a hidden half S" with a meta-trained prior."""

    name = "symbol-rule"
    has_rationales = False  # a label is the whole solution: nothing to reason step by step

    def __init__(self, n_symbols: int = 32, prior: float = 0.5):
        check(4 <= n_symbols <= len(SYMBOLS) and n_symbols % 2 == 0,
              f"n_symbols must be even and in [4, {len(SYMBOLS)}], got {n_symbols}")
        check(0.0 <= prior < 1.0, f"prior must be in [0, 1), got {prior}")
        self.n_symbols, self.prior = n_symbols, prior
        self.alphabet = SYMBOLS[:n_symbols] + LABELS
        self.shot_len = 3  # u v label
        self.default_subset = tuple(range(n_symbols // 2))
        self.train_pairs = [(a, b) for a in range(10) for b in range(10)
                            if a != b and not pair_is_test(a, b)]
        self.test_pairs = [(a, b) for a in range(10) for b in range(10)
                           if a != b and pair_is_test(a, b)]

    def _task(self, subset, pair) -> SymbolRuleTask:
        return SymbolRuleTask(self.n_symbols, subset, LABELS[pair[0]] + LABELS[pair[1]])

    def default(self) -> SymbolRuleTask:
        """The prior: S0 = the first half of the symbols, labels 0/1."""
        return self._task(self.default_subset, (0, 1))

    def flipped(self) -> SymbolRuleTask:
        """The prior's rule with its labels swapped (1/0): never seen in meta-training."""
        return self._task(self.default_subset, (1, 0))

    def abstract(self, index: int = 0) -> SymbolRuleTask:
        """The prior's rule with a held-out label pair."""
        return self._task(self.default_subset, self.test_pairs[index % len(self.test_pairs)])

    def _excluded(self, member) -> bool:
        half = np.arange(self.n_symbols) < self.n_symbols // 2
        return bool(np.all(member == half) or np.all(member == ~half))

    def instances(self, split: str, n: int, seed: int) -> list[SymbolRuleTask]:
        """``n`` random rules of ``split`` (test: subset and label pair both held out)."""
        split = check_split(split)
        rng, out = _rng(seed, self.name, split), []
        pairs = self.test_pairs if split == "test" else self.train_pairs
        while len(out) < n:
            member = np.zeros(self.n_symbols, bool)
            member[rng.permutation(self.n_symbols)[: self.n_symbols // 2]] = True
            if subset_is_test(member) != (split == "test") or self._excluded(member):
                continue
            pair = pairs[int(rng.integers(len(pairs)))]
            out.append(self._task(np.flatnonzero(member).tolist(), pair))
        return out

    def jax_batch(self, key, batch: int, shots: int):
        """Meta-training sequences on device -> (symbols_BxNx2, labels_BxN) alphabet indices.

        Each row is one instance: the default rule with probability ``prior``, else a random
        train-split subset (the first of 8 candidates that is train and not S0 or its
        complement; all 8 failing has probability < 1e-7) with a random train label pair.
        """
        n, half = self.n_symbols, self.n_symbols // 2
        k_pri, k_sub, k_pair, k_x = jax.random.split(key, 4)
        cand = jax.vmap(lambda k: jax.random.permutation(k, n))(
            jax.random.split(k_sub, batch * 8)).reshape(batch, 8, n)
        member_Bx8xN = (jnp.argsort(cand, axis=-1) < half)  # rank < half: a random half
        idx = jnp.arange(n)
        bad = (jnp.sum(member_Bx8xN * idx**2, -1) % 10 == 0) | jnp.all(
            member_Bx8xN == (idx < half), -1) | jnp.all(member_Bx8xN == (idx >= half), -1)
        first = jnp.argmax(~bad, axis=-1)
        member_BxN = jnp.take_along_axis(member_Bx8xN, first[:, None, None], 1)[:, 0]
        pairs = jnp.asarray(self.train_pairs, jnp.int32)
        pair_Bx2 = pairs[jax.random.randint(k_pair, (batch,), 0, len(self.train_pairs))]
        use_prior = jax.random.uniform(k_pri, (batch,)) < self.prior
        member_BxN = jnp.where(use_prior[:, None], idx < half, member_BxN)
        pair_Bx2 = jnp.where(use_prior[:, None], jnp.array([0, 1], jnp.int32), pair_Bx2)
        uv_BxNx2 = jax.random.randint(k_x, (batch, shots, 2), 0, n)
        in_S = jnp.take_along_axis(member_BxN, uv_BxNx2[..., 1], axis=1)
        label_BxN = jnp.take_along_axis(pair_Bx2, in_S.astype(jnp.int32), axis=1)
        return uv_BxNx2, n + label_BxN  # label digit d is alphabet index n + d


# ------------------------------------------------------------------------------- family (b)
def quantile_edges(levels: int) -> np.ndarray:
    """Bin edges giving `levels` equiprobable bins of N(0, 1), and the bins' centres."""
    from scipy.stats import norm

    edges = norm.ppf(np.linspace(0, 1, levels + 1)[1:-1])
    centres = norm.ppf((np.arange(levels) + 0.5) / levels)
    return edges, centres


class LinearClassTask(_LabelTask):
    """Label ``1`` iff ``w . x_q > 0``; the prompt is ``x``'s d quantised coordinates."""

    name = "linear-class"

    def __init__(self, w: np.ndarray, levels: int):
        self.w, self.levels, self.d = np.asarray(w, np.float64), levels, len(w)
        self.edges, self.centres = quantile_edges(levels)
        self.alphabet = SYMBOLS[:levels] + LABELS
        self.max_prompt_len = self.d

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        split, n = check_split(split), check_count(n)
        rng, out, seen = _rng(seed, self.name, split, self.d), [], set()
        while len(out) < n:
            bins = tuple(int(b) for b in np.digitize(rng.standard_normal(self.d), self.edges))
            text = "".join(SYMBOLS[b] for b in bins)
            if text in seen or split_of(self.name, text) != split:
                continue
            seen.add(text)
            label = int(self.centres[list(bins)] @ self.w > 0)
            out.append(Problem(f"{self.name}:{text}", bins, LABELS[label], self.name))
        return out

    def prompt(self, problem: Problem) -> str:
        return "".join(SYMBOLS[b] for b in problem.operands)

    def features(self, problems: Sequence[Problem]) -> np.ndarray:
        """The numeric inputs the label is a function of (bin centres), n x d."""
        return self.centres[np.array([p.operands for p in problems])]


class LinearClassFamily:
    """Family (b): hidden w ~ N(0, I_d). Train instances are drawn on device from one key
    stream and test instances on the host from another: continuous w never coincide."""

    name = "linear-class"
    has_rationales = False

    def __init__(self, d: int = 16, levels: int = 8):
        check(d >= 1, f"d must be >= 1, got {d}")
        check(2 <= levels <= len(SYMBOLS), f"levels must be in [2, {len(SYMBOLS)}], got {levels}")
        self.d, self.levels = d, levels
        self.alphabet = SYMBOLS[:levels] + LABELS
        self.shot_len = d + 1
        self.edges, self.centres = quantile_edges(levels)

    def instances(self, split: str, n: int, seed: int) -> list[LinearClassTask]:
        rng = _rng(seed, self.name, check_split(split), self.d)
        return [LinearClassTask(rng.standard_normal(self.d), self.levels) for _ in range(n)]

    def jax_batch(self, key, batch: int, shots: int):
        """-> (bins_BxNxd, labels_BxN) alphabet indices (labels 0/1 at `levels` + label)."""
        k_w, k_x = jax.random.split(key)
        w_BxD = jax.random.normal(k_w, (batch, self.d))
        bins = jnp.digitize(jax.random.normal(k_x, (batch, shots, self.d)),
                            jnp.asarray(self.edges, jnp.float32))
        x = jnp.asarray(self.centres, jnp.float32)[bins]
        label = (jnp.einsum("bnd,bd->bn", x, w_BxD) > 0).astype(jnp.int32)
        return bins, self.levels + label


def linear_pairs(key, batch: int, pairs: int, d: int, d_eff, carry: bool = False):
    """Sequences of in-context linear classification with one token per (x, y) pair
    (design B of small-scale.md §4, Garg et al. 2022): per row a fresh w ~ N(0, I_d) and
    x_i ~ N(0, I_d), both zero beyond the first `d_eff` coordinates (a curriculum's
    effective dimension, may be traced), y_i = sign(w . x_i) in {-1, +1}.

    Token i carries (x_i, y_{i-1}): `inputs` [B, pairs, d + 1] = [x_i, y_{i-1}] with 0 in
    the label slot of token 0 (a label is +-1, so 0 means "none yet"). With `carry`, token i
    also carries x_{i-1}: [x_i, x_{i-1}, y_{i-1}] [B, pairs, 2d + 1], the completed pair
    i - 1 next to the new query, so no attention to the previous token is needed to pair an
    x with its label. The target of token i is y_i, never in tokens 0..i: under causal
    attention the prediction at token i sees exactly i labelled shots.
    -> {inputs, x [B, pairs, d], y [B, pairs] (+-1), w [B, d]}."""
    k_w, k_x = jax.random.split(key)
    keep_D = (jnp.arange(d) < d_eff).astype(jnp.float32)
    w_BxD = jax.random.normal(k_w, (batch, d)) * keep_D
    x_BxNxD = jax.random.normal(k_x, (batch, pairs, d)) * keep_D
    y_BxN = jnp.where(jnp.einsum("bnd,bd->bn", x_BxNxD, w_BxD) > 0, 1.0, -1.0)
    return {"inputs": pair_inputs(x_BxNxD, y_BxN, carry), "x": x_BxNxD, "y": y_BxN,
            "w": w_BxD}


def pair_inputs(x_BxNxD, y_BxN, carry: bool = False):
    """The token inputs of `linear_pairs`: token i = [x_i, y_{i-1}], or with `carry`
    [x_i, x_{i-1}, y_{i-1}] (the previous pair all zeros for i = 0)."""
    shift = lambda a: jnp.pad(a[:, :-1], ((0, 0), (1, 0)) + ((0, 0),) * (a.ndim - 2))
    prev = [shift(x_BxNxD)] if carry else []
    return jnp.concatenate([x_BxNxD, *prev, shift(y_BxN)[..., None].astype(x_BxNxD.dtype)], -1)


def context_inputs(x_NxkxD, y_Nxk, q_NxMxD, carry: bool):
    """The tokens [N, k + M, I] of k context shots followed by M queries: token i < k is
    [x_i, x_{i-1}, y_{i-1}] (pair_inputs); every query token is the token that
    would follow the k shots, [q_j, x_{k-1}, y_{k-1}] ([q_j, 0, 0] at k = 0; without
    `carry` [x_i, y_{i-1}] and [q_j, y_{k-1}]). An unlabelled shot has y = 0, the value token 0
    carries in training ("no label yet"): an unsupervised context is [x_i, x_{i-1}, 0]
    throughout and its queries [q_j, x_{k-1}, 0]."""
    M = q_NxMxD.shape[1]
    x = jnp.concatenate([x_NxkxD, q_NxMxD[:, :1]], 1)
    y = jnp.concatenate([y_Nxk, jnp.zeros_like(y_Nxk[:, :1])], 1).astype(x.dtype)
    tokens = pair_inputs(x, y, carry)  # the k shots and the first query
    last = jnp.broadcast_to(tokens[:, -1:], (*tokens.shape[:1], M, tokens.shape[-1]))
    queries = last.at[..., :x.shape[-1]].set(q_NxMxD)
    return jnp.concatenate([tokens[:, :-1], queries], 1)


# ------------------------------------------------------------------------------- baselines
# fitted on the same shots as an in-context learner (many-shot-icl experiment 4, icl-linear)
def knn_predict(x_NxD, y_N, q_MxD, k: int) -> np.ndarray:
    """Majority label of the k nearest shots (Euclidean; equal distances: lower index
    first); a tied vote takes the nearest shot's label."""
    x_NxD, q_MxD = np.asarray(x_NxD, np.float64), np.asarray(q_MxD, np.float64)
    d2 = (q_MxD**2).sum(1)[:, None] - 2 * q_MxD @ x_NxD.T + (x_NxD**2).sum(1)[None]
    near = np.argsort(d2, axis=1, kind="stable")[:, :min(k, len(y_N))]
    vote = np.asarray(y_N, np.float64)[near].mean(1)
    return np.where(vote == 0.5, np.asarray(y_N)[near[:, 0]], vote > 0.5).astype(int)


def logistic_fit(x_NxD, y_N, l2: float, iters: int = 100) -> np.ndarray:
    """Minimise sum_i log(1 + exp(-s_i z_i)) + l2/2 |w|^2 over w = (weights, bias), with
    z = [x, 1] w and s = 2y - 1: Newton steps with step halving. -> w [D + 1]."""
    X = np.c_[np.asarray(x_NxD, np.float64), np.ones(len(y_N))]
    s = 2.0 * np.asarray(y_N, np.float64) - 1
    loss = lambda w: np.logaddexp(0, -s * (X @ w)).sum() + 0.5 * l2 * w @ w
    w = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(X @ w)))
        grad = X.T @ (p - (s + 1) / 2) + l2 * w
        hess = (X * (p * (1 - p))[:, None]).T @ X + l2 * np.eye(len(w))
        step, t = np.linalg.solve(hess, grad), 1.0
        while loss(w - t * step) > loss(w) and t > 1e-8:
            t /= 2
        w = w - t * step
        if np.abs(t * step).max() < 1e-10:
            break
    return w


def shot_baselines(x_KxD, y_K, q_QxD, qy_Q, *, l2: float, knn: int | None = None) -> dict:
    """Accuracy on the queries of the baselines fitted on the same K shots (0/1 labels) as
    an in-context learner: L2-penalised logistic regression (logistic_fit) and, given `knn`,
    the vote of the k nearest shots (knn_predict). -> {"logistic": acc[, "knn": acc]}."""
    w = logistic_fit(x_KxD, y_K, l2)
    out = {"logistic": float(np.mean(logistic_predict(w, q_QxD) == qy_Q))}
    if knn is not None:
        out["knn"] = float(np.mean(knn_predict(x_KxD, y_K, q_QxD, knn) == qy_Q))
    return out


def logistic_predict(w_D1, q_MxD) -> np.ndarray:
    return (np.c_[np.asarray(q_MxD, np.float64), np.ones(len(q_MxD))] @ w_D1 > 0).astype(int)


# ------------------------------------------------------------------------------- family (c)
def _to_base(value: int, base: int) -> str:
    digits = []
    while True:
        value, r = divmod(value, base)
        digits.append(str(r))
        if value == 0:
            return "".join(reversed(digits))


class BaseAdditionTask(Task):
    """``a+b`` written in base ``base`` (2..10) with the addition task's column scratchpad,
    each step ``x+y+carry=CS`` (carry digit and sum digit in that base), then ``=ANSWER``."""

    name = "base-addition"
    alphabet = "0123456789+= \n"

    def __init__(self, base: int = 10, digits: int = 3, human_skip_prob: float = 0.5):
        check(2 <= base <= 10, f"base must be in [2, 10], got {base}")
        check(1 <= digits <= 8, f"digits must be in [1, 8], got {digits}")
        check(0.0 <= human_skip_prob <= 1.0, "human_skip_prob must be in [0, 1]")
        self.base, self.digits, self.human_skip_prob = base, digits, human_skip_prob
        self.max_prompt_len = 2 * digits + 2
        self.max_solution_len = (digits + 1) * 9 + digits + 2

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        split, n = check_split(split), check_count(n)
        top = self.base**self.digits
        rng, out, seen = _rng(seed, self.name, split, self.base, self.digits), [], set()
        tries = 0
        while len(out) < n:
            tries += 1
            if tries > 100 * (n + 10):
                raise ConfigError(f"the {split} split of {self.name} (base {self.base}, "
                                  f"{self.digits} digits) has too few problems for n={n}")
            a, b = (int(v) for v in rng.integers(0, top, 2))
            key = f"{min(a, b)}|{max(a, b)}|{self.base}"
            if (a, b) in seen or split_of(self.name, key) != split:
                continue
            seen.add((a, b))
            out.append(Problem(f"{self.name}{self.base}:{a}+{b}", (a, b),
                               _to_base(a + b, self.base), self.name))
        return out

    def prompt(self, problem: Problem) -> str:
        a, b = problem.operands
        return f"{_to_base(a, self.base)}+{_to_base(b, self.base)}="

    def _steps(self, problem: Problem) -> list[str]:
        a, b = (_to_base(v, self.base)[::-1] for v in problem.operands)
        steps, carry = [], 0
        for i in range(max(len(a), len(b))):
            x = int(a[i]) if i < len(a) else 0
            y = int(b[i]) if i < len(b) else 0
            total = x + y + carry
            steps.append(f"{x}+{y}+{carry}={total // self.base}{total % self.base}")
            carry = total // self.base
        return steps

    def reference_solution(self, problem: Problem) -> str:
        return " ".join(self._steps(problem)) + f"\n={problem.answer}"

    def human_solution(self, problem: Problem, rng: np.random.Generator) -> str:
        """Right answer; with probability human_skip_prob only some steps (maybe none)."""
        steps = self._steps(problem)
        if rng.random() < self.human_skip_prob:
            steps = [s for s in steps if rng.random() < 0.5]
        return (" ".join(steps) + "\n" if steps else "") + f"={problem.answer}"

    def verify(self, problem: Problem, text: str) -> bool:
        """The final ``=ANSWER`` line equals the base-b answer (digits compared as written,
        leading zeros ignored). Never raises."""
        got = self.extract_answer(text)
        return got is not None and got == (problem.answer.lstrip("0") or "0")


class BaseAdditionFamily:
    """Family (c): the instance is the hidden base; train bases and test bases are given
    explicitly (default: test base 7 is never meta-trained on)."""

    name = "base-addition"
    has_rationales = True  # the column scratchpad, verified by its final =ANSWER line

    def __init__(self, train_bases: Sequence[int] = (5, 6, 8, 9, 10),
                 test_bases: Sequence[int] = (7,), digits: int = 3):
        check(not set(train_bases) & set(test_bases), "train and test bases must be disjoint")
        self.train_bases, self.test_bases, self.digits = tuple(train_bases), tuple(
            test_bases), digits
        self.alphabet = BaseAdditionTask.alphabet

    def instances(self, split: str, n: int, seed: int) -> list[BaseAdditionTask]:
        bases = self.test_bases if check_split(split) == "test" else self.train_bases
        rng = _rng(seed, self.name, split)
        return [BaseAdditionTask(int(bases[rng.integers(len(bases))]), self.digits)
                for _ in range(n)]


# ------------------------------------------------------------------------------- family (d)
class SequentialParityTask(Task):
    """Input n bits; answer = the running parity of the bits at ``positions`` (one output
    bit per input bit: output i = parity of the counted bits among the first i + 1)."""

    name = "sequential-parity"
    alphabet = "01="

    def __init__(self, n_bits: int = 8, positions: Sequence[int] | None = None):
        check(1 <= n_bits <= 30, f"n_bits must be in [1, 30], got {n_bits}")
        self.n_bits = n_bits
        self.positions = tuple(range(n_bits)) if positions is None else tuple(positions)
        check(all(0 <= p < n_bits for p in self.positions), "positions must be < n_bits")
        self.max_prompt_len, self.max_solution_len = n_bits, n_bits + 1

    def answer_of(self, bits: str) -> str:
        counted = [int(b) if i in self.positions else 0 for i, b in enumerate(bits)]
        return "".join(str(int(v) % 2) for v in np.cumsum(counted))

    def problems(self, split: str, n: int, seed: int) -> list[Problem]:
        space = [tuple(int(c) for c in format(i, f"0{self.n_bits}b"))
                 for i in range(2**self.n_bits)]
        out = []
        for bits in _sample_inputs(self.name, space, split, n, seed):
            text = "".join(map(str, bits))
            out.append(Problem(f"{self.name}:{text}", bits, self.answer_of(text), self.name))
        return out

    def prompt(self, problem: Problem) -> str:
        return "".join(map(str, problem.operands))

    def reference_solution(self, problem: Problem) -> str:
        return "=" + problem.answer

    def human_solution(self, problem: Problem, rng: np.random.Generator) -> str:
        return "=" + problem.answer

    def extract_answer(self, text: str) -> str | None:
        """The bits after the last ``=`` if they are n_bits 0/1 characters. Never raises."""
        if not isinstance(text, str) or "=" not in text:
            return None
        got = text[text.rfind("=") + 1:].strip()
        return got if len(got) == self.n_bits and set(got) <= {"0", "1"} else None

    def verify(self, problem: Problem, text: str) -> bool:
        return self.extract_answer(text) == problem.answer


class SequentialParityFamily:
    """Family (d): the instance is the hidden set of counted positions (a non-empty subset);
    a subset is in the test split iff sum(2**p) % 10 == 0."""

    name = "sequential-parity"
    alphabet = SequentialParityTask.alphabet
    has_rationales = False  # the solution is "=" + the answer bits: no intermediate steps

    def __init__(self, n_bits: int = 8):
        check(2 <= n_bits <= 30, f"n_bits must be in [2, 30], got {n_bits}")
        self.n_bits = n_bits

    def instances(self, split: str, n: int, seed: int) -> list[SequentialParityTask]:
        split, out = check_split(split), []
        rng = _rng(seed, self.name, split)
        while len(out) < n:
            code = int(rng.integers(1, 2**self.n_bits))
            if (code % 10 == 0) != (split == "test"):
                continue
            out.append(SequentialParityTask(
                self.n_bits, [p for p in range(self.n_bits) if code >> p & 1]))
        return out


FAMILIES = {f.name: f for f in (SymbolRuleFamily, LinearClassFamily, BaseAdditionFamily,
                                SequentialParityFamily)}
"""The task families by name; `has_rationales` says whose solutions are step-by-step."""
