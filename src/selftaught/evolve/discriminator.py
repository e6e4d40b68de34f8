"""A pairwise discriminator over program DAGs and predictor-guided adaptive mutation.

Graph encoding of a program (all arrays padded to n = inputs + space.num_nodes):
    labels_N   node label: op index, or len(ops) + k for input k, or PAD for padding
    adj_2xNxN  adj[j, i, s] = 1 when node i reads slot s as its argument j
    mask_N     1 for real nodes
    out        output slot

GraphEncoder: op embeddings, then `layers` rounds of message passing (messages from
argument 0, argument 1 and from readers, each with its own weights; residual + layer
norm), read-out = [mean over nodes, output node]. PairDiscriminator scores a pair
antisymmetrically: logit(a > b) = s(a, b) - s(b, a), so P(a > b) = 1 - P(b > a).

Trained online: every evaluated program enters a replay (capacity-bounded, oldest out);
each update samples pairs with different fitness, label = [f_a > f_b], binary
cross-entropy, Adam. `guided_mutation` then proposes several mutations of each child
and keeps the ones the discriminator prefers to the parent before a real evaluation.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from selftaught.evolve.program import Program, Space, mutate, padded
from selftaught.evolve.search import MutateBatch


@dataclasses.dataclass(frozen=True)
class Graphs:
    labels: np.ndarray  # int32 [P, N]
    adj: np.ndarray     # float32 [P, 2, N, N]
    mask: np.ndarray    # float32 [P, N]
    out: np.ndarray     # int32 [P]


def graph_arrays(space: Space, programs: list[Program]) -> Graphs:
    n_in = len(space.inputs)
    n = n_in + space.num_nodes
    pad = len(space.vocab)
    index = {o: k for k, o in enumerate(space.ops)}
    P = len(programs)
    labels = np.full((P, n), pad, np.int32)
    adj = np.zeros((P, 2, n, n), np.float32)
    mask = np.zeros((P, n), np.float32)
    out = np.zeros((P,), np.int32)
    labels[:, :n_in] = len(space.ops) + np.arange(n_in)
    mask[:, :n_in] = 1.0
    for p, prog in enumerate(programs):
        for i, node in enumerate(prog.nodes):
            labels[p, n_in + i] = index[node.op]
            mask[p, n_in + i] = 1.0
            for j, a in enumerate(node.args):
                adj[p, j, n_in + i, a] = 1.0
        out[p] = n_in + len(prog.nodes) - 1
    return Graphs(labels, adj, mask, out)


class GraphEncoder(nn.Module):
    vocab: int
    dim: int = 64
    layers: int = 3

    @nn.compact
    def __call__(self, labels_PxN, adj_Px2xNxN, mask_PxN, out_P):
        h_PxNxH = nn.Embed(self.vocab + 1, self.dim)(labels_PxN)
        readers_PxNxN = adj_Px2xNxN.sum(1).swapaxes(-1, -2)
        for _ in range(self.layers):
            m0 = jnp.einsum("pis,psh->pih", adj_Px2xNxN[:, 0], h_PxNxH)
            m1 = jnp.einsum("pis,psh->pih", adj_Px2xNxN[:, 1], h_PxNxH)
            mr = jnp.einsum("pis,psh->pih", readers_PxNxN, h_PxNxH)
            x = jnp.concatenate([h_PxNxH, m0, m1, mr], -1)
            x = nn.Dense(self.dim)(nn.relu(nn.Dense(2 * self.dim)(x)))
            h_PxNxH = nn.LayerNorm()(h_PxNxH + x) * mask_PxN[..., None]
        mean_PxH = h_PxNxH.sum(1) / jnp.maximum(mask_PxN.sum(1, keepdims=True), 1.0)
        out_PxH = jnp.take_along_axis(h_PxNxH, out_P[:, None, None], axis=1)[:, 0]
        return jnp.concatenate([mean_PxH, out_PxH], -1)


class PairDiscriminator(nn.Module):
    vocab: int
    dim: int = 64
    layers: int = 3

    @nn.compact
    def __call__(self, ga: tuple, gb: tuple):
        enc = GraphEncoder(self.vocab, self.dim, self.layers)
        head = nn.Sequential([nn.Dense(self.dim), nn.relu, nn.Dense(1)])
        ea, eb = enc(*ga), enc(*gb)

        def score(x, y):
            return head(jnp.concatenate([x, y, x - y, x * y], -1))[:, 0]

        return score(ea, eb) - score(eb, ea)  # logit of P(a better than b)


class FitnessRegressor(nn.Module):
    """The regression alternative the paper compares against: predict each program's
    (standardised) fitness; P(a > b) = sigmoid(pred(a) - pred(b))."""

    vocab: int
    dim: int = 64
    layers: int = 3

    @nn.compact
    def __call__(self, ga: tuple, gb: tuple):
        enc = GraphEncoder(self.vocab, self.dim, self.layers)
        head = nn.Sequential([nn.Dense(self.dim), nn.relu, nn.Dense(1)])
        return head(enc(*ga))[:, 0], head(enc(*gb))[:, 0]


PREDICTORS = ("pairwise", "regression")


def _take(g: tuple, idx):
    return tuple(x[idx] for x in g)


@functools.lru_cache(maxsize=8)
def _functions(vocab: int, dim: int, layers: int, lr: float, kind: str = "pairwise"):
    """Model, optimizer and jitted update/predict, shared by all discriminators of one
    shape so that many seeds compile once. pairwise: y = [f_a > f_b], binary
    cross-entropy; regression: y = standardised (f_a, f_b), squared error."""
    model = (PairDiscriminator if kind == "pairwise" else FitnessRegressor)(vocab, dim, layers)
    opt = optax.adam(lr)

    def logit_fn(params, ga, gb):
        out = model.apply(params, ga, gb)
        return out if kind == "pairwise" else out[0] - out[1]

    def loss_fn(params, ga, gb, y):
        if kind == "pairwise":
            return optax.sigmoid_binary_cross_entropy(model.apply(params, ga, gb), y).mean()
        pa, pb = model.apply(params, ga, gb)
        return ((pa - y[:, 0]) ** 2 + (pb - y[:, 1]) ** 2).mean()

    def train_scan(params, opt_state, G, idx_TxBx2, y_TxB):
        def step(carry, xs):
            params, opt_state = carry
            idx, y = xs
            loss, grads = jax.value_and_grad(loss_fn)(
                params, _take(G, idx[:, 0]), _take(G, idx[:, 1]), y)
            upd, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(step, (params, opt_state),
                                                   (idx_TxBx2, y_TxB))
        return params, opt_state, losses

    prob = jax.jit(lambda params, ga, gb: jax.nn.sigmoid(logit_fn(params, ga, gb)))
    return model, opt, jax.jit(model.init), jax.jit(train_scan), prob


class Discriminator:
    """Online pairwise predictor: `add(programs, fitness)`, `train(steps)`,
    `prob_better(a, b)` -> P(a_i better than b_i). `kind="regression"` trains a fitness
    regressor on the same pairs instead (same encoder, same interface)."""

    def __init__(self, space: Space, *, seed: int = 0, dim: int = 64, layers: int = 3,
                 lr: float = 1e-3, capacity: int = 2048, batch_pairs: int = 64,
                 min_programs: int = 32, tie_tol: float = 1e-6, kind: str = "pairwise"):
        if kind not in PREDICTORS:
            from selftaught.core.errors import UnknownNameError

            raise UnknownNameError("predictor", kind, PREDICTORS)
        self.space, self.capacity, self.batch_pairs = space, capacity, batch_pairs
        self.min_programs, self.tie_tol, self.kind = min_programs, tie_tol, kind
        self.rng = np.random.default_rng(seed)
        self.model, self.opt, self._init, self._train, self._prob = _functions(
            len(space.vocab), dim, layers, lr, kind)
        self.graphs: Graphs | None = None
        self.fitness = np.zeros((0,), np.float64)
        dummy = graph_arrays(space, [])
        g0 = tuple(np.zeros((1, *x.shape[1:]), x.dtype) for x in dataclasses.astuple(dummy))
        self.params = self._init(jax.random.PRNGKey(seed), g0, g0)
        self.opt_state = self.opt.init(self.params)
        self.updates = 0

    # ------------------------------------------------------------------ data
    def add(self, programs: list[Program], fitness) -> None:
        fitness = np.asarray(fitness, np.float64).reshape(-1)
        keep = np.isfinite(fitness)
        programs = [p for p, k in zip(programs, keep) if k]
        if not programs:
            return
        g = graph_arrays(self.space, programs)
        if self.graphs is None:
            self.graphs = g
        else:
            self.graphs = Graphs(*[np.concatenate([a, b])[-self.capacity:] for a, b in
                                   zip(dataclasses.astuple(self.graphs),
                                       dataclasses.astuple(g))])
        self.fitness = np.concatenate([self.fitness, fitness[keep]])[-self.capacity:]

    @property
    def ready(self) -> bool:
        return len(self.fitness) >= self.min_programs and np.ptp(self.fitness) > self.tie_tol

    def _sample_pairs(self, steps: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self.fitness)
        idx = self.rng.integers(0, n, size=(steps, 4 * self.batch_pairs, 2))
        f = self.fitness[idx]
        out_idx = np.zeros((steps, self.batch_pairs, 2), np.int32)
        out_y = np.zeros((steps, self.batch_pairs), np.float32)
        for t in range(steps):
            ok = np.flatnonzero(np.abs(f[t, :, 0] - f[t, :, 1]) > self.tie_tol)
            if ok.size == 0:
                ok = np.arange(4 * self.batch_pairs)
            pick = ok[self.rng.integers(0, ok.size, size=self.batch_pairs)]
            out_idx[t] = idx[t, pick]
            out_y[t] = (f[t, pick, 0] > f[t, pick, 1]).astype(np.float32)
        return out_idx, out_y

    def train(self, steps: int) -> float:
        """`steps` Adam updates on pairs from the replay; returns the mean loss."""
        if not self.ready or steps <= 0:
            return float("nan")
        idx, y = self._sample_pairs(steps)
        if self.kind == "regression":
            f = self.fitness
            y = ((f[idx] - f.mean()) / max(float(f.std()), 1e-9)).astype(np.float32)
        G = self._padded()
        self.params, self.opt_state, losses = self._train(self.params, self.opt_state, G,
                                                          idx, y)
        self.updates += steps
        return float(np.mean(np.asarray(losses)))

    def _padded(self) -> tuple:
        """The replay padded to `capacity` so the jitted update compiles once."""
        g = dataclasses.astuple(self.graphs)
        n = len(self.fitness)
        return tuple(np.concatenate([x, np.zeros((self.capacity - n, *x.shape[1:]), x.dtype)])
                     for x in g)

    def prob_better(self, a: list[Program], b: list[Program]) -> np.ndarray:
        """P(a_i is better than b_i) for each pair."""
        n = len(a)
        if n == 0:
            return np.zeros((0,))
        ga = dataclasses.astuple(graph_arrays(self.space, padded(a)))
        gb = dataclasses.astuple(graph_arrays(self.space, padded(b)))
        return np.asarray(self._prob(self.params, ga, gb))[:n]

    def pairwise_accuracy(self, programs: list[Program], fitness, pairs: int = 2000,
                          seed: int = 0) -> float:
        """Fraction of random pairs (with different fitness) ordered correctly."""
        rng = np.random.default_rng(seed)
        fitness = np.asarray(fitness, np.float64)
        i, j = rng.integers(0, len(programs), size=(2, pairs))
        ok = np.abs(fitness[i] - fitness[j]) > self.tie_tol
        i, j = i[ok], j[ok]
        if i.size == 0:
            return float("nan")
        p = self.prob_better([programs[k] for k in i], [programs[k] for k in j])
        return float(np.mean((p > 0.5) == (fitness[i] > fitness[j])))


class OracleDiscriminator:
    """A discriminator with a controlled operating point, for mapping the speed-up surface:
    it evaluates both programs of a pair with the true `evaluate` (outside the fitness
    cache: these calls are not real evaluations of the search) and says "a is better"
    with probability `tpr` when f_a > f_b + tie_tol, and with probability `fpr` otherwise.
    The answer is 0 or 1 (same interface as `Discriminator`; `add`/`train` do nothing)."""

    def __init__(self, evaluate, *, tpr: float, fpr: float, seed: int = 0,
                 tie_tol: float = 1e-6):
        from selftaught.core.errors import check

        check(0.0 <= tpr <= 1.0 and 0.0 <= fpr <= 1.0,
              f"oracle TPR and FPR must lie in [0, 1], got TPR={tpr}, FPR={fpr}")
        self.evaluate, self.tpr, self.fpr, self.tie_tol = evaluate, tpr, fpr, tie_tol
        self.rng = np.random.default_rng([seed, 4242])
        self.ready, self.updates = True, 0

    def add(self, programs: list[Program], fitness) -> None:
        pass

    def train(self, steps: int) -> float:
        return float("nan")

    def truly_better(self, a: list[Program], b: list[Program]) -> np.ndarray:
        f = np.asarray(self.evaluate(list(a) + list(b)), np.float64).reshape(2 * len(a), -1)
        fa, fb = np.nan_to_num(f[:len(a), 0], nan=-np.inf), np.nan_to_num(f[len(a):, 0],
                                                                           nan=-np.inf)
        return fa > fb + self.tie_tol

    def prob_better(self, a: list[Program], b: list[Program]) -> np.ndarray:
        if len(a) == 0:
            return np.zeros((0,))
        truth = self.truly_better(a, b)
        u = self.rng.random(len(a))
        return np.where(truth, u < self.tpr, u < self.fpr).astype(np.float64)

    def pairwise_accuracy(self, programs: list[Program], fitness, pairs: int = 2000,
                          seed: int = 0) -> float:
        return float("nan")  # known by construction: see tpr / fpr


def confusion(said_better, truly_better) -> np.ndarray:
    """[TP, FP, FN, TN] counts of a discriminator's "child is better" verdicts."""
    s, t = np.asarray(said_better, bool), np.asarray(truly_better, bool)
    return np.array([(s & t).sum(), (s & ~t).sum(), (~s & t).sum(), (~s & ~t).sum()], int)


