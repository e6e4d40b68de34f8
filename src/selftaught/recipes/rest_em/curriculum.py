"""rest-em's curriculum arm (small-scale.md §5, issue 24 item 4): ReST^EM from short human
solutions to a longer target length, one length per round, against flat ReST^EM on the
same human data. Active when the config sets `length_arg` (the `curriculum` preset).

Per seed (phases `seed{s}/sft`, `seed{s}/curriculum/round{r}`, `seed{s}/flat/round{r}`):

    G_0 = SFT(base, human solutions on short instances)        # both arms' round 0
    for arm in (curriculum, flat), r = 1..R:
        L_r  = min(start + r, target) (curriculum) or target (flat)
        pool = train_problems fresh training problems of length L_r (never used before)
        E-step: N samples per pool problem from G_{r-1}; gate = pool pass@gate_k
        curriculum arm and gate < gate_min: stop (G_r = G_{r-1}, no more training)
        keep the verified samples, at most K per problem
        M-step: G_r = SFT(base, human solutions + every sample kept in rounds 1..r)
        evaluate G_r: greedy pass@1 at the target length (validation and test) and on test
                      problems of every length start..target

The checkpoint of a round holds the policy and its training rows (human + kept so far), so
a resumed run continues from the same data. Claims use test problems at the target length;
each arm's round is chosen per seed on the validation problems of that length. What the
`curriculum` preset measured (the gate fails at round 1) is in the rest_em module docstring.
"""

from __future__ import annotations

import numpy as np

from selftaught import stats, tasks
from selftaught.core import Report, check
from selftaught.lm import init_params, pass_at_k
from selftaught.lm.data import TaskSetting
from selftaught.lm.tokenizer import CharTokenizer
from selftaught.tasks.arithmetic import digit_range

ARMS = ("curriculum", "flat")


# ------------------------------------------------------------------------- schedule and gate
def length_range(config) -> tuple[int, int]:
    """(shortest, longest) length of the human solutions (the task_args' length_arg)."""
    args = tasks.parse_task_args(config.task_args)
    return digit_range(args[config.length_arg], config.length_arg, max_digits=100)


def round_length(arm: str, r: int, start: int, target: int) -> int:
    """Length of round r >= 1's pool: the curriculum one past its previous round (start at
    round 0), never past the target; flat: the target from round 1."""
    if arm == "flat":
        return target
    return min(start + r, target)


def pool_slices(arm: str, rounds: int, start: int, target: int) -> list[tuple[int, int, int]]:
    """Per round 1..rounds, (length, first, stop): the round's pool is the problems
    [first, stop) (in units of train_problems) of that length's training stream, so
    rounds at the same length get fresh problems."""
    seen: dict[int, int] = {}
    out = []
    for r in range(1, rounds + 1):
        length = round_length(arm, r, start, target)
        j = seen.get(length, 0)
        seen[length] = j + 1
        out.append((length, j, j + 1))
    return out


def gate(num_correct: np.ndarray, num_samples: int, k: int, minimum: float
         ) -> tuple[float, bool]:
    """(pool pass@k: the mean over problems of the unbiased pass@k of their num_samples
    samples, whether it is >= minimum)."""
    value = float(np.mean(pass_at_k(num_samples, np.asarray(num_correct), k)))
    return value, value >= minimum


def check_curriculum(config, args: dict) -> None:
    """ConfigError (one line) unless the curriculum fields fit the task and each other."""
    check(config.length_arg in args,
          f"length_arg={config.length_arg!r} must be one of the task_args ({config.task_args!r}) "
          f"so the human solutions' lengths are known; add {config.length_arg}=(min, max)")
    lo, start = digit_range(args[config.length_arg], config.length_arg, max_digits=100)
    check(config.target_length > start,
          f"target_length ({config.target_length}) must exceed the human solutions' longest "
          f"length {config.length_arg}={start}")
    check(config.iterations >= config.target_length - start,
          f"iterations ({config.iterations}) must be >= target_length - {start} = "
          f"{config.target_length - start} so the curriculum reaches the target length")
    check(1 <= config.gate_k <= config.num_samples,
          f"gate_k ({config.gate_k}) must be in [1, num_samples={config.num_samples}]")
    check(0.0 <= config.gate_min <= 1.0, f"gate_min must be in [0, 1], got {config.gate_min}")
    check(config.verify in ("answer", "steps"),
          f"verify must be 'answer' or 'steps', got {config.verify!r}")
    if config.verify == "steps":
        check(callable(getattr(length_task(config, start), "step_labels", None)),
              f"verify='steps' needs a task with step_labels (chain); {config.task} has none: "
              "use verify=answer")
    check(config.mstep_init == "base",
          "the curriculum retrains from the base model every round: set mstep_init=base")


