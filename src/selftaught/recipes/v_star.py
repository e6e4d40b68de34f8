"""V-STaR: verifiers trained on correct AND incorrect self-generated samples
(Hosseini et al., 2024; design lm.md §2).

    selftaught run v-star --preset default --seeds 3

Measured under the generalisation gate (`/usr/bin/time -v selftaught run v-star --preset
default --seeds 3`, 2026-12-06, under load 6-8 from three other jobs, the run got 46% of the
machine: 19 min 13 s wall, 536 CPU-s = 511 user + 25 sys, peak RSS 1.09 GiB): 0 of 5 claims
hold, 4 of them not tested. The gate fails for every generator that sampled verifier data
(own training problems / fresh validation problems, mean over seeds): G_sft 99.8 / 14.1%,
gap 85.8 points [83.1, 87.2]; G_1 98.6 / 12.6%, gap 86.0 [84.9, 87.0]; G_2 96.9 / 13.1%, gap
83.8 [80.5, 87.2] (all >= 5), so the 4 verifier claims read "not tested". The one tested
claim, maj@16 - greedy pass@1 (iteration 3), is -0.2 points [-2.0, 2.0]: does not hold.
Values of the untested claims, for the record (n=3 training seeds): Best-of-16 - maj@16
-1.3 [-5.5, 3.1]; DPO - ORM -2.8 [-4.4, -1.3] at k = 8 and -2.1 [-10.9, 6.3] at k = 64;
iteration 3 - iteration 1 (Best-of-16) -2.7 [-4.4, -0.6]. On `chain` (2-4 steps mod 10,
guessing 10%): G_sft greedy pass@1 13.0%; iteration 1 / 2 / 3: greedy 18.2 / 16.1 / 15.6%,
a random candidate 19.6 / 16.7 / 15.3%, maj@16 21.9 / 17.8 / 15.5%, V-STaR Best-of-16
16.8 / 17.0 / 14.1%, pass@16 (oracle) 42.9 / 43.5 / 43.3%; at iteration 3 the ORM's
Best-of-16 17.2%, pass@64 60.4%. Within-problem AUROC on the test candidates (now logged):
DPO verifier 0.472 / 0.532 / 0.475 at iterations 1 / 2 / 3, ORM 0.548 at iteration 3: at
chance, far below the ~0.8 at which best-of-k is expected to beat voting. The generator
memorises its training problems (train sample accuracy 50 -> 63% across iterations, ~97-100%
on the gate's problems, vs 13-14% fresh) and the DPO verifier fits its pairs (pair accuracy
99.6-100%), so there is no held-out signal to rank with. The iteration figures differ from
the pre-gate measurement (iteration 3: greedy 18.8%, maj@16 20.2%, Best-of-16 17.9%; 8 min 54 s
idle, 907 CPU-s) made on older code; G_sft (13.0%) and the gate's G_sft figures are the same.

Generalisation gate (issue 24). Before a generator samples verifier data (G_sft for
iteration 1, G_t for iteration t + 1), the phase that trains it logs a `gate` event: its
sample accuracy (samples_per_problem samples at the sampling temperature) on its own training
problems (the first min(eval_problems, human_problems) of the pool: G_sft's human-solved
problems, and part of the pool whose correct samples train every later G_t) and on as many
fresh validation problems (`TaskSetting.valid`, disjoint
from the reported test problems). report.md shows them per seed in a "Generalisation gate"
table with the gap (train - fresh) and its CI over seeds. Rule: the gap's MEAN over seeds
must be < `max_generalisation_gap` (default 5 points) for every generator that sampled
verifier data; otherwise the claims that use the verifier (V-STaR vs maj@k, DPO vs ORM,
iteration T vs 1) are "not tested", with the measured gap (summary.json `untested`); maj@k vs
greedy pass@1 uses no verifier and stays tested. The full default was re-run with the gate
(above): it fails for G_sft, G_1 and G_2.
Smoke (2 seeds, measured under load ~3-4: 94 s wall, 88 user CPU-s, peak RSS 0.9 GiB with
the gate; 68 s, 88 user CPU-s without it, a difference within the load's noise: iteration
2, which samples no gate, took 13.8 vs 8.8 s; the claims' values are identical, the gate
samples with its own keys): the gate fails, G_sft 27.5 / 7.5% and 20.6 / 13.8% (train /
fresh), gap 13.4 points [6.9, 20.0]; G_1 gap 18.8 [10.0, 27.5].

Probe in a non-memorising setting (issue 24; 1 iteration, seed 0, measured under load ~10:
`--human-problems 12800 --train-problems 12800 --iterations 1`, i.e. G_sft's 400 x 64 rows
are 2 epochs over 12,800 distinct problems, and iteration 1 samples 6 candidates on each of
them: 76,800 labelled samples, 41,975 DPO pairs). The gate now passes: G_sft samples 16.9%
on its own training problems vs 20.3% on fresh ones (seed 1: 13.8 / 16.9%), greedy pass@1
26.6% (13.0% at the default). But the verifiers still rank test candidates at chance: with
the default 250 verifier steps, within-problem AUROC 0.510 (DPO) / 0.490 (ORM), train DPO
reward accuracy 0.62; with 2,000 steps (`--verifier.total-steps 2000`, 64k pairs seen,
~1.5 epochs; 909 s wall) 0.548 / 0.520, train 0.70. At iteration 1: greedy pass@1 31.2%, a
random candidate 25.5%, maj@16 27.4%, Best-of-16 25.4% (DPO) / 20.9% (ORM), pass@16 77.4%:
the candidates hold the answer (pass@16 77%) but a 2-layer, d=64 verifier trained on ~40k
pairs does not learn to tell which one, so Best-of-k cannot beat voting (AUROC well below
the ~0.8 where best-of-k is expected to win). Not the default: 15 min per seed-iteration
under load, and no claim would change.

The algorithm box, per seed:

    G_sft = SFT(base, human solutions)
    D_gen, D_ver = {}, {}
    for t = 1..T:
        sample k solutions per training problem from G_{t-1}; label each with the verifier
        D_gen += the correct ones;  D_ver += all of them (labelled)
        G_t = SFT(base, D_gen)                             # the generator (STaR-style)
        V_t = DPO(init G_sft, reference G_sft, pairs (correct > incorrect) of one problem
                  from D_ver)                              # the verifier
        test: N candidates per problem from G_t, scored by beta * (log V_t - log G_sft);
              Best-of-k (unbiased estimator over the N) for k = 1, 2, 4, ..., N
    baselines (same candidates): greedy pass@1 of G_t, majority vote maj@k, the
    generator alone (a random candidate = mean candidate accuracy), and at t = T an
    outcome reward model (ORM: G_sft + a linear head on the last hidden state, trained
    with BCE on D_ver)

At this scale there is no pretrained model: the base model is the seed's random
initialisation (as in `rest-em`), G_sft plays the pretrained-and-fine-tuned generator, and the
task is the `chain` family (left-to-right arithmetic modulo 10, one locally checkable step per
operation), where a tiny model's pass@1 is far below its pass@N, so there is room for a
verifier to pick the right candidate.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from selftaught import stats, tasks
from selftaught.core import Recipe, Report, check
from selftaught.core.errors import ConfigError, check_at_least_one
from selftaught.lm.data import (
    TaskSetting,
    add_columns,
    preference_pairs,
    task_setting,
)
from selftaught.lm.generate import Samples, generate
from selftaught.lm.metrics import (
    GeneralisationGate,
    best_of_k,
    gate_verdict,
    k_grid,
    maj_at_k,
    pass_at_k,
    ranking_accuracy,
)
from selftaught.lm.model import ModelSize, init_params
from selftaught.lm.train import (
    TrainConfig,
    fit,
    make_dpo_loss,
    make_orm_loss,
    make_sft,
    make_trainer,
    orm_init,
    orm_scores,
    sequence_logprobs,
)


@dataclasses.dataclass(frozen=True)
class VStarConfig:
    """V-STaR on a verifiable task (see the module docstring)."""

    seed: int = 0
    """first seed; seed i of an n-seed run is seed + i (data, init and sampling all change)"""
    num_seeds: int = 3
    """seeds when --seeds is not given"""
    task: str = "chain"
    """registered task (chain, addition, multiplication) or a plug-in package.module:factory;
    it must have a verifier (verify(problem, text) -> bool)"""
    task_args: str = "steps=(2, 4)"
    """keyword arguments for the task factory, e.g. "steps=(3, 6), modulus=10" """
    human_problems: int = 250
    """training problems with one (uneven) human solution: G_sft's data"""
    train_problems: int = 600
    """training problems sampled each iteration (the human-solved ones come first)"""
    eval_problems: int = 64
    """held-out test problems"""
    model: ModelSize = ModelSize()
    """shape of the decoder (generator and verifier) trained from scratch"""
    sft: TrainConfig = TrainConfig(lr=3e-3, warmup_steps=40, total_steps=400, batch_size=64,
                                   weight_decay=0.1, final_lr_ratio=0.1)
    """SFT of G_sft on human data; every G_t uses the same optimiser and step count"""
    iterations: int = 3
    """T: generator / verifier iterations"""
    samples_per_problem: int = 6
    """k: samples per training problem per iteration (paper: 16)"""
    temperature: float = 0.7
    """sampling temperature for the training samples and the test candidates"""
    top_k: int = 0
    """top-k filter of the sampler (0: the whole vocabulary)"""
    verifier: TrainConfig = TrainConfig(lr=1e-3, warmup_steps=20, total_steps=250,
                                        batch_size=32, weight_decay=0.0, final_lr_ratio=0.1)
    """optimiser of the DPO verifier and of the ORM baseline"""
    dpo_beta: float = 0.1
    """beta of the DPO loss (paper: 0.1); the verifier score is beta*(log V - log G_sft)"""
    max_pairs_per_problem: int = 8
    """cap on (correct, incorrect) pairs drawn per training problem for DPO"""
    candidates: int = 64
    """N: candidates per test problem for Best-of-k (k = 1, 2, 4, ... up to N)"""
    claim_k: int = 16
    """k at which Best-of-k, maj@k and pass@1 are compared in the claims"""
    vote_repeats: int = 16
    """maj@k averages every k-subset of a problem's candidates, or this many random ones
    when there are more (lm.metrics.maj_at_k)"""
    sample_batch: int = 1024
    """rows per sampler call (fixed, so the sampler compiles once)"""
    chunk_steps: int = 100
    """training steps per compiled chunk (progress-bar and NaN-check granularity)"""
    max_generalisation_gap: float = 5.0
    """points: the generalisation gate. Before each generator G_0 = G_sft .. G_{T-1} samples
    verifier data, its sample accuracy on its own training problems (the first
    min(eval_problems, human_problems) of the pool) and on as many fresh validation problems
    (samples_per_problem each) is logged; when the mean gap over seeds (train - fresh) of any
    of them is >= this, the claims about the verifier (V-STaR vs maj@k, DPO vs ORM,
    iterations) are reported as not tested"""

    def validate(self) -> None:
        check_at_least_one(self, "human_problems", "train_problems", "eval_problems",
                           "iterations", "samples_per_problem", "max_pairs_per_problem",
                           "candidates", "claim_k", "vote_repeats", "sample_batch",
                           "chunk_steps")
        check(self.human_problems <= self.train_problems,
              f"human_problems ({self.human_problems}) must be <= train_problems "
              f"({self.train_problems}): the human-solved problems are part of the pool")
        check(self.claim_k <= self.candidates,
              f"claim_k ({self.claim_k}) must be <= candidates ({self.candidates}): Best-of-k "
              "needs at least k candidates per problem; raise --candidates or lower --claim-k")
        check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        check(self.top_k >= 0, f"top_k must be >= 0 (0 = no top-k), got {self.top_k}")
        check(self.dpo_beta > 0, f"dpo_beta must be > 0, got {self.dpo_beta}")
        check(self.max_generalisation_gap > 0,
              f"max_generalisation_gap must be > 0 points, got {self.max_generalisation_gap}")
        task = tasks.get(self.task, **tasks.parse_task_args(self.task_args))
        check(callable(getattr(task, "verify", None)),
              f"task {self.task!r} has no verifier (a verify(problem, text) method); V-STaR "
              "labels samples with it, so choose a verifiable task")

    @property
    def ks(self) -> list[int]:
        """k values of the Best-of-k curves: powers of two below N, and N."""
        return k_grid(self.candidates)


