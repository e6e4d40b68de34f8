"""Many-shot ICL experiment 2: reinforced and unsupervised ICL on base-addition
scratchpads (its own meta-trained decoder), and its report."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from selftaught import stats
from selftaught.lm import BOS, sample
from selftaught.lm.tokenizer import EOS, SEP, CharTokenizer
from selftaught.lm.train import (
    fit,
    make_sft,
)
from selftaught.recipes.many_shot_icl.config import (
    MODES,
    ManyShotConfig,
    _cells,
    reason_max_new,
    reason_prompt_len,
)
from selftaught.tasks.icl import (
    BaseAdditionTask,
)


def reason_tokenizer() -> CharTokenizer:
    return CharTokenizer(BaseAdditionTask.alphabet)


def reason_shot(tok: CharTokenizer, prompt: str, rationale: str | None):
    """Tokens of one shot, `prompt SEP rationale EOS` (or `prompt EOS` with no rationale:
    unsupervised ICL), and its loss mask (on the positions that predict the rationale and
    the EOS)."""
    p = tok.encode(prompt)
    if rationale is None:
        return p + [EOS], [0.0] * (len(p) + 1)
    r = tok.encode(rationale)
    return p + [SEP] + r + [EOS], [0.0] * len(p) + [1.0] * (len(r) + 1) + [0.0]


def reason_pool(config: ManyShotConfig, tok: CharTokenizer, base: int) -> list:
    """Encoded ground-truth shots of train-split problems in one base (meta-training data)."""
    task = BaseAdditionTask(base, config.reason_digits)
    top = base**config.reason_digits
    probs = task.problems("train", min(512, top * top // 3), seed=0)
    return [reason_shot(tok, task.prompt(p), task.reference_solution(p)) for p in probs]


def reason_sequences(config: ManyShotConfig, pools: dict, rng: np.random.Generator, n: int):
    """n meta-training rows: BOS, then random shots of one random base until the context is
    full (the last shot cut) -> (tokens [n, T] int32, loss_mask [n, T] float32)."""
    T, bases = config.reason_context, config.reason_bases
    tokens, mask = np.zeros((n, T), np.int32), np.zeros((n, T), np.float32)
    for i in range(n):
        pool = pools[bases[rng.integers(len(bases))]]
        row, mrow = [BOS], [0.0]
        while len(row) < T:
            shot, m = pool[rng.integers(len(pool))]
            row += shot
            mrow += m
        tokens[i], mask[i] = row[:T], mrow[:T]
    mask[:, -1] = 0.0  # the last position has no target
    return tokens, mask


def reason_trainer(config: ManyShotConfig):
    tok = reason_tokenizer()
    cfg = config.reason_model.config(tok.vocab_size, config.reason_context)
    return tok, cfg, make_sft(cfg, config.reason_train)


def reason_tasks(config: ManyShotConfig, seed: int) -> list[BaseAdditionTask]:
    rng = np.random.default_rng([seed, 12])
    bases = config.reason_eval_bases
    return [BaseAdditionTask(int(bases[rng.integers(len(bases))]), config.reason_digits)
            for _ in range(config.reason_eval_tasks)]


def reason_problems(config: ManyShotConfig, task: BaseAdditionTask, seed: int, i: int):
    """(seed-prompt problems, candidate shot problems, test queries) of eval task i."""
    kmax, n_seed = max(config.reason_shots), config.reason_seed_shots
    train = task.problems("train", n_seed + 2 * kmax, seed=10_000 * seed + i)
    return train[:n_seed], train[n_seed:], task.problems("test", config.reason_queries,
                                                            seed=10_000 * seed + i)


def _left_pad(rows: list[list[int]], width: int):
    tokens, mask = np.zeros((len(rows), width), np.int32), np.zeros((len(rows), width), bool)
    for r, row in enumerate(rows):
        if len(row) > width:
            raise ValueError(f"a prompt of {len(row)} tokens exceeds {width}")
        tokens[r, width - len(row):], mask[r, width - len(row):] = row, True
    return tokens, mask


def reason_prompt(tok, task, shots, query) -> list[int]:
    """BOS, the shots [(problem, rationale or None)], then the query's `prompt SEP`."""
    row = [BOS]
    for p, rationale in shots:
        row += reason_shot(tok, task.prompt(p), rationale)[0]
    return row + tok.encode(task.prompt(query)) + [SEP]


