"""`sparkonnx doctor`: what the driver and each executor can run, in one table."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sparkonnx.cli.exit_codes import EXIT_CODES_HELP, EXIT_DEVICE, EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register `doctor` on the top-level parser."""
    p = subparsers.add_parser(
        "doctor",
        help="check what every executor can run: versions, providers, GPUs, CPU, TensorFlow",
        description="Run a tiny job on the executors of a Spark session (a local[*] one, "
        "--master or --remote) and print one table: per executor, the Python and package "
        "versions, the ONNX Runtime providers a session was really created on, GPUs visible, "
        "CPU instruction sets, whether TensorFlow is importable (needed only for training) and "
        "the model cache's free space. Versions that differ from the driver's are flagged.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  sparkonnx doctor
  sparkonnx doctor --master spark://10.0.0.5:7077 --device cuda
  sparkonnx doctor --remote sc://127.0.0.1:15002 --json | jq '.executors[].provider_checks'

Exits 7 when --device names a device no executor can use (the reasons are printed).

"""
        + EXIT_CODES_HELP,
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--master", help="Spark master URL (default local[*])")
    where.add_argument("--remote", help="Spark Connect address, e.g. sc://host:15002")
    p.add_argument(
        "--device", choices=["cpu", "cuda"], help="exit 7 unless this device works somewhere"
    )
    p.add_argument("--tasks", type=int, help="probe tasks (default: default parallelism)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Probe, print the report, and exit by the requested device's verdict."""
    from sparkonnx.diagnostics import doctor

    report = doctor(master=args.master, remote=args.remote, device=args.device, tasks=args.tasks)
    print(report.to_json() if args.json else report.render())
    if report.device_ok is False:
        print(
            f"sparkonnx doctor: device {args.device} cannot be used on any of the "
            f"{len(report.executors)} executors (see the providers above)",
            file=sys.stderr,
        )
        return EXIT_DEVICE
    return EXIT_OK
