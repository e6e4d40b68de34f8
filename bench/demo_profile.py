"""Where `make demo`'s CPU time goes: ReST^EM run in-process with CPU-second counters per
phase and per piece of work, and every XLA compilation counted (no peer: a profile).

    PYTHONPATH=src .venv/bin/python bench/demo_profile.py [--preset default --seeds 3]
        [--run-dir /tmp/demo-profile] [any other `selftaught run rest-em` flag]

Runs `selftaught run rest-em` exactly as the CLI does (same run directory, same events), with
the recipe's functions wrapped to add up process CPU time (`time.process_time`: all threads)
and wall time:
- `train`     the M-step / SFT trainings (`rest_em.train_model`, device work included);
- `sample`    the sampler calls on device (`lm.generate.sample`, waited for), split by caller:
              E-step, evaluation greedy (test/valid/train pass@1), evaluation sampled (pass@k);
- `host`      what `lm.generate.generate` does besides sampling: encoding the prompts,
              decoding, parsing and verifying the completions, building `Samples`;
- the rest of each phase (data packing, the E-step's kept-sample statistics, checkpoints).
Compilations are counted with `jax.monitoring` (the backend-compile event), with the phase
they happened in and their wall seconds; a program compiled twice with the same name and
shapes would show up as a repeat. Numbers are inclusive (sample inside evaluate inside phase).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--run-dir", default="/tmp/demo-profile")
    args, extra = ap.parse_known_args()  # the rest goes to `selftaught run rest-em`
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    import jax
    import jax.monitoring

    from selftaught import cli
    from selftaught.core import rundir
    from selftaught.lm import generate as lm_generate
    from selftaught.recipes import rest_em

    cpu = collections.Counter()
    wall = collections.Counter()
    calls = collections.Counter()
    where = ["(outside phases)"]
    caller = ["?"]
    compiles: list[tuple[str, str, float]] = []

    @contextlib.contextmanager
    def timed(name):
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            cpu[name] += time.process_time() - c0
            wall[name] += time.perf_counter() - w0
            calls[name] += 1

    def on_event(event, duration, **kw):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append((where[0], kw.get("fun_name", "?"), duration))

    jax.monitoring.register_event_duration_secs_listener(on_event)

    phase0 = rundir.RunDir.phase

    def phase(self, name, work, *a, **kw):
        where[0] = name
        kind = name.split("/")[-1].rstrip("0123456789") or name
        with timed(f"phase {kind}"):
            out = phase0(self, name, work, *a, **kw)
        where[0] = "(outside phases)"
        return out

    def wrap(module, attr, label):
        fn = getattr(module, attr)

        def wrapped(*a, **kw):
            with timed(label() if callable(label) else label):
                return fn(*a, **kw)

        setattr(module, attr, wrapped)

    sample0 = lm_generate.sample

    def sample(*a, **kw):
        with timed(f"  sample ({caller[0]})"):
            out = sample0(*a, **kw)
            jax.block_until_ready(out)
        return out

    def tagged(module, attr, tag):
        fn = getattr(module, attr)

        def wrapped(*a, **kw):
            old, caller[0] = caller[0], tag(*a, **kw) if callable(tag) else tag
            try:
                return fn(*a, **kw)
            finally:
                caller[0] = old

        setattr(module, attr, wrapped)

    rundir.RunDir.phase = phase
    lm_generate.sample = sample
    wrap(rest_em, "train_model", "  train")
    wrap(rest_em, "e_step", "  e_step")
    wrap(rest_em, "evaluate", "  evaluate")
    wrap(rest_em, "lm_generate", "  generate (sample + host)")
    tagged(rest_em, "e_step", "E-step")
    tagged(rest_em, "generate",
           lambda *a, greedy, **kw: "eval greedy" if greedy else caller[0]
           if caller[0] == "E-step" else "eval sampled")

    t0, c0 = time.perf_counter(), time.process_time()
    code = cli.main(["run", "rest-em", "--preset", args.preset, "--seeds", str(args.seeds),
                     "--run-dir", args.run_dir, *extra])
    total_cpu, total_wall = time.process_time() - c0, time.perf_counter() - t0

    print(f"\nrest-em --preset {args.preset} --seeds {args.seeds}: {total_wall:.1f} s wall, "
          f"{total_cpu:.1f} CPU-s (exit {code})")
    print(f"{'piece':34s} {'calls':>6s} {'CPU-s':>8s} {'wall s':>8s} {'CPU share':>9s}")
    for name in sorted(cpu, key=lambda n: (not n.startswith("phase"), n)):
        print(f"{name:34s} {calls[name]:6d} {cpu[name]:8.1f} {wall[name]:8.1f} "
              f"{cpu[name] / total_cpu:9.1%}")
    host = cpu["  generate (sample + host)"] - sum(v for k, v in cpu.items()
                                                  if k.startswith("  sample"))
    print(f"{'  host part of generate':34s} {'':6s} {host:8.1f} {'':8s} {host / total_cpu:9.1%}")
    per_phase = collections.Counter(p.split("/")[-1].rstrip("0123456789") for p, _, _ in compiles)
    names = collections.Counter(n for _, n, _ in compiles)
    print(f"\n{len(compiles)} XLA compilations, {sum(d for *_, d in compiles):.1f} s wall; "
          f"by phase kind: {dict(per_phase)}")
    for n, k in names.most_common():
        print(f"  {k:3d} x {n}")
    sys.exit(code)


if __name__ == "__main__":
    main()
