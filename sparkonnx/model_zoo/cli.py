"""`sparkonnx zoo list | build | export`: the model zoo from the command line."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from sparkonnx.model_zoo import cache
from sparkonnx.model_zoo.registry import MODELS

EXAMPLES = """examples:
  sparkonnx zoo list
  sparkonnx zoo build ResNet50                     # ImageNet weights from Keras' cache
  sparkonnx zoo build MobileNetV2 --weights none   # random weights (offline machines, tests)
  sparkonnx zoo build ResNet50 --weights ~/resnet50_weights.h5
  sparkonnx zoo export ResNet50 -o resnet50.onnx
"""


def add_zoo_parser(subparsers: Any) -> None:
    """Register `zoo` and its three actions on the top-level parser."""
    zoo = subparsers.add_parser(
        "zoo",
        help="list, build and export the named image models",
        description="Named image models (keras.applications) converted to ONNX with their "
        "preprocessing fused in, cached on disk under $SPARKONNX_CACHE/zoo "
        f"(now {cache.cache_dir()}).",
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
        p.add_argument(
            "--weights",
            default="imagenet",
            help="'imagenet' (default), 'none' (random, seeded) or a Keras weights file",
        )
        p.add_argument("--seed", type=int, default=0, help="seed for --weights none")
        if action == "export":
            p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    zoo.set_defaults(handler=run_zoo)


def run_zoo(args: argparse.Namespace) -> int:
    if args.zoo_action == "list":
        print(render_list())
        return 0
    from sparkonnx.model_zoo.build import build_model

    weights = None if args.weights.lower() in ("none", "random") else args.weights
    model = build_model(args.name, weights, seed=args.seed)  # a bar on a terminal only
    if args.zoo_action == "build":
        print(f"{args.name}: {model.source} ({model.size_bytes / 2**20:.1f} MiB)")
        return 0
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(model.source, output)
    print(f"{args.name}: wrote {output} ({model.size_bytes / 2**20:.1f} MiB)")
    return 0


def render_list() -> str:
    """One line per model: name, input size, feature width, preprocessing, cached builds."""
    cached: dict[str, list[str]] = {}
    suffix = f"-{cache.versions_key()}.onnx"
    for path in cache.cached_models():
        if path.name.endswith(suffix):
            name, _, weights = path.name[: -len(suffix)].partition("-")
            cached.setdefault(name, []).append(weights)
    header = f"{'model':18s} {'input':>9s} {'features':>8s}  {'preprocessing':13s} cached builds"
    lines = [header]
    for spec in MODELS.values():
        size = f"{spec.input_size[0]}x{spec.input_size[1]}"
        builds = ", ".join(sorted(cached.get(spec.name, []))) or "-"
        lines.append(
            f"{spec.name:18s} {size:>9s} {spec.feature_width:8d}  {spec.preprocessing:13s} {builds}"
        )
    return "\n".join(lines)
