"""Keras training of one param map (on the driver or in a Spark task) and the Spark job that
trains many param maps in parallel, one per task.

Importing this module imports neither TensorFlow nor Keras: executors import it to run the task
and import Keras only when training starts, with a clear error when it is missing there. Tasks
capture plain values (`TrainingJob`), never an Estimator or a SparkSession.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from sparkonnx.converters.quiet import import_quietly
from sparkonnx.errors import SparkOnnxError
from sparkonnx.spark_api.runtime.model_ref import ModelRef

logger = logging.getLogger(__name__)

TRAIN_INSTALL_HINT = "pip install 'sparkonnx[convert]'"
#: How to fix TensorFlow / Keras missing where fitMultiple trains.
TRAINING_FIX = (
    "fitMultiple (used by CrossValidator / TrainValidationSplit) trains on executors: run "
    f"{TRAIN_INSTALL_HINT} with that Python on every worker (the one named by PYSPARK_PYTHON), "
    "or fit each param map on the driver with estimator.fit(df, paramMap)"
)

#: Columns of the training job's result: one row per param map.
RESULT_SCHEMA = (
    "id long, model binary, history string, seconds double, host string, error string, "
    "error_kind string"
)


class TrainingDependencyError(SparkOnnxError, ImportError):
    """TensorFlow / Keras is missing where training runs (typically on an executor)."""


class KerasTrainingError(SparkOnnxError, RuntimeError):
    """Keras training of a param map failed; the message names the param map and the cause."""


@dataclass(frozen=True)
class TrainingSettings:
    """One param map's Keras settings, as plain JSON-able values."""

    optimizer: str | dict[str, Any]
    loss: str | dict[str, Any]
    fit_params: Mapping[str, Any]
    seed: int

    def describe(self) -> str:
        return (
            f"kerasOptimizer={self.optimizer!r}, kerasLoss={self.loss!r}, "
            f"kerasFitParams={dict(self.fit_params)!r}, seed={self.seed}"
        )


@dataclass(frozen=True)
class TrainingTask:
    """What one Spark task trains: the starting Keras model and its settings."""

    index: int
    model: ModelRef  # the starting model's file bytes (.keras or .h5)
    model_suffix: str
    settings: TrainingSettings


@dataclass(frozen=True)
class TrainingJob:
    """The training data (packed once, shipped once) and one task per param map."""

    data: ModelRef
    tasks: tuple[TrainingTask, ...]


@dataclass(frozen=True)
class TrainedKeras:
    """A trained Keras model as `.keras` file bytes, with its loss history and timing."""

    index: int
    keras_bytes: bytes = field(repr=False)
    history: dict[str, list[float]]
    seconds: float
    host: str


# -- dependencies ----------------------------------------------------------------------------
def import_keras() -> ModuleType:
    """Keras 3 on TensorFlow, or a `TrainingDependencyError` naming this host and the fix."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    try:
        import_quietly("tensorflow")  # without TF's start-up banners (unless logging at DEBUG)
        return import_quietly("keras")
    except ImportError as exc:
        raise TrainingDependencyError(
            f"Keras training needs TensorFlow and Keras in the Python environment that runs it, "
            f"but importing them failed on host {socket.gethostname()} in {sys.executable} "
            f"({exc}). {TRAINING_FIX}"
        ) from exc


# -- data and model bytes ----------------------------------------------------------------------
def pack_arrays(x: np.ndarray, y: np.ndarray) -> bytes:
    """Features and labels as one `.npz` payload (no pickle)."""
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    return buffer.getvalue()


def unpack_arrays(payload: bytes | str) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) packed by `pack_arrays`, from bytes or a file path."""
    source = io.BytesIO(payload) if isinstance(payload, bytes) else payload
    with np.load(source, allow_pickle=False) as arrays:
        return arrays["x"], arrays["y"]