def rates(counts) -> dict:
    """p (rate of truly better), TPR, FPR and precision from [TP, FP, FN, TN] counts
    (NaN where the denominator is 0)."""
    tp, fp, fn, tn = (float(x) for x in counts)

    def div(a, b):
        return a / b if b > 0 else float("nan")

    return {"p": div(tp + fn, tp + fp + fn + tn), "tpr": div(tp, tp + fn),
            "fpr": div(fp, fp + tn), "precision": div(tp, tp + fp)}


def precision_of(p, tpr, fpr):
    """P(truly better | said better) = p TPR / (p TPR + (1 - p) FPR)."""
    p, tpr, fpr = (np.asarray(x, np.float64) for x in (p, tpr, fpr))
    q = p * tpr + (1 - p) * fpr
    return np.where(q > 0, p * tpr / np.where(q > 0, q, 1.0), np.nan)


def screened_improvement_rate(p, tpr, fpr, proposals: int, novel=1.0):
    """P(the evaluated child is better than its parent) under `guided_mutation`'s filter
    rule with a 0/1 discriminator and `known` screening: up to `proposals` independent
    mutations, each novel (not a known function) with probability `novel` and, if novel,
    better with probability p; the first novel one the discriminator accepts is evaluated,
    and when it accepts none, the first novel (rejected) one is; with no novel proposal
    there is no evaluation (a cache hit), so the rate is conditioned on one happening.
    The speed-up per real evaluation over unscreened mutation is this / p: precision / p
    when novel * proposals is large, capped by 1 - (1 - novel q)^proposals, the chance
    that one is accepted (q = p TPR + (1 - p) FPR)."""
    p, tpr, fpr, f = (np.asarray(x, np.float64) for x in (p, tpr, fpr, novel))
    q = p * tpr + (1 - p) * fpr
    none_accepted, none_novel = (1 - f * q) ** proposals, (1 - f) ** proposals
    rejected_better = np.where(q < 1, p * (1 - tpr) / np.where(q < 1, 1 - q, 1.0), 0.0)
    hit = ((1 - none_accepted) * np.nan_to_num(precision_of(p, tpr, fpr))
           + (none_accepted - none_novel) * rejected_better)
    return np.where(none_novel < 1, hit / np.where(none_novel < 1, 1 - none_novel, 1.0),
                    np.nan)


