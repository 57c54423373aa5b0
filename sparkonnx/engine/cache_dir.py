"""Where executors keep models on local disk: the one place that reads the setting."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Environment variable naming the executors' model cache folder (set it on executors with
#: ``spark.executorEnv.SPARKONNX_MODEL_CACHE_DIR``).
MODEL_CACHE_DIR_ENV = "SPARKONNX_MODEL_CACHE_DIR"


def executor_model_cache_dir() -> Path:
    """`$SPARKONNX_MODEL_CACHE_DIR`, else `$SPARKONNX_CACHE/models` (default `~/.cache/...`)."""
    explicit = os.environ.get(MODEL_CACHE_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    root = os.environ.get("SPARKONNX_CACHE") or Path.home() / ".cache" / "sparkonnx"
    return Path(root).expanduser() / "models"


def free_bytes(path: Path) -> int | None:
    """Free space on the file system that holds `path` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free)
    except OSError:
        return None
