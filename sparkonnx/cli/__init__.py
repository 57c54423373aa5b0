"""`sparkonnx` command line: a thin shell over the public Python API.

Each subcommand lives in its own module (`convert`, `inspect`, `zoo`, `doctor`) with an
`add_parser(subparsers)` function listed in `SUBCOMMANDS`;
its handler takes the parsed arguments and returns an exit code (`exit_codes`).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from sparkonnx.cli import convert, doctor, inspect, zoo
from sparkonnx.cli.exit_codes import (
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    exit_code_for,
)

# One function per subcommand.
SUBCOMMANDS: list[Callable[[Any], None]] = [
    convert.add_parser,
    inspect.add_parser,
    zoo.add_parser,
    doctor.add_parser,
]


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every registered subcommand."""
    from sparkonnx import __version__

    parser = argparse.ArgumentParser(
        prog="sparkonnx",
        description="Deep-learning models on Apache Spark through ONNX Runtime.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'sparkonnx COMMAND --help' for a command's options and examples.\n\n"
        + EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"sparkonnx {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log details; tracebacks on errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def _configure_logging(verbose: bool) -> None:
    """WARNING and up; `-v`: INFO, and sparkonnx at DEBUG, which also lets TensorFlow, absl and
    tf2onnx print (sparkonnx.converters.quiet keeps them quiet otherwise)."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if verbose:
        logging.getLogger("sparkonnx").setLevel(logging.DEBUG)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see EXIT_CODES_HELP)."""
    parser = build_parser()
    # accept -v/--verbose after the subcommand too
    raw = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") for a in raw)
    args = parser.parse_args([a for a in raw if a not in ("-v", "--verbose")])
    args.verbose = verbose
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _configure_logging(verbose)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        print(f"sparkonnx {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # no terminal colour codes
        message = " ".join(plain.split()) or type(exc).__name__
        print(f"sparkonnx {args.command}: error: {message}", file=sys.stderr)
        return exit_code_for(exc)
