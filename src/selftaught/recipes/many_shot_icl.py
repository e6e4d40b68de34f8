"""Many-shot in-context learning (Agarwal et al., 2024; design lm.md §6).

    selftaught run many-shot-icl --preset default --seeds 3
    expected: see the README row (measured figures are written there and in report.md).

There is no pretrained LLM here, so the "pretrained model" is a decoder meta-trained on
sequences of many (input, label) shots of one random task each (family (a) of
`selftaught.tasks.icl`: label = "second symbol in a hidden half S of the symbols"). With
probability `prior` a sequence uses the *default* rule (S0 = first half, labels 0/1): the
prior that meta-training instils. Held-out tasks are then learnt purely in context:

    for each seed (all seeds in one vmapped, jitted training program):
        meta-train on `context`-token sequences (BOS u v y u v y ...), loss on the labels
    for each kind of held-out task (heldout rules with held-out label pairs, flipped
    labels, abstract labels, the default rule) and each shot count k:
        encode the k-shot prefix once (KV cache, attention='blocked'), broadcast it to
        `eval_queries` queries, read the next-token distribution at each query's label:
        greedy accuracy, NLL of the right label, agreement with the default rule's label

Experiments (tables + plots, 95% CIs over seeds): 1. accuracy vs shots on held-out tasks;
3. bias override (flipped / abstract labels: few-shot follows the prior, many-shot the
context); 5. NLL of the answers vs accuracy as shots grow. Not built here (the issue's cut
order, for time): 2. reinforced / unsupervised ICL and 4. linear classification vs kNN /
logistic regression; their task families (base-addition with rationales, linear-class)
exist in `selftaught.tasks.icl`.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from selftaught import stats
from selftaught.core import Claim, Recipe, Report, Timer, check, progress
from selftaught.core.errors import check_at_least_one
from selftaught.lm import BOS, TrainConfig, Transformer, TransformerConfig, init_params
from selftaught.lm.model import ModelSize, decode, default_positions, expand_cache, init_cache
from selftaught.lm.sampler import unsampleable
from selftaught.lm.tokenizer import NUM_SPECIAL
from selftaught.lm.train import check_losses, make_optimizer, masked_xent, next_token_targets
from selftaught.tasks.icl import SymbolRuleFamily

KINDS = ("heldout", "flipped", "abstract", "default")


@dataclasses.dataclass(frozen=True)
class ManyShotConfig:
    """Meta-train on random symbol rules, evaluate held-out rules in context."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i (init, meta-training data, eval tasks)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    n_symbols: int = 16
    """input symbols of the symbol-rule family (a rule is a hidden half of them)"""
    prior: float = 0.5
    """fraction of meta-training sequences that use the default rule (the instilled prior)"""
    context: int = 2048
    """tokens of a meta-training sequence (BOS + 3 tokens per shot); bounds the eval shots"""
    model: ModelSize = ModelSize(pos_encoding="rope", attention="blocked")
    """decoder shape (the many-shot contexts need attention='blocked')"""
    train: TrainConfig = TrainConfig(lr=1e-2, warmup_steps=50, total_steps=60, batch_size=4,
                                     weight_decay=0.1, final_lr_ratio=0.1)
    """meta-training optimiser (batch_size sequences of `context` tokens per step)"""
    train_phases: int = 2
    """the full-context meta-training is split into this many resumable phases"""
    short_steps: int = 800
    """curriculum: optimizer steps on `short_context`-token sequences before the full-context
    steps (one cosine schedule over both; 0 = none)"""
    short_context: int = 256
    """tokens of a curriculum sequence"""
    short_batch: int = 8
    """sequences per curriculum step"""
    shots: tuple[int, ...] = (1, 4, 16, 64, 256, 512)
    """shot counts evaluated (each needs 3 * shots + 3 tokens within the context)"""
    eval_tasks: int = 16
    """held-out tasks (and prefix draws of the flipped/abstract/default rules) per seed"""
    eval_queries: int = 16
    """test-split queries scored against each task's many-shot prefix"""

    def validate(self) -> None:
        check_at_least_one(self, "context", "train_phases", "eval_tasks", "eval_queries")
        check(len(self.shots) >= 2 and all(s >= 1 for s in self.shots)
              and list(self.shots) == sorted(set(self.shots)),
              f"shots must be at least two increasing counts >= 1, got {self.shots}")
        need = prefix_len(max(self.shots)) + 2
        check(need <= self.context,
              f"{max(self.shots)} shots need {need} tokens (BOS + 3 per shot + a 2-token "
              f"query) but the model's context is {self.context}; lower --shots to at most "
              f"{(self.context - 3) // 3} or raise --context")
        check(self.context >= 7, f"context must hold at least 2 shots, got {self.context}")
        check(self.short_steps >= 0, f"short_steps must be >= 0, got {self.short_steps}")
        if self.short_steps:
            check_at_least_one(self, "short_batch")
            check(7 <= self.short_context <= self.context,
                  f"short_context must be in [7, context={self.context}], "
                  f"got {self.short_context}")
        check(self.train.total_steps >= self.train_phases,
              f"train.total_steps ({self.train.total_steps}) must be >= train_phases "
              f"({self.train_phases})")
        SymbolRuleFamily(self.n_symbols, self.prior)  # checks n_symbols and prior
        test_inputs = self.n_symbols**2 // 10  # about 10% of the inputs are test queries
        check(self.eval_queries <= test_inputs * 3 // 4,
              f"eval_queries={self.eval_queries} is more than the ~{test_inputs} test-split "
              f"inputs of {self.n_symbols} symbols allow; lower it or raise n_symbols")


