"""Where sparkonnx keeps files on local disk: the one place that reads the cache settings.

The root is ``$SPARKONNX_CACHE``, else ``~/.cache/sparkonnx``; under it ``zoo/`` (built zoo
models), ``precision/`` (gated int8 / fp16 builds) and ``models/`` (the executors' copies of
models kept on disk, which ``spark.sparkonnx.modelCacheDir`` or ``$SPARKONNX_MODEL_CACHE``
move elsewhere).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

#: Environment variable naming the executors' model cache folder (set it on executors with
#: ``spark.executorEnv.SPARKONNX_MODEL_CACHE``).
MODEL_CACHE_ENV = "SPARKONNX_MODEL_CACHE"


def cache_root() -> Path:
    """`$SPARKONNX_CACHE`, default `~/.cache/sparkonnx`."""
    root = os.environ.get("SPARKONNX_CACHE") or Path.home() / ".cache" / "sparkonnx"
    return Path(root).expanduser()


def model_cache_dir(configured: str | None = None) -> Path:
    """The executors' model cache: `configured` (the Spark conf), else
    `$SPARKONNX_MODEL_CACHE`, else `cache_root()/models`."""
    if configured:
        return Path(configured).expanduser()
    explicit = os.environ.get(MODEL_CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    return cache_root() / "models"


def free_bytes(path: Path) -> int | None:
    """Free space on the file system that holds `path` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return int(shutil.disk_usage(probe).free)
    except OSError:
        return None
