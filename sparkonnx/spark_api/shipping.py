"""Getting a model to executors by reference, once per worker, on classic Spark and Connect.

Small models travel inline in the task closure; larger ones are added once per session as a
Spark file (`sparkContext.addFile`) or, on Spark Connect, as a file artifact
(`spark.addArtifacts(..., file=True)`); executors then read them with `SparkFiles.get`.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkonnx.engine.model import OnnxModel

logger = logging.getLogger(__name__)

#: Models up to this size are captured in the task closure; bigger ones are shipped as files.
INLINE_LIMIT_BYTES = int(os.environ.get("SPARKONNX_INLINE_MODEL_BYTES", str(4 * 1024 * 1024)))

_shipped: set[tuple[str, str]] = set()
_shipped_lock = threading.Lock()


@dataclass(frozen=True)
class ModelRef:
    """What a task needs to find a model: its hash plus inline bytes or a Spark file name."""

    sha256: str
    inline: bytes | None = field(default=None, repr=False)
    file_name: str | None = None

    def load(self) -> bytes | str:
        """On an executor: the model bytes, or the local path of the shipped file."""
        if self.inline is not None:
            return self.inline
        from pyspark import SparkFiles

        assert self.file_name is not None
        path = SparkFiles.get(self.file_name)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"shipped model file {self.file_name} not found on this executor at {path}; "
                "was the DataFrame transformed with another SparkSession than the one it "
                "belongs to?"
            )
        return path


def is_connect(spark: Any) -> bool:
    """True for a Spark Connect session (no sparkContext, no JVM access)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _session_key(spark: Any) -> str:
    if is_connect(spark):
        return f"connect:{spark.session_id}"
    return f"classic:{spark.sparkContext.applicationId}"


def ship_model(spark: Any, model: OnnxModel, inline_limit: int | None = None) -> ModelRef:
    """Make `model` reachable from this session's executors and return the reference to use."""
    limit = INLINE_LIMIT_BYTES if inline_limit is None else inline_limit
    if model.size_bytes <= limit:
        return ModelRef(model.sha256, inline=model.model_bytes)
    name = f"sparkonnx-{model.sha256}.onnx"
    key = (_session_key(spark), model.sha256)
    with _shipped_lock:
        if key in _shipped:
            return ModelRef(model.sha256, file_name=name)
        staging = Path(tempfile.gettempdir()) / "sparkonnx-ship"
        staging.mkdir(exist_ok=True)
        path = staging / name
        if not path.exists() or path.stat().st_size != model.size_bytes:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(model.model_bytes)
            tmp.replace(path)
        if is_connect(spark):
            spark.addArtifacts(str(path), file=True)
        else:
            spark.sparkContext.addFile(str(path))
        _shipped.add(key)
    logger.info(
        "shipped model %s (%d bytes) to executors as %s", model.sha256[:12], model.size_bytes, name
    )
    return ModelRef(model.sha256, file_name=name)
