"""Programs as typed DAGs over the op registry.

A `Space` fixes the input nodes (name, type), the allowed ops, the output type and the
number of op nodes. A `Program` lists its op nodes in topological order; node i may read
any input or any earlier node whose type matches the op's input type; the last node is
the output. Unused nodes are allowed (introns), as in the paper's DAG encoding.

    space = Space(inputs=(("x", S),), ops=SYMREG_OPS, output_type=S, num_nodes=8)
    prog = random_program(space, np_rng)
    child = mutate(space, prog, np_rng)
    fn = compile_program(prog)           # jittable: fn({"x": x_B}) -> y_B
    to_formula(prog)                      # "((x * x) + x)"
    from_json(to_json(prog), space) == prog

Two ways to run a program: `compile_program` traces exactly its ops (one jit per
program); `make_interpreter(space)` gives one jittable function of the program's integer
encoding (`encode`) that runs *any* program of the space, so a population is evaluated
with `jax.vmap` and a single compilation (unselected ops are computed and discarded,
which is why every op is safe; see ops.py).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from selftaught.core.errors import ConfigError, DataError, UnknownNameError
from selftaught.evolve.ops import CLIP, REGISTRY, TYPE_NAMES, TYPES, A, O, S, V, get_op

MAX_ARITY = 2


@dataclasses.dataclass(frozen=True)
class Space:
    """The search space: inputs (name, type), allowed op names, output type, node count."""

    inputs: tuple[tuple[str, str], ...]
    ops: tuple[str, ...]
    output_type: str = S
    num_nodes: int = 8

    def __post_init__(self):
        for name, t in self.inputs:
            if t not in TYPES:
                raise ConfigError(f"input {name!r} has unknown type {t!r}; use one of {TYPES}")
        for name in self.ops:
            get_op(name)
        if self.num_nodes < 1:
            raise ConfigError(f"num_nodes must be >= 1, got {self.num_nodes}")
        if not any(get_op(o).out_type == self.output_type for o in self.ops):
            raise ConfigError(f"no op in {self.ops} produces the output type {self.output_type}")

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.inputs)

    @property
    def input_types(self) -> tuple[str, ...]:
        return tuple(t for _, t in self.inputs)

    @property
    def vocab(self) -> tuple[str, ...]:
        """Node labels for embeddings: ops first, then 'input:NAME'."""
        return self.ops + tuple(f"input:{n}" for n in self.input_names)


def _cached_hash(obj, fields: tuple) -> int:
    """The dataclass hash, hash(fields), computed once per (immutable) object: a search
    looks its programs up in dicts many times (memo, caches), and the generated
    `__hash__` would re-hash every node each time."""
    h = obj.__dict__.get("_hash")
    if h is None:
        h = hash(fields)
        object.__setattr__(obj, "_hash", h)
    return h


def _state(obj) -> dict:
    """Pickled state without the cached hash (string hashes differ between processes)."""
    return {k: v for k, v in obj.__dict__.items() if k != "_hash"}


@dataclasses.dataclass(frozen=True)
class Node:
    op: str
    args: tuple[int, ...]

    def __hash__(self) -> int:
        return _cached_hash(self, (self.op, self.args))

    def __getstate__(self) -> dict:
        return _state(self)


@dataclasses.dataclass(frozen=True)
class Program:
    """Op nodes in topological order. Slot k < len(inputs) is input k; slot
    len(inputs) + i is node i. The output is the last node."""

    inputs: tuple[str, ...]
    nodes: tuple[Node, ...]

    def __hash__(self) -> int:
        return _cached_hash(self, (self.inputs, self.nodes))

    def __getstate__(self) -> dict:
        return _state(self)

    def slot_types(self, space_or_types: Space | tuple[str, ...]) -> list[str]:
        in_types = (space_or_types.input_types if isinstance(space_or_types, Space)
                    else space_or_types)
        return list(in_types) + [get_op(n.op).out_type for n in self.nodes]

    def used_nodes(self) -> set[int]:
        """Indices of op nodes the output depends on."""
        n_in = len(self.inputs)
        used, stack = set(), [len(self.nodes) - 1]
        while stack:
            i = stack.pop()
            if i in used:
                continue
            used.add(i)
            stack += [a - n_in for a in self.nodes[i].args if a >= n_in]
        return used


# ---------------------------------------------------------------- generation and mutation
@functools.lru_cache(maxsize=4096)
def _choices(space: Space, slot_types: tuple[str, ...], out_type: str | None
             ) -> tuple[tuple, dict[str, list[int]]]:
    """((op name, input types) of the ops that can be placed, {type: slots of that type})
    for a node reading `slot_types` (computed once per space and slot typing)."""
    by_type: dict[str, list[int]] = {}
    for k, t in enumerate(slot_types):
        by_type.setdefault(t, []).append(k)
    cands = tuple((o, get_op(o).in_types) for o in space.ops
                  if (out_type is None or get_op(o).out_type == out_type)
                  and all(t in by_type for t in get_op(o).in_types))
    return cands, by_type


def _random_node(space: Space, slot_types: list[str], rng: np.random.Generator,
                 out_type: str | None, exclude: Node | None = None) -> Node | None:
    cands, by_type = _choices(space, tuple(slot_types), out_type)
    if not cands:
        return None
    for _ in range(20):
        name, in_types = cands[rng.integers(len(cands))]
        # slots[rng.integers(len(slots))] draws what rng.choice(slots) draws, faster
        args = tuple(by_type[t][rng.integers(len(by_type[t]))] for t in in_types)
        node = Node(name, args)
        if node != exclude:
            return node
    return node


def random_program(space: Space, rng: np.random.Generator, _tries: int = 0) -> Program:
    """A uniformly built random valid program; the last node has the output type."""
    if _tries > 100:
        raise ConfigError(f"cannot build a program whose output has type {space.output_type} "
                          f"from inputs {space.inputs} and ops {space.ops}; add ops or inputs")
    types = list(space.input_types)
    nodes: list[Node] = []
    for i in range(space.num_nodes):
        last = i == space.num_nodes - 1
        node = _random_node(space, types, rng, space.output_type if last else None)
        if node is None:  # the output type is not reachable yet: restart
            return random_program(space, rng, _tries + 1)
        nodes.append(node)
        types.append(get_op(node.op).out_type)
    return Program(space.input_names, tuple(nodes))


def mutate(space: Space, program: Program, rng: np.random.Generator,
           p_fresh: float = 0.05, p_edge: float = 0.0) -> Program:
    """Replace one node's op and inputs, keeping its output type (so every reader stays
    valid); with probability `p_fresh` return a fresh random program instead, and with
    probability `p_edge` rewire a single input of one node to another slot of its type
    (a Cartesian-GP style point mutation: it keeps the op and its other inputs, so a
    useful subexpression already sitting in an unused node can be wired in one step)."""
    if rng.random() < p_fresh:
        return random_program(space, rng)
    types = program.slot_types(space)
    n_in = len(program.inputs)
    if p_edge > 0 and rng.random() < p_edge:
        edges = [(i, j) for i, nd in enumerate(program.nodes) for j, a in enumerate(nd.args)
                 if sum(t == types[a] for t in types[: n_in + i]) > 1]
        if edges:
            i, j = edges[int(rng.integers(len(edges)))]
            nd = program.nodes[i]
            choices = [k for k, t in enumerate(types[: n_in + i])
                       if t == types[nd.args[j]] and k != nd.args[j]]
            args = list(nd.args)
            args[j] = int(rng.choice(choices))
            nodes = list(program.nodes)
            nodes[i] = Node(nd.op, tuple(args))
            return Program(program.inputs, tuple(nodes))
    for _ in range(10):
        i = int(rng.integers(len(program.nodes)))
        old = program.nodes[i]
        node = _random_node(space, types[: n_in + i], rng, get_op(old.op).out_type, old)
        if node is not None and node != old:
            nodes = list(program.nodes)
            nodes[i] = node
            return Program(program.inputs, tuple(nodes))
    return random_program(space, rng)


def validate(space: Space, program: Program) -> None:
    """Raise DataError naming the first node that breaks the typing rules."""
    if tuple(program.inputs) != space.input_names:
        raise DataError(f"program inputs {list(program.inputs)} differ from the space's "
                        f"{list(space.input_names)}")
    if not program.nodes:
        raise DataError("program has no op nodes; it needs at least one (the output)")
    if len(program.nodes) > space.num_nodes:
        raise DataError(f"program has {len(program.nodes)} nodes, the space allows "
                        f"{space.num_nodes}; raise num_nodes")
    types = list(space.input_types)
    for i, node in enumerate(program.nodes):
        if node.op not in REGISTRY:
            raise UnknownNameError("op", node.op, list(space.ops))
        if node.op not in space.ops:
            raise DataError(f"node {i}: op {node.op!r} is not allowed in this search space; "
                            f"allowed: {', '.join(space.ops)}")
        op = get_op(node.op)
        if len(node.args) != op.arity:
            raise DataError(f"node {i}: op {node.op!r} takes {op.arity} argument(s), "
                            f"got {len(node.args)}")
        for j, (a, t) in enumerate(zip(node.args, op.in_types)):
            if not (0 <= a < len(types)):
                raise DataError(f"node {i}: argument {j} reads slot {a}, but only slots "
                                f"0..{len(types) - 1} (inputs and earlier nodes) exist")
            if types[a] != t:
                raise DataError(f"node {i}: op {node.op!r} argument {j} needs type {t} "
                                f"({TYPE_NAMES[t]}), slot {a} has type {types[a]}")
        types.append(op.out_type)
    if types[-1] != space.output_type:
        raise DataError(f"the output node has type {types[-1]}, the space needs "
                        f"{space.output_type} ({TYPE_NAMES[space.output_type]})")


# ---------------------------------------------------------------- printing and JSON
def to_formula(program: Program, node: int | None = None, simplify_names: dict | None = None
               ) -> str:
    """The output (or `node`) as a formula over the input names."""
    names = dict(simplify_names or {})
    n_in = len(program.inputs)
    memo: dict[int, str] = {}

    def render(slot: int) -> str:
        if slot < n_in:
            return names.get(program.inputs[slot], program.inputs[slot])
        if slot not in memo:
            nd = program.nodes[slot - n_in]
            memo[slot] = get_op(nd.op).fmt.format(*[render(a) for a in nd.args])
        return memo[slot]

    return render(n_in + (len(program.nodes) - 1 if node is None else node))


def to_let_formula(program: Program) -> str:
    """The output as a formula in which every op node read more than once is named and
    defined first: "t1 = sg(r + d * v); (q1 - t1)^2 + (q2 - t1)^2" (no repeated text)."""
    n_in = len(program.inputs)
    used = program.used_nodes()
    reads: dict[int, int] = {}
    for i in sorted(used):
        for a in program.nodes[i].args:
            reads[a] = reads.get(a, 0) + 1
    shared = [s for s in sorted(reads) if s >= n_in and reads[s] > 1]
    names = {s: f"t{k + 1}" for k, s in enumerate(shared)}

    def render(slot: int, top: bool = False) -> str:
        if slot < n_in:
            return program.inputs[slot]
        if slot in names and not top:
            return names[slot]
        nd = program.nodes[slot - n_in]
        return get_op(nd.op).fmt.format(*[render(a) for a in nd.args])

    lets = [f"{names[s]} = {render(s, top=True)}" for s in shared]
    return "; ".join(lets + [render(n_in + len(program.nodes) - 1, top=True)])


def to_dict(program: Program) -> dict:
    return {"inputs": list(program.inputs),
            "nodes": [{"op": n.op, "args": list(n.args)} for n in program.nodes]}


def to_json(program: Program) -> str:
    return json.dumps(to_dict(program))


def from_dict(data: Any, space: Space | None = None, *, where: str = "program") -> Program:
    """Parse `to_dict` output; malformed structure -> DataError, unknown op ->
    UnknownNameError; with `space`, also check the typing rules."""
    if not isinstance(data, dict) or "inputs" not in data or "nodes" not in data:
        raise DataError(f"{where}: expected an object with keys 'inputs' and 'nodes', "
                        f"e.g. {{\"inputs\": [\"x\"], \"nodes\": [{{\"op\": \"mul\", "
                        f"\"args\": [0, 0]}}]}}")
    inputs, raw_nodes = data["inputs"], data["nodes"]
    if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
        raise DataError(f"{where}: 'inputs' must be a list of input names")
    if not isinstance(raw_nodes, list):
        raise DataError(f"{where}: 'nodes' must be a list of {{\"op\", \"args\"}} objects")
    nodes = []
    for i, nd in enumerate(raw_nodes):
        if not isinstance(nd, dict) or not isinstance(nd.get("op"), str):
            raise DataError(f"{where}: node {i} must be an object with a string 'op'")
        args = nd.get("args", [])
        if not isinstance(args, list) or not all(
                isinstance(a, int) and not isinstance(a, bool) for a in args):
            raise DataError(f"{where}: node {i} 'args' must be a list of integer slot indices")
        if nd["op"] not in REGISTRY:
            known = list(space.ops) if space is not None else list(REGISTRY)
            raise UnknownNameError("op", nd["op"], known)
        nodes.append(Node(nd["op"], tuple(args)))
    prog = Program(tuple(inputs), tuple(nodes))
    if space is not None:
        validate(space, prog)
    return prog


def from_json(text: str, space: Space | None = None, *, where: str = "program") -> Program:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column "
                        f"{exc.colno}); write it as produced by to_json") from None
    return from_dict(data, space, where=where)


# ---------------------------------------------------------------- compilation
def _batch_size(inputs: dict) -> int:
    return next(int(jnp.shape(v)[0]) for v in inputs.values())


def _clip(t: str, x):
    return x if t == A else jnp.clip(x, -CLIP, CLIP)


def compile_program(program: Program) -> Callable[[dict], jax.Array]:
    """A jittable fn(inputs: {name: array}) -> output array (shape [B] for type S)."""
    def fn(inputs: dict) -> jax.Array:
        slots = [inputs[name] for name in program.inputs]
        for nd in program.nodes:
            op = get_op(nd.op)
            slots.append(_clip(op.out_type, op.fn(*[slots[a] for a in nd.args])))
        out = slots[-1]
        if get_op(program.nodes[-1].op).out_type == S:
            out = jnp.broadcast_to(out, (_batch_size(inputs),))
        return out

    return fn


def encode(space: Space, program: Program) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(op_ids int32 [N], args int32 [N, 2], out int32 []): indices into space.ops and
    slots, padded to N = space.num_nodes (padding nodes run op 0 and are never read);
    `out` is the output slot."""
    if len(program.nodes) > space.num_nodes:
        raise DataError(f"program has {len(program.nodes)} nodes, the space allows "
                        f"{space.num_nodes}; raise num_nodes")
    index = {o: k for k, o in enumerate(space.ops)}
    op_ids = np.zeros((space.num_nodes,), np.int32)
    op_ids[: len(program.nodes)] = [index[n.op] for n in program.nodes]
    args = np.zeros((space.num_nodes, MAX_ARITY), np.int32)
    for i, n in enumerate(program.nodes):
        args[i, : len(n.args)] = n.args
    return op_ids, args, np.int32(len(space.inputs) + len(program.nodes) - 1)


