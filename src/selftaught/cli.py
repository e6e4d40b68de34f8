"""`selftaught list | run | report`.

    selftaught list
    selftaught run RECIPE [--preset P] [--seeds N] [--run-dir D] [--resume [RUN_DIR]]
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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="selftaught", description=__doc__.split("\n\n")[0],
                                allow_abbrev=False)
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="recipes and what they reproduce")
    r = sub.add_parser("run", help="run a recipe into a run directory", add_help=False,
                       allow_abbrev=False)
    r.add_argument("recipe")
    r.add_argument("--preset", default="default", help="smoke | default | paper")
    r.add_argument("--seeds", type=int, default=None, help="number of seeds (default: preset's)")
    r.add_argument("--run-dir", type=Path, default=None)
    r.add_argument("--resume", nargs="?", const=True, default=False, metavar="RUN_DIR",
                   help="continue a killed run from its last finished phase")
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

    recipe = recipes.get(args.recipe)
    if args.resume:
        if extra:
            raise ConfigError(
                f"--resume uses the stored config; drop the overrides {' '.join(extra)}"
            )
        run_dir = args.run_dir if args.resume is True else Path(args.resume)
        run, summary = runner.execute(recipe, None, preset="", seeds=0, run_dir=run_dir,
                                      resume=True)
    else:
        base = recipe.preset(args.preset)
        prog = f"selftaught run {recipe.name} [--preset P] [--seeds N] [--run-dir D] [--resume]"
        if args.help:
            extra = [*extra, "--help"]
        config = tyro.cli(recipe.config_cls, default=base, args=extra, prog=prog,
                          description=recipe.description)
        seeds = args.seeds if args.seeds is not None else getattr(config, "num_seeds", 1)
        run, summary = runner.execute(recipe, config, preset=args.preset, seeds=seeds,
                                      run_dir=args.run_dir)
    _print_summary(run.path, summary)
    return 0


def _print_summary(path: Path, summary: dict) -> None:
    held = sum(c["holds"] for c in summary["claims"])
    parts = [f"{c['name']}={c['value']:.3g} [{c['ci_low']:.3g}, {c['ci_high']:.3g}]"
             for c in summary["claims"]]
    print(f"done in {summary['wall_seconds']:.0f}s: {held}/{len(summary['claims'])} claims hold "
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
        print("selftaught: interrupted; continue with --resume RUN_DIR", file=sys.stderr)
        return 130


def entry() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.exit(main())


if __name__ == "__main__":
    entry()