def _complete(params, cfg, tok, config, rows, rng, greedy: bool) -> list[str]:
    width = reason_prompt_len(config, max(config.reason_shots))
    tokens, mask = _left_pad(rows, width)
    out = sample(params, cfg, tokens, mask, rng, max_new_tokens=reason_max_new(config),
                 temperature=1.0, greedy=greedy)
    return tok.decode_batch(jax.device_get(out.tokens_BxN))


def reinforced_shots(config: ManyShotConfig, params, cfg, tok, seed: int) -> list[list]:
    """Per eval task: the model's own rationales for the candidate problems, sampled with a
    `reason_seed_shots` ground-truth prompt, filtered by the verifier -> [(candidate index,
    rationale)] in candidate order (the first verified sample of each problem)."""
    rows, where = [], []
    for i, task in enumerate(reason_tasks(config, seed)):
        seed_probs, cands, _ = reason_problems(config, task, seed, i)
        gt = [(p, task.reference_solution(p)) for p in seed_probs]
        for j, p in enumerate(cands):
            rows += [reason_prompt(tok, task, gt, p)] * config.reason_samples
            where += [(i, j)] * config.reason_samples
    texts = _complete(params, cfg, tok, config, rows, jax.random.PRNGKey(seed), greedy=False)
    tasks = reason_tasks(config, seed)
    cands = [reason_problems(config, t, seed, i)[1] for i, t in enumerate(tasks)]
    out = [dict() for _ in tasks]
    for (i, j), text in zip(where, texts):
        if j not in out[i] and tasks[i].verify(cands[i][j], text):
            out[i][j] = text
    return [sorted(o.items()) for o in out]


def evaluate_reasoning(config: ManyShotConfig, params, cfg, tok, seed: int, mode: str,
                       ricl: list[list]) -> dict:
    """-> {k: (accuracy, mean shots used)} of greedy rationales on the test queries."""
    rows, meta = [], []
    for i, task in enumerate(reason_tasks(config, seed)):
        _, cands, queries = reason_problems(config, task, seed, i)
        for k in config.reason_shots:
            if mode == "ground_truth":
                shots = [(p, task.reference_solution(p)) for p in cands[:k]]
            elif mode == "unsupervised":
                shots = [(p, None) for p in cands[:k]]
            else:
                shots = [(cands[j], text) for j, text in ricl[i][:k]]
            for q in queries:
                rows.append(reason_prompt(tok, task, shots, q))
                meta.append((k, len(shots), task, q))
    texts = _complete(params, cfg, tok, config, rows, jax.random.PRNGKey(seed), greedy=True)
    out = {}
    for k in config.reason_shots:
        ok = [m[2].verify(m[3], t) for m, t in zip(meta, texts) if m[0] == k]
        used = [m[1] for m in meta if m[0] == k]
        out[k] = (float(np.mean(ok)), float(np.mean(used)))
    return out


def run_reasoning(config: ManyShotConfig, run_dir, seeds: list[int]) -> None:
    """Experiment 2: meta-train the reasoning decoder, find its reinforced shots (own
    verified rationales), then evaluate every mode."""
    tok, cfg, trainer = reason_trainer(config)
    state = jax.vmap(trainer.init)(jnp.stack([jax.random.PRNGKey(s) for s in seeds]))
    state = run_dir.phase("reason/train", reason_meta_train, config, tok, trainer, state,
                          seeds, restore=state)
    params_of_seed = lambda i: jax.tree_util.tree_map(lambda x: x[i], state.params)  # noqa: E731
    run_dir.phase("reason/reinforced_shots", find_reinforced_shots, config, cfg, tok,
                  params_of_seed, seeds)
    ricl = {e["seed"]: [[tuple(x) for x in t] for t in e["shots"]]
            for e in run_dir.events("reason_shots")}
    for mode in MODES:
        run_dir.phase(f"reason/eval/{mode}", reason_eval, config, cfg, tok, params_of_seed,
                      seeds, mode, ricl)


