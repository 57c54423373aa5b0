"""`sparkonnx inspect`: describe an ONNX file (no TensorFlow needed)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sparkonnx.cli.exit_codes import EXIT_CODES_HELP, EXIT_OK, EXIT_SOURCE


def add_parser(subparsers: Any) -> None:
    """Register `inspect` on the top-level parser."""
    p = subparsers.add_parser(
        "inspect",
        help="show an ONNX model's inputs, outputs, opset, metadata and usable providers",
        description="Describe an ONNX file: signature, opset, size, sparkonnx metadata and "
        "parity record, and which ONNX Runtime providers can run it. Needs no TensorFlow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  sparkonnx inspect model.onnx
  sparkonnx inspect model.onnx --json | jq .inputs

Exits 3 when the file is not a valid ONNX model (or its external data lies outside its
folder), and when no installed ONNX Runtime provider can run it (the reason is printed).

"""
        + EXIT_CODES_HELP,
    )
    p.add_argument("model", help="ONNX file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-providers", action="store_true", help="skip trying a session per provider")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the report of `args.model`."""
    from sparkonnx.converters.inspect import inspect_model

    report = inspect_model(args.model, check_providers=not args.no_providers)
    print(report.to_json() if args.json else report.render())
    if report.providers and not any(report.providers.values()):
        reasons = "; ".join(f"{p}: {why}" for p, why in report.provider_errors.items())
        print(
            f"sparkonnx inspect: no installed provider can run {args.model}: {reasons}",
            file=sys.stderr,
        )
        return EXIT_SOURCE
    return EXIT_OK
