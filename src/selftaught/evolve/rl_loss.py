"""The RL-loss domain (Co-Reyes et al. 2021, "Evolving Reinforcement Learning Algorithms").

A program maps the DQN minibatch (q, q_target, q_next_online, action, reward, discount,
obs, next_obs) to a per-sample loss [B]. A candidate's fitness is the normalised return of
a DQN (selftaught.rl.dqn) trained with that loss: 0 = random policy, 1 = the env's
reference score, averaged over the last half of the learning curve and over seeds.

Evaluation of a batch of candidates is ONE compiled program: the loss is the space's
interpreter (program.make_interpreter) applied to the candidate's integer encoding, and
`jax.vmap` runs (candidates x seeds) DQN trainings at once. Batches are padded to a
fixed size so the DQN compiles once per task.

Reference programs: `dqn_program()` (the TD loss δ², δ = Q(s,a) - (r + γ max_a Q̄(s',a))),
`dqnreg_program()` (δ² + 0.1·Q(s,a), the paper's DQNReg), `myopic_program()` ((Q(s,a) - r)²,
no bootstrapping) and `is_td_like` (a functional test: gradient descent on the loss moves
Q(s,a) toward the TD target).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import ConfigError, UnknownNameError
from selftaught.evolve import ops
from selftaught.evolve.program import (
    Node,
    Program,
    Space,
    encode_many,
    make_interpreter,
    padded,
)

INPUTS = (("q", ops.V), ("q_target", ops.V), ("q_next_online", ops.V), ("action", ops.A),
          ("reward", ops.S), ("discount", ops.S), ("obs", ops.O), ("next_obs", ops.O))
OP_SETS = {"small": ops.RL_OPS_SMALL, "full": ops.RL_OPS_FULL}
SLOT = {name: k for k, (name, _) in enumerate(INPUTS)}
INPUT_NAMES = tuple(name for name, _ in INPUTS)


# the paper's inputs (no online Q at s'): used by the from-scratch search
PAPER_INPUTS = tuple(x for x in INPUTS if x[0] != "q_next_online")


def make_space(op_set: str = "small", num_nodes: int = 7, paper_inputs: bool = False
               ) -> Space:
    """The program space; observation inputs are left out when no op of the set reads an
    observation (they could never be used, and they widen every interpreter slot)."""
    if op_set not in OP_SETS:
        raise UnknownNameError("op set", op_set, list(OP_SETS))
    inputs = PAPER_INPUTS if paper_inputs else INPUTS
    if not any(ops.O in ops.get_op(o).in_types for o in OP_SETS[op_set]):
        inputs = tuple(x for x in inputs if x[1] != ops.O)
    return Space(inputs=inputs, ops=OP_SETS[op_set], output_type=ops.S, num_nodes=num_nodes)


def remap_inputs(program: Program, inputs: tuple[str, ...]) -> Program:
    """The same program over another input list, which must contain every input the
    program's nodes read (inputs it never reads may be dropped)."""
    inputs = tuple(inputs)
    if tuple(program.inputs) == inputs:
        return program
    old_in = len(program.inputs)
    pos = {name: k for k, name in enumerate(inputs)}
    read = {program.inputs[a] for n in program.nodes for a in n.args if a < old_in}
    missing = sorted(read - set(pos))
    if missing:
        raise ConfigError(f"cannot remap: inputs {missing} are not in {list(inputs)}")
    shift = len(inputs) - old_in

    def slot(a: int) -> int:
        return pos[program.inputs[a]] if a < old_in else a + shift

    return Program(inputs, tuple(Node(n.op, tuple(slot(a) for a in n.args))
                                 for n in program.nodes))


def _over(space: Space, programs: list[Program]) -> list[Program]:
    return [remap_inputs(p, space.input_names) for p in programs]


def dqn_program(inputs: tuple[str, ...] = INPUT_NAMES) -> Program:
    """(Q(s,a) - (r + γ·max_a Q̄(s',a)))², over `inputs` (default: all of INPUTS)."""
    n = len(INPUTS)
    return remap_inputs(Program(INPUT_NAMES, (
        Node("select", (SLOT["q"], SLOT["action"])),   # n+0: Q(s,a)
        Node("max_a", (SLOT["q_target"],)),            # n+1
        Node("mul", (SLOT["discount"], n + 1)),        # n+2
        Node("add", (SLOT["reward"], n + 2)),          # n+3: TD target
        Node("sub", (n + 0, n + 3)),                   # n+4: δ
        Node("square", (n + 4,)),                      # n+5: δ²
    )), inputs)