def tuned_threshold(P, truly_better, proposals: int, novel=1.0, *, min_pairs: int = 32,
                    min_class: int = 2, candidates: int = 41) -> float | None:
    """The threshold t on the discriminator's P(child better) that maximises the predicted
    improving rate of an evaluated child, `screened_improvement_rate` (so precision / p,
    capped by the retry budget), over validation child-vs-parent pairs: `P` the verdicts
    taken before the children were evaluated, `truly_better` their outcome. The candidates
    are `candidates` quantiles of P (a verdict "better" is P >= t; with more pairs than
    candidates a narrow gap between the classes may hold none); the first maximiser is
    returned (the lowest such t). None when there are fewer than `min_pairs` pairs or fewer
    than `min_class` of either class (the rates would be noise)."""
    P, y = np.asarray(P, np.float64), np.asarray(truly_better, bool)
    if len(y) < min_pairs or y.sum() < min_class or (~y).sum() < min_class:
        return None
    cands = np.unique(np.quantile(P, np.linspace(0.0, 1.0, candidates)))
    said = P[None, :] >= cands[:, None]                                  # [T, pairs]
    tpr, fpr = said[:, y].mean(1), said[:, ~y].mean(1)
    gain = screened_improvement_rate(y.mean(), tpr, fpr, proposals, novel)
    return float(cands[np.nanargmax(gain)])


