"""Driver side of getting a model to executors by reference, once per worker, on classic
Spark and Connect.

Small models travel inline in the task closure; larger ones are added once per session as a
Spark file (`sparkContext.addFile`) or, on Spark Connect, as a file artifact
(`spark.addArtifacts(..., file=True)`); executors then read them with `SparkFiles.get`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.runtime.model_ref import ModelRef
from sparkonnx.spark_api.session import is_connect

logger = logging.getLogger(__name__)

#: Models up to this size are captured in the task closure; bigger ones are shipped as files.
INLINE_LIMIT_BYTES = int(os.environ.get("SPARKONNX_INLINE_MODEL_BYTES", str(4 * 1024 * 1024)))

_shipped: set[tuple[str, str]] = set()
_shipped_lock = threading.Lock()


def _session_key(spark: Any) -> str:
    if is_connect(spark):
        return f"connect:{spark.session_id}"
    return f"classic:{spark.sparkContext.applicationId}"


def ship_model(spark: Any, model: OnnxModel, inline_limit: int | None = None) -> ModelRef:
    """Make `model` reachable from this session's executors and return the reference to use."""
    return ship_bytes(spark, model.model_bytes, ".onnx", model.sha256, inline_limit)


def ship_bytes(
    spark: Any,
    data: bytes,
    suffix: str,
    sha256: str | None = None,
    inline_limit: int | None = None,
) -> ModelRef:
    """Make any bytes (a model, a training set) reachable from executors, once per session.

    Small payloads travel inline; larger ones become a Spark file named after their sha256 with
    `suffix` (e.g. ".onnx", ".npz"). `ModelRef.load()` on an executor returns bytes or a path.
    """
    sha256 = sha256 or hashlib.sha256(data).hexdigest()
    limit = INLINE_LIMIT_BYTES if inline_limit is None else inline_limit
    if len(data) <= limit:
        return ModelRef(sha256, inline=data)
    name = f"sparkonnx-{sha256}{suffix}"
    key = (_session_key(spark), name)
    with _shipped_lock:
        if key in _shipped:
            return ModelRef(sha256, file_name=name)
        staging = Path(tempfile.gettempdir()) / "sparkonnx-ship"
        staging.mkdir(exist_ok=True)
        path = staging / name
        if not path.exists() or path.stat().st_size != len(data):
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        if is_connect(spark):
            spark.addArtifacts(str(path), file=True)
        else:
            spark.sparkContext.addFile(str(path))
        _shipped.add(key)
    logger.info("shipped %s (%d bytes) to executors as %s", sha256[:12], len(data), name)
    return ModelRef(sha256, file_name=name)