def prefix_len(shots: int) -> int:
    return 1 + 3 * shots


def train_shots(context: int) -> int:
    return (context - 1) // 3


def model_config(config: ManyShotConfig, family: SymbolRuleFamily) -> TransformerConfig:
    return config.model.config(NUM_SPECIAL + len(family.alphabet), config.context)


# ---------------------------------------------------------------------------- meta-training
def sequences(uv_BxNx2, label_BxN):
    """BOS u v y u v y ... as token ids, and the loss mask on the label positions."""
    B, N = label_BxN.shape
    shots = jnp.concatenate([uv_BxNx2, label_BxN[..., None]], -1) + NUM_SPECIAL
    tokens = jnp.concatenate([jnp.full((B, 1), BOS, jnp.int32),
                              shots.reshape(B, 3 * N).astype(jnp.int32)], 1)
    mask_T = (jnp.arange(1 + 3 * N) % 3 == 2) & (jnp.arange(1 + 3 * N) < 3 * N)
    return tokens, jnp.broadcast_to(mask_T, tokens.shape)  # position t predicts token t + 1


@functools.lru_cache(maxsize=4)
def make_meta_train(config: ManyShotConfig):
    """-> (init(key) -> state, run(states, num_steps) -> (states, losses [seeds, steps]) at
    the full context, the same at the curriculum's short context)."""
    family = SymbolRuleFamily(config.n_symbols, config.prior)
    cfg = model_config(config, family)
    tx = make_optimizer(dataclasses.replace(
        config.train, total_steps=config.train.total_steps + config.short_steps))

    def init(key):
        k_init, k_data = jax.random.split(key)
        params = init_params(cfg, k_init)
        return {"params": params, "opt": tx.init(params), "key": k_data}

    def loss_fn(params, tokens, mask):
        logits = Transformer(cfg).apply(params, tokens)
        return masked_xent(logits, next_token_targets(tokens), mask)

    def step(state, _, batch, shots):
        key, sub = jax.random.split(state["key"])
        tokens, mask = sequences(*family.jax_batch(sub, batch, shots))
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], tokens, mask)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt": opt,
                "key": key}, loss

    def runner(batch, context):
        body = functools.partial(step, batch=batch, shots=train_shots(context))
        run = lambda state, num_steps: jax.lax.scan(body, state, None, length=num_steps)
        return jax.jit(jax.vmap(run, in_axes=(0, None)), static_argnums=1)

    return (init, runner(config.train.batch_size, config.context),
            runner(config.short_batch, config.short_context))


