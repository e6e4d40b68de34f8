"""Bursty in-context classification of vector items (Chan et al. 2022; Reddy 2023).

A *bank* holds K trained classes and `num_novel` held-out ones, each a mean vector
mu_k ~ N(0, I/D) in D dims; an item of class k is (mu_k + eps * eta) / sqrt(1 + eps^2),
eta ~ N(0, I/D). Each trained class has a fixed label in 0..L-1 (its in-weights meaning).

A sequence is N exemplars (item, label) and one query item, laid out as 2N + 1 slots:

    slot 2i   : token ITEM (= L) + the item vector of exemplar i
    slot 2i+1 : token label_i (a label id, no vector)
    slot 2N   : token ITEM + the query item vector        -> predict the query's label

Training sequences (`train_batch`) are bursty: N/B distinct classes, B exemplars each, in
random order. With probability `p_remap` the labels are *re-mapped* (each context class gets
a fresh label, distinct within the sequence) and the query's class is in the context, so
only the context tells its label; otherwise every class keeps its fixed label and the
query's class is in the context with probability `p_query_in` (else it is a class absent
from the context: only the weights can answer).

Test sequences (`eval_batch`) hold N / shots classes, `shots` exemplars each (the query's
class one of them), shuffled: every label in the context is equally frequent, so counting
labels does not find the answer, and guessing among the context's labels scores shots / N
(`context_guess`). With shots = 0 the context is N distinct classes, none the query's:

    "novel"   held-out classes, random distinct labels      -> ICL accuracy vs shots
    "fixed"   trained classes, their fixed labels           -> shots=0: in-weights accuracy
    "flip"    trained classes, labels permuted by a fixed-point-free permutation sigma of the
              L labels (so the query's context label always differs from its fixed label)
              -> P(follow context) vs shots; `prior` holds the fixed label.

Every function is jittable; a batch is a dict of `vectors` [B, T, D], `tokens` [B, T],
`target` [B], `prior` [B] (fixed label, or -1), `match` [B, N] (exemplar i is of the
query's class), `classes` [B, N] and `q_class` [B] (class ids, for tests and diagnostics).
"""

from __future__ import annotations

import dataclasses

import flax.struct
import jax
import jax.numpy as jnp

from selftaught.core.errors import check

EVAL_MODES = ("novel", "fixed", "flip")


@dataclasses.dataclass(frozen=True)
class BurstySpec:
    """The data distribution (see the module docstring)."""

    num_classes: int = 512
    """K: trained classes"""
    num_novel: int = 512
    """held-out classes, never in a training sequence"""
    num_labels: int = 32
    """L: label tokens"""
    dim: int = 63
    """D: item dimension"""
    exemplars: int = 8
    """N: (item, label) exemplars before the query"""
    burstiness: int = 2
    """B: exemplars per class in a training context (N/B classes per context)"""
    noise: float = 0.1
    """eps: within-class noise relative to the spread of class means"""
    p_remap: float = 0.5
    """fraction of training sequences whose labels are re-mapped at random"""
    p_query_in: float = 0.5
    """in fixed-label training sequences, P(the query's class is in the context)"""

    @property
    def seq_len(self) -> int:
        return 2 * self.exemplars + 1

    @property
    def item_token(self) -> int:
        return self.num_labels

    @property
    def vocab_size(self) -> int:
        return self.num_labels + 1

    def validate(self) -> BurstySpec:
        for name in ("num_classes", "num_novel", "num_labels", "dim", "exemplars",
                     "burstiness"):
            v = getattr(self, name)
            check(v >= 1, f"{name}={v} must be >= 1")
        check(self.exemplars % self.burstiness == 0,
              f"exemplars={self.exemplars} must be a multiple of burstiness={self.burstiness}")
        ways = self.exemplars // self.burstiness
        check(self.num_classes >= self.exemplars + 1,
              f"num_classes={self.num_classes} must be >= exemplars + 1 = {self.exemplars + 1}")
        check(self.num_novel >= self.exemplars + 1,
              f"num_novel={self.num_novel} must be >= exemplars + 1 = {self.exemplars + 1}")
        check(self.num_labels >= max(ways + 1, 2) and self.num_labels >= self.exemplars + 1,
              f"num_labels={self.num_labels} must be >= exemplars + 1 = {self.exemplars + 1} "
              "(distinct labels for every class of a test context)")
        check(self.num_labels >= 5, f"num_labels={self.num_labels} must be >= 5")
        check(self.noise >= 0, f"noise={self.noise} must be >= 0")
        for name in ("p_remap", "p_query_in"):
            v = getattr(self, name)
            check(0 <= v <= 1, f"{name}={v} must be in [0, 1]")
        return self


@flax.struct.dataclass
class Bank:
    """Class means [K + num_novel, D] (trained first) and fixed labels [K]."""

    means: jax.Array
    fixed_labels: jax.Array


def make_bank(key, spec: BurstySpec) -> Bank:
    k_mu, k_lab = jax.random.split(key)
    n = spec.num_classes + spec.num_novel
    means = jax.random.normal(k_mu, (n, spec.dim)) / jnp.sqrt(spec.dim)
    labels = jax.random.randint(k_lab, (spec.num_classes,), 0, spec.num_labels)
    return Bank(means, labels)


def _items(key, means_NxD, noise):
    eta = jax.random.normal(key, means_NxD.shape) / jnp.sqrt(means_NxD.shape[-1])
    return (means_NxD + noise * eta) / jnp.sqrt(1.0 + noise**2)