# ---------------------------------------------------------------------------- building
def make_setting(config: VStarConfig, seed: int) -> TaskSetting:
    return task_setting(config.task, config.task_args, config.model, config.human_problems,
                        config.train_problems, config.eval_problems, seed)


@functools.lru_cache(maxsize=4)
def _sft_trainer(model_cfg, train_cfg):
    return make_sft(model_cfg, train_cfg)


@functools.lru_cache(maxsize=4)
def _dpo_trainer(model_cfg, train_cfg, beta):
    return make_trainer(make_dpo_loss(model_cfg, beta), train_cfg)


@functools.lru_cache(maxsize=4)
def _orm_trainer(model_cfg, train_cfg):
    return make_trainer(make_orm_loss(model_cfg), train_cfg)


def train_sft(config: VStarConfig, s: TaskSetting, rows: dict, key, params, label: str):
    sft = _sft_trainer(s.model_cfg, config.sft)
    state, losses = fit(sft, sft.init(key, params), rows, config.sft.total_steps,
                        chunk=config.chunk_steps, description=label)
    return state.params, float(losses[-50:].mean())


def train_dpo(config: VStarConfig, s: TaskSetting, pairs: list, g_sft, key, label: str):
    """V = DPO(init G_sft, reference G_sft) on (problem, chosen, rejected) pairs."""
    rows = s.pack_pairs([s.train[i] for i, _, _ in pairs], [c for _, c, _ in pairs],
                        [r for _, _, r in pairs],
                        capacity=len(s.train) * config.max_pairs_per_problem)
    n = len(pairs)
    ref_c = sequence_logprobs(g_sft, s.model_cfg, rows["chosen_tokens"][:n],
                              rows["chosen_mask"][:n])
    ref_r = sequence_logprobs(g_sft, s.model_cfg, rows["rejected_tokens"][:n],
                              rows["rejected_mask"][:n])
    rows = add_columns(rows, ref_chosen_lp=ref_c, ref_rejected_lp=ref_r)
    dpo = _dpo_trainer(s.model_cfg, config.verifier, config.dpo_beta)
    state, losses, aux = fit(dpo, dpo.init(key, g_sft), rows, config.verifier.total_steps,
                             chunk=config.chunk_steps, description=label, aux=True)
    return state.params, {"dpo_loss": float(losses[-50:].mean()),
                          "dpo_reward_accuracy": float(aux["reward_accuracy"][-50:].mean())}


