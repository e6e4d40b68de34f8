"""The tolerance of a comparison between two float32 evaluations of the same transformer
logits that add in different orders: a KV cache (or a shared prefix cache) against the full
forward, blocked (online-softmax) attention against plain attention, and -- what no test can
see but every pinned number suffers -- another CPU's vector width or another thread count.
Such evaluations are equal in exact arithmetic; their float32 results differ by rounding only,
so the tolerance is derived from float32 rounding, not tuned until green.

Derivation (u = 2**-24, the float32 unit roundoff; first order in u):
* A dot product of length n has rounding error at most n*u*sum|a_i b_i| (Higham, Accuracy and
  Stability of Numerical Algorithms, section 3.1), relative error n*u when the terms do not
  cancel.
* Attention: a score s = q.k / sqrt(K) is a length-K dot product, so its absolute error is
  about K*u*|s| <= K*u*S_l, with S_l the largest |q.k| / sqrt(K) of layer l (measured on the
  batch itself: the `attn_logit_max` the model sows). A perturbation ds of the scores changes
  the softmax weights by dp_j = p_j (ds_j - sum_i p_i ds_i), so sum_j |dp_j| <= 2 max|ds| and
  the attention output moves by at most 2*K*u*S_l relative to |v|. Sharpened attention
  (scores in the hundreds) is exactly where this term dominates.
* The MLP of each layer (a length-F = mlp_ratio*D dot product after a length-D one) adds
  (F + D)*u relative, the tied read-out a length-D dot product D*u.
* These relative errors of the residual stream reach the logits scaled by their magnitude
  max|logit| (layer norm and the read-out are linear in that error to first order), and the
  two evaluations each carry their own rounding: a factor 2.

  atol = 2 * u * max|logit| * (sum_l 2*K*S_l + L*(F + D) + D)

This is a first-order estimate of the worst case of the dominant terms (how a later layer
re-amplifies an earlier layer's error through its own sharp softmax is not bounded here; near
one-hot attention damps it, since dp_j ~ p_j (1 - p_j) ds). Measured against it: the
prefix-cache test's largest difference was 1.3e-4 on an AVX-512 CPU and 2.6e-4 on another
x86-64 CPU, a tenth of the tolerance there (2.6e-3). A wrong cache slot, position
or mask changes logits by O(their spread); each test that uses the tolerance asserts that
the spread is at least 100 times it, so such a bug cannot hide inside it.
"""

import dataclasses
import functools

import jax
import numpy as np

from selftaught.lm.model import Transformer

U = 2.0**-24


def logit_atol(params, cfg, tokens, mask=None) -> float:
    """The absolute tolerance above for logits of `cfg` on this batch (full forward)."""
    plain = dataclasses.replace(cfg, attention="plain")  # only the plain path sows its scores
    logits, state = _sowing_forward(plain)(params, np.asarray(tokens),
                                           None if mask is None else np.asarray(mask))
    inter = state["intermediates"]
    per_layer = [float(inter[f"blocks_{i}"]["attn"]["attn_logit_max"][0])
                 for i in range(cfg.n_layers)]
    D, K, F, L = cfg.d_model, cfg.head_dim, cfg.mlp_ratio * cfg.d_model, cfg.n_layers
    terms = sum(2 * K * s for s in per_layer) + L * (F + D) + D
    return 2 * U * float(np.abs(np.asarray(logits)).max()) * terms


@functools.lru_cache(maxsize=16)
def _sowing_forward(cfg):
    return jax.jit(lambda p, t, m: Transformer(cfg).apply(p, t, None, m,
                                                          mutable=["intermediates"]))