def reason_meta_train(log, config: ManyShotConfig, tok, trainer, state, seeds: list[int]):
    """Meta-training on base-addition scratchpad sequences of the training bases."""
    pools = {b: reason_pool(config, tok, b) for b in sorted(set(config.reason_bases))}
    n = config.reason_train.total_steps * config.reason_train.batch_size
    data = [reason_sequences(config, pools, np.random.default_rng([s, 2]), n) for s in seeds]
    data = {"tokens": np.stack([d[0] for d in data]),
            "loss_mask": np.stack([d[1] for d in data]),
            "weight": np.ones((len(seeds), n), np.float32)}
    state, losses = fit(trainer, state, data, config.reason_train.total_steps, seeds=True,
                        description="experiment 2 meta-training")
    for i, s in enumerate(seeds):
        log("reason_train", seed=s, loss=float(losses[i, -20:].mean()),
            first_loss=float(losses[i, 0]))
    return state


def find_reinforced_shots(log, config: ManyShotConfig, cfg, tok, params_of_seed,
                          seeds: list[int]) -> None:
    """Per seed, the candidate problems whose own sampled rationale verifies."""
    n_cand = 2 * max(config.reason_shots)
    for i, s in enumerate(seeds):
        shots = reinforced_shots(config, params_of_seed(i), cfg, tok, s)
        log("reason_shots", seed=s, shots=shots,
            verified=float(np.mean([len(x) / n_cand for x in shots])))


def reason_eval(log, config: ManyShotConfig, cfg, tok, params_of_seed, seeds: list[int],
                mode: str, ricl: dict) -> None:
    """Test accuracy of one shot mode (ground truth / reinforced / unsupervised) per shot
    count."""
    for i, s in enumerate(seeds):
        res = evaluate_reasoning(config, params_of_seed(i), cfg, tok, s, mode, ricl[s])
        for k, (acc, used) in res.items():
            log("reason_eval", seed=s, mode=mode, shots=k, acc=acc, shots_used=used)


def report_reasoning(config: ManyShotConfig, run_dir, seeds: list[int]):
    shots = config.reason_shots
    t = stats.collect(run_dir, "reason_eval", by={"mode": MODES, "seed": seeds, "shots": shots},
                      values=("acc", "shots_used"))
    acc = {m: t["acc"][i] * 100 for i, m in enumerate(MODES)}
    used = t["shots_used"][MODES.index("reinforced")]
    verified = {s: e["verified"] for (s,), e in stats.collect_events(
        run_dir, "reason_shots", by={"seed": seeds}).items()}
    x = np.arange(len(shots))
    stats.plot_curves(run_dir.plots / "reinforced_unsupervised.png", x,
                      {f"{m.replace('_', '-')} shots": acc[m] for m in MODES},
                      xlabel="shot count index", ylabel="test accuracy (%)",
                      title=f"{len(seeds)} seed(s), 95% CI; x = shots {list(shots)}")
    claims = [
        stats.claim_greater(
            "reinforced_icl_matches_ground_truth",
            f"at {shots[-1]} shots reinforced ICL (the model's own verified rationales) is at "
            "least as accurate as ground-truth rationales, within 5 points (value: "
            "reinforced - ground truth, points; holds if the CI is above -5)",
            stats.paired_difference_ci(acc["reinforced"][:, -1], acc["ground_truth"][:, -1]),
            -5.0,
            unit="training seeds"),
        stats.claim_greater(
            "reasoning_accuracy_rises_with_shots",
            f"ground-truth-rationale accuracy rises from {shots[0]} to {shots[-1]} shots "
            "(points)",
            stats.paired_difference_ci(acc["ground_truth"][:, -1], acc["ground_truth"][:, 0]),
            unit="training seeds"),
    ]
    md = ["## 2. Reinforced and unsupervised ICL (test accuracy %, greedy rationales)", "",
          f"Bases meta-trained {list(config.reason_bases)}, evaluated "
          f"{list(config.reason_eval_bases)}; {config.reason_eval_tasks} tasks x "
          f"{config.reason_queries} test problems per seed. Reinforced shots: "
          f"{config.reason_samples} samples per candidate problem (with a "
          f"{config.reason_seed_shots}-shot ground-truth prompt), the first verified kept; "
          f"verified fraction of candidates per seed: {verified}.", "",
          stats.markdown_table(
              ["shots", *MODES, "reinforced shots used"],
              [[k, *(_cells(acc[m][:, j]) for m in MODES), f"{used[:, j].mean():.1f}"]
               for j, k in enumerate(shots)])]
    return claims, md + ["", "![reasoning](plots/reinforced_unsupervised.png)", ""]