def train_orm(config: VStarConfig, s: TaskSetting, problems: list, texts: list[str],
              labels: np.ndarray, g_sft, key, label: str):
    rows = s.pack(problems, texts, label=labels.astype(np.float32))
    orm = _orm_trainer(s.model_cfg, config.verifier)
    state, losses, aux = fit(orm, orm.init(key, orm_init(g_sft, s.model_cfg)), rows,
                             config.verifier.total_steps, chunk=config.chunk_steps,
                             description=label, aux=True)
    return state.params, {"orm_loss": float(losses[-50:].mean()),
                          "orm_accuracy": float(aux["accuracy"][-50:].mean())}


def sample(config: VStarConfig, s: TaskSetting, params, problems: list, n: int, key,
           greedy: bool = False, label: str = "sampling") -> Samples:
    return generate(params, s.model_cfg, s.tok, s.task, problems, n, key,
                    max_new_tokens=s.max_new, temperature=config.temperature,
                    top_k=config.top_k, greedy=greedy, batch_size=config.sample_batch,
                    description=label)


# ---------------------------------------------------------------------------- evaluation
def log_gate(log, config: VStarConfig, s: TaskSetting, gen, key, seed: int, t: int) -> None:
    """The generalisation gate of G_t (it samples the verifier data of iteration t + 1):
    sample accuracy on its own training problems vs on fresh validation problems."""
    train = s.train[:min(len(s.valid), len(s.human))]
    smp = sample(config, s, gen, train + s.valid, config.samples_per_problem, key,
                 label=f"seed {seed}: gate of G_{t} (train vs fresh)")
    log("gate", seed=seed, iteration=t, train_accuracy=float(smp.correct[:len(train)].mean()),
        fresh_accuracy=float(smp.correct[len(train):].mean()), train_problems=len(train),
        fresh_problems=len(s.valid))


