"""`sparkonnx` command line: a thin shell over the public Python API.

Each subcommand registers itself from one `_add_<name>_parser(subparsers)` function listed in
`SUBCOMMANDS`; its handler takes the parsed arguments and returns an exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected failure (a bug: please report it with --verbose output)
EXIT_USAGE = 2  # bad arguments or option values
EXIT_SOURCE = 3  # the model source is missing or not a form sparkonnx recognizes
EXIT_CONVERSION = 4  # conversion failed (unsupported ops, unsafe model, bad signature, ...)
EXIT_PARITY = 5  # converted, but ONNX Runtime's numbers differ from the source's
EXIT_DEPENDENCY = 6  # an optional extra is missing (pip install 'sparkonnx[convert]')
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0  success                       4  conversion failed (ops, unsafe model, signature)
  1  unexpected error (a bug)      5  parity check failed (numbers differ beyond tolerance)
  2  bad arguments                 6  missing extra: pip install 'sparkonnx[convert]'
  3  source missing/unrecognized   130 interrupted"""

_SHAPED = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<shape>[^\]]*)\])?$")


def exit_code_for(exc: BaseException) -> int:
    """The exit code that names the kind of failure."""
    from sparkonnx.converters.errors import ConversionError, ParityError, UnsupportedSourceError
    from sparkonnx.converters.gate import GateError
    from sparkonnx.engine.model import InvalidModelError

    if isinstance(exc, ParityError | GateError):
        return EXIT_PARITY
    if isinstance(exc, FileNotFoundError | UnsupportedSourceError | InvalidModelError):
        return EXIT_SOURCE
    if isinstance(exc, ConversionError):
        return EXIT_CONVERSION
    if isinstance(exc, ImportError):
        return EXIT_DEPENDENCY
    if isinstance(exc, ValueError | TypeError):
        return EXIT_USAGE
    return EXIT_ERROR


def _parse_tensor_args(values: Sequence[str] | None) -> tuple[list[str] | None, dict[str, Any]]:
    """`NAME` or `NAME[d0,d1,...]` (-1 or ? for a dynamic dim) -> names and shape overrides."""
    if not values:
        return None, {}
    names: list[str] = []
    shapes: dict[str, tuple[int | None, ...]] = {}
    for value in values:
        match = _SHAPED.match(value.strip())
        if match is None:
            raise ValueError(f"--inputs {value!r}: expected NAME or NAME[d0,d1,...], e.g. x[-1,4]")
        name = match["name"]
        names.append(name)
        if match["shape"] is not None:
            dims: list[int | None] = []
            for dim in filter(None, (d.strip() for d in match["shape"].split(","))):
                if dim in ("-1", "?", "None"):
                    dims.append(None)
                elif dim.isdigit() and int(dim) > 0:
                    dims.append(int(dim))
                else:
                    raise ValueError(
                        f"--inputs {value!r}: dim {dim!r} must be a positive int or -1 / ?"
                    )
            shapes[name] = tuple(dims)
    return names, shapes


def _read_labels(path: str | None) -> list[str] | None:
    if path is None:
        return None
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def _read_json_arg(value: str | None, flag: str) -> Any:
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{flag}: not valid JSON ({exc}); give a JSON object or @file.json"
        ) from exc


# ---------------------------------------------------------------- convert