def verified(config, task, samples) -> np.ndarray:
    """bool [P, n]: the samples that count as correct under `config.verify`."""
    if config.verify == "answer":
        return samples.correct
    return samples.correct & np.array(
        [[all(ok for _, ok in task.step_labels(p, t)) for t in texts]
         for p, texts in zip(samples.problems, samples.texts)], bool).reshape(
        samples.correct.shape)


# ------------------------------------------------------------------------------ the setting
def length_task(config, length):
    """The task with the length argument set to `length` (an int or a (min, max) pair)."""
    args = {**tasks.parse_task_args(config.task_args), config.length_arg: length}
    return tasks.get(config.task, **args)


def make_setting(config, seed: int) -> TaskSetting:
    """The model is sized for every length up to the target; `train` holds the human-solved
    short problems, valid/test the target length's problems."""
    lo, start = length_range(config)
    wide, short = length_task(config, (lo, config.target_length)), length_task(config, (lo, start))
    target = length_task(config, config.target_length)
    tok = CharTokenizer(wide.alphabet)
    max_new = wide.max_solution_len + 1  # + EOS
    model_cfg = config.model.config(tok.vocab_size, wide.max_prompt_len + 2 + max_new)
    rng = np.random.default_rng([seed, 7])
    train = short.problems("train", config.human_problems, seed)
    return TaskSetting(task=wide, tok=tok, model_cfg=model_cfg, train=train,
                       valid=target.problems("valid", config.eval_problems, seed),
                       test=target.problems("test", config.eval_problems, seed),
                       human=[short.human_solution(p, rng) for p in train], max_new=max_new)


def round_pool(config, arm: str, r: int, seed: int) -> list:
    """Round r's fresh training problems (see `pool_slices`)."""
    _, start = length_range(config)
    length, first, stop = pool_slices(arm, r, start, config.target_length)[-1]
    n = config.train_problems
    return length_task(config, length).problems("train", stop * n, seed)[first * n:]


def test_lengths(config) -> list[int]:
    _, start = length_range(config)
    return list(range(start, config.target_length + 1))


def data_capacity(config) -> int:
    """Rows of every training set: the human data plus K per pool problem of every round."""
    return config.human_problems + config.iterations * config.train_problems * \
        config.max_per_problem


def append_rows(data: dict, rows: dict) -> dict:
    """`data` (real rows first, then weight-0 padding) with the real rows of `rows` written
    after its own real rows: the same capacity, so the trainer compiles once."""
    n, m = int(np.sum(data["weight"] > 0)), int(np.sum(rows["weight"] > 0))
    if n + m > len(data["weight"]):
        raise ValueError(f"{n} + {m} rows exceed the capacity {len(data['weight'])}")
    out = {k: np.array(v, copy=True) for k, v in data.items()}
    for k in out:
        out[k][n:n + m] = rows[k][:m]
    return out


# --------------------------------------------------------------------------------- the run
def phases(config, seeds: list[int]) -> list[str]:
    return [f"seed{sd}/{name}" for sd in seeds
            for name in ["sft", *(f"{arm}/round{r}" for arm in ARMS
                                  for r in range(1, config.iterations + 1))]]


def evaluate(rest_em, config, s: TaskSetting, params, key, seed: int) -> dict[str, float]:
    """Greedy pass@1 on the target length's validation and test problems and on test
    problems of each length start..target (one sampler pass)."""
    splits = [("valid", s.valid), ("test", s.test)]
    for length in test_lengths(config):
        if length != config.target_length:
            splits.append((f"test_len{length}", length_task(config, length).problems(
                "test", config.eval_problems, seed)))
    samples = rest_em.generate(config, s, params, [p for _, ps in splits for p in ps], 1, key,
                               greedy=True)
    greedy = verified(config, s.task, samples)[:, 0]
    out, start = {}, 0
    for name, problems in splits:
        out[f"{name}_pass1"] = float(np.mean(greedy[start:start + len(problems)]))
        start += len(problems)
    out[f"test_len{config.target_length}_pass1"] = out["test_pass1"]
    return out


def run_seed(rest_em, config, run_dir, seed: int) -> None:
    import jax

    s = make_setting(config, seed)
    root = jax.random.PRNGKey(seed)
    base = init_params(s.model_cfg, jax.random.fold_in(root, 0))
    empty = s.pack([], [], data_capacity(config))
    restore = {"params": base, "data": empty}
    state0 = run_dir.phase(f"seed{seed}/sft", sft_round, rest_em, config, s, seed, root,
                           base, restore=restore)
    for a, arm in enumerate(ARMS):
        state = state0
        for r in range(1, config.iterations + 1):
            stopped = any(not e["passed"] for e in run_dir.events("gate", seed=seed, arm=arm)
                          if arm == "curriculum" and e["round"] < r)
            state = run_dir.phase(f"seed{seed}/{arm}/round{r}", em_round, rest_em, config, s,
                                  seed, arm, r, jax.random.fold_in(root, 1000 * (a + 1) + r),
                                  state, base, stopped, restore=restore)