def evaluate(config: VStarConfig, s: TaskSetting, gen, verifier, g_sft, key, seed: int,
             orm=None) -> dict[str, float]:
    """Greedy pass@1 of the generator, and on N sampled candidates per test problem:
    Best-of-k with the DPO verifier (and the ORM), maj@k, pass@k, for every k in config.ks,
    and each verifier's within-problem AUROC (`auroc_dpo`, `auroc_orm`: the fraction of
    (correct, incorrect) candidate pairs of one test problem it orders right; 0.5 = chance),
    the ranking quality that caps what Best-of-k can gain over a random candidate."""
    greedy = sample(config, s, gen, s.test, 1, key, greedy=True, label="greedy pass@1")
    cand = sample(config, s, gen, s.test, config.candidates, jax.random.fold_in(key, 1),
                  label="test candidates")
    P, N = cand.correct.shape
    rows = s.pack([p for p in s.test for _ in range(N)],
                 [t for ts in cand.texts for t in ts])
    lp_v = sequence_logprobs(verifier, s.model_cfg, rows["tokens"], rows["loss_mask"])
    lp_ref = sequence_logprobs(g_sft, s.model_cfg, rows["tokens"], rows["loss_mask"])
    dpo_score = (config.dpo_beta * (lp_v - lp_ref)).reshape(P, N)
    targets = [p.answer for p in s.test]
    out = {"pass1": float(greedy.correct.mean()), "sample_acc": float(cand.correct.mean())}
    out["auroc_dpo"] = ranking_accuracy(dpo_score, cand.correct)
    if orm is not None:
        orm_score = orm_scores(orm, s.model_cfg, rows["tokens"]).reshape(P, N)
        out["auroc_orm"] = ranking_accuracy(orm_score, cand.correct)
    for k in config.ks:
        out[f"bok_dpo_{k}"] = float(best_of_k(dpo_score, cand.correct, k).mean())
        out[f"maj_{k}"] = maj_at_k(cand.answers, targets, k, max_subsets=config.vote_repeats,
                                   seed=seed * 1000 + k)
        out[f"passk_{k}"] = float(np.mean(pass_at_k(N, cand.num_correct, k)))
        if orm is not None:
            out[f"bok_orm_{k}"] = float(best_of_k(orm_score, cand.correct, k).mean())
    return out


