"""V-STaR: verifiers trained on correct AND incorrect self-generated samples
(Hosseini et al., 2024; design lm.md §2).

    selftaught run v-star --preset default --seeds 3

Default: issue 24's non-memorising setting. G_sft's 400 x 64 SFT rows are 2 epochs over
12,800 distinct problems (one uneven human solution each); each of 2 iterations samples 6
candidates on each of the 12,800 (76,800 labelled samples, ~43,500 DPO pairs at iteration 1,
~74,600 at 2); 1,000 fresh test problems x 64 candidates per seed (issue 24 item 2,
`eval_problems`; 64,000 test candidates per iteration, sampled and scored in batches of
`sample_batch` / 512 rows); the gate and the oracle's aggregate choice use 64 fresh
validation problems (`valid_problems`), so they cost what they did at 64 test problems.

Measured at 1,000 test problems (`/usr/bin/time -v selftaught run v-star --preset default
--seeds 3`, 2026-12-07, MEASURED UNDER LOAD 4-12 from other helpers' jobs, the run got 0.64
of a core on average): 1 h 5 min 22 s wall, 2,546 CPU-s (2,050 user + 496 sys), peak RSS 1.61
GiB; per seed ~850 CPU-s (G_sft ~60, iteration 1 ~300, iteration 2 ~500: the 64,000 test
candidates per iteration cost ~2.7x the 939 CPU-s of the 64-problem run). **Idle**
(2026-12-07, one job, load < 2, `/usr/bin/time -v`): 20 min 57 s wall, 1,923 CPU-s (1,566
user + 357 sys), peak RSS 1.72 GiB; the same claims to the last digit.
The gate passes with the same figures as before (it samples the same
problems with the same keys): G_sft 17.0 / 19.4% (own training / fresh validation problems,
mean over 3 seeds), gap -2.3 points [-3.4, -0.5]; G_1 21.0 / 25.2%, gap -4.2 [-9.1, 0.0].
1 of 6 claims holds (n = 3 training seeds, 95% CI over seeds; beside it, the paired
bootstrap over the 3,000 pooled test problems; iteration 2 unless said):
- Best-of-16 (DPO) - maj@16: -3.3 points [-3.7, -3.0]; over problems [-4.3, -2.3]: does
  not hold (both CIs below 0: voting beats the verifier);
- maj@16 - greedy pass@1: +0.2 [-0.2, 0.6]; over problems [-0.7, 1.1]: does not hold;
- DPO - ORM Best-of-8: -0.2 [-1.2, 0.9]; over problems [-0.8, 0.5]: does not hold;
  Best-of-64: -1.4 [-2.5, -0.5]; over problems [-2.9, 0.1]: does not hold (the sign flipped
  from the 64-problem run's +3.6 [1.6, 4.7], which was the draw of 64 problems);
- iteration 2 - 1 (Best-of-16): +0.1 [-1.1, 1.8]; over problems [-0.8, 0.9]: does not hold;
- upper bound, not a paper claim: oracle AUROC - DPO AUROC (x 100): +2.1 [1.3, 3.2]: holds.
The two CIs agree on every verdict (no claim that fails over seeds holds over problems);
they differ only at DPO - ORM k = 64, which the seeds put below 0 and the 3,000 problems
cannot resolve from 0 (upper end +0.1). The oracle claim has no problem CI (an AUROC is
not a mean over problems). Test accuracy (mean [95% CI] over seeds): G_sft
greedy pass@1 24.5% [22.4, 26.4]; iteration 1 / 2: greedy 25.5 / 24.3%, a random candidate
22.9 / 23.8%, maj@16 25.2 / 25.6%, Best-of-16 DPO 22.2 / 22.3%, oracle 22.9 / 24.0%, ORM
(iteration 2) 22.7%, pass@16 77.7 / 73.0%; at k = 64 (iteration 2): DPO 19.8%, ORM 21.2%,
oracle 21.7%, maj@64 25.5%, pass@64 92.3%. Within-problem AUROC on the test candidates
(iteration 1 / 2): DPO 0.546 [0.530, 0.560] / 0.527 [0.511, 0.551]; ORM 0.534 [0.513,
0.550]; oracle 0.545 [0.519, 0.563] / 0.548 [0.524, 0.569]; the true step labels (the
ceiling of any step checker) 0.678 / 0.666, with 56.5 / 57.3% of the correct candidates
right by luck. So every verifier is near chance (AUROC 0.53-0.55, far below the ~0.8 at
which best-of-k is expected to beat voting): the failing claims are explained by the
ranking diagnostic, now on 64,000 candidates per iteration, not by the test set's size.

Before (64 test problems per seed, 2026-12-06; idle: 10 min 14 s wall, 939 CPU-s, 1.59 GiB;
under load 8-14: 58 min 8 s, 1,076 CPU-s). The gate figures are the same (the same code
samples them): G_sft 17.0 / 19.4%, gap -2.3 points [-3.4, -0.5]; G_1 21.0 / 25.2%, gap -4.2
[-9.1, 0.0]. 2 of 6 held (n = 3 training seeds, 95% CI; iteration 2 unless said):
- Best-of-16 (DPO) - maj@16: -7.0 points [-10.9, -4.3]: does not hold;
- maj@16 - greedy pass@1: -0.3 [-0.5, -0.2]: does not hold;
- DPO - ORM Best-of-8: +0.6 [-1.7, 3.8]: does not hold; Best-of-64: +3.6 [1.6, 4.7]: held
  (the ORM fell faster with k, as the paper says, but both were below a random candidate);
- iteration 2 - 1 (Best-of-16): +0.5 [-0.0, 1.2]: does not hold;
- upper bound, not a paper claim: oracle AUROC - DPO AUROC (x 100): +4.7 [2.6, 8.1]: held.
Test accuracy then (mean [95% CI]): G_sft greedy pass@1 25.5% [23.4, 26.6]; iteration 1 / 2:
greedy 30.2 / 29.7%, a random candidate 24.5 / 26.2%, maj@16 27.5 / 29.4%, Best-of-16 DPO
21.9 / 22.3%, oracle 23.6 / 25.6%, ORM (iteration 2) 21.3%, pass@16 79.2 / 76.1%; at k = 64
(iteration 2): DPO 21.4%, ORM 17.7%, oracle 25.5%, maj@64 29.2%, pass@64 93.8%. On 64
problems a seed's accuracy moves by ~5 points with the draw of problems alone (binomial
s.e. sqrt(0.25 x 0.75 / 64) = 5.4 points), which is why the test set grew.

The diagnosis below was written from the 64-problem run; its figures are those (the
1,000-problem AUROCs and lucky fractions above tell the same story).

Why the verifiers are at chance: the oracle diagnosis (issue 24). Within-problem AUROC on
the test candidates, iteration 1 / 2: DPO 0.532 [0.495, 0.590] / 0.505 [0.480, 0.549]; ORM
0.502 [0.495, 0.507] (iteration 2); oracle 0.541 [0.520, 0.574] / 0.552 [0.506, 0.584]. The
oracle has the ORM's architecture (G_sft + a head) and data, but learns from the TRUE
correctness of every written step (`ChainTask.step_labels`); it classifies the written
steps of the UNSEEN test candidates at 86.6 / 86.9% accuracy, step-level AUROC 0.911 / 0.919
(58.6 / 56.2% of D_ver's written steps are wrong): this architecture CAN learn to check
these steps. What it cannot do is rank the candidates, because the outcome label is mostly
luck: 56.8 / 59.7% of the CORRECT test candidates contain a wrong step (a guessed answer
line, or errors that land on the right digit mod 10), so even the true step labels rank
(correct, incorrect) pairs at only AUROC 0.700 [0.684, 0.708] / 0.674 [0.655, 0.685], the
ceiling of any step checker; and in a probe (seed 0, iteration 1) a third of the candidates
whose every step is right were answer-only "=ANS" lines, whose one label is the whole
chain's result, not a local check. Aggregating step logits into a candidate score loses
most of what is left: the validation choice was the min at iteration 1 (seed 0) and the mean
log p (seeds 1, 2), the final-line logit at iteration 2 (all seeds); on test the min reads
0.534 / 0.502, the mean log p 0.555 / 0.515, the final line 0.587 / 0.552 (the min
penalises candidates that write more steps). So: oracle AUROC 0.55 vs DPO 0.51 and ORM
0.50: the architecture checks steps (step AUROC 0.92), but at this generator's skill
(~60% of steps wrong, ~60% of right answers lucky) outcome labels on ~40-75k pairs carry
little signal about which candidate is right, and even perfect step labels would cap the
ranking near 0.7, below the ~0.8 at which best-of-k is expected to beat voting. A generator
that writes every step (no skipping human style) and gets most steps right is the next
condition to test.

Preset `memorising` (the default until issue 24's oracle: 250 human solutions, a 600-problem
pool, 3 iterations; measured before the oracle verifier existed, whose training and
validation candidates now add to its cost but change no other number: they draw their own
keys). Measured under the generalisation gate (`/usr/bin/time -v selftaught run v-star --preset
default --seeds 3`, 2026-12-06, under load 6-8 from three other jobs, the run got 46% of the
machine: 19 min 13 s wall, 536 CPU-s = 511 user + 25 sys, peak RSS 1.09 GiB; idle, one job,
/usr/bin/time -v: 5 min 18 s wall, 523 CPU-s, peak RSS 1.12 GiB, the same claims): 0 of 5 claims
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
problems (the first min(valid_problems, human_problems) of the pool: G_sft's human-solved
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
the ~0.8 where best-of-k is expected to win). This setting, with 2 iterations and the
oracle verifier, is now the default (measured above).

The algorithm box, per seed:

    G_sft = SFT(base, human solutions)
    D_gen, D_ver = {}, {}
    for t = 1..T:
        sample k solutions per training problem from G_{t-1}; label each with the verifier
        D_gen += the correct ones;  D_ver += all of them (labelled)
        G_t = SFT(base, D_gen)                             # the generator (STaR-style)
        V_t = DPO(init G_sft, reference G_sft, pairs (correct > incorrect) of one problem
                  from D_ver)                              # the verifier
        O_t = oracle(init G_sft + head, BCE on the TRUE correctness of every written step
                     of D_ver's samples)           # the upper bound (not part of V-STaR)
        test: N candidates per problem from G_t, scored by beta * (log V_t - log G_sft);
              Best-of-k (unbiased estimator over the N) for k = 1, 2, 4, ..., N; O_t's
              score aggregates its step logits as chosen on validation candidates
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

import jax
import numpy as np

from selftaught.core import Recipe
from selftaught.core.errors import ConfigError
from selftaught.lm.data import TaskSetting, preference_pairs
from selftaught.lm.model import ModelSize, init_params
from selftaught.lm.train import TrainConfig
from selftaught.recipes.v_star.config import VStarConfig
from selftaught.recipes.v_star.experiment import (  # noqa: F401  (re-exported: tests)
    evaluate,
    log_gate,
    make_setting,
    pack_steps,
    sample,
    step_diagnostics,
    train_dpo,
    train_oracle,
    train_orm,
    train_sft,
)
from selftaught.recipes.v_star.report import (  # noqa: F401
    _evals,
    _gate,
    report,
)


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
    orm = oracle = None
    problems = [p for p in s.train for _ in range(all_correct.shape[1])]
    texts = [x for ts in all_texts for x in ts]
    if t == config.iterations:
        orm, ostats = train_orm(config, s, problems, texts, all_correct.reshape(-1), g_sft,
                                jax.random.fold_in(key, 3), f"seed {seed}: ORM (BCE)")
        vstats.update(ostats)
    if config.oracle_verifier:  # a diagnostic: every iteration, on the same D_ver
        oracle, ostats = train_oracle(config, s, problems, texts, g_sft,
                                      jax.random.fold_in(key, 6),
                                      f"seed {seed}: oracle verifier (step labels)")
        vstats.update(ostats)
    metrics, per = evaluate(config, s, gen, verifier, g_sft, jax.random.fold_in(key, 4), seed,
                            orm, oracle)
    log("sample", seed=seed, iteration=t, sample_accuracy=float(smp.correct.mean()),
        solved_fraction=float(smp.correct.any(axis=1).mean()),
        d_gen=len(gen_t), d_ver=int(all_correct.size), pairs=len(pairs))
    log("train", seed=seed, iteration=t, final_loss=g_loss, **vstats)
    log("eval", seed=seed, iteration=t, **metrics)
    log("test_problems", seed=seed, iteration=t, **per)  # the paired bootstrap over problems
    if t < config.iterations:  # G_t samples the next iteration's verifier data
        log_gate(log, config, s, gen, jax.random.fold_in(key, 5), seed, t)
    log.run_dir.save_checkpoint(f"{log.phase}/samples",
                                {"tokens": smp.tokens, "correct": smp.correct.astype(np.uint8)})
    kc = config.claim_k
    log.headline(pass1=metrics["pass1"], **{f"bok_dpo_{kc}": metrics[f"bok_dpo_{kc}"]})
    return gen


PRESETS = {
    "smoke": VStarConfig(
        # 53 s wall on an idle 2-core CPU (2026-12-07; 300 / 100 / 300 before: 72-74 s)
        num_seeds=2, human_problems=200, train_problems=200, eval_problems=40,
        valid_problems=40,
        model=ModelSize(d_model=32, n_layers=2, n_heads=4),
        sft=TrainConfig(lr=3e-3, warmup_steps=30, total_steps=200, batch_size=64,
                        weight_decay=0.1, final_lr_ratio=0.1),
        iterations=2, samples_per_problem=4,
        verifier=TrainConfig(lr=1e-3, warmup_steps=10, total_steps=60, batch_size=32,
                             weight_decay=0.0, final_lr_ratio=0.1),
        candidates=16, claim_k=8, vote_repeats=4,
        oracle_verifier=False,  # +30 CPU-s (119 vs ~88, under load 9); the tests train it
    ),
    "default": VStarConfig(),
    # the former default: 250 human solutions, a 600-problem pool, 3 iterations; G_sft
    # memorises its training problems and the generalisation gate fails (docstring)
    "memorising": VStarConfig(human_problems=250, train_problems=600, iterations=3,
                              eval_problems=64),
    "paper": VStarConfig(
        num_seeds=5, task_args="steps=(3, 8)", human_problems=2000, train_problems=10000,
        eval_problems=1000, valid_problems=1000,
        model=ModelSize(d_model=256, n_layers=6, n_heads=8),
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