def assemble(key, bank: Bank, spec: BurstySpec, classes_N, labels_N, q_class, q_label):
    """One sequence from its exemplars' classes/labels and the query's class/label."""
    n = spec.exemplars
    k_ctx, k_q = jax.random.split(key)
    x_NxD = _items(k_ctx, bank.means[classes_N], spec.noise)
    xq_D = _items(k_q, bank.means[q_class][None], spec.noise)[0]
    vectors = jnp.zeros((spec.seq_len, spec.dim))
    vectors = vectors.at[0:2 * n:2].set(x_NxD).at[2 * n].set(xq_D)
    tokens = jnp.full((spec.seq_len,), spec.item_token, jnp.int32)
    tokens = tokens.at[1:2 * n:2].set(labels_N.astype(jnp.int32))
    return {"vectors": vectors, "tokens": tokens, "target": q_label.astype(jnp.int32),
            "match": classes_N == q_class, "classes": classes_N.astype(jnp.int32),
            "q_class": q_class.astype(jnp.int32)}


def distinct(key, n_total: int, k: int):
    """k distinct ints in [0, n_total), a uniform ordered draw without replacement, in
    O(k^2) (no permutation of all n_total): the j-th draw u ~ U[0, n_total - j) is mapped
    onto the values not drawn yet by stepping over the drawn ones in increasing order."""
    u_K = jax.random.randint(key, (k,), 0, n_total - jnp.arange(k))
    drawn = []
    for j in range(k):
        v = u_K[j]
        for c in (jnp.sort(jnp.stack(drawn)) if drawn else []):
            v = v + (v >= c)
        drawn.append(v)
    return jnp.stack(drawn)


def _train_one(key, bank: Bank, spec: BurstySpec):
    ways, b = spec.exemplars // spec.burstiness, spec.burstiness
    keys = jax.random.split(key, 7)
    remap = jax.random.bernoulli(keys[0], spec.p_remap)
    cls = distinct(keys[1], spec.num_classes, ways + 1)  # the last one: an outside query
    slot_N = jax.random.permutation(keys[2], jnp.repeat(jnp.arange(ways), b))
    inside = remap | jax.random.bernoulli(keys[3], spec.p_query_in)
    q_slot = jnp.where(inside, jax.random.randint(keys[4], (), 0, ways), ways)
    fresh = distinct(keys[5], spec.num_labels, ways + 1)
    lab = jnp.where(remap, fresh, bank.fixed_labels[cls])
    out = assemble(keys[6], bank, spec, cls[slot_N], lab[slot_N], cls[q_slot], lab[q_slot])
    out["prior"] = jnp.where(remap, -1, bank.fixed_labels[cls[q_slot]]).astype(jnp.int32)
    return out


def train_batch(key, bank: Bank, spec: BurstySpec, batch: int) -> dict:
    """`batch` training sequences (bursty; a `p_remap` share re-mapped)."""
    return jax.vmap(lambda k: _train_one(k, bank, spec))(jax.random.split(key, batch))


def _eval_one(key, bank: Bank, spec: BurstySpec, mode: str, shots):
    n = spec.exemplars
    keys = jax.random.split(key, 5)
    if mode == "novel":
        cls = spec.num_classes + distinct(keys[0], spec.num_novel, n + 1)
        lab = distinct(keys[1], spec.num_labels, n + 1)
        prior = jnp.full((), -1, jnp.int32)
    else:
        cls = distinct(keys[0], spec.num_classes, n + 1)
        fixed = bank.fixed_labels[cls]
        if mode == "flip":  # sigma = perm^-1 o shift(r) o perm, r in 1..L-1: no fixed point
            perm = jax.random.permutation(keys[1], spec.num_labels)
            inv = jnp.argsort(perm)
            r = jax.random.randint(keys[2], (), 1, spec.num_labels)
            lab = inv[(perm[fixed] + r) % spec.num_labels]
        else:
            lab = fixed
        prior = fixed[0].astype(jnp.int32)
    # slot 0 is the query's class; every class in the context gets `shots` exemplars
    i_N = jnp.arange(n)
    slot_N = jnp.where(shots > 0, i_N // jnp.maximum(shots, 1), i_N + 1)
    slot_N = jax.random.permutation(keys[3], slot_N)
    out = assemble(keys[4], bank, spec, cls[slot_N], lab[slot_N], cls[0], lab[0])
    out["prior"] = prior
    return out


def context_guess(spec: BurstySpec, shots):
    """Accuracy of guessing uniformly among the labels of a test context: shots / N."""
    return shots / spec.exemplars


def test_shots(spec: BurstySpec, max_shots: int) -> list[int]:
    """The shot counts a test can use: 0 and the divisors of N up to max_shots."""
    return [0] + [k for k in range(1, max_shots + 1) if spec.exemplars % k == 0]


def eval_batch(key, bank: Bank, spec: BurstySpec, batch: int, mode: str, shots) -> dict:
    """`batch` test sequences of `mode` (novel | fixed | flip): N / shots classes with
    `shots` exemplars each (shots divides N; may be traced), or N distinct classes other
    than the query's when shots = 0."""
    if mode not in EVAL_MODES:
        raise ValueError(f"mode={mode!r}; choose one of {', '.join(EVAL_MODES)}")
    return jax.vmap(lambda k: _eval_one(k, bank, spec, mode, shots))(
        jax.random.split(key, batch))