# ---------------------------------------------------------------------------- evaluation
def score_queries(params, cfg: TransformerConfig, prefix_IxP, pmask_IxP, query_IxQx2,
                  target_IxQ):
    """Encode I left-padded prefixes once; score each one's Q two-token queries against its
    cache (broadcast to Q rows) -> (greedy prediction, NLL of the target) at the label."""
    n_tasks, P = prefix_IxP.shape
    Q = query_IxQx2.shape[1]
    cache = init_cache(cfg, n_tasks, P + 2)
    _, cache = decode(params, cfg, prefix_IxP, default_positions(pmask_IxP), pmask_IxP, cache)
    next_pos_I = jnp.sum(pmask_IxP, -1).astype(jnp.int32)

    def one(i):
        row = jax.tree_util.tree_map(
            lambda x: jax.lax.dynamic_index_in_dim(x, i, 0) if x.ndim else x, cache)
        qpos = jnp.broadcast_to(next_pos_I[i] + jnp.arange(2), (Q, 2))
        logits, _ = decode(params, cfg, query_IxQx2[i], qpos, jnp.ones((Q, 2), bool),
                           expand_cache(row, Q))
        lp_QxV = jax.nn.log_softmax(logits[:, -1], -1)
        pred = jnp.argmax(unsampleable(lp_QxV), -1)
        return pred, -jnp.take_along_axis(lp_QxV, target_IxQ[i][:, None], -1)[:, 0]

    return jax.lax.map(one, jnp.arange(n_tasks))


@functools.lru_cache(maxsize=4)
def _score_seeds(cfg: TransformerConfig):
    """`score_queries` vmapped over a leading seed axis of every argument, jitted."""
    return jax.jit(jax.vmap(functools.partial(score_queries, cfg=cfg)))


def eval_tasks(family: SymbolRuleFamily, kind: str, n: int, seed: int) -> list:
    if kind == "heldout":
        return family.instances("test", n, seed)
    if kind == "abstract":
        return [family.abstract(seed + i) for i in range(n)]
    return [getattr(family, kind)() for _ in range(n)]


