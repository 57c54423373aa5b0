"""Driver side of getting a model to executors by reference, once per worker, on classic
Spark and Connect.

Small models travel inline in the task closure; larger ones are added once per session as a
Spark file (`sparkContext.addFile`) or, on Spark Connect, as a file artifact
(`spark.addArtifacts(..., file=True)`); executors then read them with `SparkFiles.get`. A model
kept on disk (external data, over `ON_DISK_BYTES`) is shipped as its files, each under a name
made from the model's sha256, without reading them into memory; executors assemble them in
their disk cache (`sparkonnx.engine.model_cache`, folder: Spark conf `CACHE_CONF`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from sparkonnx.engine.model import OnnxModel
from sparkonnx.engine.model_cache import CACHE_CONF
from sparkonnx.engine.model_files import ModelFiles
from sparkonnx.engine.runnable import check_operators, check_runnable
from sparkonnx.spark_api.runtime.executor_facts import conf_value
from sparkonnx.spark_api.runtime.model_ref import ModelFilesRef, ModelRef
from sparkonnx.spark_api.session import is_connect, session_key

logger = logging.getLogger(__name__)

#: Models up to this size are captured in the task closure; bigger ones are shipped as files.
INLINE_LIMIT_BYTES = int(os.environ.get("SPARKONNX_INLINE_MODEL_BYTES", str(4 * 1024 * 1024)))

#: Spark conf switch of the driver-side ONNX Runtime check ("false" skips it: models too big
#: for the driver's memory).
DRIVER_CHECK_CONF = "spark.sparkonnx.driverCheck"
#: Spark conf: a model kept on disk over this many bytes gets only the operator check on the
#: driver (no ONNX Runtime session: it would load the weights into the driver's memory).
DRIVER_CHECK_MAX_CONF = "spark.sparkonnx.driverCheck.maxBytes"
DRIVER_CHECK_MAX_BYTES = 2**30
_CHECK_HINT = (
    f". (sparkonnx builds one CPU session on the driver per model before any Spark job; for a "
    f"model too big for the driver, skip it with spark.conf.set('{DRIVER_CHECK_CONF}', 'false'))"
)

_shipped: set[tuple[str, str]] = set()
_shipped_lock = threading.Lock()


def _conf(spark: Any, key: str, default: str | None) -> str | None:
    value = conf_value(spark, key)  # None when unset or unreadable: the default
    return default if value is None else value.strip()


def driver_check(spark: Any, model: OnnxModel) -> None:
    """Refuse, before any Spark job, a model ONNX Runtime cannot load (`check_runnable`: one
    CPU session per model and driver process), unless `DRIVER_CHECK_CONF` is 'false'. A model
    kept on disk over `DRIVER_CHECK_MAX_CONF` bytes (default 1 GiB) gets only the operator
    check (`check_operators`): a session would load its weights into the driver's memory."""
    enabled = (_conf(spark, DRIVER_CHECK_CONF, "true") or "true").lower()
    if enabled in ("false", "0", "off", "no"):
        logger.info("driver-side ONNX Runtime check skipped (%s=false)", DRIVER_CHECK_CONF)
        return
    limit = _conf(spark, DRIVER_CHECK_MAX_CONF, None) or str(DRIVER_CHECK_MAX_BYTES)
    try:
        max_bytes = int(limit)
    except ValueError:
        raise ValueError(
            f"{DRIVER_CHECK_MAX_CONF} must be a number of bytes such as 1073741824; got {limit!r}"
        ) from None
    if model.on_disk and model.size_bytes > max_bytes:
        logger.info(
            "%s: %d bytes on disk, over %s=%d: only its operators are checked on the driver",
            model.source,
            model.size_bytes,
            DRIVER_CHECK_MAX_CONF,
            max_bytes,
        )
        check_operators(model, _CHECK_HINT)
        return
    check_runnable(model, _CHECK_HINT)


def ship_model(spark: Any, model: OnnxModel, inline_limit: int | None = None) -> ModelRef:
    """Make `model` reachable from this session's executors and return the reference to use,
    after `driver_check`."""
    driver_check(spark, model)
    if model.files is not None:
        return ship_files(spark, model.files)
    return ship_bytes(spark, model.model_bytes, ".onnx", model.sha256, inline_limit)


def ship_files(spark: Any, files: ModelFiles) -> ModelFilesRef:
    """Add every file of an on-disk model as a Spark file named after the model's sha256.

    Each is copied (by the kernel, never read whole) into the staging folder once per driver
    machine: Spark names a file after its link target, and onnx's checker refuses data files
    with several hard links, so neither kind of link can stand in for the copy."""
    members, added = [], False
    for index, (member, path) in enumerate(files.members()):
        name = f"sparkonnx-{files.sha256}-{index}{'.data' if member else '.onnx'}"
        size = path.stat().st_size
        added = _add_file(spark, name, size, partial(shutil.copyfile, path)) or added
        members.append((member, name))
    if added:
        logger.info("shipped %s (%d bytes, %d files)", files.sha256[:12], files.size, len(members))
    return ModelFilesRef(
        files.sha256,
        graph_name=files.graph.name,
        members=tuple(members),
        cache_dir=_conf(spark, CACHE_CONF, None) or None,
    )


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
    if _add_file(spark, name, len(data), lambda target: target.write_bytes(data)):
        logger.info("shipped %s (%d bytes) to executors as %s", sha256[:12], len(data), name)
    return ModelRef(sha256, file_name=name)


def _add_file(spark: Any, name: str, size: int, write: Callable[[Path], Any]) -> bool:
    """Stage the file `name` of `size` bytes (written by `write(path)` unless there with that
    size) and add it to the session once; True when it was added now."""
    key = (session_key(spark), name)
    with _shipped_lock:
        if key in _shipped:
            return False
        staging = Path(tempfile.gettempdir()) / "sparkonnx-ship"
        staging.mkdir(exist_ok=True)
        path = staging / name
        if not path.exists() or path.stat().st_size != size:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            write(tmp)
            tmp.replace(path)
        if is_connect(spark):
            spark.addArtifacts(str(path), file=True)
        else:
            spark.sparkContext.addFile(str(path))
        _shipped.add(key)
    return True
