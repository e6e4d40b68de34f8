"""A continuous family of SAC losses: MetaPG's second search space (issue 28, small-scale.md
§7). A point is five numbers in a box; SAC itself is the point `SAC_POINT`:

    critic = H_u(q1 - y) + H_u(q2 - y),
        y  = sg(reward + discount * (agg(q1_next, q2_next; target_min)
                                     - target_entropy * alpha * logp_next))
    actor  = actor_entropy * alpha * logp_pi - agg(q1_pi, q2_pi; actor_min)
    agg(a, b; w) = w * min(a, b) + (1 - w) * (a + b) / 2
    H_u(e) = e_c (2 e - e_c), e_c = clip(e, -1/u, 1/u): the squared TD error for u = 0,
        a Huber loss with threshold 1/u (TD-error clipping: the gradient is 2 e_c) for u > 0

    parameter        range   SAC   what it moves
    target_min       [0, 1]  1     min (clipped double Q) vs mean of the twin target critics
    target_entropy   [0, 2]  1     the soft value's entropy bonus in the TD target
    actor_min        [0, 1]  1     min vs mean of the twin critics the actor climbs
    actor_entropy    [0, 2]  1     the actor's entropy term
    td_clip          [0, 1]  0     1 / Huber threshold of the TD error (0: no clipping)

The losses take the dicts `rl.sac` hands its pluggable losses, with the point traced, so
one compiled SAC training vmaps over points and seeds (`SACFamilyTask`, the evaluator
`evolve.backends` runs; the same items and outputs as `actor_critic.MetaPGTask`).
`mutate` is a Gaussian step per coordinate (each changed with probability `p_gene`, at
least one), sd `sigma` x the coordinate's range, clipped to the box and rounded to
`DECIMALS`, so a point's `key` (its hash) is exactly the point trained.

Measured (recipe `metapg --preset continuous`, Pendulum, 4k steps, hidden 32): ~0.5 CPU-s
per training with 8 points x 6 seeds per compiled call, ~25 CPU-s to compile; the points
the searches chose differ from SAC by -0.024 .. +0.088 normalised performance on 33 common
fresh seeds (paired sd 0.225): see the recipe's docstring.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import DataError

if TYPE_CHECKING:
    from selftaught.rl.sac import SACConfig

NAMES = ("target_min", "target_entropy", "actor_min", "actor_entropy", "td_clip")
LOW = np.array([0.0, 0.0, 0.0, 0.0, 0.0])
HIGH = np.array([1.0, 2.0, 1.0, 2.0, 1.0])
SAC_POINT = (1.0, 1.0, 1.0, 1.0, 0.0)
DECIMALS = 4


@dataclasses.dataclass(frozen=True)
class Point:
    """One algorithm of the family: `values` in the order of `NAMES`."""

    values: tuple[float, ...]

    def key(self) -> str:
        """The point's hash: its values at `DECIMALS` decimals (what `mutate` keeps)."""
        return ",".join(f"{v:.{DECIMALS}f}" for v in self.values)

    def as_dict(self) -> dict[str, float]:
        return dict(zip(NAMES, self.values))

    def formulas(self) -> dict[str, str]:
        """Both losses with this point's numbers in them (SAC's terms kept by name)."""
        k, b, ka, ba, u = self.values
        clip = "squared" if u == 0 else f"Huber(1/{u:g})"
        return {"critic": f"{clip}(q - y), y = sg(r + d (agg(q1', q2'; {k:g}) - {b:g} alpha "
                          f"logp'))",
                "actor": f"{ba:g} alpha logp_pi - agg(q1_pi, q2_pi; {ka:g})"}


def sac_point() -> Point:
    return Point(SAC_POINT)


def point_from_dict(data, *, where: str = "point") -> Point:
    """Parse `Point.as_dict` output, checking the names and the box."""
    if not isinstance(data, dict) or set(data) != set(NAMES):
        raise DataError(f"{where}: expected an object with keys {', '.join(NAMES)}")
    v = np.asarray([data[n] for n in NAMES], np.float64)
    if not (np.isfinite(v).all() and (v >= LOW).all() and (v <= HIGH).all()):
        raise DataError(f"{where}: values {v.tolist()} outside the box {LOW.tolist()} .. "
                        f"{HIGH.tolist()}")
    return Point(tuple(float(x) for x in v))