def _add_convert_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a Keras / TensorFlow model to a checked ONNX model",
        description=(
            "Convert a Keras model (.keras, .h5), a SavedModel directory, a frozen GraphDef "
            "(.pb/.pbtxt) or a TF checkpoint (.meta or prefix) to ONNX, then check that ONNX "
            "Runtime gives the same numbers as the source on a sample input."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  sparkonnx convert model.keras -o model.onnx
  sparkonnx convert exported_savedmodel/ -o model.onnx --signature serving_default
  sparkonnx convert frozen.pb -o model.onnx --inputs 'images:0[-1,224,224,3]' --outputs probs:0
  sparkonnx convert model.h5 -o model.onnx --opset 17 --fp16 --tolerance 1e-3
  sparkonnx convert lambda_model.keras -o m.onnx --allow-unsafe   # trust the file's code
  sparkonnx convert model.keras -o m.int8.onnx --quantize int8 --calibration images/
  sparkonnx convert model.onnx -o m.int8.onnx --quantize int8 --calibration x.npy --min-top1 0.98

"""
        + EXIT_CODES_HELP,
    )
    p.add_argument("source", help="model file or directory")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write (e.g. model.onnx)")
    p.add_argument("--signature", default="serving_default", help="SavedModel signature")
    p.add_argument(
        "--inputs",
        nargs="+",
        metavar="NAME[SHAPE]",
        help="GraphDef/checkpoint: input tensors; other sources: new input names, in order. "
        "An optional [d0,d1,...] overrides the shape (-1 or ? = dynamic)",
    )
    p.add_argument(
        "--outputs",
        nargs="+",
        metavar="NAME",
        help="GraphDef/checkpoint: output tensors (required); other sources: new output names",
    )
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default 15)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute, fp32 I/O")
    p.add_argument("--tolerance", type=float, default=None, help="fp32 parity tolerance (1e-3)")
    p.add_argument("--fp16-tolerance", type=float, default=None, help="fp16 tolerance (1e-2)")
    p.add_argument("--no-check", action="store_true", help="skip the numeric parity check")
    p.add_argument(
        "--allow-unsafe", action="store_true", help="load Keras Lambda layers (runs their code)"
    )
    p.add_argument("--large-model", action="store_true", help="force external weight storage")
    p.add_argument("--fixed-batch", action="store_true", help="keep the source's batch dim")
    p.add_argument("--labels", metavar="FILE", help="class labels, one per line, into metadata")
    p.add_argument(
        "--preprocessing", metavar="JSON", help="preprocessing spec (JSON or @file) into metadata"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_quantize_arguments(p)
    p.set_defaults(handler=_run_convert)


def _add_quantize_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "precision",
        "int8 / fp16 after conversion (or of an .onnx source), refused with the measured "
        "figures and exit code 5 when it falls below the accuracy gate's thresholds vs fp32",
    )
    g.add_argument(
        "--quantize",
        choices=["int8", "int8-dynamic", "dynamic", "fp16"],
        help="int8: static QDQ, calibrated (fastest on CPUs); dynamic: int8 weights only "
        "(MLPs, transformers); fp16: for GPUs (no speed-up on CPU)",
    )
    g.add_argument(
        "--calibration",
        metavar="PATH",
        help="sample inputs: a folder of images or a .npy / .npz / .parquet of input tensors; "
        "a quarter of the rows are held out for the gate",
    )
    g.add_argument("--validation", metavar="PATH", help="separate gate inputs (same formats)")
    g.add_argument("--min-top1", type=float, help="minimum top-1 agreement (0.99)")
    g.add_argument("--min-cosine", type=float, help="minimum mean cosine similarity (0.99)")
    g.add_argument("--max-rel-error", type=float, help="max error / output range (0.05)")
    g.add_argument(
        "--gate-metric",
        choices=["auto", "top1", "cosine", "max_rel"],
        default="auto",
        help="how outputs are judged (auto: top1 for classifiers, cosine for features)",
    )
    g.add_argument("--no-per-channel", action="store_true", help="per-tensor int8 weights")


def _quantize(args: argparse.Namespace, model: Any) -> Any:
    from sparkonnx.converters.quantize import quantize

    tolerance = {
        key: value
        for key, value in (
            ("top1", args.min_top1),
            ("cosine", args.min_cosine),
            ("max_rel", args.max_rel_error),
        )
        if value is not None
    }
    return quantize(
        model,
        args.calibration,
        mode=args.quantize,
        validation=args.validation,
        per_channel=not args.no_per_channel,
        tolerance=tolerance or None,
        metric=args.gate_metric,
        progress=False if args.no_progress else None,
    )


def _convert_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names, shapes = _parse_tensor_args(args.inputs)
    overrides: dict[str, Any] = {
        "signature": args.signature,
        "fp16": args.fp16,
        "check": not args.no_check,
        "allow_unsafe": args.allow_unsafe,
        "dynamic_batch": not args.fixed_batch,
        "progress": False if args.no_progress else None,
    }
    optional = {
        "opset": args.opset,
        "tolerance": args.tolerance,
        "fp16_tolerance": args.fp16_tolerance,
        "input_names": names,
        "input_shapes": shapes or None,
        "output_names": args.outputs,
        "labels": _read_labels(args.labels),
        "preprocessing": _read_json_arg(args.preprocessing, "--preprocessing"),
        "large_model": True if args.large_model else None,
    }
    overrides.update({k: v for k, v in optional.items() if v is not None})
    return overrides


def _run_convert(args: argparse.Namespace) -> int:
    from sparkonnx.converters.api import convert

    overrides = _convert_overrides(args)
    source = Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"model source not found: {source}")
    if args.quantize is None and (args.calibration or args.validation):
        raise ValueError("--calibration / --validation need --quantize int8|dynamic|fp16")
    if not args.verbose and source.suffix != ".onnx":
        from sparkonnx.converters import _deps
        from sparkonnx.converters.quiet import silenced

        with silenced(stdout=False):  # TensorFlow's native start-up logs
            _deps.tf2onnx()
    if args.quantize is not None and source.suffix == ".onnx":
        quantized = _quantize(args, source)
        path = quantized.save(args.output)
        payload = {"output": str(path), "quantization": quantized.gate.to_dict()}
        print(json.dumps(payload, indent=2) if args.json else f"wrote {path}")
        if not args.json:
            print(f"  {quantized.gate.summary()}")
        return EXIT_OK
    result = convert(source, **overrides)
    quantized = _quantize(args, result) if args.quantize is not None else None
    path = (quantized or result).save(args.output)
    size = sum(f.stat().st_size for f in path.parent.glob(f"{path.name}*"))
    seconds = sum(result.timings.values())
    if args.json:
        payload = {
            "output": str(path),
            "size_bytes": size,
            "opset": result.options.opset,
            "inputs": [s.describe() for s in result.signature.inputs],
            "outputs": [s.describe() for s in result.signature.outputs],
            "parity": result.parity.to_dict() if result.parity else None,
            "fp16_parity": result.fp16_parity.to_dict() if result.fp16_parity else None,
            "timings": result.timings,
            "peak_rss_bytes": result.peak_rss_bytes,
            "quantization": quantized.gate.to_dict() if quantized else None,
        }
        print(json.dumps(payload, indent=2))
        return EXIT_OK
    print(f"wrote {path} ({size / 1e6:.2f} MB, opset {result.options.opset})")
    print(f"  {result.signature.describe()}")
    for report in (result.parity, result.fp16_parity):
        if report is not None:
            print(f"  {report.summary()}")
    if result.parity is None:
        print("  parity not checked (--no-check)")
    if quantized is not None:
        print(f"  {quantized.gate.summary()}")
    print(f"  {seconds:.1f} s, peak RSS {result.peak_rss_bytes / 2**20:.0f} MB")
    return EXIT_OK


# ---------------------------------------------------------------- inspect


def _add_inspect_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show an ONNX model's inputs, outputs, opset, metadata and usable providers",
        description="Describe an ONNX file: signature, opset, size, sparkonnx metadata and "
        "parity record, and which ONNX Runtime providers can run it. Needs no TensorFlow.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""examples:
  sparkonnx inspect model.onnx
  sparkonnx inspect model.onnx --json | jq .inputs

"""
        + EXIT_CODES_HELP,
    )
    p.add_argument("model", help="ONNX file")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-providers", action="store_true", help="skip trying a session per provider")
    p.set_defaults(handler=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from sparkonnx.converters.inspect import inspect_model

    report = inspect_model(args.model, check_providers=not args.no_providers)
    print(report.to_json() if args.json else report.render())
    return EXIT_OK


# ---------------------------------------------------------------- dispatcher


# One function per subcommand; `zoo` and `doctor` add theirs here.
def _add_zoo_parser(subparsers: Any) -> None:
    from sparkonnx.model_zoo.cli import add_zoo_parser

    add_zoo_parser(subparsers)


SUBCOMMANDS: list[Callable[[Any], None]] = [
    _add_convert_parser,
    _add_inspect_parser,
    _add_zoo_parser,
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
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        # tf2onnx logs what it cannot convert; we report that ourselves, in one line
        logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
