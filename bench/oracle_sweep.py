"""Real evaluations per CPU-second of guided evolution's oracle sweep: the sequential
reference path (`fast=False`) vs the memoised, batched path (`fast=True`, the default).

    PYTHONPATH=src .venv/bin/python bench/oracle_sweep.py [--equation nguyen1]
        [--seeds 2] [--evaluations 800] [--cells 0.9/0.02,0.5/0.1,0.2/0.4]

Each path runs the same searches (unguided plus one oracle arm per TPR/FPR cell, the
`diagnose` preset's search settings, `--seeds` seeds) after one untimed warm-up pass that
compiles every batch shape; the bench checks that both paths give the same searches
(evaluations to target, best fitness, real evaluations, diagnostics) and prints CPU
seconds (user + sys of this process), real evaluations / CPU-s per path and the ratio.
Run it with PYTHONPATH pointing at an older checkout's src to time that checkout's (only)
path on the same searches (equal `searches` digests: the same searches).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time

from selftaught.evolve.backends import InProcess
from selftaught.recipes.guided_evolution import PRESETS, _run_one, tasks
from selftaught.recipes.guided_evolution.config import oracle_cells

KEYS = ("evals_to_target", "best_fitness", "real_evaluations", "candidates",
        "confusion_evaluated", "confusion_holdout", "holdout_novelty")


def sweep(config, task, evaluate, seeds) -> tuple[float, int, list]:
    arms = ["unguided", *oracle_cells(config)]
    t0 = time.process_time()
    outs = [_run_one(config, task, evaluate, s, a, config.target_fitness)
            for s in seeds for a in arms]
    return (time.process_time() - t0, sum(o["real_evaluations"] for o in outs),
            [{k: o[k] for k in KEYS} for o in outs])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--equation", default="nguyen1")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--evaluations", type=int, default=800)
    ap.add_argument("--cells", default="0.9/0.02,0.5/0.1,0.2/0.4")
    a = ap.parse_args()
    cells = [tuple(float(x) for x in c.split("/")) for c in a.cells.split(",")]
    base = dataclasses.replace(
        PRESETS["diagnose"], equations=(a.equation,), arms=("unguided", "oracle"),
        oracle_tpr=tuple(t for t, _ in cells), oracle_fpr=tuple(f for _, f in cells),
        max_evaluations=a.evaluations)
    _, task = tasks(base)[0]
    evaluate = InProcess(task)
    seeds = list(range(a.seeds))
    res = {}
    # run from an older checkout (PYTHONPATH=that/src), which has no `fast` field: its
    # path only, to compare with this one's in the same session
    paths = (False, True) if hasattr(base, "fast") else (None,)
    for fast in paths:
        config = base if fast is None else dataclasses.replace(base, fast=fast)
        sweep(config, task, evaluate, seeds[:1])  # warm-up: compile every batch shape
        res[fast] = sweep(config, task, evaluate, seeds)
        cpu, n, _ = res[fast]
        label = {None: "checkout", False: "reference", True: "fast"}[fast]
        digest = hashlib.sha1(json.dumps(res[fast][2]).encode()).hexdigest()[:12]
        print(f"{label:9s}  {cpu:7.1f} CPU-s  {n:6d} real "
              f"evaluations  {n / cpu:7.1f} evaluations/CPU-s  searches {digest}", flush=True)
    if fast is None:
        return
    same = res[False][2] == res[True][2]
    print(f"same searches: {same}; speed-up (evaluations/CPU-s, fast / reference): "
          f"{(res[True][1] / res[True][0]) / (res[False][1] / res[False][0]):.2f}x")


if __name__ == "__main__":
    main()