GUIDE_MODES = ("filter", "chain", "adaptive")


def guided_mutation(space: Space, disc: Discriminator, *, proposals: int = 8,
                    p_fresh: float = 0.05, mode: str = "filter",
                    known=None, counts: dict | None = None, threshold=None,
                    batched: bool = False) -> MutateBatch:
    """Predictor-guided adaptive mutation; plain mutation until the discriminator has data.

    filter: draw `proposals` single mutations of each parent and keep the one the
            discriminator rates most likely better than the parent (stays one mutation
            away from the parent, like plain evolution, but pre-screened).
    chain:  start from one mutation, then `proposals` times mutate the current child
            again and keep the new one when the discriminator rates it above the parent
            more confidently than the current child (can travel several mutations).
    adaptive: the paper's adaptive mutation: like chain, but a child stops at its first
            proposal that the discriminator does not prefer (no longer improves), or after
            `proposals` accepted steps; then it pays one real evaluation.
    known(programs) -> bool array (e.g. FitnessCache.known): proposals whose function is
    already evaluated rank below every new one (they would cost nothing and teach nothing).
    counts: if given, {"proposed", "accepted"} are incremented per screened proposal.
    threshold: None, or a function () -> t: the discriminator then answers 0/1 ("better"
    when P >= t), so filter mode evaluates the first accepted proposal (else the first
    one), the rule `screened_improvement_rate` models (t tuned for precision / p).
    batched (filter mode): draw all `proposals` rounds first and rate them in one call of
    `known` and one of the discriminator instead of one per round: the same children, the
    same `counts` and the same random streams (the rounds never depended on each other),
    exact for a discriminator whose answer to a pair does not depend on the other pairs of
    the call (`OracleDiscriminator`: its noise is drawn in the same order; see the tests).
    """
    if mode not in GUIDE_MODES:
        from selftaught.core.errors import UnknownNameError

        raise UnknownNameError("guided mutation mode", mode, GUIDE_MODES)

    def mutate_batch(parents: list[Program], rng: np.random.Generator) -> list[Program]:
        def rate(cands, base=parents):
            s = disc.prob_better(cands, base) if disc.ready else np.zeros(len(cands))
            if threshold is not None and disc.ready:
                s = (s >= threshold()).astype(np.float64)
            if known is not None:
                s = s - 2.0 * known(cands)
            return s

        current = [mutate(space, p, rng, p_fresh) for p in parents]
        if not disc.ready and known is None:
            return current
        if batched and mode == "filter" and proposals > 1:
            n = len(parents)
            cands = current + [mutate(space, p, rng, p_fresh)
                               for _ in range(proposals - 1) for p in parents]
            s_RxN = rate(cands, parents * proposals).reshape(proposals, n)
            pick, score = np.zeros(n, int), s_RxN[0]
            for r in range(1, proposals):  # the sequential rule over the rated rounds
                better = s_RxN[r] > score
                if counts is not None and disc.ready:
                    counts["proposed"] = counts.get("proposed", 0) + n
                    counts["accepted"] = counts.get("accepted", 0) + int(better.sum())
                pick, score = np.where(better, r, pick), np.where(better, s_RxN[r], score)
            return [cands[r * n + i] for i, r in enumerate(pick)]
        score = rate(current)
        active = np.ones(len(parents), bool)
        for _ in range(proposals - 1 if mode == "filter" else proposals):
            if not active.any():
                break
            base = parents if mode == "filter" else current
            cands = [mutate(space, c, rng, p_fresh) for c in base]
            s = rate(cands)
            better = (s > score) & active
            if counts is not None and disc.ready:
                counts["proposed"] = counts.get("proposed", 0) + int(active.sum())
                counts["accepted"] = counts.get("accepted", 0) + int(better.sum())
            current = [c if b else cur for c, cur, b in zip(cands, current, better)]
            score = np.where(better, s, score)
            if mode == "adaptive":
                active &= better
        return current

    return mutate_batch
