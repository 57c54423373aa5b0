"""The on-disk cache of built zoo models, keyed by model name, weights identity and versions."""

from __future__ import annotations

import hashlib
import os
from importlib import metadata
from pathlib import Path

#: Bump when the way zoo graphs are built changes, so stale files are not reused.
BUILD_FORMAT = "1"
_VERSIONED = ("tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx")


def cache_dir() -> Path:
    """`$SPARKONNX_CACHE/zoo`, default `~/.cache/sparkonnx/zoo`."""
    root = os.environ.get("SPARKONNX_CACHE") or Path.home() / ".cache" / "sparkonnx"
    return Path(root) / "zoo"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def versions_key() -> str:
    """A short hash of the build format and the converter stack's versions."""
    import sparkonnx

    text = ";".join(
        [BUILD_FORMAT, sparkonnx.__version__, *(f"{p}={_version(p)}" for p in _VERSIONED)]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def model_path(name: str, weights_identity: str) -> Path:
    """Where the ONNX file of `name` with these weights is (or will be) cached."""
    return cache_dir() / f"{name}-{weights_identity}-{versions_key()}.onnx"


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