def sft_round(log, rest_em, config, s: TaskSetting, seed: int, key, base):
    """Round 0 of both arms: SFT(base, the human solutions on short instances)."""
    import jax

    data = s.pack(s.train, s.human, data_capacity(config))
    params, loss = rest_em.train_model(config, s, data, jax.random.fold_in(key, 1), base,
                                       config.sft.total_steps, f"seed {seed}: SFT on human data")
    metrics = evaluate(rest_em, config, s, params, jax.random.fold_in(key, 2), seed)
    log("train", seed=seed, arm="sft", round=0, final_loss=loss, rows=len(s.human))
    for arm in ARMS:
        log("eval", seed=seed, arm=arm, round=0, length=length_range(config)[1],
            stopped=False, **metrics)
    log.headline(test_pass1=metrics["test_pass1"])
    return {"params": params, "data": data}


def em_round(log, rest_em, config, s: TaskSetting, seed: int, arm: str, r: int, key, state,
             base, stopped: bool):
    """One round of `arm` (see the module docstring): gate, E-step, M-step, evaluation."""
    import jax

    _, start = length_range(config)
    length = round_length(arm, r, start, config.target_length)
    if stopped:  # an earlier round failed the gate: the policy stays, nothing is trained
        metrics = evaluate(rest_em, config, s, state["params"], jax.random.fold_in(key, 2),
                           seed)
        log("eval", seed=seed, arm=arm, round=r, length=length, stopped=True, **metrics)
        log.headline(stopped=True)
        return state
    pool = round_pool(config, arm, r, seed)
    samples = rest_em.generate(config, s, state["params"], pool, config.num_samples,
                               jax.random.fold_in(key, 0), greedy=False)
    answer_only, _ = gate(samples.num_correct, config.num_samples, config.gate_k, 0.0)
    samples.correct = verified(config, s.task, samples)
    value, passed = gate(samples.num_correct, config.num_samples, config.gate_k,
                         config.gate_min)
    passed_or_flat = passed or arm == "flat"
    log("gate", seed=seed, arm=arm, round=r, length=length, pool_pass_k=value,
        pool_pass_k_answer=answer_only, passed=bool(passed), enforced=arm == "curriculum")
    if not passed_or_flat:
        metrics = evaluate(rest_em, config, s, state["params"], jax.random.fold_in(key, 2),
                           seed)
        log("eval", seed=seed, arm=arm, round=r, length=length, stopped=True, **metrics)
        log.headline(gate=f"failed {value:.3f}")
        return state
    kept_p, kept_y = samples.correct_texts(config.max_per_problem)
    log("estep", seed=seed, arm=arm, round=r, length=length, kept=len(kept_y),
        sample_accuracy=float(samples.correct.mean()),
        solved_fraction=float(np.mean(samples.correct.any(axis=1))),
        **rest_em.kept_diversity(s, kept_p, kept_y))
    data = append_rows(state["data"], s.pack(kept_p, kept_y))
    rows = int(np.sum(data["weight"] > 0))
    params, loss = rest_em.train_model(config, s, data, jax.random.fold_in(key, 1), base,
                                       config.mstep_steps, f"seed {seed}: {arm} round {r}")
    metrics = evaluate(rest_em, config, s, params, jax.random.fold_in(key, 2), seed)
    log("train", seed=seed, arm=arm, round=r, final_loss=loss, rows=rows)
    log("eval", seed=seed, arm=arm, round=r, length=length, stopped=False, **metrics)
    log.headline(gate=round(value, 3), kept=len(kept_y), test_pass1=metrics["test_pass1"])
    return {"params": params, "data": data}


# ------------------------------------------------------------------------------ the report
def stop_text(config, seeds: list[int], gate_cells: dict) -> str:
    """One line per seed saying where the gate stopped the curriculum (or that it ran)."""
    out = []
    for sd in seeds:
        failed = [e for (s_, arm, _), e in sorted(gate_cells.items())
                  if s_ == sd and arm == "curriculum" and not e["passed"]]
        out.append(
            f"seed {sd}: stopped at round {failed[0]['round']} (pool pass@{config.gate_k} at "
            f"{config.length_arg}={failed[0]['length']}: {failed[0]['pool_pass_k']:.3f} < "
            f"{config.gate_min:g})" if failed else f"seed {sd}: every round passed the gate")
    return "Curriculum gate: " + "; ".join(out) + "."


