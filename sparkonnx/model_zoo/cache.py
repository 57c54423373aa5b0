"""The on-disk cache of built zoo models, keyed by what defines each ONNX graph.

A file is named ``{model}-{weights identity}-{graph key}.onnx``: the graph key hashes the
model's registry entry (network, feature layer, weights file), the weights identity, the fused
preprocessing, the opset and `BUILD_FORMAT`, all known without TensorFlow. So a driver without
TensorFlow finds a model built on another machine and moved here with ``sparkonnx zoo import``.
The versions of the converter stack that built a file are kept inside it, in its metadata
(`BUILD_VERSIONS`), not in its name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

from sparkonnx.engine.cache_dir import cache_root

#: Bump when the way zoo graphs are built changes, so stale files are not reused.
BUILD_FORMAT = "2"
#: Metadata entries of a built zoo model (besides the converter's own).
MODEL = "sparkonnx.zoo.model"
WEIGHTS = "sparkonnx.zoo.weights"
FEATURE_WIDTH = "sparkonnx.zoo.feature_width"
GRAPH_KEY = "sparkonnx.zoo.graph_key"
BUILD_VERSIONS = "sparkonnx.zoo.build_versions"  # JSON {package: version} of the build machine
_VERSIONED = ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "onnxruntime")


class CachedBuild(NamedTuple):
    """What a cache file's name says: model name, weights identity, graph key."""

    name: str
    weights: str
    key: str


def cache_dir() -> Path:
    """`$SPARKONNX_CACHE/zoo`, default `~/.cache/sparkonnx/zoo`."""
    return cache_root() / "zoo"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def build_versions() -> dict[str, str]:
    """The build format and the installed converter stack's versions, stored in each build."""
    import sparkonnx

    versions = {"build_format": BUILD_FORMAT, "sparkonnx": sparkonnx.__version__}
    versions.update((p, v) for p in _VERSIONED if (v := _version(p)) != "-")
    return versions


def graph_key(identity: Mapping[str, Any]) -> str:
    """A short hash of what defines a zoo graph (`build.graph_identity`), plus `BUILD_FORMAT`."""
    text = json.dumps({"build_format": BUILD_FORMAT, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_path(name: str, weights_identity: str, key: str) -> Path:
    """Where the ONNX file of `name` with these weights and graph key is (or will be) cached."""
    return cache_dir() / f"{name}-{weights_identity}-{key}.onnx"


def parse_name(path: Path) -> CachedBuild | None:
    """The (name, weights, key) a cache file's name holds, or None for other files."""
    stem = path.name.removesuffix(".onnx")
    name, _, rest = stem.partition("-")
    weights, _, key = rest.rpartition("-")
    if not path.name.endswith(".onnx") or not name or not weights or len(key) != 16:
        return None
    return CachedBuild(name, weights, key)


def cached_models() -> list[Path]:
    """Every cached zoo ONNX file."""
    folder = cache_dir()
    return sorted(folder.glob("*.onnx")) if folder.is_dir() else []


def save_atomically(data: bytes, path: Path) -> None:
    """Write `data` to `path` through a temporary file, so readers never see half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def copy_atomically(source: Path, path: Path) -> None:
    """Copy the file `source` to `path` through a temporary file in `path`'s folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(path)