# ---------------------------------------------------------------------------- the run
def phases(config: VStarConfig, seeds: list[int]) -> list[str]:
    """The phases of a complete run, in order."""
    return [f"seed{sd}/{name}" for sd in seeds
            for name in ["sft", *(f"iter{t}" for t in range(1, config.iterations + 1))]]


def run(config: VStarConfig, run_dir, seeds: list[int]) -> None:
    for seed in seeds:
        run_seed(config, run_dir, seed)


def _unpack_samples(s: TaskSetting, saved: dict) -> tuple[list[list[str]], np.ndarray]:
    tokens = np.asarray(saved["tokens"])
    P, k, L = tokens.shape
    texts = s.tok.decode_batch(tokens.reshape(P * k, L))
    return [texts[i * k:(i + 1) * k] for i in range(P)], np.asarray(saved["correct"], bool)


def run_seed(config: VStarConfig, run_dir, seed: int) -> None:
    s = make_setting(config, seed)
    root = jax.random.PRNGKey(seed)
    base = init_params(s.model_cfg, jax.random.fold_in(root, 0))
    g_sft = run_dir.phase(f"seed{seed}/sft", sft_on_human_data, config, s, seed, root, base,
                          restore=base)
    gen = g_sft
    d_ver: list[tuple[list[list[str]], np.ndarray]] = []  # one [P][k] block per iteration
    for t in range(1, config.iterations + 1):
        phase = f"seed{seed}/iter{t}"
        gen = run_dir.phase(phase, vstar_iteration, config, s, seed, t,
                            jax.random.fold_in(root, 100 + t), gen, g_sft, base, d_ver,
                            restore=base)
        if len(d_ver) < t:  # finished before (a resumed run): its samples are a checkpoint
            d_ver.append(_unpack_samples(s, run_dir.load_checkpoint(f"{phase}/samples")))


def sft_on_human_data(log, config: VStarConfig, s: TaskSetting, seed: int, root, base):
    """G_sft = SFT(base, human solutions), with its greedy pass@1 (iteration 0)."""
    rows = s.pack(s.train[: len(s.human)], s.human)
    g_sft, loss = train_sft(config, s, rows, jax.random.fold_in(root, 1), base,
                            f"seed {seed}: G_sft on human data")
    greedy = sample(config, s, g_sft, s.test, 1, jax.random.fold_in(root, 2), greedy=True,
                    label="greedy pass@1")
    pass1 = float(greedy.correct.mean())
    log("train", seed=seed, iteration=0, final_loss=loss, rows=len(s.human))
    log("eval", seed=seed, iteration=0, pass1=pass1)
    log_gate(log, config, s, g_sft, jax.random.fold_in(root, 3), seed, 0)
    log.headline(pass1=pass1)
    return g_sft


