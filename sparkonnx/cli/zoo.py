"""`sparkonnx zoo list | build | export | import`: the model zoo from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from sparkonnx.model_zoo import cache
from sparkonnx.model_zoo.registry import MODELS

EXAMPLES = """examples:
  sparkonnx zoo list
  sparkonnx zoo build ResNet50                     # ImageNet weights from Keras' cache
  sparkonnx zoo build MobileNetV2 --weights none   # random weights (offline machines, tests)
  sparkonnx zoo build ResNet50 --weights ~/resnet50_weights.h5
  sparkonnx zoo export ResNet50 resnet50.onnx      # on a machine with TensorFlow
  sparkonnx zoo import resnet50.onnx               # on a driver without it
"""


def add_parser(subparsers: Any) -> None:
    """Register `zoo` and its four actions on the top-level parser."""
    zoo = subparsers.add_parser(
        "zoo",
        help="list, build, export and import the named image models",
        description="Named image models (keras.applications) converted to ONNX with their "
        "preprocessing fused in, cached on disk under $SPARKONNX_CACHE/zoo "
        f"(now {cache.cache_dir()}). Builds need TensorFlow; an exported build imports "
        "on a machine without it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    actions = zoo.add_subparsers(dest="zoo_action", metavar="ACTION", required=True)
    actions.add_parser("list", help="models, input sizes, feature widths, cached builds")
    for action, text in (("build", "build and cache a model"), ("export", "write a model file")):
        p = actions.add_parser(
            action, help=text, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        p.add_argument("name", help=f"one of: {', '.join(MODELS)}")
        if action == "export":
            p.add_argument("file", nargs="?", help="the .onnx file to write")
            p.add_argument("-o", "--output", help="the .onnx file to write (same as FILE)")
        p.add_argument(
            "--weights",
            default="imagenet",
            help="'imagenet' (default), 'none' (random, seeded) or a Keras weights file",
        )
        p.add_argument("--seed", type=int, default=0, help="seed for --weights none")
    imp = actions.add_parser(
        "import",
        help="put an exported model file into this machine's zoo cache (no TensorFlow needed)",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("file", help="a file written by 'sparkonnx zoo export'")
    zoo.set_defaults(handler=run_zoo)


def run_zoo(args: argparse.Namespace) -> int:
    """Run one zoo action; returns the exit code."""
    if args.zoo_action == "list":
        print(render_list())
        return 0
    if args.zoo_action == "import":
        from sparkonnx.model_zoo.transfer import import_model

        path = import_model(args.file)
        print(f"imported {args.file} as {path}")
        return 0
    weights = None if args.weights.lower() in ("none", "random") else args.weights
    if args.zoo_action == "build":
        from sparkonnx.model_zoo.build import build_model

        model = build_model(args.name, weights, seed=args.seed)  # a bar on a terminal only
        print(f"{args.name}: {model.source} ({model.size_bytes / 2**20:.1f} MiB)")
        return 0
    from sparkonnx.model_zoo.transfer import export_model

    if (args.file is None) == (args.output is None):
        raise ValueError("zoo export: give the file to write once, as FILE or -o FILE")
    out = export_model(args.name, args.file or args.output, weights, seed=args.seed)
    print(f"{args.name}: wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")
    return 0


def render_list() -> str:
    """One line per model: name, input size, feature width, preprocessing, cached builds."""
    cached: dict[str, list[str]] = {}
    for path in cache.cached_models():
        build = cache.parse_name(path)
        if build is not None:
            cached.setdefault(build.name, []).append(build.weights)
    header = f"{'model':18s} {'input':>9s} {'features':>8s}  {'preprocessing':13s} cached builds"
    lines = [header]
    for spec in MODELS.values():
        size = f"{spec.input_size[0]}x{spec.input_size[1]}"
        builds = ", ".join(sorted(cached.get(spec.name, []))) or "-"
        lines.append(
            f"{spec.name:18s} {size:>9s} {spec.feature_width:8d}  {spec.preprocessing:13s} {builds}"
        )
    return "\n".join(lines)