def report(config, run_dir, seeds: list[int]) -> Report:
    from selftaught.recipes.rest_em.report import best_iteration

    R, target = config.iterations, config.target_length
    lengths = test_lengths(config)
    names = ["valid_pass1", "test_pass1", *(f"test_len{n}_pass1" for n in lengths)]
    t = stats.collect(run_dir, "eval", values=names,
                      by={"seed": seeds, "arm": list(ARMS), "round": range(R + 1)})
    test, valid = t["test_pass1"] * 100, t["valid_pass1"] * 100  # [seeds, arms, rounds]
    # rounds after a failed gate log none: read the gate events that exist
    gate_cells = {(e["seed"], e["arm"], e["round"]): e for e in run_dir.events("gate")}
    rows = np.arange(len(seeds))
    best = {arm: best_iteration(valid[:, a]) for a, arm in enumerate(ARMS)}
    chosen = {arm: test[rows, a, best[arm]] for a, arm in enumerate(ARMS)}
    claims = [
        stats.claim_greater(
            "curriculum_beats_flat",
            f"the curriculum beats flat ReST^EM at the target length {config.length_arg}="
            f"{target} with the same human data (test greedy pass@1, points; each arm's "
            f"round of {R} chosen on validation problems of that length)",
            stats.paired_difference_ci(chosen["curriculum"], chosen["flat"]),
            unit="training seeds"),
        stats.claim_greater(
            "curriculum_beats_sft",
            f"the curriculum beats SFT on the short human data at the target length "
            f"{config.length_arg}={target} (test greedy pass@1, points; validation-chosen "
            f"round minus round 0)",
            stats.paired_difference_ci(chosen["curriculum"], test[:, 0, 0]),
            unit="training seeds"),
    ]
    x = np.arange(R + 1)
    stats.plot_curves(
        run_dir.plots / "curriculum.png", x,
        {f"{arm} (test, {config.length_arg}={target})": test[:, a]
         for a, arm in enumerate(ARMS)},
        xlabel="round (0 = SFT on the short human data)", ylabel="greedy pass@1 (%)",
        title=f"ReST^EM curriculum vs flat on {config.task}, {len(seeds)} seed(s), 95% CI")
    table = []
    for a, arm in enumerate(ARMS):
        for r in range(R + 1):
            g = [gate_cells.get((sd, arm, r)) for sd in seeds] if r else []
            est = [e for e in run_dir.events("estep", arm=arm, round=r) if e["seed"] in seeds]
            gate_txt = ("-" if r == 0 or not any(g) else
                        f"{np.mean([e['pool_pass_k'] for e in g if e]) * 100:.1f} "
                        f"({sum(bool(e and e['passed']) for e in g)}/{len(seeds)} pass)")
            answer_txt = ("-" if r == 0 or not any(g) else
                          f"{np.mean([e['pool_pass_k_answer'] for e in g if e]) * 100:.1f}")
            length = round_length(arm, r, lengths[0], target) if r else lengths[0]
            table.append([arm, r, length, gate_txt, answer_txt,
                          f"{np.mean([e['kept'] for e in est]):.0f}" if est else "-",
                          stats.ci_cell(stats.bootstrap_ci(test[:, a, r])),
                          stats.ci_cell(stats.bootstrap_ci(valid[:, a, r])),
                          *(f"{t[f'test_len{n}_pass1'][:, a, r].mean() * 100:.1f}"
                            for n in lengths if n != target)])
    lo, start = length_range(config)
    md = [f"Setting: {config.task} ({config.task_args}); {config.human_problems} human "
          f"solutions at {config.length_arg} {lo}..{start}; each round samples "
          f"{config.train_problems} fresh problems x {config.num_samples}, keeps <= "
          f"{config.max_per_problem} verified per problem, retrains the base model on the "
          f"human data + all kept samples; a sample is correct when its "
          f"{'final answer' if config.verify == 'answer' else 'answer and every step'} "
          f"verifies; target {config.length_arg}={target}; gate: pool "
          f"pass@{config.gate_k} >= {config.gate_min:g} (enforced on the curriculum arm).", "",
          "## Per arm and round (mean over seeds [95% bootstrap CI]; round 0 = SFT)", "",
          stats.markdown_table(
              ["arm", "round", "pool length", f"pool pass@{config.gate_k} (%)",
               f"pool pass@{config.gate_k}, final answer only (%)", "kept",
               f"test pass@1 at {target} (%)", f"valid pass@1 at {target} (%)",
               *(f"test at {n} (%)" for n in lengths if n != target)], table),
          "", stop_text(config, seeds, gate_cells),
          "", f"Validation-chosen round per seed: curriculum {best['curriculum'].tolist()}, "
          f"flat {best['flat'].tolist()}.", "", "![curriculum](plots/curriculum.png)"]
    return Report(claims, "\n".join(md))
