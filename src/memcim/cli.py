"""Command-line interface: argument parsing only; the work lives in the library."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from memcim import __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memcim",
        description="Simulate memristive compute-in-memory hardware (RRAM, PCM, FeRAM, "
        "STT-MRAM crossbars) with PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"memcim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="program a small network onto simulated arrays and show what the non-idealities do",
        description="Mean relative MVM error of a 784x256 matrix on PCM and filamentary RRAM "
        "over time, then a digits MLP on simulated arrays with each non-ideality in turn.",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for results.json and a figure of MVM error vs time",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.add_argument("--quick", action="store_true", help="skip the 1-year point")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        from memcim import demo

        demo.run(args.out, seed=args.seed, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