def eval_arrays(config: ManyShotConfig, family: SymbolRuleFamily, kind: str, seed: int,
                bucket: int):
    """Per shot count: left-padded prefixes [I, bucket(P)], queries, targets, default labels."""
    tasks = eval_tasks(family, kind, config.eval_tasks, seed)
    kmax, default = max(config.shots), family.default()
    tid = lambda ch: NUM_SPECIAL + family.alphabet.index(ch)
    out = {}
    for k in config.shots:
        P = -(-prefix_len(k) // bucket) * bucket
        prefix = np.zeros((len(tasks), P), np.int32)
        queries = np.zeros((len(tasks), config.eval_queries, 2), np.int32)
        target = np.zeros((len(tasks), config.eval_queries), np.int32)
        prior = np.zeros_like(target)
        for i, task in enumerate(tasks):
            shots = task.problems("train", kmax, seed=10_000 * seed + i)[:k]
            row = [BOS] + [tid(c) for p in shots for c in task.prompt(p) + p.answer]
            prefix[i, P - len(row):] = row
            qs = task.problems("test", config.eval_queries, seed=10_000 * seed + i)
            queries[i] = [[tid(c) for c in task.prompt(p)] for p in qs]
            target[i] = [tid(p.answer) for p in qs]
            prior[i] = [tid(default.make_problem(p.operands).answer) for p in qs]
        out[k] = (prefix, prefix != 0, queries, target, prior)
    return out


def evaluate_kind(config: ManyShotConfig, family, cfg, params_S, kind: str, seeds: list[int]):
    """-> {k: dict(acc, nll, prior_agree) each [seeds]} for one kind of held-out task."""
    bucket = min(256, config.context)
    per_seed = [eval_arrays(config, family, kind, s, bucket) for s in seeds]
    out = {}
    for k in config.shots:
        prefix, pmask, queries, target, prior = (np.stack([d[k][j] for d in per_seed])
                                                 for j in range(5))
        pred, nll = jax.device_get(_score_seeds(cfg)(params_S, prefix_IxP=prefix, pmask_IxP=pmask,
                                                     query_IxQx2=queries, target_IxQ=target))
        out[k] = dict(acc=(pred == target).mean((1, 2)), nll=nll.mean((1, 2)),
                      prior_agree=(pred == prior).mean((1, 2)))
    return out


# ---------------------------------------------------------------------------- the run
def run(config: ManyShotConfig, run_dir, seeds: list[int]) -> None:
    family = SymbolRuleFamily(config.n_symbols, config.prior)
    cfg = model_config(config, family)
    init, train_long, train_short = make_meta_train(config)
    state = jax.vmap(init)(jnp.stack([jax.random.PRNGKey(s) for s in seeds]))
    steps = np.diff(np.linspace(0, config.train.total_steps, config.train_phases + 1)
                    .astype(int))
    parts = ([("train/short", config.short_steps, train_short)] if config.short_steps else []
             ) + [(f"train/part{j}", int(n), train_long) for j, n in enumerate(steps)]
    phases = [p for p, _, _ in parts] + [f"eval/{k}" for k in KINDS]
    with progress.bar("many-shot ICL phases", total=len(phases)) as bar:
        done_steps = 0
        for phase, n, train in parts:
            if run_dir.phase_done(phase):
                state = run_dir.load_checkpoint(phase, state)
            else:
                timer = Timer()
                state, losses = train(state, int(n))
                losses = np.asarray(losses)
                check_losses(losses, start_step=done_steps, lr=config.train.lr,
                             where="meta-training")
                for i, s in enumerate(seeds):
                    run_dir.log("train", phase=phase, seed=s, step=done_steps + int(n),
                                loss=float(losses[i, -min(20, int(n)):].mean()),
                                first_loss=float(losses[i, 0]))
                run_dir.save_checkpoint(phase, state)
                run_dir.mark_phase_done(phase, timer())
            done_steps += int(n)
            bar.advance()
        for kind in KINDS:
            phase = f"eval/{kind}"
            if not run_dir.phase_done(phase):
                timer = Timer()
                res = evaluate_kind(config, family, cfg, state["params"], kind, seeds)
                for k, r in res.items():
                    for i, s in enumerate(seeds):
                        run_dir.log("eval", phase=phase, seed=s, kind=kind, shots=k,
                                    **{m: float(v[i]) for m, v in r.items()})
                run_dir.mark_phase_done(phase, timer())
            bar.advance()


# ---------------------------------------------------------------------------- the report
def table(run_dir, seeds: list[int], shots: tuple[int, ...]) -> dict:
    """(kind, metric) -> array [seeds, shots]."""
    ev = {(e["kind"], e["seed"], e["shots"]): e for e in run_dir.events("eval")}
    missing = [(k, s, n) for k in KINDS for s in seeds for n in shots if (k, s, n) not in ev]
    check(not missing, f"{run_dir.path}: no evaluation for (kind, seed, shots) {missing[:3]}; "
          "the run is unfinished: continue it with --resume")
    return {(k, m): np.array([[ev[(k, s, n)][m] for n in shots] for s in seeds])
            for k in KINDS for m in ("acc", "nll", "prior_agree")}


def _cells(values_S) -> str:
    pt, lo, hi = stats.bootstrap_ci(values_S)
    return f"{pt:.3f} [{lo:.3f}, {hi:.3f}]"


def report(config: ManyShotConfig, run_dir, seeds: list[int]) -> Report:
    shots = config.shots
    t = table(run_dir, seeds, shots)
    x = np.arange(len(shots))
    few = shots.index(min(shots, key=lambda s: abs(s - 4)))  # the few-shot point (4 shots)
    acc, nll = t[("heldout", "acc")] * 100, t[("heldout", "nll")]
    title = f"{len(seeds)} seed(s), 95% CI; x = shots {list(shots)}"
    stats.plot_curves(run_dir.plots / "accuracy_vs_shots.png", x,
                      {"held-out rules": acc}, xlabel="shot count index", ylabel="accuracy (%)",
                      title=title)
    stats.plot_curves(run_dir.plots / "bias_override.png", x,
                      {f"{k} labels": t[(k, "acc")] * 100 for k in KINDS[1:]}
                      | {"flipped: agrees with prior": t[("flipped", "prior_agree")] * 100},
                      xlabel="shot count index", ylabel="% of queries", title=title)
    stats.plot_curves(run_dir.plots / "nll_vs_accuracy.png", x,
                      {"NLL of the right label (nats)": nll,
                       "error rate (1 - accuracy)": 1 - acc / 100},
                      xlabel="shot count index", ylabel="held-out rules", title=title)

    claims = [stats.claim_greater(
        "accuracy_rises_with_shots",
        f"held-out accuracy rises from {shots[0]} to {shots[-1]} shots (points)",
        stats.paired_difference_ci(acc[:, -1], acc[:, 0]))]
    for kind in ("flipped", "abstract"):
        a = t[(kind, "acc")] * 100
        gain = stats.paired_difference_ci(a[:, -1], a[:, few])
        c = stats.claim_greater(
            f"{kind}_labels_override",
            f"{kind} labels: at {shots[few]} shots accuracy is below 50% (the prior wins) and "
            f"{shots[-1]} shots raise it (points gained, holds if the CI is above 0 and "
            "few-shot accuracy < 50%)", gain)
        claims.append(dataclasses.replace(c, holds=bool(c.holds and a[:, few].mean() < 50)))
    nll_drop = stats.paired_difference_ci(nll[:, -2], nll[:, -1])
    acc_gain = float((acc[:, -1] - acc[:, -2]).mean())
    claims.append(Claim(
        "nll_and_accuracy_decouple",
        f"from {shots[-2]} to {shots[-1]} shots NLL keeps falling (value: nats dropped) while "
        f"accuracy gains < 1 point (here {acc_gain:+.2f})", *nll_drop,
        holds=bool(nll_drop[1] > 0 and acc_gain < 1.0)))

    md = []
    for title_, metric, kinds in (
            ("1. Accuracy vs shots (held-out rules, held-out label pairs)", "acc", ("heldout",)),
            ("3. Bias override: accuracy (flipped / abstract / default rule)", "acc",
             ("flipped", "abstract", "default")),
            ("3. Bias override: agreement with the default rule's label", "prior_agree",
             ("flipped", "abstract")),
            ("5. NLL of the right label (held-out rules)", "nll", ("heldout",))):
        md += [f"## {title_}", "", "| shots | " + " | ".join(kinds) + " |",
               "|---" * (len(kinds) + 1) + "|"]
        for j, n in enumerate(shots):
            md.append(f"| {n} | " + " | ".join(_cells(t[(k, metric)][:, j]) for k in kinds)
                      + " |")
        md.append("")
    losses = {e["seed"]: e["loss"] for e in run_dir.events("train")}
    md += [f"Final meta-training loss per seed: {losses}.",
           "Not run: 2. reinforced / unsupervised ICL and 4. linear classification vs kNN / "
           "logistic regression (cut for time).", "",
           "![accuracy](plots/accuracy_vs_shots.png) ![override](plots/bias_override.png) "
           "![nll](plots/nll_vs_accuracy.png)"]
    return Report(claims, "\n".join(md))


PRESETS = {
    "smoke": ManyShotConfig(
        num_seeds=2, n_symbols=16, context=256, shots=(1, 4, 16, 64),
        model=ModelSize(d_model=32, n_layers=2, n_heads=2, pos_encoding="rope",
                        attention="blocked", attn_block=64),
        train=TrainConfig(lr=1e-2, warmup_steps=20, total_steps=200, batch_size=8,
                          weight_decay=0.1, final_lr_ratio=0.1),
        short_steps=0, eval_tasks=4, eval_queries=16),
    "default": ManyShotConfig(),  # see ManyShotConfig's defaults
    "paper": ManyShotConfig(
        num_seeds=5, n_symbols=52, context=8192, shots=(1, 4, 16, 64, 256, 1024, 2048, 2720),
        model=ModelSize(d_model=256, n_layers=4, n_heads=8, pos_encoding="rope",
                        attention="blocked", attn_block=512),
        train=TrainConfig(lr=1e-3, warmup_steps=200, total_steps=5000, batch_size=16,
                          weight_decay=0.1, final_lr_ratio=0.1),
        train_phases=5, short_steps=5000, short_context=1024, short_batch=64, eval_tasks=64,
        eval_queries=128),
}

RECIPE = Recipe(
    name="many-shot-icl",
    description="Many-shot ICL: accuracy vs shots, bias override, NLL vs accuracy",
    config_cls=ManyShotConfig,
    presets=PRESETS,
    run=run,
    report=report,
)