def load_keras_bytes(data: bytes | str, suffix: str) -> Any:
    """A Keras model from file bytes (or a path), uncompiled: a fresh copy every call."""
    keras = import_keras()
    if isinstance(data, str):
        return keras.models.load_model(data, compile=False)
    with tempfile.TemporaryDirectory(prefix="sparkonnx-keras-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        path.write_bytes(data)
        return keras.models.load_model(path, compile=False)


def keras_to_bytes(model: Any) -> bytes:
    """A Keras model as `.keras` file bytes."""
    with tempfile.TemporaryDirectory(prefix="sparkonnx-keras-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


# -- one param map -------------------------------------------------------------------------------
def _limit_threads(cpus: int | None) -> None:
    """Keep a task's TensorFlow to the cores Spark gave it (only possible before TF starts)."""
    if not cpus:
        return
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(cpus)
        tf.config.threading.set_inter_op_parallelism_threads(cpus)
    except RuntimeError:  # TF already initialised in this reused worker: keep its settings
        logger.debug("TensorFlow already initialised; thread counts unchanged")


def train_keras(
    model_data: bytes | str,
    model_suffix: str,
    x: np.ndarray,
    y: np.ndarray,
    settings: TrainingSettings,
    index: int = 0,
) -> TrainedKeras:
    """Compile a fresh copy of the model with `settings`, fit it on (x, y) and return it."""
    keras = import_keras()
    start = time.perf_counter()
    keras.utils.set_random_seed(settings.seed)
    model = load_keras_bytes(model_data, model_suffix)
    optimizer = settings.optimizer
    loss = settings.loss
    model.compile(
        optimizer=keras.optimizers.get(optimizer) if isinstance(optimizer, dict) else optimizer,
        loss=keras.losses.get(loss) if isinstance(loss, dict) else loss,
    )
    fit_params = {"verbose": 0, **settings.fit_params}
    history = model.fit(x, y, **fit_params)
    seconds = time.perf_counter() - start
    curves = {k: [float(v) for v in values] for k, values in history.history.items()}
    logger.info("trained param map %d in %.1f s (%s)", index, seconds, settings.describe())
    return TrainedKeras(index, keras_to_bytes(model), curves, seconds, socket.gethostname())


# -- many param maps, one per Spark task ---------------------------------------------------------
def _error_row(index: int, kind: str, message: str) -> dict[str, Any]:
    return {
        "id": index,
        "model": None,
        "history": None,
        "seconds": None,
        "host": socket.gethostname(),
        "error": message,
        "error_kind": kind,
    }


def train_partition(job: TrainingJob, frames: Iterator[Any]) -> Iterator[Any]:
    """The `mapInPandas` function: train the param maps whose indices this partition holds."""
    import pandas as pd
    from pyspark import TaskContext

    data: tuple[np.ndarray, np.ndarray] | None = None
    for frame in frames:
        rows = []
        for index in frame["id"].tolist():
            task = job.tasks[int(index)]
            try:
                import_keras()  # fails early, as TrainingDependencyError, without Keras
                ctx = TaskContext.get()
                _limit_threads(ctx.cpus() if ctx is not None else None)
                if data is None:
                    data = unpack_arrays(job.data.load())
                trained = train_keras(
                    task.model.load(), task.model_suffix, *data, task.settings, task.index
                )
                rows.append(
                    {
                        "id": task.index,
                        "model": trained.keras_bytes,
                        "history": json.dumps(trained.history),
                        "seconds": trained.seconds,
                        "host": trained.host,
                        "error": None,
                        "error_kind": None,
                    }
                )
            except TrainingDependencyError as exc:
                rows.append(_error_row(task.index, "dependency", str(exc)))
            except Exception as exc:  # reported on the driver with the param map it belongs to
                tail = "".join(traceback.format_exception(exc))[-3000:]
                rows.append(_error_row(task.index, "training", f"{exc!r}\n{tail}"))
        yield pd.DataFrame(rows, columns=[c.split()[0] for c in RESULT_SCHEMA.split(", ")])


def raise_task_errors(rows: list[dict[str, Any]], job: TrainingJob) -> None:
    """Turn the error rows of a training job into one driver-side exception."""
    failed = [r for r in rows if r["error"]]
    if not failed:
        return
    missing = [r for r in failed if r["error_kind"] == "dependency"]
    if missing:
        raise TrainingDependencyError(missing[0]["error"])
    first = failed[0]
    settings = job.tasks[int(first["id"])].settings
    raise KerasTrainingError(
        f"Keras training failed for {len(failed)} of {len(rows)} param maps; param map "
        f"{first['id']} ({settings.describe()}) on host {first['host']}: {first['error']}"
    )


def run_training_job(spark: Any, job: TrainingJob) -> list[TrainedKeras]:
    """Train every task of `job` in its own Spark task (DataFrame API only: works on Connect)."""
    n = len(job.tasks)
    indices = spark.range(0, n, 1, numPartitions=n)
    result = indices.mapInPandas(partial(train_partition, job), RESULT_SCHEMA)
    rows = [row.asDict() for row in result.collect()]
    raise_task_errors(rows, job)
    trained = [
        TrainedKeras(
            index=int(r["id"]),
            keras_bytes=bytes(r["model"]),
            history=json.loads(r["history"]),
            seconds=float(r["seconds"]),
            host=r["host"],
        )
        for r in rows
    ]
    missing = sorted(set(range(n)) - {t.index for t in trained})
    if missing:
        raise KerasTrainingError(f"the training job returned no model for param maps {missing}")
    return sorted(trained, key=lambda t: t.index)
