"""`selftaught list | run | report`.

    selftaught list
    selftaught run RECIPE [--preset P] [--seeds N] [--run-dir D] [--resume [RUN_DIR]]
                   [--matmul-precision default|high|highest] [--nondeterministic-gpu]
                   [--FIELD VALUE ...]
    selftaught report RUN_DIR

Config fields become flags through tyro (`selftaught run rest-em --help` lists them).
A UserError prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from selftaught.core.errors import UserError

RUN_OPTIONS = """run options (before or after the recipe's own flags):
  --preset P            smoke (CI-sized, seconds) | default (the CPU demo, minutes) |
                        paper (sized for one GPU); the recipe's flags change fields of it
  --seeds N             number of seeds (default: the preset's num_seeds)
  --run-dir D           where the run is written (default: runs/RECIPE-PRESET-TIME); a
                        directory holding a run that failed before its first phase finished
                        is reused
  --resume [RUN_DIR]    continue a killed run from its last finished phase (its stored
                        config wins; recipe flags are refused); with RUN_DIR the recipe
                        name may be left out: `selftaught run --resume RUN_DIR`
  --matmul-precision P  float32 matmul precision: default (XLA's fast choice, used when
                        the flag is absent: TF32 on recent NVIDIA GPUs) | high | highest
                        (full float32); the CPU computes full float32 whatever P is
  --nondeterministic-gpu
                        allow XLA's faster non-deterministic GPU reductions (then a resumed
                        run no longer equals an uninterrupted one on a GPU)"""

_LAST_RUN: dict = {}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="selftaught", description=__doc__.split("\n\n")[0],
                                allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="recipes and what they reproduce")
    r = sub.add_parser("run", help="run a recipe into a run directory", add_help=False,
                       allow_abbrev=False)
    r.add_argument("recipe", nargs="?")
    r.add_argument("--preset", default="default", help="smoke | default | paper")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: preset's)")
    r.add_argument("--run-dir", type=Path, default=None)
    r.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue a killed run from its last finished phase")
    r.add_argument("--matmul-precision", default=None, choices=("default", "high",
                                                                      "highest"))
    r.add_argument("--nondeterministic-gpu", action="store_true")
    r.add_argument("-h", "--help", action="store_true")
    rep = sub.add_parser("report", help="rebuild plots, report.md, summary.json of a run")
    rep.add_argument("run_dir", type=Path)
    return p


def _cmd_list() -> int:
    from rich.console import Console
    from rich.table import Table

    from selftaught import recipes

    table = Table("recipe", "what it runs")
    for rec in recipes.all_recipes():
        table.add_row(rec.name, rec.description)
    Console().print(table)
    return 0


def _cmd_run(args, extra: list[str]) -> int:
    import tyro

    from selftaught import recipes
    from selftaught.core import runner
    from selftaught.core.errors import ConfigError

    if args.recipe is None and args.resume not in (False, True) and not args.help:
        args.recipe = _stored_recipe(Path(args.resume))
    if args.recipe is None:
        if not args.help:
            raise UserError("name a recipe: `selftaught run RECIPE` (see `selftaught list`)")
        names = ", ".join(r.name for r in recipes.all_recipes())
        print("usage: selftaught run RECIPE [options] [--FIELD VALUE ...]\n\n"
              f"Runs RECIPE (one of: {names}) into a run directory.\n"
              "`selftaught run RECIPE --help` lists the recipe's own flags.\n\n" + RUN_OPTIONS)
        return 0
    from selftaught.core import device

    device.configure(args.matmul_precision, deterministic_gpu=not args.nondeterministic_gpu)
    recipe = recipes.get(args.recipe)
    if args.resume:
        if extra:
            raise ConfigError(
                f"--resume uses the stored config; drop the overrides {' '.join(extra)}"
            )
        run_dir = args.run_dir if args.resume is True else Path(args.resume)
        _LAST_RUN.update(recipe=recipe.name, path=run_dir)
        run, summary = runner.execute(recipe, None, preset="", seeds=0, run_dir=run_dir,
                                      resume=True)
    else:
        _refuse_not_flags(recipe, extra)
        base = recipe.preset(args.preset)
        prog = f"selftaught run {recipe.name} [--preset P] [--seeds N] [--run-dir D] [--resume]"
        if args.help:
            extra = [*extra, "--help"]
        presets = ", ".join(recipe.presets)
        config = tyro.cli(recipe.config_cls, default=base, args=extra, prog=prog,
                          description=f"{recipe.description}\n\npresets: {presets} "
                          f"(the flags below show --preset {args.preset}'s values)\n\n"
                          + RUN_OPTIONS + _not_flags_help(recipe))
        seeds = args.seeds if args.seeds is not None else getattr(config, "num_seeds", 1)
        run_dir = args.run_dir or runner.default_run_dir(recipe.name, args.preset)
        _LAST_RUN.update(recipe=recipe.name, path=run_dir)
        run, summary = runner.execute(recipe, config, preset=args.preset, seeds=seeds,
                                      run_dir=run_dir)
    _print_summary(run.path, summary)
    return 0


def _stored_recipe(run_dir: Path) -> str:
    """The recipe of the run stored in `run_dir` (`selftaught run --resume DIR`)."""
    from selftaught.core.errors import RunDirError
    from selftaught.core.rundir import RunDir

    try:
        return RunDir.open(run_dir).read_config()["recipe"]
    except RunDirError:
        raise UserError(f"{run_dir} holds no readable run (config.json); name its recipe: "
                        f"`selftaught run RECIPE --resume {run_dir}`") from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refuse_not_flags(recipe, extra: list[str]) -> None:
    from selftaught.core.errors import ConfigError

    for token in extra:
        name = token.split("=", 1)[0]
        for field, reason in recipe.not_flags.items():
            if name in (_flag(field), "--" + field):
                raise ConfigError(f"{_flag(field)} is not a flag of {recipe.name}: {reason}")


def _not_flags_help(recipe) -> str:
    if not recipe.not_flags:
        return ""
    lines = [f"  {_flag(k)}: {v}" for k, v in recipe.not_flags.items()]
    return "\n\nlisted below but set by the recipe itself (refused as flags):\n" + "\n".join(lines)


def _print_summary(path: Path, summary: dict) -> None:
    held = sum(c["holds"] for c in summary["claims"])
    parts = [f"{c['name']}={c['value']:.3g} "
             + (f"(too few {c['unit']} for a CI: n={c['n']})" if c.get("undetermined") else
                f"[{c['ci_low']:.3g}, {c['ci_high']:.3g}] (n={c['n']} {c['unit']})")
             for c in summary["claims"]]
    undetermined = sum(bool(c.get("undetermined")) for c in summary["claims"])
    untested = sum(bool(c.get("untested")) and not c.get("undetermined")
                   for c in summary["claims"])
    counts = f"{held}/{len(summary['claims'])} claims hold" + (
        f", {undetermined} undetermined" if undetermined else "") + (
        f", {untested} not tested (precondition not met)" if untested else "")
    if summary.get("complete") is False:
        missing = summary["missing_phases"]
        what = (f"missing phases: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
                if missing else "it stopped before its end")
        print(f"INCOMPLETE run ({what}; {len(summary['finished_seeds'])} of "
              f"{summary['seeds']} seeds finished): claims from partial data: {counts} "
              f"({'; '.join(parts)}); finish it with `{summary['resume']}`")
        return
    print(f"done in {summary['wall_seconds']:.0f}s: {counts} "
          f"({'; '.join(parts)}); run directory: {path}")


def _cmd_report(args) -> int:
    from selftaught import recipes
    from selftaught.core import runner
    from selftaught.core.rundir import RunDir

    run = RunDir.open(args.run_dir)
    recipe = recipes.get(run.read_config()["recipe"])
    summary = runner.finalize(recipe, run)
    _print_summary(run.path, summary)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _LAST_RUN.clear()
    args, extra = _parser().parse_known_args(argv)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "run":
            return _cmd_run(args, extra)
        if extra:
            raise UserError(f"unrecognized arguments: {' '.join(extra)}")
        return _cmd_report(args)
    except UserError as exc:
        print(f"selftaught: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        cmd = (f"selftaught run {_LAST_RUN['recipe']} --resume {_LAST_RUN['path']}"
               if _LAST_RUN else "selftaught run RECIPE --resume RUN_DIR")
        print(f"selftaught: interrupted; continue with `{cmd}`", file=sys.stderr)
        return 130


def entry() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())


if __name__ == "__main__":
    entry()
