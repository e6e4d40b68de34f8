"""An exact factorised discrete Bayes filter over the prey of `rl.gridworld`'s capture world
with a cage (IC2's filter whose uncertainty grows out of view; small-scale.md §9).

    b = initial(spec, agent_2, obs0)                 # [K, S] beliefs, S = n*n cells + cage
    b = step(spec, b, agent_2, obs, p_prey)           # one world step: capture, move, observe
    entropy(b)                                        # [K] nats; the joint's is the sum
    cross_entropy(b, q)                               # [K] -sum_s b(s) log q(s)

State of prey k: its cell (row-major index r * n + c) or the cage (index n * n). The
belief is the product of per-prey marginals b_k; per world step (the order `gridworld.step`
uses):
  capture  the agent moves to a (known) cell a'; a prey there is captured: its mass at a'
           moves to the cage (the cage keeps its mass for good).
  predict  a free prey stays with 1 - p; with p / 4 it tries each of up, down, left, right
           and stays when that target is outside the room or is the agent's cell a' -
           the exact rule of `gridworld._move_objects` for one prey.
  update   the (2 view + 1)^2 egocentric window at a' shows which in-view cells hold a
           free prey (prey are anonymous); out of view nothing is learnt. The posterior of
           the product prior given that observation is computed exactly by enumerating
           every association of prey to {out of view or caged, seen cell 1, ..., seen cell
           K} (each seen cell held by exactly one prey), then projected back onto a product
           of marginals (assumed-density filtering, Boyen & Koller 1998) in canonical
           labels: prey are exchangeable, so in each association the prey on seen cell j
           is relabelled j (its marginal is then a point mass) and the unseen keep their
           order after the seen ones; caged prey take the last labels.
The agent's own cell a' is an input (the agent knows where it is). A capture is certain
or impossible (the agent steps onto a cell it saw the step before), so the cage holds
exactly the captured prey. For two prey the canonical product represents the posterior
over the unordered prey states exactly (given the product prior); from three prey on, the
unseen prey's joint mixture is projected onto its marginals.

What the factorisation ignores (exact only for one prey): the prey-prey interactions of the
world - a prey is blocked by another prey's cell or by a cell two prey chose at once, and
two prey never share a cell out of view - and (from three prey on) the correlations
between unseen prey that the projection onto marginals drops (their summed entropy is then
an upper bound of the joint's). An observation that has probability
0 under the factorised prior (possible only when p_prey = 1, where a prey blocked by another
one stays with a probability the factorised model does not have) leaves the prediction
unchanged.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import check
from selftaught.rl import gridworld as gw

PREY_CHANNEL = 3  # the prey plane of `gridworld.observe`'s window


def num_states(spec: gw.WorldSpec) -> int:
    """Cells plus the cage."""
    return spec.size * spec.size + 1


def check_spec(spec: gw.WorldSpec) -> None:
    """ConfigError unless the world is the capture task with a cage (captured prey that stay
    on the grid would block free ones, which this filter does not model)."""
    check(spec.task == "capture" and spec.cage, "the exact prey filter needs the capture "
          "world with a cage (--world.task capture --world.cage)")


def _in_view(spec: gw.WorldSpec, agent) -> jax.Array:
    """[n, n] bool: cells inside the agent's window."""
    r = jnp.arange(spec.size)
    rows = jnp.abs(r - agent[0]) <= spec.view
    cols = jnp.abs(r - agent[1]) <= spec.view
    return rows[:, None] & cols[None, :]


def _seen(spec: gw.WorldSpec, agent, obs) -> jax.Array:
    """[n, n] bool: in-view cells whose window pixel shows a free prey."""
    v, r = spec.view, jnp.arange(spec.size)
    ir = jnp.clip(r - agent[0] + v, 0, 2 * v)
    ic = jnp.clip(r - agent[1] + v, 0, 2 * v)
    pix = obs[ir[:, None], ic[None, :], PREY_CHANNEL] > 0.5
    return pix & _in_view(spec, agent)


def _associations(k: int) -> np.ndarray:
    """[C, K] every labelling of K prey with 0 (not seen) or j + 1 (seen cell j)."""
    return np.array(list(itertools.product(range(k + 1), repeat=k)), np.int32).reshape(-1, k)


def capture(spec: gw.WorldSpec, b_KxS, agent) -> jax.Array:
    """A prey on the agent's (new) cell is captured: that mass goes to the cage."""
    i = agent[0] * spec.size + agent[1]
    b = b_KxS.at[:, i].set(0.0).at[:, -1].add(b_KxS[:, i])
    return b[jnp.argsort(b[:, -1] > 0.5, stable=True)]  # caged prey take the last labels