def vstar_iteration(log, config: VStarConfig, s: TaskSetting, seed: int, t: int, key, gen,
                    g_sft, base, d_ver: list):
    """Iteration t: sample from G_{t-1} and append the labelled block to `d_ver`; G_t =
    SFT(base, D_gen); V_t = DPO(G_sft) on D_ver's pairs (and the ORM at t = T); evaluate.
    Saves the block as checkpoint PHASE/samples (a resumed run reads D_ver back from it)."""
    smp = sample(config, s, gen, s.train, config.samples_per_problem,
                 jax.random.fold_in(key, 0), label=f"seed {seed}: sampling, iteration {t}")
    d_ver.append((smp.texts, smp.correct))
    # D_gen: every correct sample so far; D_ver: every labelled sample so far
    all_texts = [sum((texts[i] for texts, _ in d_ver), []) for i in range(len(s.train))]
    all_correct = np.concatenate([correct for _, correct in d_ver], axis=1)
    good = [[x for x, c in zip(ts, cs) if c] for ts, cs in zip(all_texts, all_correct)]
    bad = [[x for x, c in zip(ts, cs) if not c] for ts, cs in zip(all_texts, all_correct)]
    pairs = preference_pairs(good, bad, config.max_pairs_per_problem,
                             np.random.default_rng([seed, t, 3]))
    if not pairs:
        what = "correct" if not any(good) else "incorrect"
        raise ConfigError(
            f"seed {seed}, iteration {t}: no training problem has both a correct and an "
            f"incorrect sample (no {what} sample at all), so D_ver gives the DPO verifier "
            "no pairs; train G_sft longer (--sft.total-steps), sample more "
            "(--samples-per-problem) or pick a task of fitting difficulty")
    gen_p = [p for p, g in zip(s.train, good) for _ in g]
    gen_t = [x for g in good for x in g]
    capacity = len(s.train) * config.samples_per_problem * config.iterations
    gen, g_loss = train_sft(config, s, s.pack(gen_p, gen_t, capacity),
                            jax.random.fold_in(key, 1), base,
                            f"seed {seed}: G_{t} = SFT(base, D_gen)")
    verifier, vstats = train_dpo(config, s, pairs, g_sft, jax.random.fold_in(key, 2),
                                 f"seed {seed}: V_{t} = DPO(G_sft)")
    orm = None
    if t == config.iterations:
        labels = all_correct.reshape(-1)
        orm, ostats = train_orm(config, s, [p for p in s.train
                                            for _ in range(all_correct.shape[1])],
                                [x for ts in all_texts for x in ts], labels, g_sft,
                                jax.random.fold_in(key, 3), f"seed {seed}: ORM (BCE)")
        vstats.update(ostats)
    metrics = evaluate(config, s, gen, verifier, g_sft, jax.random.fold_in(key, 4), seed, orm)
    log("sample", seed=seed, iteration=t, sample_accuracy=float(smp.correct.mean()),
        solved_fraction=float(smp.correct.any(axis=1).mean()),
        d_gen=len(gen_t), d_ver=int(all_correct.size), pairs=len(pairs))
    log("train", seed=seed, iteration=t, final_loss=g_loss, **vstats)
    log("eval", seed=seed, iteration=t, **metrics)
    if t < config.iterations:  # G_t samples the next iteration's verifier data
        log_gate(log, config, s, gen, jax.random.fold_in(key, 5), seed, t)
    log.run_dir.save_checkpoint(f"{log.phase}/samples",
                                {"tokens": smp.tokens, "correct": smp.correct.astype(np.uint8)})
    kc = config.claim_k
    log.headline(pass1=metrics["pass1"], **{f"bok_dpo_{kc}": metrics[f"bok_dpo_{kc}"]})
    return gen


# ---------------------------------------------------------------------------- the report
def _evals(run_dir, seeds: list[int], iterations: int) -> dict[tuple[int, int], dict]:
    evals = {(e["seed"], e["iteration"]): e for e in run_dir.events("eval")}
    missing = [(sd, i) for sd in seeds for i in range(iterations + 1) if (sd, i) not in evals]
    if missing:
        raise ConfigError(f"{run_dir.path}: no evaluation for (seed, iteration) {missing[:3]}; "
                          "the run is unfinished: continue it with --resume")
    return evals


