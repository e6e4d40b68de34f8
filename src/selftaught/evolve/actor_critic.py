"""The actor-critic loss domain of MetaPG (Garau-Luis et al. 2022, rl.md §4): an
algorithm is a pair of typed DAGs, a critic loss and an actor loss, each mapping per-sample
scalars to a per-sample loss [B]. The inputs are exactly the dicts `rl.sac` hands its
pluggable losses, so a compiled program (or the population interpreter) is a drop-in
`critic_loss` / `actor_loss`:

    critic inputs: q1, q2, q1_next, q2_next, logp_next, reward, discount, alpha
    actor inputs:  q1_pi, q2_pi, logp_pi, alpha

The population starts from SAC's own graphs (`sac_critic_program`, `sac_actor_program`);
`mutate_pair` mutates one of the two graphs. Ops: `ops.AC_OPS` (arithmetic, min/max,
exp/log, stop-gradient, batch mean, constants).

`MetaPGTask` scores pairs as MetaPG does: SAC (`rl.sac`) trained with the pair's losses,
candidates x seeds in one compiled program, per-seed normalised performance and zero-shot
generalizability over perturbed physics; `metapg_objectives` turns those into the three
objectives NSGA-II ranks (performance, generalizability, stability).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import DataError, UnknownNameError
from selftaught.evolve import ops
from selftaught.evolve.hashing import quantize
from selftaught.evolve.program import (
    Node,
    Program,
    Space,
    compile_program,
    encode_many,
    from_dict,
    make_interpreter,
    mutate,
    random_inputs,
    to_dict,
    to_formula,
    to_json,
    to_let_formula,
    validate,
)

if TYPE_CHECKING:
    from selftaught.rl.sac import SACConfig

CRITIC_INPUTS = ("q1", "q2", "q1_next", "q2_next", "logp_next", "reward", "discount", "alpha")
ACTOR_INPUTS = ("q1_pi", "q2_pi", "logp_pi", "alpha")


def critic_space(num_nodes: int = 12) -> Space:
    return Space(inputs=tuple((n, ops.S) for n in CRITIC_INPUTS), ops=ops.AC_OPS,
                 output_type=ops.S, num_nodes=num_nodes)


def actor_space(num_nodes: int = 6) -> Space:
    return Space(inputs=tuple((n, ops.S) for n in ACTOR_INPUTS), ops=ops.AC_OPS,
                 output_type=ops.S, num_nodes=num_nodes)


def _program(inputs: tuple[str, ...], nodes: list[tuple[str, tuple]]) -> Program:
    """Nodes given as (op, args) with args naming inputs or earlier nodes ("#k")."""
    slot = {name: k for k, name in enumerate(inputs)}
    out = []
    for op, args in nodes:
        out.append(Node(op, tuple(slot[a] if a in slot else len(inputs) + int(a[1:])
                                  for a in args)))
    return Program(inputs, tuple(out))


def sac_critic_program() -> Program:
    """(q1 - y)^2 + (q2 - y)^2, y = sg(reward + discount * (min(q1', q2') - alpha logp'))."""
    return _program(CRITIC_INPUTS, [
        ("min", ("q1_next", "q2_next")),        # 0
        ("mul", ("alpha", "logp_next")),        # 1
        ("sub", ("#0", "#1")),                  # 2 soft value of s'
        ("mul", ("discount", "#2")),            # 3
        ("add", ("reward", "#3")),              # 4 y
        ("stop_grad", ("#4",)),                 # 5
        ("sub", ("q1", "#5")),                  # 6
        ("sub", ("q2", "#5")),                  # 7
        ("square", ("#6",)),                    # 8
        ("square", ("#7",)),                    # 9
        ("add", ("#8", "#9")),                  # 10 output
    ])


def sac_actor_program() -> Program:
    """alpha * logp_pi - min(q1_pi, q2_pi)."""
    return _program(ACTOR_INPUTS, [
        ("mul", ("alpha", "logp_pi")),
        ("min", ("q1_pi", "q2_pi")),
        ("sub", ("#0", "#1")),
    ])


@dataclasses.dataclass(frozen=True)
class Pair:
    """One algorithm: its critic and actor losses."""

    critic: Program
    actor: Program

    def formulas(self) -> dict[str, str]:
        return {"critic": to_formula(self.critic), "actor": to_formula(self.actor)}

    def readable(self) -> dict[str, str]:
        """Both losses with shared subexpressions named (`program.to_let_formula`)."""
        return {"critic": to_let_formula(self.critic), "actor": to_let_formula(self.actor)}


def sac_pair() -> Pair:
    return Pair(sac_critic_program(), sac_actor_program())


def mutate_pair(pair: Pair, rng: np.random.Generator, critic: Space, actor: Space,
                p_critic: float = 0.5, p_edge: float = 0.3) -> Pair:
    """Mutate one of the two graphs (the critic with probability `p_critic`); no fresh
    random programs (MetaPG searches around SAC)."""
    if rng.random() < p_critic:
        return Pair(mutate(critic, pair.critic, rng, p_fresh=0.0, p_edge=p_edge), pair.actor)
    return Pair(pair.critic, mutate(actor, pair.actor, rng, p_fresh=0.0, p_edge=p_edge))


# ---------------------------------------------------------------- pair-aware hashing
CRITIC_GRAD_INPUTS = ("q1", "q2")
ACTOR_GRAD_INPUTS = ("q1_pi", "q2_pi", "logp_pi")


def input_gradients(program: Program, inputs: dict, wrt: tuple[str, ...]) -> np.ndarray:
    """d sum_B program(inputs) / d inputs[k] for k in `wrt`: [len(wrt), B]. Run eagerly
    (op by op, no whole-program compilation): hashing a program costs milliseconds."""
    fn = compile_program(program)

    def total(diff):
        return jnp.sum(fn({**inputs, **diff}))

    g = jax.grad(total)({k: jnp.asarray(inputs[k]) for k in wrt})
    return np.stack([np.asarray(g[k]) for k in wrt])


class PairHasher:
    """Functional hash of (critic, actor) pairs, a drop-in `hasher` of `FitnessCache`:
    `hash_many(pairs)`. SAC's training sees a loss only through its gradient with respect
    to the network outputs it reads (q1, q2 for the critic; q1_pi, q2_pi, logp_pi for the
    actor; every other input is a constant), so each graph is hashed by those gradients
    on fixed random inputs (rounded as in `hashing.quantize`): losses that differ by a
    constant, or by a stop-gradient on a constant, share one evaluation, while a
    stop-gradient that cuts a path to q1 does not. The pair hash joins both."""

    def __init__(self, critic: Space, actor: Space, seed: int = 1234, batch: int = 16):
        self.spaces = (critic, actor)
        self.inputs = []
        for k, space in enumerate(self.spaces):
            x = random_inputs(space, seed + k, batch=batch)
            if "alpha" in x:
                x["alpha"] = np.abs(x["alpha"]) + 0.05
            if "discount" in x:
                x["discount"] = np.where(x["discount"] > -1.0, 0.99, 0.0).astype(np.float32)
            self.inputs.append(x)
        self.wrt = (CRITIC_GRAD_INPUTS, ACTOR_GRAD_INPUTS)
        self._memo: dict[Program, str] = {}

    def _part(self, k: int, programs: list[Program]) -> list[str]:
        out = []
        for p in programs:
            if p not in self._memo:
                try:
                    validate(self.spaces[k], p)
                    g = quantize(input_gradients(p, self.inputs[k], self.wrt[k])).tobytes()
                except (DataError, UnknownNameError):  # invalid: hashed by its text
                    g = b"invalid:" + to_json(p).encode()
                self._memo[p] = hashlib.sha1(g).hexdigest()[:16]
            out.append(self._memo[p])
        return out

    def hash_many(self, pairs: list[Pair]) -> list[str]:
        if not pairs:
            return []
        c = self._part(0, [p.critic for p in pairs])
        a = self._part(1, [p.actor for p in pairs])
        return [f"{x}{y}" for x, y in zip(c, a)]


def pair_to_dict(pair: Pair) -> dict:
    return {"critic": to_dict(pair.critic), "actor": to_dict(pair.actor)}


def pair_from_dict(data, critic: Space, actor: Space, *, where: str = "pair") -> Pair:
    """Parse `pair_to_dict` output, checking both graphs against their spaces."""
    if not isinstance(data, dict) or set(data) != {"critic", "actor"}:
        raise DataError(f"{where}: expected an object with keys 'critic' and 'actor'")
    return Pair(from_dict(data["critic"], critic, where=f"{where}.critic"),
                from_dict(data["actor"], actor, where=f"{where}.actor"))


# ---------------------------------------------------------------------------- the MetaPG task
@dataclasses.dataclass(frozen=True)
class MetaPGTask:
    """A picklable evaluation task (see `evolve.backends`): fn(items) -> [n, 2, seeds]
    per-seed (performance, generalizability), normalised. An item is a `Pair` (seed block
    0, the search seeds) or `(Pair, block)`; block b > 0 are fresh re-evaluation seeds.
    Invalid pairs give NaN rows without training."""

    sac: SACConfig
    perturb: tuple[tuple[str, float], ...]  # ((param, value), ...): one physics per entry
    critic_nodes: int = 14
    actor_nodes: int = 8
    seeds: int = 3
    seed: int = 0
    batch: int = 4

    @property
    def spaces(self):
        return critic_space(self.critic_nodes), actor_space(self.actor_nodes)

    @property
    def space(self):  # the backends' Task protocol
        return self.spaces[0]

    def eval_physics(self) -> list[dict]:
        return [{k: v} for k, v in self.perturb]

    def build(self):
        run = _metapg_program(dataclasses.replace(self, seed=0))
        cs, as_ = self.spaces

        def valid(pair: Pair) -> bool:
            try:
                validate(cs, pair.critic)
                validate(as_, pair.actor)
                return True
            except (DataError, UnknownNameError):
                return False

        def encode(part):
            return (*encode_many(cs, [p.critic for p in part]),
                    *encode_many(as_, [p.actor for p in part]))

        return seed_block_evaluator(self, encode, run, bare=Pair, valid=valid)


def seed_block_evaluator(task, encode, run, *, bare: type, valid=None):
    """evaluate(items) -> [n, 2, task.seeds] per-seed (performance, generalizability) of
    SAC trainings: an item is a candidate (an instance of `bare`: seed block 0) or
    (candidate, block); seed j of block b is fold_in(fold_in(PRNGKey(task.seed), b), j), so
    a candidate's results depend on its block, never on its batch slot. Candidates are run
    `task.batch` at a time through `run(*encode(candidates), keys [batch, seeds])` ->
    (eval_return [batch, seeds, evals], perturbed_return [batch, seeds, P]), the last batch
    padded; performance = normalised mean return over the second half of the curve,
    generalizability = mean normalised perturbed return. Candidates failing `valid` give
    NaN rows without training."""
    from selftaught.rl import control

    env = control.make_control_env(task.sac.loop.env,
                                   task.sac.loop.max_episode_steps or None)
    base = jax.random.PRNGKey(task.seed)
    keys = jax.jit(lambda blocks: jax.vmap(lambda b: jax.vmap(
        lambda j: jax.random.fold_in(jax.random.fold_in(base, b), j))(
            jnp.arange(task.seeds)))(blocks))

    def evaluate(items) -> np.ndarray:
        jobs = [(it, 0) if isinstance(it, bare) else tuple(it) for it in items]
        out = np.full((len(jobs), 2, task.seeds), np.nan)
        ok = [i for i, (c, _) in enumerate(jobs) if valid is None or valid(c)]
        for start in range(0, len(ok), task.batch):
            idx = ok[start:start + task.batch]
            part = [jobs[i] for i in idx]
            part += [part[0]] * (task.batch - len(part))
            ks = keys(jnp.asarray([b for _, b in part], jnp.int32))
            ret, pert = (np.asarray(x, np.float64)
                         for x in run(*encode([c for c, _ in part]), ks))
            half = ret.shape[-1] // 2
            perf = np.asarray(env.normalized(ret[..., half:].mean(-1)))
            gen = np.asarray(env.normalized(pert)).mean(-1)
            out[idx] = np.stack([perf, gen], 1)[: len(idx)]
        return out

    return evaluate


@functools.lru_cache(maxsize=4)
def _metapg_program(task: MetaPGTask):
    """jit(vmap over candidates, vmap over seeds) of one SAC training with interpreted
    losses -> (eval_return [n, seeds, num_evals], perturbed_return [n, seeds, P])."""
    from selftaught.rl import sac
    cs, as_ = task.spaces
    interp_c, interp_a = make_interpreter(cs), make_interpreter(as_)
    physics = task.eval_physics()

    def train_one(c_ops, c_args, c_out, a_ops, a_args, a_out, key):
        agent = sac.make_agent(task.sac, actor_loss=lambda x: interp_a(a_ops, a_args, a_out, x),
                               critic_loss=lambda x: interp_c(c_ops, c_args, c_out, x),
                               eval_physics=physics)
        curves = agent.train(key)
        return curves["eval_return"], curves["perturbed_return"]

    per_seed = jax.vmap(train_one, in_axes=(None,) * 6 + (0,))
    return jax.jit(jax.vmap(per_seed))


def metapg_objectives(raw: np.ndarray, hurdle: float = 0.5) -> np.ndarray:
    """[n, 2, seeds] per-seed (performance, generalizability) -> [n, 3] objectives
    (mean performance, mean generalizability, -std of performance); stability counts only
    for a candidate that learns (mean performance >= `hurdle`; else -1, below any real
    spread of normalised returns, so a loss that never learns is not "stable"); a
    candidate with any non-finite value scores -inf on all three."""
    raw = np.asarray(raw, np.float64)
    perf = raw[:, 0].mean(-1)
    stab = np.where(perf >= hurdle, -raw[:, 0].std(-1), -1.0)
    f = np.stack([perf, raw[:, 1].mean(-1), stab], 1)
    bad = ~np.isfinite(raw).reshape(len(raw), -1).all(-1)
    f[bad] = -np.inf
    return f