def _agg(a, b, w):
    return w * jnp.minimum(a, b) + (1.0 - w) * (0.5 * (a + b))


def clipped_square(e, u):
    """e_c (2 e - e_c), e_c = clip(e, -1/u, 1/u): e^2 at u = 0 (1/0 = inf clips nothing),
    a Huber loss with threshold 1/u otherwise; the gradient is 2 e_c, never NaN."""
    delta = 1.0 / jnp.asarray(u, jnp.float32)
    e_c = jnp.clip(e, -delta, delta)
    return e_c * (2.0 * e - e_c)


def critic_loss(theta, x: dict) -> jax.Array:
    """Per-sample critic loss of point `theta` [5] on `rl.sac`'s critic inputs."""
    k, b, _, _, u = (theta[i] for i in range(5))
    y = x["reward"] + x["discount"] * (_agg(x["q1_next"], x["q2_next"], k)
                                       - b * x["alpha"] * x["logp_next"])
    y = jax.lax.stop_gradient(y)
    return clipped_square(x["q1"] - y, u) + clipped_square(x["q2"] - y, u)


def actor_loss(theta, x: dict) -> jax.Array:
    """Per-sample actor loss of point `theta` [5] on `rl.sac`'s actor inputs."""
    return theta[3] * x["alpha"] * x["logp_pi"] - _agg(x["q1_pi"], x["q2_pi"], theta[2])


def mutate(point: Point, rng: np.random.Generator, sigma: float = 0.2,
           p_gene: float = 0.5) -> Point:
    """A Gaussian step: each coordinate changed with probability `p_gene` (at least one) by
    N(0, (sigma x its range)^2), clipped to the box, rounded to `DECIMALS`."""
    v = np.asarray(point.values, np.float64)
    mask = rng.random(len(v)) < p_gene
    if not mask.any():
        mask[rng.integers(len(v))] = True
    step = rng.normal(0.0, sigma, len(v)) * (HIGH - LOW)
    child = np.round(np.clip(v + mask * step, LOW, HIGH), DECIMALS)
    return Point(tuple(float(x) for x in child))


# ---------------------------------------------------------------------------- the task
@dataclasses.dataclass(frozen=True)
class SACFamilyTask:
    """A picklable evaluation task (see `evolve.backends`): fn(items) -> [n, 2, seeds]
    per-seed (performance, generalizability), normalised as `actor_critic.MetaPGTask` does.
    An item is a `Point` (seed block 0) or `(Point, block)`."""

    sac: SACConfig
    perturb: tuple[tuple[str, float], ...]
    seeds: int = 3
    seed: int = 0
    batch: int = 8

    @property
    def space(self):  # the backends' Task protocol
        return NAMES

    def build(self):
        from selftaught.evolve.actor_critic import seed_block_evaluator

        run = _family_program(dataclasses.replace(self, seed=0))
        return seed_block_evaluator(
            self, lambda part: (jnp.asarray([p.values for p in part], jnp.float32),), run,
            bare=Point)


@functools.lru_cache(maxsize=4)
def _family_program(task: SACFamilyTask):
    """jit(vmap over points, vmap over seeds) of one SAC training with the family's losses
    -> (eval_return [n, seeds, num_evals], perturbed_return [n, seeds, P])."""
    from selftaught.rl import sac

    physics = [{k: v} for k, v in task.perturb]

    def train_one(theta, key):
        agent = sac.make_agent(task.sac, actor_loss=lambda x: actor_loss(theta, x),
                               critic_loss=lambda x: critic_loss(theta, x),
                               eval_physics=physics)
        curves = agent.train(key)
        return curves["eval_return"], curves["perturbed_return"]

    return jax.jit(jax.vmap(jax.vmap(train_one, in_axes=(None, 0))))
