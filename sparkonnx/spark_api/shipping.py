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
from sparkonnx.engine.runnable import check_runnable
from sparkonnx.spark_api.runtime.model_ref import ModelRef
from sparkonnx.spark_api.session import is_connect, session_key

logger = logging.getLogger(__name__)

#: Models up to this size are captured in the task closure; bigger ones are shipped as files.
INLINE_LIMIT_BYTES = int(os.environ.get("SPARKONNX_INLINE_MODEL_BYTES", str(4 * 1024 * 1024)))

#: Spark conf switch of the driver-side ONNX Runtime check ("false" skips it: models too big
#: for the driver's memory).
DRIVER_CHECK_CONF = "spark.sparkonnx.driverCheck"
_CHECK_HINT = (
    f". (sparkonnx builds one CPU session on the driver per model before any Spark job; for a "
    f"model too big for the driver, skip it with spark.conf.set('{DRIVER_CHECK_CONF}', 'false'))"
)

_shipped: set[tuple[str, str]] = set()
_shipped_lock = threading.Lock()


def driver_check(spark: Any, model: OnnxModel) -> None:
    """Refuse, before any Spark job, a model ONNX Runtime cannot load (`check_runnable`: one
    CPU session per model and driver process), unless `DRIVER_CHECK_CONF` is 'false'."""
    try:
        enabled = str(spark.conf.get(DRIVER_CHECK_CONF, "true")).strip().lower()
    except Exception:  # a session whose conf cannot be read: keep the check
        enabled = "true"
    if enabled in ("false", "0", "off", "no"):
        logger.info("driver-side ONNX Runtime check skipped (%s=false)", DRIVER_CHECK_CONF)
        return
    check_runnable(model, _CHECK_HINT)


def ship_model(spark: Any, model: OnnxModel, inline_limit: int | None = None) -> ModelRef:
    """Make `model` reachable from this session's executors and return the reference to use,
    after `driver_check`."""
    driver_check(spark, model)
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
    key = (session_key(spark), name)
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