def padded(programs: list, size: int | None = None) -> list:
    """`programs` padded with copies of the first to `size` items (default: the next power
    of two >= 8, so a batched, jitted evaluator compiles for only a few shapes)."""
    n = len(programs)
    size = max(8, 1 << (n - 1).bit_length()) if size is None else size
    return list(programs) + [programs[0]] * (size - n)


def encode_many(space: Space, programs: list[Program]) -> tuple[np.ndarray, ...]:
    """`encode` of each program, stacked: (op_ids [P, N], args [P, N, 2], out [P]); one
    pass filling the arrays (a batched evaluator encodes every candidate it runs)."""
    if any(len(p.nodes) > space.num_nodes for p in programs):
        return tuple(np.stack(x) for x in zip(*[encode(space, p) for p in programs]))
    index = _op_index(space)
    P, N = len(programs), space.num_nodes
    op_ids = np.zeros((P, N), np.int32)
    args = np.zeros((P, N, MAX_ARITY), np.int32)
    out = np.zeros((P,), np.int32)
    ops_flat, args_flat = [0] * (P * N), [0] * (P * N * MAX_ARITY)
    for p, prog in enumerate(programs):
        for i, n in enumerate(prog.nodes):
            ops_flat[p * N + i] = index[n.op]
            for j, a in enumerate(n.args):
                args_flat[(p * N + i) * MAX_ARITY + j] = a
        out[p] = len(space.inputs) + len(prog.nodes) - 1
    if P:
        op_ids[:] = np.asarray(ops_flat, np.int32).reshape(P, N)
        args[:] = np.asarray(args_flat, np.int32).reshape(P, N, MAX_ARITY)
    return op_ids, args, out


