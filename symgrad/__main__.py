"""The ``symgrad`` command line: ``python -m symgrad demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m symgrad",
        description="symgrad: symbolic derivatives compiled to NumPy.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="train the XOR network and a digits MLP with symgrad.nn, then check a "
        "Hessian-vector product and find the top Hessian eigenvalues by Lanczos",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.epilog = "notebooks/ holds worked examples: XOR, symbolic backprop, digits, Krylov."
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run

        run(quiet=args.quiet)
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
