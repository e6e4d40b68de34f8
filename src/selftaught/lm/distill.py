"""Token-level distillation divergences and on-policy data mixing (GKD, DistillSpec).

P is the teacher's next-token distribution, Q the student's, both softmax(logits / T) over
the whole vocabulary. Per token (lm.md §4):

- ``fkl``: forward KL(P‖Q) = Σ p (log p − log q)   (mode covering; supervised KD)
- ``rkl``: reverse KL(Q‖P) = Σ q (log q − log p)   (mode seeking)
- ``jsd``: generalized JSD(β) = β·KL(P‖M) + (1−β)·KL(Q‖M), M = βP + (1−β)Q, with log M
  computed in log space (logsumexp of log β + log p and log(1−β) + log q). Its endpoints are
  the limits after dividing by β (resp. 1−β), implemented exactly: β=0 → KL(P‖Q), β=1 → KL(Q‖P).
  P = teacher, Q = student: the convention of TRL's `GKDTrainer.generalized_jsd_loss`
  (which cites the GKD paper's Eq. (1); mixture of log β + log p and log(1−β) + log q),
  tested against a numpy transcription of that formula (the swapped-weights variant of TRL
  before PR #3043 and the log-space mixture of TRL issue #2202 are shown to differ). In this
  convention the interior tends to 0 at both ends (JSD(β) ≈ β·KL(P‖Q) as β → 0), so β near
  0 or 1 also scales the loss and its gradient, and the exact endpoints are a jump
  (ms-swift #10213 chose a continuous variant instead; not ours).
- ``tvd``: total variation ½ Σ |p − q| (1 − TVD = Σ min(p, q) is speculative decoding's
  acceptance rate, so DistillSpec uses it to maximise α directly).

`divergence` masks and averages them over completion tokens (the `lm.train` mask
convention: position t is scored on predicting token t+1). Logits of −inf are allowed on
either side (0·log 0 terms are 0), so one-hot distributions give finite values and gradients.

Data mixing (GKD's λ, the "student data fraction", TRL's `lmbda`): each step draws
u ~ U[0, 1); when u < λ the student samples the batch on-policy (`student_batch`,
temperature 1, no gradient through the sampling), else the step
uses fixed data (ground truth = supervised KD, teacher samples = SeqKD). `mixed_batch` does
the choice inside a jitted step with `lax.cond`, so λ=0 never samples and λ=1 always does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import ConfigError, DataError, check
from selftaught.lm.model import TransformerConfig, forward
from selftaught.lm.sampler import sample
from selftaught.lm.tokenizer import EOS, PAD

DIVERGENCES = ("fkl", "rkl", "jsd", "tvd")


def _kl(la_xV, lb_xV):
    """Σ_v a_v (log a_v − log b_v) from log-probs; terms with a_v = 0 are exactly 0."""
    live = la_xV > -jnp.inf
    la0 = jnp.where(live, la_xV, 0.0)  # double-where: no inf/NaN reaches the dead branch
    lb0 = jnp.where(live, lb_xV, 0.0)
    return jnp.sum(jnp.where(live, jnp.exp(la0) * (la0 - lb0), 0.0), axis=-1)


def token_divergence(teacher_logits_xV, student_logits_xV, kind: str, beta=0.5,
                     temperature=1.0):
    """Per-token divergence D(P‖Q) (shape = logits shape without V); see the module doc.

    `beta` (for ``jsd``) and `temperature` may be traced (vmap over a sweep); the ``jsd``
    endpoints β=0 and β=1 select forward / reverse KL exactly.
    """
    if kind not in DIVERGENCES:
        raise ConfigError(f"divergence {kind!r}; choose one of {', '.join(DIVERGENCES)}")
    lp = jax.nn.log_softmax(teacher_logits_xV.astype(jnp.float32) / temperature, axis=-1)
    lq = jax.nn.log_softmax(student_logits_xV.astype(jnp.float32) / temperature, axis=-1)
    if kind == "fkl":
        return _kl(lp, lq)
    if kind == "rkl":
        return _kl(lq, lp)
    if kind == "tvd":
        return 0.5 * jnp.sum(jnp.abs(jnp.exp(lp) - jnp.exp(lq)), axis=-1)
    beta = jnp.asarray(beta, jnp.float32)
    b_in = jnp.clip(beta, 1e-12, 1.0 - 1e-7)  # interior value, used only when 0 < β < 1
    a, b = jnp.log(b_in) + lp, jnp.log1p(-b_in) + lq
    live = (a > -jnp.inf) | (b > -jnp.inf)  # log m = -inf only where p = q = 0
    lm = jnp.where(live, jnp.logaddexp(jnp.where(live, a, 0.0), jnp.where(live, b, 0.0)),
                   -jnp.inf)
    jsd = b_in * _kl(lp, lm) + (1.0 - b_in) * _kl(lq, lm)
    lo, hi = beta <= 0.0, beta >= 1.0
    # an endpoint not selected is evaluated as KL(Q‖Q) = 0, so an infinite KL there can't
    # turn the selected value's gradient into NaN (0 * inf)
    fkl = _kl(jnp.where(lo, lp, lq), lq)
    rkl = _kl(lq, jnp.where(hi, lp, lq))
    return jnp.where(lo, fkl, jnp.where(hi, rkl, jsd))


def divergence(teacher_logits_BxTxV, student_logits_BxTxV, mask_BxT, kind: str, beta=0.5,
               temperature=1.0):
    """Mean of `token_divergence` over the positions where `mask_BxT` is set (completion
    tokens), 0 if the mask is empty: a token-level mean (TRL's "batchmean" over labels !=
    -100), so a row weighs by its number of completion tokens. Masked-out positions are
    selected away with `where`, not multiplied by 0, so whatever logits they hold (NaN or
    inf from a padded row included) cannot reach the value."""
    d_BxT = token_divergence(teacher_logits_BxTxV, student_logits_BxTxV, kind, beta,
                             temperature)
    live_BxT = mask_BxT > 0
    m_BxT = live_BxT.astype(jnp.float32)
    return jnp.sum(jnp.where(live_BxT, d_BxT, 0.0)) / jnp.maximum(jnp.sum(m_BxT), 1.0)


def check_divergence(kind: str, beta: float = 0.5, temperature: float = 1.0) -> None:
    """ConfigError naming what to change for an unknown divergence, β ∉ [0, 1] or T ≤ 0."""
    if kind not in DIVERGENCES:
        raise ConfigError(f"divergence {kind!r}; choose one of {', '.join(DIVERGENCES)}")
    check(0.0 <= beta <= 1.0, f"beta={beta} must be in [0, 1] (0 = forward KL, 1 = reverse KL)")
    check(temperature > 0, f"distillation temperature={temperature} must be > 0")


def check_lambda(lam: float) -> None:
    check(0.0 <= lam <= 1.0, f"on-policy fraction lambda={lam} must be in [0, 1]")


def on_policy(rng, lam):
    """True with probability λ (u ~ U[0, 1), u < λ): this step samples from the student."""
    return jax.random.uniform(rng) < lam


def student_batch(params, cfg: TransformerConfig, prompt_BxP, pmask_BxP, rng, *,
                  max_new_tokens: int, temperature: float = 1.0):
    """On-policy rows: the student's samples after left-padded prompts, in the layout
    dict(tokens=[B, P+N], loss_mask=[B, P+N]) with the `lm.train` mask convention (the
    position before each generated token, up to and including the one before EOS).
    Sampling is wrapped in `stop_gradient` (no gradient through it); usable inside jit.
    """
    out = sample(jax.lax.stop_gradient(params), cfg, prompt_BxP, pmask_BxP, rng,
                 max_new_tokens=max_new_tokens, temperature=temperature)
    return completion_rows(prompt_BxP, out.tokens_BxN, out.lengths_B)


def completion_rows(prompt_BxP, completion_BxN, lengths_B):
    """dict(tokens, loss_mask) for left-padded prompts followed by completions of the given
    lengths (tokens after them are PAD)."""
    P, N = prompt_BxP.shape[1], completion_BxN.shape[1]
    live_BxN = jnp.arange(N)[None, :] < lengths_B[:, None]
    comp_BxN = jnp.where(live_BxN, completion_BxN, PAD).astype(jnp.int32)
    tokens = jnp.concatenate([prompt_BxP.astype(jnp.int32), comp_BxN], axis=1)
    # input position P-1+n predicts completion token n
    loss_mask = jnp.concatenate(
        [jnp.zeros((prompt_BxP.shape[0], P - 1), jnp.float32),
         live_BxN.astype(jnp.float32), jnp.zeros((prompt_BxP.shape[0], 1), jnp.float32)],
        axis=1,
    )
    return dict(tokens=tokens, loss_mask=loss_mask)


def mixed_batch(lam, rng, fixed_batch, sample_fn):
    """`sample_fn(rng)` (on-policy rows) with probability λ, else `fixed_batch` (same shapes).

    Returns (batch, on_policy_flag). Under `lax.cond` only the chosen branch runs (unless the
    caller vmaps it, where both run and one is selected).
    """
    pick_rng, sample_rng = jax.random.split(rng)
    flag = on_policy(pick_rng, lam)
    batch = jax.lax.cond(flag, lambda: sample_fn(sample_rng),
                         lambda: {k: fixed_batch[k] for k in ("tokens", "loss_mask")})
    return batch, flag



# ---------------------------------------------------------------------------- training rows
def prompt_completion_rows(tok, prompts, completions, prompt_len: int, max_new: int) -> dict:
    """Fixed-data rows in the on-policy layout (left-padded `BOS prompt SEP`, then the
    completion and EOS, right-padded): tokens/loss_mask [n, prompt_len + max_new] plus the
    prompt alone (prompt, prompt_mask) for sampling. NumPy arrays, no "weight" column."""
    enc = tok.encode_prompts(list(prompts), prompt_len)
    comp = np.zeros((len(completions), max_new), np.int32)
    lengths = np.zeros(len(completions), np.int32)
    for i, c in enumerate(completions):
        ids = [*tok.encode(c), EOS][:max_new]
        comp[i, :len(ids)], lengths[i] = ids, len(ids)
    rows = completion_rows(jnp.asarray(enc["tokens"]), jnp.asarray(comp), jnp.asarray(lengths))
    return dict(tokens=np.asarray(rows["tokens"]), loss_mask=np.asarray(rows["loss_mask"]),
                prompt=enc["tokens"], prompt_mask=enc["mask"])


def make_distill_loss(student_cfg: TransformerConfig, teacher_cfg: TransformerConfig,
                      teacher_params, *, kind: str, beta: float = 0.5, lam: float = 0.0,
                      max_new_tokens: int, temperature: float = 1.0,
                      sample_temperature: float = 1.0, teacher_fn=None):
    """GKD's loss for `lm.train.make_trainer`: `loss_fn(params, batch, rng) -> (loss, aux)`.

    With probability `lam` the step's rows are the student's own samples for batch["prompt"]
    (on-policy, no gradient through sampling), else batch["tokens"]/["loss_mask"] (fixed
    data: ground truth = supervised KD, teacher samples = SeqKD). The loss is the masked mean
    token divergence `kind` (β, temperature) between the frozen teacher and the student.
    aux: on_policy (1.0 when the step sampled).
    `teacher_fn(tokens_BxT) -> logits_BxTxV`, if given, replaces the learned teacher's forward
    pass (e.g. `tasks.chain.algorithmic_teacher`; `teacher_cfg` then only names its vocab).
    """
    check_divergence(kind, beta, temperature)
    check_lambda(lam)
    check(teacher_cfg.vocab_size == student_cfg.vocab_size,
          f"teacher vocab_size={teacher_cfg.vocab_size} differs from the student's "
          f"{student_cfg.vocab_size}; both must use the task's tokenizer")
    def loss_fn(params, batch, rng):
        fixed = dict(tokens=batch["tokens"], loss_mask=batch["loss_mask"])
        if lam > 0:
            rows, flag = mixed_batch(lam, rng, fixed, lambda r: student_batch(
                params, student_cfg, batch["prompt"], batch["prompt_mask"], r,
                max_new_tokens=max_new_tokens, temperature=sample_temperature))
        else:
            rows, flag = fixed, jnp.zeros((), bool)
        tokens = rows["tokens"]
        real = tokens != PAD
        t_logits = jax.lax.stop_gradient(
            teacher_fn(tokens) if teacher_fn is not None
            else forward(teacher_params, teacher_cfg, tokens, None, real))
        s_logits = forward(params, student_cfg, tokens, None, real)
        loss = divergence(t_logits, s_logits, rows["loss_mask"], kind, beta, temperature)
        return loss, {"on_policy": flag.astype(jnp.float32)}

    return loss_fn


def check_params_match(params, like, what: str, source: str) -> None:
    """DataError (one line) unless `params` has the tree structure and shapes of `like`."""
    got = jax.tree_util.tree_map(lambda x: tuple(np.shape(x)), params)
    want = jax.tree_util.tree_map(lambda x: tuple(np.shape(x)), like)
    if jax.tree_util.tree_structure(got) != jax.tree_util.tree_structure(want) or (
            jax.tree_util.tree_leaves(got) != jax.tree_util.tree_leaves(want)):
        n_got = sum(int(np.prod(s)) for s in jax.tree_util.tree_leaves(got, is_leaf=_is_shape))
        n_want = sum(int(np.prod(s)) for s in jax.tree_util.tree_leaves(want, is_leaf=_is_shape))
        raise DataError(
            f"{what} {source} does not match the config's model ({n_got} parameters vs "
            f"{n_want} expected); pass the checkpoint of a model with the configured shape "
            "and task, or change the model flags to the checkpoint's shape")


def _is_shape(x) -> bool:
    return isinstance(x, tuple) and all(isinstance(i, int) for i in x)


def load_teacher(path: str, like):
    """Parameters from a msgpack checkpoint (e.g. another run's checkpoints/teacher.msgpack),
    checked against `like`'s shapes: DataError naming the file otherwise."""
    from flax import serialization

    try:
        with open(path, "rb") as fh:
            raw = serialization.msgpack_restore(fh.read())
        params = serialization.from_state_dict(like, raw)
    except FileNotFoundError:
        raise DataError(f"teacher checkpoint {path} does not exist; pass an existing "
                        "msgpack file (a run's checkpoints/teacher.msgpack)") from None
    except Exception as exc:  # not msgpack, other tree
        raise DataError(f"teacher checkpoint {path} cannot be read as this model's "
                        f"parameters ({str(exc)[:80]}); pass a matching checkpoint") from None
    check_params_match(params, like, "teacher checkpoint", path)
    return params


def teacher_model(like, *, checkpoint: str, model_cfg: TransformerConfig, train_cfg, data,
                  key: jax.Array, chunk: int, description: str) -> tuple[object, float]:
    """The teacher (GKD) or target (DistillSpec) of a distillation run -> (params, final loss).

    Loaded from `checkpoint` (a msgpack file trained elsewhere, checked against `like`'s
    shapes; final loss NaN) or trained from `like` by SFT on `data` for
    `train_cfg.total_steps` (final loss: the mean of the last 50 steps). A recipe runs it
    as its first phase (`RunDir.phase`), which checkpoints and restores it.
    """
    from selftaught.lm.train import fit, make_sft

    if checkpoint:
        return load_teacher(checkpoint, like), float("nan")
    sft = make_sft(model_cfg, train_cfg)
    state, losses = fit(sft, sft.init(key, like), data, train_cfg.total_steps, chunk=chunk,
                        description=description)
    return state.params, float(losses[-50:].mean())


__all__ = [
    "DIVERGENCES", "check_divergence", "check_lambda", "check_params_match", "completion_rows",
    "divergence", "load_teacher", "make_distill_loss", "mixed_batch", "on_policy",
    "prompt_completion_rows", "student_batch", "teacher_model", "token_divergence",
]