def predict(spec: gw.WorldSpec, b_KxS, agent, p) -> jax.Array:
    """One step of every free prey's random walk, blocked by the walls and the agent."""
    n, K = spec.size, b_KxS.shape[0]
    cells = b_KxS[:, :-1].reshape(K, n, n)
    r = jnp.arange(n)
    rr, cc = jnp.meshgrid(r, r, indexing="ij")
    out = cells * (1.0 - p)
    for dr, dc in gw.MOVES[:4]:
        tr, tc = rr + dr, cc + dc
        ok = (tr >= 0) & (tr < n) & (tc >= 0) & (tc < n) & ~((tr == agent[0]) & (tc == agent[1]))
        go = cells * (p / 4.0)
        out = out + jnp.where(ok, 0.0, go)
        # blocked mass stayed above; the rest lands on its target (no wrap: ok is in-room)
        out = out + jnp.roll(jnp.where(ok, go, 0.0), (int(dr), int(dc)), axis=(1, 2))
    return jnp.concatenate([out.reshape(K, n * n), b_KxS[:, -1:]], 1)


def update(spec: gw.WorldSpec, b_KxS, agent, obs) -> jax.Array:
    """Condition on the window at `agent` (exact for the product prior), then project onto
    a product of marginals in canonical labels: in every association the prey on seen cell
    j gets label j (a point mass) and the unseen ones keep their order after them."""
    K, S = b_KxS.shape
    seen = _seen(spec, agent, obs).reshape(-1)
    out = jnp.concatenate([~_in_view(spec, agent).reshape(-1), jnp.ones(1, bool)])  # + cage
    # the (at most K) seen cells as slots; slot j is valid when it holds a seen cell
    score = seen.astype(jnp.float32) - jnp.arange(S - 1) / S  # seen first, by index
    _, slot = jax.lax.top_k(score, K)
    valid = seen[slot]
    m = jnp.sum(valid)
    hidden = b_KxS * out
    w_KxL = jnp.concatenate([hidden.sum(1, keepdims=True), b_KxS[:, slot]], 1)  # [K, K+1]
    lab = jnp.asarray(_associations(K))  # [C, K]
    hits = jnp.stack([jnp.sum(lab == j + 1, 1) for j in range(K)], 1)  # [C, K slots]
    ok = jnp.all(jnp.where(valid[None], hits == 1, hits == 0), 1)
    weight = jnp.where(ok, jnp.prod(jnp.take_along_axis(w_KxL.T, lab, 0), 1), 0.0)  # [C]
    z = weight.sum()
    unseen = lab == 0
    pos = jnp.where(unseen, m + jnp.cumsum(unseen, 1) - 1, lab - 1)  # canonical label
    # A[i, k]: probability that canonical label i is the unseen original prey k
    a_KxK = jnp.einsum("c,cki->ik", weight, jax.nn.one_hot(pos, K) * unseen[..., None])
    a_KxK = a_KxK / jnp.where(z > 0, z, 1.0)
    post = (a_KxK @ (hidden / jnp.maximum(w_KxL[:, :1], 1e-30))
            + valid[:, None] * jax.nn.one_hot(slot, S))
    return jnp.where(z > 0, post, b_KxS)


def initial(spec: gw.WorldSpec, agent, obs) -> jax.Array:
    """Reset: each prey uniform over the cells other than the agent's (what
    `gridworld.reset` draws, marginally), conditioned on the first window."""
    n = spec.size
    free = jnp.ones(n * n).at[agent[0] * n + agent[1]].set(0.0)
    b = jnp.concatenate([free / free.sum(), jnp.zeros(1)])
    return update(spec, jnp.tile(b, (spec.num_prey, 1)), agent, obs)


def step(spec: gw.WorldSpec, b_KxS, agent, obs, p) -> jax.Array:
    """One world step: the agent moved to `agent` (capturing what was there), the prey
    moved with probability `p`, then the window `obs` at `agent` was seen."""
    return update(spec, predict(spec, capture(spec, b_KxS, agent), agent, p), agent, obs)


def entropy(b_xS) -> jax.Array:
    """Entropy (nats) of each categorical belief."""
    return -jnp.sum(jnp.where(b_xS > 0, b_xS * jnp.log(jnp.where(b_xS > 0, b_xS, 1.0)), 0.0),
                    -1)


def cross_entropy(b_xS, q_xS) -> jax.Array:
    """-sum_s b(s) log q(s) = H(b) + KL(b || q) (nats; q > 0 wherever b > 0)."""
    return -jnp.sum(jnp.where(b_xS > 0, b_xS * jnp.log(jnp.where(b_xS > 0, q_xS, 1.0)), 0.0),
                    -1)
