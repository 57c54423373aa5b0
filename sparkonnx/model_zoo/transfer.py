"""Moving built zoo models between machines: `export_model` writes one cached build to a file,
`import_model` puts such a file into this machine's cache, where the zoo stages find it.

Importing needs no TensorFlow: the file's metadata says which model and weights it holds and
the graph key it was built for, and this machine's registry says which key it looks for. A
file built for another graph (another sparkonnx build format, preprocessing or opset) is
refused, so a stage never runs a graph other than the one it would have built.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from sparkonnx.engine.model import InvalidModelError, OnnxModel
from sparkonnx.model_zoo import cache
from sparkonnx.model_zoo.build import (
    DEFAULT_SEED,
    FEATURES,
    INPUT_NAME,
    PROBABILITIES,
    Weights,
    build_model,
    cached_path,
)
from sparkonnx.model_zoo.registry import get_model

logger = logging.getLogger(__name__)

__all__ = ["ZooImportError", "export_model", "import_model"]


class ZooImportError(InvalidModelError):
    """A file given to `import_model` is not a zoo build this sparkonnx can use."""


def export_model(
    name: str,
    target: str | os.PathLike[str],
    weights: Weights = "imagenet",
    *,
    seed: int = DEFAULT_SEED,
    progress: bool = True,
) -> Path:
    """Write the build of zoo model `name` (from the cache, else built here) to `target`."""
    model = build_model(name, weights, seed=seed, progress=progress)
    out = Path(target)
    cache.copy_atomically(Path(model.source), out)
    logger.info("exported %s (%s) to %s", name, model.metadata.get(cache.WEIGHTS), out)
    return out


def import_model(source: str | os.PathLike[str]) -> Path:
    """Check that `source` is a zoo build for this sparkonnx and copy it into the zoo cache;
    returns its path there."""
    path = Path(source)
    model = OnnxModel.from_path(path)  # FileNotFoundError / InvalidModelError name the file
    meta = model.metadata
    missing = [k for k in (cache.MODEL, cache.WEIGHTS, cache.GRAPH_KEY) if k not in meta]
    if missing:
        raise ZooImportError(
            f"{path} is not a sparkonnx zoo build: its metadata lacks {missing}. Export one "
            "with 'sparkonnx zoo export NAME FILE.onnx' on the machine that built it (a file "
            "from sparkonnx before the graph key, or any other ONNX model, cannot be imported)"
        )
    try:
        spec = get_model(meta[cache.MODEL])
    except ValueError as exc:
        raise ZooImportError(f"{path}: {exc}") from None
    _check_signature(path, model)
    target = cached_path(spec, meta[cache.WEIGHTS])
    expected = cache.parse_name(target)
    assert expected is not None  # cached_path names files as parse_name reads them
    if meta[cache.GRAPH_KEY] != expected.key:
        raise ZooImportError(
            f"{path} holds {spec.name} ({meta[cache.WEIGHTS]}) built for graph key "
            f"{meta[cache.GRAPH_KEY]} ({_built_with(model)}), but this sparkonnx builds that "
            f"model as graph key {expected.key} (build format {cache.BUILD_FORMAT}): its "
            "preprocessing, opset or build format differ. Export it again from a machine with "
            "this sparkonnx version, or build it here ('sparkonnx zoo build', needs TensorFlow)"
        )
    if target.is_file() and OnnxModel.from_path(target).sha256 == model.sha256:
        logger.info("%s is already in the zoo cache as %s", path, target)
        return target
    cache.copy_atomically(path, target)
    logger.info("imported %s (%s) from %s into %s", spec.name, meta[cache.WEIGHTS], path, target)
    return target


def _check_signature(path: Path, model: OnnxModel) -> None:
    inputs = [s.name for s in model.inputs]
    outputs = sorted(s.name for s in model.outputs)
    if inputs != [INPUT_NAME] or outputs != sorted([FEATURES, PROBABILITIES]):
        raise ZooImportError(
            f"{path}: a zoo build has input [{INPUT_NAME!r}] and outputs "
            f"[{FEATURES!r}, {PROBABILITIES!r}]; this file has inputs {inputs} and outputs "
            f"{outputs}. Import only files written by 'sparkonnx zoo export'"
        )


def _built_with(model: OnnxModel) -> str:
    """The build versions stored in `model`, as 'package version, ...' (or 'unknown')."""
    raw = model.metadata.get(cache.BUILD_VERSIONS)
    try:
        versions = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        versions = {}
    return ", ".join(f"{k} {v}" for k, v in sorted(versions.items())) or "build versions unknown"