@functools.lru_cache(maxsize=64)
def _op_index(space: Space) -> dict[str, int]:
    return {o: k for k, o in enumerate(space.ops)}


def make_interpreter(space: Space) -> Callable[..., jax.Array]:
    """fn(op_ids [N], args [N,2], out [], inputs) -> output [B]: runs any program of
    `space` given its `encode`-ing.

    Every value is stored in a [B, W] slot (W = max(A, D, 1)): S and A broadcast along
    W, V and O zero-padded; each op unpacks its arguments, runs, and packs its result.
    """
    ops = [get_op(o) for o in space.ops]
    n_in = len(space.inputs)

    def interpret(op_ids, args, out, inputs):
        B = _batch_size(inputs)
        widths = {V: 1, O: 1}
        for (name, t) in space.inputs:
            if t in (V, O):
                widths[t] = int(jnp.shape(inputs[name])[1])
        W = max(widths.values())

        def pack(t, x):
            x = jnp.asarray(x, jnp.float32)
            if t in (S, A):
                return jnp.broadcast_to(jnp.broadcast_to(x, (B,))[:, None], (B, W))
            return jnp.pad(x, ((0, 0), (0, W - x.shape[1])))

        def unpack(t, x):
            if t == S:
                return x[:, 0]
            if t == A:
                return jnp.clip(jnp.round(x[:, 0]), 0, widths[V] - 1).astype(jnp.int32)
            return x[:, : widths[t]]

        slots0 = jnp.zeros((n_in + space.num_nodes, B, W), jnp.float32)
        for k, (name, t) in enumerate(space.inputs):
            slots0 = slots0.at[k].set(pack(t, inputs[name]))

        def branch(op):
            def run(vals):
                xs = [unpack(t, vals[j]) for j, t in enumerate(op.in_types)]
                return pack(op.out_type, _clip(op.out_type, op.fn(*xs)))
            return run

        n_slots = n_in + space.num_nodes

        def body(slots, x):
            # dense one-hot reads/selects/writes: no gathers or switches, which keeps the
            # vmapped (population-batched) program fast on CPU
            i, op_id, a = x
            vals = [jnp.einsum("s,sbw->bw", jax.nn.one_hot(a[j], n_slots), slots)
                    for j in range(MAX_ARITY)]
            outs = jnp.stack([branch(op)(vals) for op in ops])
            out = jnp.einsum("k,kbw->bw", jax.nn.one_hot(op_id, len(ops)), outs)
            write = jax.nn.one_hot(n_in + i, n_slots)[:, None, None]
            return slots * (1.0 - write) + write * out[None], None

        idx = jnp.arange(space.num_nodes)
        slots, _ = jax.lax.scan(body, slots0, (idx, op_ids, args))
        return unpack(space.output_type,
                      jnp.einsum("s,sbw->bw", jax.nn.one_hot(out, n_slots), slots))

    return interpret


