"""`sparkonnx convert`: a Keras / TensorFlow model (or an ONNX file to quantize) to a checked
ONNX model, optionally int8 / fp16 behind the accuracy gate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sparkonnx.cli.arguments import parse_tensor_args, read_json_arg, read_labels
from sparkonnx.cli.exit_codes import EXIT_CODES_HELP, EXIT_OK


def add_parser(subparsers: Any) -> None:
    """Register `convert` and its options on the top-level parser."""
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
    p.set_defaults(handler=run)


def _add_quantize_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "precision",
        "int8 / fp16 after conversion (or of an .onnx source), refused with the measured "
        "figures and exit code 5 when it falls below the accuracy gate's thresholds vs fp32",
    )
    from sparkonnx.converters.precisions import accepted_spellings

    g.add_argument(
        "--quantize",
        type=str.lower,
        choices=accepted_spellings(lower_only=True),
        help="int8: static (calibrated) for convolutional graphs, dynamic for MatMul graphs, "
        "used only where faster; int8-static (alias static) / int8-dynamic (alias dynamic: "
        "weights only, MLPs, transformers) force one; fp16 (alias float16): for "
        "GPUs (no speed-up on CPU)",
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
        "--min-gate-rows",
        type=int,
        help="fewest held-out rows the gate judges on (16); lower it only for tiny sets",
    )
    g.add_argument(
        "--gate-metric",
        choices=["auto", "top1", "cosine", "max_rel"],
        default="auto",
        help="how outputs are judged (auto: top1 for classifiers, cosine for features)",
    )
    g.add_argument("--no-per-channel", action="store_true", help="per-tensor int8 weights")
    g.add_argument(
        "--min-speedup",
        type=float,
        help="int8 is refused unless this many times as fast as fp32 here (1.2; 0: any speed)",
    )
    g.add_argument(
        "--no-search",
        action="store_true",
        help="int8: try only the default configuration (MinMax, per-channel, QDQ) instead of "
        "searching calibration methods / excluded layers / formats for the fastest that passes",
    )
    g.add_argument(
        "--search-seconds",
        type=float,
        default=None,
        help="time budget of the int8 search (120)",
    )


def _quantize(args: argparse.Namespace, model: Any) -> Any:
    from sparkonnx.converters.quantize import quantize

    tolerance = {
        key: value
        for key, value in (
            ("top1", args.min_top1),
            ("cosine", args.min_cosine),
            ("max_rel", args.max_rel_error),
            ("min_rows", args.min_gate_rows),
            ("min_speedup", args.min_speedup),
        )
        if value is not None
    }
    budget = {} if args.search_seconds is None else {"search_seconds": args.search_seconds}
    return quantize(
        model,
        args.calibration,
        mode=args.quantize,
        validation=args.validation,
        per_channel=not args.no_per_channel,
        tolerance=tolerance or None,
        metric=args.gate_metric,
        progress=False if args.no_progress else None,
        search=not args.no_search,
        **budget,
    )


def _convert_overrides(args: argparse.Namespace) -> dict[str, Any]:
    names, shapes = parse_tensor_args(args.inputs)
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
        "labels": read_labels(args.labels),
        "preprocessing": read_json_arg(args.preprocessing, "--preprocessing"),
        "large_model": True if args.large_model else None,
    }
    overrides.update({k: v for k, v in optional.items() if v is not None})
    return overrides


def run(args: argparse.Namespace) -> int:
    """Convert (and quantize) `args.source`, write `args.output`, print what was done."""
    from sparkonnx.converters.api import convert

    overrides = _convert_overrides(args)
    source = Path(args.source)
    if not source.exists():
        raise FileNotFoundError(f"model source not found: {source}")
    if args.quantize is None and (args.calibration or args.validation):
        raise ValueError("--calibration / --validation need --quantize int8|dynamic|fp16")
    if args.quantize is not None and source.suffix == ".onnx":
        quantized = _quantize(args, source)
        path = quantized.save(args.output)
        payload = {"output": str(path), "quantization": quantized.gate.to_dict()}
        payload["search"] = quantized.search.to_dict() if quantized.search else None
        print(json.dumps(payload, indent=2) if args.json else f"wrote {path}")
        if not args.json:
            _print_quantized(quantized)
        return EXIT_OK
    result = convert(source, **overrides)
    quantized = _quantize(args, result) if args.quantize is not None else None
    path = (quantized or result).save(args.output)
    if args.json:
        print(json.dumps(_json_report(result, quantized, path), indent=2))
    else:
        _print_report(result, quantized, path)
    return EXIT_OK


def _size(path: Path) -> int:
    """Bytes of the written model, with its external data files."""
    return sum(f.stat().st_size for f in path.parent.glob(f"{path.name}*"))


def _json_report(result: Any, quantized: Any, path: Path) -> dict[str, Any]:
    return {
        "output": str(path),
        "size_bytes": _size(path),
        "opset": result.options.opset,
        "inputs": [s.describe() for s in result.signature.inputs],
        "outputs": [s.describe() for s in result.signature.outputs],
        "parity": result.parity.to_dict() if result.parity else None,
        "fp16_parity": result.fp16_parity.to_dict() if result.fp16_parity else None,
        "timings": result.timings,
        "peak_rss_bytes": result.peak_rss_bytes,
        "quantization": quantized.gate.to_dict() if quantized else None,
        "search": quantized.search.to_dict() if quantized and quantized.search else None,
    }


def _print_quantized(quantized: Any) -> None:
    print(f"  {quantized.gate.summary()}")
    if quantized.search is not None:
        print(f"  int8 configurations ({quantized.search.mode_reason}):")
        print(quantized.search.table())
        if quantized.search.timing is not None:
            print(f"  timed on {quantized.search.cpu_summary()}")


def _print_report(result: Any, quantized: Any, path: Path) -> None:
    print(f"wrote {path} ({_size(path) / 1e6:.2f} MB, opset {result.options.opset})")
    print(f"  {result.signature.describe()}")
    for report in (result.parity, result.fp16_parity):
        if report is not None:
            print(f"  {report.summary()}")
    if result.parity is None:
        print("  parity not checked (--no-check)")
    if quantized is not None:
        _print_quantized(quantized)
    seconds = sum(result.timings.values())
    print(f"  {seconds:.1f} s, peak RSS {result.peak_rss_bytes / 2**20:.0f} MB")