def _gate(config: VStarConfig, run_dir, seeds: list[int]) -> tuple[bool, str, list[str]]:
    """The generalisation gate of every generator that sampled verifier data (G_0..G_{T-1}):
    (passed, why not, report section)."""
    got = {(e["seed"], e["iteration"]): e for e in run_dir.events("gate")}
    gates = []
    for t in range(config.iterations):
        if not all((sd, t) in got for sd in seeds):  # a run from before the gate existed
            return False, (f"no generalisation gate was logged for G_{t} (a run from before "
                           "the gate): whether the generator memorises was not measured"), []
        gates.append(GeneralisationGate(
            "G_sft" if t == 0 else f"G_{t}",
            [100 * got[(sd, t)]["train_accuracy"] for sd in seeds],
            [100 * got[(sd, t)]["fresh_accuracy"] for sd in seeds],
            config.max_generalisation_gap))
    return gate_verdict(gates, seeds)


def report(config: VStarConfig, run_dir, seeds: list[int]) -> Report:
    T, ks, kc = config.iterations, config.ks, config.claim_k
    ev = _evals(run_dir, seeds, T)
    col = lambda name, t: np.array([ev[(sd, t)][name] for sd in seeds]) * 100  # noqa: E731
    curve = lambda fmt, t: np.stack([col(fmt.format(k), t) for k in ks], axis=1)  # noqa: E731
    curves = {
        f"V-STaR (DPO verifier), iteration {T}": curve("bok_dpo_{}", T),
        f"ORM verifier (BCE), iteration {T}": curve("bok_orm_{}", T),
        "majority vote maj@k": curve("maj_{}", T),
        "generator only (random candidate)": np.repeat(col("sample_acc", T)[:, None],
                                                       len(ks), 1),
        "pass@k (oracle upper bound)": curve("passk_{}", T),
    }
    if T > 1:
        curves["V-STaR, iteration 1"] = curve("bok_dpo_{}", 1)
    stats.plot_curves(
        run_dir.plots / "best_of_k.png", np.log2(ks), curves,
        hlines={f"greedy pass@1 (G_{T})": col("pass1", T)},
        xlabel="log2 k (candidates the selector picks from)", ylabel="test accuracy (%)",
        title=f"Best-of-k on {config.task}, {len(seeds)} seed(s), 95% CI",
    )
    pd = stats.paired_difference_ci
    gate_ok, gate_why, gate_md = _gate(config, run_dir, seeds)
    claims = [
        stats.claim_greater(
            f"vstar_beats_maj_at_{kc}",
            f"V-STaR Best-of-{kc} beats majority vote maj@{kc} (points, iteration {T})",
            pd(col(f"bok_dpo_{kc}", T), col(f"maj_{kc}", T)), unit="training seeds"
        ).gated(gate_ok, gate_why),
        stats.claim_greater(
            f"maj_at_{kc}_beats_pass1",
            f"majority vote maj@{kc} beats greedy pass@1 of the same generator (points)",
            pd(col(f"maj_{kc}", T), col("pass1", T)), unit="training seeds"),
    ]
    for k in sorted({k for k in (8, max(ks)) if k in ks}):
        claims.append(stats.claim_greater(
            f"dpo_beats_orm_at_{k}",
            f"the DPO verifier's Best-of-{k} beats the ORM's (BCE, same data; points)",
            pd(col(f"bok_dpo_{k}", T), col(f"bok_orm_{k}", T)), unit="training seeds"
        ).gated(gate_ok, gate_why))
    if T > 1:
        claims.append(stats.claim_greater(
            f"iteration_{T}_beats_1",
            f"iteration {T}'s generator + verifier beat iteration 1's (Best-of-{kc}, points)",
            pd(col(f"bok_dpo_{kc}", T), col(f"bok_dpo_{kc}", 1)), unit="training seeds"
        ).gated(gate_ok, gate_why))

    def cell(x):
        return stats.ci_cell(stats.bootstrap_ci(x))

    md = [*gate_md, "",
          f"## Per iteration (test accuracy %, mean over seeds [95% CI]; k = {kc})", "",
          stats.markdown_table(
              ["iteration", "greedy pass@1", "random candidate", "maj@k", "V-STaR Best-of-k",
               "pass@k (oracle)"],
              [["0 (G_sft)", cell(col("pass1", 0)), "", "", "", ""]]
              + [[t, *(cell(col(name, t)) for name in (
                  "pass1", "sample_acc", f"maj_{kc}", f"bok_dpo_{kc}", f"passk_{kc}"))]
                 for t in range(1, T + 1)]),
          "", f"## Best-of-k at iteration {T} (test accuracy %)", "",
          stats.markdown_table(
              ["k", "V-STaR (DPO)", "ORM (BCE)", "maj@k", "pass@k (oracle)"],
              [[k, *(cell(col(name, T)) for name in (
                  f"bok_dpo_{k}", f"bok_orm_{k}", f"maj_{k}", f"passk_{k}"))] for k in ks])]
    samples = {(e["seed"], e["iteration"]): e for e in run_dir.events("sample")}
    trains = {(e["seed"], e["iteration"]): e for e in run_dir.events("train")}

    def sm(t, k):
        return np.mean([samples[(sd, t)][k] for sd in seeds])

    md += ["", "## Data and verifiers (mean over seeds)", "",
           stats.markdown_table(
               ["iteration", "sample accuracy (train)", "D_gen", "D_ver", "DPO pairs",
                "DPO pair accuracy (train)"],
               [[t, f"{100 * sm(t, 'sample_accuracy'):.1f}%", f"{sm(t, 'd_gen'):.0f}",
                 f"{sm(t, 'd_ver'):.0f}", f"{sm(t, 'pairs'):.0f}",
                 f"{100 * np.mean([trains[(sd, t)]['dpo_reward_accuracy'] for sd in seeds]):.1f}%"]
                for t in range(1, T + 1)])]
    auroc = [[t, *(stats.ci_cell(stats.bootstrap_ci(a), ".3f") if np.isfinite(a).all()
                   else "-" for a in (
                       np.array([ev[(sd, t)].get(f"auroc_{v}", np.nan) for sd in seeds])
                       for v in ("dpo", "orm")))] for t in range(1, T + 1)]
    md += ["", "## Verifier ranking quality on the test candidates", "",
           "Within-problem AUROC: the fraction of (correct, incorrect) candidate pairs of one "
           "test problem that the verifier's score orders right (ties 1/2; 0.5 = chance), "
           "pooled over problems, mean [95% CI] over seeds. Best-of-k can beat a random "
           "candidate only as far as this is above 0.5 (the ORM is trained at the last "
           "iteration only).", "",
           stats.markdown_table(["iteration", "V-STaR (DPO)", "ORM (BCE)"], auroc)]
    md += ["", "Best-of-k uses the unbiased estimator over N candidates (lm.md §2); maj@k "
           f"averages the vote over all k-subsets (or {config.vote_repeats} random ones) per "
           "problem; the generator-only "
           "line is a random candidate (the STaR/ReST^EM-style generator without verifier).",
           "", "![best of k](plots/best_of_k.png)"]
    return Report(claims, "\n".join(md))


