"""Command-line interface: argument parsing only; the work lives in the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memcim import ConfigError, __version__


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of ints"
        ) from None


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memcim",
        description="Simulate memristive compute-in-memory hardware (RRAM, PCM, FeRAM, "
        "STT-MRAM crossbars) with PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"memcim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    sub.add_parser("list", help="list the registered experiments")

    demo = sub.add_parser(
        "demo",
        help="a Bayesian network sampled by simulated memristors, in under a minute",
        description="Train a Bayesian MLP on scikit-learn digits, draw its weight samples with "
        "simulated RRAM (every sampling scheme) and compare accuracy, calibration, OOD "
        "detection and noisy-input rejection with the deterministic network on the same "
        "devices. Writes results.json, figures and report.md/.html. --foundation runs the "
        "device/crossbar demo instead (MVM error over time, a digits MLP on arrays).",
    )
    demo.add_argument("--out", type=Path, default=None,
                      help="output folder (default ./memcim-demo; --foundation: none unless "
                           "given)")  # fmt: skip
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument(
        "--foundation",
        action="store_true",
        help="the device/crossbar demo (MVM error vs time, MLP on arrays)",
    )
    demo.add_argument("--quick", action="store_true",
                      help="with --foundation: skip the 1-year point")  # fmt: skip

    run = sub.add_parser(
        "run", help="run one experiment",
        description="Run a registered experiment; writes DIR/results.json.",
    )  # fmt: skip
    run.add_argument("name", help="experiment name (see `memcim list`)")
    run.add_argument("--out", type=Path, required=True, help="output folder")
    run.add_argument("--set", dest="assignments", action="append", default=[],
                     metavar="KEY=VALUE", help="override a config field (repeatable)")  # fmt: skip
    run.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    sweep = sub.add_parser(
        "sweep", help="run an experiment over a grid of values and seeds (resumable)",
        description="Each finished point appends a line to DIR/sweep.jsonl; re-running the "
        "same command skips recorded points (failed ones too, unless --retry-failed). Prints "
        "what ran, what failed and what was skipped. Exit status: 0 when every point of the "
        "grid is ok, 1 when any is failed, 2 for bad arguments or when another sweep is "
        "running on DIR (one sweep per folder at a time; the second is refused).",
    )  # fmt: skip
    sweep.add_argument("name", help="experiment name (see `memcim list`)")
    sweep.add_argument("--out", type=Path, required=True, help="sweep folder")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="values of one config field (repeatable; ';' separates tuple "
                       "elements inside a value)")  # fmt: skip
    sweep.add_argument("--set", dest="assignments", action="append", default=[],
                       metavar="KEY=VALUE", help="a fixed override for every point")  # fmt: skip
    sweep.add_argument("--seeds", type=_int_list, default=[0], help="e.g. 0,1,2 (default 0)")
    sweep.add_argument("--jobs", type=int, default=1, help="points run at once (default 1)")
    sweep.add_argument("--backend", choices=["local", "dask"], default="local",
                       help="joblib on this machine (default) or Dask")  # fmt: skip
    sweep.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="an existing Dask scheduler (default: a LocalCluster)")  # fmt: skip
    sweep.add_argument("--retry-failed", action="store_true",
                       help="run again the points whose last record is a failure (appends "
                       "new lines; the last line of a point is its result)")  # fmt: skip

    report = sub.add_parser("report", help="Markdown + HTML summary of a run or sweep folder")
    report.add_argument("dir", type=Path, help="a run or sweep output folder")
    return parser


def _assignments(items: list[str]) -> dict[str, str]:
    from memcim.experiments.overrides import split_assignment

    pairs = [split_assignment(item) for item in items]
    return dict(pairs)


def _sweep(args: argparse.Namespace) -> int:
    from memcim.experiments.sweep import (
        SWEEP_FILE,
        SweepBusyError,
        parse_grid,
        run_sweep_summary,
    )

    fixed = _assignments(args.assignments)
    grid = {k: [v] for k, v in fixed.items()} | parse_grid(args.grid)
    try:
        summary = run_sweep_summary(args.name, args.out, grid, seeds=args.seeds, jobs=args.jobs,
                                    backend=args.backend, scheduler=args.scheduler,
                                    retry_failed=args.retry_failed)  # fmt: skip
    except SweepBusyError as error:
        print(f"memcim sweep: error: {error}", file=sys.stderr)
        return 2
    print(summary.text(args.out / SWEEP_FILE))
    return 0 if summary.ok else 1


def _dispatch(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    if args.command == "demo":
        if args.foundation:
            from memcim import foundation_demo

            foundation_demo.run(args.out, seed=args.seed, quick=args.quick)
        else:
            from memcim import demo

            demo.run(args.out, seed=args.seed)
    elif args.command == "list":
        from memcim.experiments.registry import get, names

        for name in names():
            print(f"{name:<20} {get(name).description}")
    elif args.command == "run":
        from memcim.experiments.runner import run_experiment

        record = run_experiment(args.name, args.out, assignments=_assignments(args.assignments),
                                seed=args.seed)  # fmt: skip
        for key, value in record["metrics"].items():
            print(f"{key:<40} {value:.6g}")
        print(f"results written to {args.out / 'results.json'} ({record['wall_s']:.1f} s)")
    elif args.command == "sweep":
        return _sweep(args)
    elif args.command == "report":
        from memcim.experiments.report import write_report

        md, page = write_report(args.dir)
        print(f"report written to {md} and {page}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return _dispatch(args)
    except ConfigError as error:
        print(f"memcim {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