@functools.lru_cache(maxsize=32)
def _batch_interpreter(space: Space):
    return jax.jit(jax.vmap(make_interpreter(space), in_axes=(0, 0, 0, None)))


class BatchInterpreter:
    """`run(programs, inputs)` -> outputs [P, B] of many programs at once: the vmapped,
    jitted interpreter, with the program batch padded to a power of two (>= 8) so only
    a few shapes are ever compiled."""

    def __init__(self, space: Space):
        self.space = space
        self._run = _batch_interpreter(space)

    def __call__(self, programs: list[Program], inputs: dict) -> np.ndarray:
        enc = encode_many(self.space, padded(programs))
        return np.asarray(self._run(*enc, inputs))[:len(programs)]


def random_inputs(space: Space, seed: int = 0, *, batch: int = 16, actions: int = 3,
                  obs_dim: int = 4) -> dict:
    """Fixed random inputs for functional hashing and tests (normal floats, int actions)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in space.inputs:
        if t == S:
            out[name] = rng.normal(size=(batch,)).astype(np.float32)
        elif t == V:
            out[name] = rng.normal(size=(batch, actions)).astype(np.float32)
        elif t == A:
            out[name] = rng.integers(0, actions, size=(batch,)).astype(np.int32)
        else:
            out[name] = rng.normal(size=(batch, obs_dim)).astype(np.float32)
    return out