def myopic_program(inputs: tuple[str, ...] = INPUT_NAMES) -> Program:
    """(Q(s,a) - r)²: regression of Q on the immediate reward, no bootstrapping. It solves
    the chain hurdle's length-1 chains only: a milestone between random losses and TD."""
    n = len(INPUTS)
    return remap_inputs(Program(INPUT_NAMES, (
        Node("select", (SLOT["q"], SLOT["action"])),   # n+0: Q(s,a)
        Node("sub", (n + 0, SLOT["reward"])),          # n+1
        Node("square", (n + 1,)),                      # n+2
    )), inputs)


REFERENCE_LOSSES = {"td": dqn_program, "myopic": myopic_program}


def dqnreg_program(inputs: tuple[str, ...] = INPUT_NAMES) -> Program:
    """δ² + 0.1·Q(s,a) (DQNReg), over `inputs` (default: all of INPUTS)."""
    n = len(INPUTS)
    base = dqn_program()
    return remap_inputs(Program(base.inputs, base.nodes + (
        Node("const_0.1", ()),                         # n+6
        Node("mul", (n + 6, n + 0)),                   # n+7
        Node("add", (n + 5, n + 7)),                   # n+8
    )), inputs)


def td_probe_inputs(seed: int = 0, batch: int = 256, actions: int = 2) -> tuple[dict, np.ndarray]:
    """Random minibatch where Q(s,a) = TD target + δ with |δ| in [0.1, 2] of random sign
    (targets spread widely, γ ~ U[0.5, 0.99] or 0 at terminals, q_next_online =
    q_target); returns (inputs, δ)."""
    rng = np.random.default_rng(seed)
    B, A = batch, actions
    q_target = rng.normal(size=(B, A)).astype(np.float32) * 5
    reward = rng.normal(size=(B,)).astype(np.float32) * 2
    # discounts vary widely (and 20% of samples are terminal), so a loss that ignores γ
    # or the termination mask gets many of the signs wrong
    discount = (rng.uniform(0.5, 0.99, B) * (rng.random(B) > 0.2)).astype(np.float32)
    action = rng.integers(0, A, size=(B,)).astype(np.int32)
    delta = (rng.uniform(0.1, 2.0, B) * rng.choice([-1, 1], B)).astype(np.float32)
    q = rng.normal(size=(B, A)).astype(np.float32) * 5
    q[np.arange(B), action] = reward + discount * q_target.max(1) + delta
    inputs = {"q": q, "q_target": q_target, "q_next_online": q_target, "action": action,
              "reward": reward, "discount": discount,
              "obs": rng.normal(size=(B, 4)).astype(np.float32),
              "next_obs": rng.normal(size=(B, 4)).astype(np.float32)}
    return inputs, delta


@functools.lru_cache(maxsize=8)
def _td_grad(space: Space):
    interp = make_interpreter(space)

    def grad_q(op_ids, args, out, inputs):
        return jax.grad(lambda q: interp(op_ids, args, out, {**inputs, "q": q}).sum())(
            inputs["q"])

    return jax.jit(jax.vmap(grad_q, in_axes=(0, 0, 0, None)))


def td_likeness(space: Space, programs: list[Program], seed: int = 0) -> np.ndarray:
    """Per program: the fraction of probe samples where gradient descent on the loss moves
    Q(s,a) toward the TD target r + γ max_a Q̄(s',a) (sign of dL/dQ(s,a) = sign of δ).
    The TD loss δ² scores 1; a loss that ignores the target scores ~0.5 or 0."""
    programs = _over(space, programs)
    inputs, delta = td_probe_inputs(seed)
    B = len(delta)
    out = []
    for start in range(0, len(programs), 64):
        part = list(programs[start:start + 64])
        n = len(part)
        g = np.asarray(_td_grad(space)(*encode_many(space, padded(part)),
                                       {k: jnp.asarray(v) for k, v in inputs.items()}))[:n]
        g_sa = g[:, np.arange(B), inputs["action"]]
        out.append(np.mean(np.sign(g_sa) == np.sign(delta)[None], axis=1))
    return np.concatenate(out) if out else np.zeros((0,))


def is_td_like(program: Program, space: Space | None = None, threshold: float = 0.9
               ) -> tuple[bool, float]:
    """(td_like, score) with score = td_likeness; TD-like when score >= threshold."""
    space = space or make_space("full", max(len(program.nodes), 1))
    score = float(td_likeness(space, [program])[0])
    return score >= threshold, score