PRESETS = {
    "smoke": VStarConfig(
        num_seeds=2, human_problems=200, train_problems=300, eval_problems=40,
        model=ModelSize(d_model=32, n_layers=2, n_heads=4),
        sft=TrainConfig(lr=3e-3, warmup_steps=30, total_steps=300, batch_size=64,
                        weight_decay=0.1, final_lr_ratio=0.1),
        iterations=2, samples_per_problem=4,
        verifier=TrainConfig(lr=1e-3, warmup_steps=10, total_steps=100, batch_size=32,
                             weight_decay=0.0, final_lr_ratio=0.1),
        candidates=16, claim_k=8, vote_repeats=4,
    ),
    "default": VStarConfig(),
    "paper": VStarConfig(
        num_seeds=5, task_args="steps=(3, 8)", human_problems=2000, train_problems=10000,
        eval_problems=1000, model=ModelSize(d_model=256, n_layers=6, n_heads=8),
        sft=TrainConfig(lr=1e-3, warmup_steps=200, total_steps=5000, batch_size=128,
                        weight_decay=0.1, final_lr_ratio=0.1),
        iterations=3, samples_per_problem=16,
        verifier=TrainConfig(lr=3e-4, warmup_steps=100, total_steps=3000, batch_size=64,
                             weight_decay=0.0, final_lr_ratio=0.1),
        candidates=128, claim_k=16, sample_batch=4096,
    ),
}

RECIPE = Recipe(
    name="v-star",
    description="V-STaR: a DPO verifier trained on correct and incorrect samples picks "
    "the best of k candidates",
    config_cls=VStarConfig,
    presets=PRESETS,
    run=run,
    report=report,
    phases=phases,
)