@dataclasses.dataclass(frozen=True)
class ChainTask:
    """A cheap first hurdle: tabular Q-learning with the candidate loss on random chain MDPs.

    Instance i is a chain of L_i = 1 + (i // 2) mod `length` states with its own discount
    γ_i ~ U[gamma_low, gamma_high] and reward scale c_i ~ logU[scale_low, scale_high]. In
    each state one action ("forward", its index drawn per state and instance) moves on at a
    cost of `step_cost`·c_i; at the last state it ends with the goal reward ±c_i (random
    sign: a prize or the smallest penalty). The other action quits with a reward set
    relative to W(s), the discounted return of going forward all the way from s:
    W(s) - (1 - m)·|W(s)| with m ~ U[0.3, 0.9] in every state, except state 0 of "stop"
    chains (odd i), where m ~ U[1.1, 1.6]. Ending moves to an absorbing state whose
    values stay at their random initialisation. The optimal policy goes forward
    everywhere on "go" chains and quits at state 0 (forward elsewhere) on "stop" chains.
    The learner minimises the loss over all transitions (full batch, clipped SGD, random
    initial table, target table copied every `target_every` steps); the task's score is
    the mean instance score.

    The score of an instance is (1 - value_weight)·[greedy policy optimal in all L_i
    states] + value_weight·max(0, 1 - mean |Q - Q*| / c_i) (Q* from backward induction):
    the value part gives partial credit to losses on the way to the right fixed point.
    Because the quit rewards are relative to the *discounted* value of the goal, with
    discounts, scales and signs that vary across instances, no fixed function of
    (r, γ, Q) that does not bootstrap can solve the long chains: a myopic loss (Q = r)
    solves the length-1 chains only, a loss that prefers one kind of transition (terminal,
    non-terminal, large or small reward) fails one chain type, and ignoring γ (which also
    carries termination) gives undiscounted values that mis-rank some stop chains.
    """

    length: int = 5
    instances: int = 10
    steps: int = 40
    lr: float = 2.5
    gamma_low: float = 0.6
    gamma_high: float = 0.95
    scale_low: float = 0.3
    scale_high: float = 3.0
    step_cost: float = 0.01
    target_every: int = 4
    value_weight: float = 0.5
    """weight of the value score (1 - mean |Q - Q*| / scale, floored at 0) against the
    policy score (greedy policy optimal in every state: 0 or 1)"""
    seed: int = 0
    batch: int = 256

    def mdps(self) -> dict[str, np.ndarray]:
        """The instances as arrays over (instance, state·2 + action) transitions, plus the
        optimal and the forward action per state (`best`, `fwd`: [K, N]), the optimal values
        (`q_star`, [K, N, 2]), the reward scale (`scale`, [K]) and which states count
        (`on_path`)."""
        N, A, K = self.length, 2, self.instances
        rng = np.random.default_rng([self.seed, 99])
        fwd = rng.integers(0, 2, size=(K, N))                            # forward action
        gamma = rng.uniform(self.gamma_low, self.gamma_high, K)
        scale = np.exp(rng.uniform(np.log(self.scale_low), np.log(self.scale_high), K))
        goal = scale * rng.choice([-1.0, 1.0], K)
        inst = np.arange(K)
        L = 1 + (inst // 2) % N
        stop = inst % 2 == 1
        cost = self.step_cost * scale
        # W[i, s]: return of going forward from s to the goal (computed backwards)
        W = np.zeros((K, N))
        for s in range(N - 1, -1, -1):
            nxt = W[:, s + 1] if s + 1 < N else 0.0
            W[:, s] = np.where(s == L - 1, goal, -cost + gamma * nxt)
        m = rng.uniform(0.3, 0.9, (K, N))
        m[:, 0] = np.where(stop, rng.uniform(1.1, 1.6, K), m[:, 0])
        quit_r = W + (m - 1.0) * np.abs(W)                               # [K, N]
        S_idx = np.repeat(np.arange(N), A)
        A_idx = np.tile(np.arange(A), N)
        is_fwd = A_idx[None] == fwd[:, S_idx]                            # [K, 2N]
        last = S_idx[None] == (L[:, None] - 1)
        reward = np.where(is_fwd, np.where(last, goal[:, None], -cost[:, None]),
                          quit_r[:, S_idx])
        term = np.where(is_fwd, last, True)
        # episodes end in an absorbing state N (no transition leaves it, so its row keeps
        # its random initial values, like an untrained network's outputs at a terminal s')
        nxt = np.where(term, N, S_idx[None] + 1)
        best = np.where(stop[:, None] & (np.arange(N)[None] == 0), 1 - fwd, fwd)
        # Q*: forward is worth W(s) (the optimal policy goes forward after state 0)
        q_star = np.where(np.arange(A)[None, None] == fwd[..., None], W[..., None],
                          quit_r[..., None])
        return {"s": S_idx, "a": A_idx.astype(np.int32), "r": reward.astype(np.float32),
                "discount": (gamma[:, None] * ~term).astype(np.float32), "next": nxt,
                "best": best, "fwd": fwd, "on_path": np.arange(N)[None] < L[:, None],
                "q_star": q_star.astype(np.float32), "scale": scale.astype(np.float32)}

    def build_space(self, space: Space):
        import optax

        interp = make_interpreter(space)
        N, A, K = self.length, 2, self.instances
        data = self.mdps()
        eye = jnp.eye(N + 1, dtype=jnp.float32)
        steps, target_every, value_weight = self.steps, self.target_every, self.value_weight
        # plain SGD (clipped): unlike Adam it keeps the loss's gradient magnitudes, so a
        # loss cannot pass by per-parameter normalisation artefacts
        opt = optax.chain(optax.clip_by_global_norm(10.0), optax.sgd(self.lr))
        rng = np.random.default_rng([self.seed, 98])
        q_init = jnp.asarray(rng.normal(size=(K, N + 1, A)) * 0.01, jnp.float32)

        def one(op_ids, args, out, r, discount, nxt_, best, q_star, scale, q0, on_path):
            def loss(q_table, target):
                batch = {"q": q_table[data["s"]], "q_target": target[nxt_],
                         "q_next_online": q_table[nxt_], "action": data["a"],
                         "reward": r, "discount": discount,
                         "obs": eye[data["s"]], "next_obs": eye[nxt_]}
                batch = {k: batch[k] for k in space.input_names}
                return interp(op_ids, args, out, batch).mean()

            def step(carry, i):
                q, target, st = carry
                g = jnp.nan_to_num(jax.grad(loss)(q, target))
                upd, st = opt.update(g, st, q)
                q = jnp.clip(optax.apply_updates(q, upd), -1e3, 1e3)
                target = jnp.where((i + 1) % target_every == 0, q, target)
                return (q, target, st), None

            (q, _, _), _ = jax.lax.scan(step, (q0, q0, opt.init(q0)), jnp.arange(steps))
            q = q[:N]
            greedy = jnp.argmax(q, axis=1)                               # [N]
            policy = jnp.all((greedy == best) | ~on_path).astype(jnp.float32)
            err = (jnp.abs(q - q_star).mean(-1) * on_path).sum() / on_path.sum() / scale
            return (1.0 - value_weight) * policy + value_weight * jnp.maximum(0.0, 1.0 - err)

        per_inst = jax.vmap(one, in_axes=(None, None, None) + (0,) * 8)
        run = jax.jit(jax.vmap(per_inst, in_axes=(0, 0, 0) + (None,) * 8))
        arrays = tuple(jnp.asarray(data[k]) for k in (
            "r", "discount", "next", "best", "q_star", "scale")) + (
            q_init, jnp.asarray(data["on_path"]))

        def evaluate(programs: list[Program]) -> np.ndarray:
            programs, out = _over(space, programs), []
            for start in range(0, len(programs), self.batch):
                part = list(programs[start:start + self.batch])
                n = len(part)
                enc = encode_many(space, padded(part))
                out.append(np.asarray(run(*enc, *arrays)).mean(axis=1)[:n])
            return np.concatenate(out) if out else np.zeros((0,))

        return evaluate


@dataclasses.dataclass(frozen=True)
class ChainLossTask:
    """The chain hurdle as a picklable evaluation task (like SymRegTask): the space of
    RL losses and `build()` -> evaluate(programs) = ChainTask scores in [0, 1]. The
    guided-evolution RL-loss domain searches it; its target is the TD loss's own score."""

    num_nodes: int = 7
    seed: int = 0
    op_set: str = "small"
    reference_loss: str = "td"
    """the reference program: td (δ², dqn_program) | myopic ((Q(s,a) - r)², myopic_program)"""

    @property
    def space(self) -> Space:
        return make_space(self.op_set, self.num_nodes)

    def reference(self) -> Program:
        if self.reference_loss not in REFERENCE_LOSSES:
            raise UnknownNameError("reference loss", self.reference_loss, list(REFERENCE_LOSSES))
        return REFERENCE_LOSSES[self.reference_loss](self.space.input_names)

    def build(self):
        return ChainTask(seed=self.seed).build_space(self.space)


@dataclasses.dataclass(frozen=True)
class RLLossTask:
    """A picklable evaluation task (see backends.py): train a DQN per (candidate, seed)
    on each env in `envs` with the candidate loss; fitness = sum over envs of the mean
    normalised return. Hurdle: later envs are only trained when the first env's score
    clears `hurdle` (otherwise they add 0). Position j of a call trains with its own seeds,
    so `evaluate([p] * n)` gives n independent runs of p (paired across programs). The
    pool and Ray backends split a batch into per-worker chunks, so there a candidate's
    seed follows its position in the chunk: fitness values differ from in-process ones
    run to run (equally valid draws), but each backend is deterministic.
    """

    envs: tuple[str, ...] = ("CartPole-v1",)
    op_set: str = "small"
    num_nodes: int = 7
    seeds: int = 1
    seed: int = 0
    total_steps: int = 20_000
    buffer_size: int = 10_000
    batch_size: int = 64
    learning_starts: int = 1_000
    train_every: int = 4
    lr: float = 1e-3
    target_update_every: int = 100
    num_evals: int = 8
    eval_episodes: int = 8
    eps_decay_frac: float = 0.3
    width: float = 1.0
    hurdle: float = 0.1
    batch: int = 8
    """candidates per compiled evaluation (a batch is padded to this)"""

    @property
    def space(self) -> Space:
        return make_space(self.op_set, self.num_nodes)

    def dqn_config(self, env: str):
        from selftaught.rl.dqn import DQNConfig, LoopConfig

        loop = LoopConfig(env=env, total_steps=self.total_steps, buffer_size=self.buffer_size,
                          batch_size=self.batch_size, learning_starts=self.learning_starts,
                          train_every=self.train_every, num_evals=self.num_evals,
                          eval_episodes=self.eval_episodes)
        return DQNConfig(loop=loop, lr=self.lr, target_update_every=self.target_update_every,
                         eps_decay_frac=self.eps_decay_frac, width=self.width)

    def validate(self) -> None:
        if self.seeds < 1 or self.batch < 1:
            raise ConfigError(f"seeds and batch must be >= 1, got {self.seeds}, {self.batch}")
        from selftaught.core import config as cfglib

        for env in self.envs:
            cfglib.validate(self.dqn_config(env))

    def build_env(self, env: str):
        """fn(programs) -> normalised score [P] for one env (compiled once)."""
        from selftaught.rl.dqn import make_train
        from selftaught.rl.envs import normalized_return

        space = self.space
        interp = make_interpreter(space)
        cfg = self.dqn_config(env)

        def flat(x):
            return x.reshape(x.shape[0], -1)

        def train_one(op_ids, args, out, key):
            def loss_fn(batch):
                inputs = {k: batch[k] for k, _ in INPUTS}
                inputs["obs"], inputs["next_obs"] = flat(batch["obs"]), flat(batch["next_obs"])
                return interp(op_ids, args, out, inputs)

            curves = make_train(cfg, loss_fn)(key)
            ret = curves["eval_return"]
            return ret[ret.shape[0] // 2:].mean()

        per_seed = jax.vmap(train_one, in_axes=(None, None, None, 0))
        run = jax.jit(jax.vmap(per_seed, in_axes=(0, 0, 0, 0)))
        # slot j of a batch, seed k: its own key, so a batch of copies of one program is a
        # batch of independent seeds (and two such batches are paired seed by seed)
        base = jax.random.PRNGKey(self.seed)
        slot_keys = jax.jit(lambda offset: jax.vmap(lambda j: jax.vmap(
            lambda k: jax.random.fold_in(jax.random.fold_in(base, offset + j), k))(
                jnp.arange(self.seeds)))(jnp.arange(self.batch)))

        def evaluate(programs: list[Program]) -> np.ndarray:
            programs, out = _over(space, programs), []
            for start in range(0, len(programs), self.batch):
                part = list(programs[start:start + self.batch])
                n = len(part)
                enc = encode_many(space, padded(part, self.batch))
                ret = np.asarray(run(*enc, slot_keys(start)))[:n]   # [n, seeds]
                score = normalized_return(env, ret).mean(axis=1)
                out.append(np.nan_to_num(score, nan=-1.0))
            return np.concatenate(out) if out else np.zeros((0,))

        return evaluate

    def build(self):
        self.validate()
        per_env = [self.build_env(e) for e in self.envs]

        def evaluate(programs: list[Program]) -> np.ndarray:
            score = per_env[0](programs)
            total = score.copy()
            ok = np.flatnonzero(score >= self.hurdle)
            for fn in per_env[1:]:
                if ok.size:
                    total[ok] += fn([programs[i] for i in ok])
            return total

        return evaluate
