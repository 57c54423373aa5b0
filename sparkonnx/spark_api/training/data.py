"""Driver-side checks and gathering of training data: label columns, the memory limit, and
columns to numpy arrays.

Training gathers every row into one worker, so the size is checked against one worker's memory
before anything is loaded, and labels are checked with one SQL aggregate before images are read.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.tensors import column_to_tensor
from sparkonnx.errors import SparkOnnxError
from sparkonnx.spark_api.session import sql_functions, vector_to_array

logger = logging.getLogger(__name__)

#: Share of one worker's memory the gathered training data may take (the rest: Keras, copies).
MEMORY_SHARE = 0.5

_UNITS = {"": 2**20, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}


class TrainingDataTooLargeError(SparkOnnxError, ValueError):
    """The training data would not fit in one worker's memory; raised before loading it."""


def parse_memory(text: str) -> int:
    """Bytes in a JVM-style memory string ('2g', '512m', '1024k'; a bare number means MiB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgtp]?)(?:i?b)?\s*", str(text).lower())
    if not match:
        raise ValueError(f"cannot read memory size {text!r}; expected e.g. '2g', '512m'")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def _conf(spark: Any, key: str) -> str | None:
    try:
        return spark.conf.get(key, None)
    except Exception:  # some keys are not readable on every deployment (e.g. Connect)
        return None


def worker_memory_limit(spark: Any) -> tuple[int, str]:
    """(bytes, where it comes from) that one worker may spend on gathered training data."""
    local = str(_conf(spark, "spark.master") or "").startswith("local")
    for key in ("spark.executor.pyspark.memory", "spark.executor.memory"):
        if key == "spark.executor.memory" and local:
            key = "spark.driver.memory"  # local mode: the executor is the driver's JVM
        value = _conf(spark, key)
        if value:
            memory = parse_memory(value)
            return int(memory * MEMORY_SHARE), f"{MEMORY_SHARE:g} x {key}={value}"
    return int(parse_memory("1g") * MEMORY_SHARE), f"{MEMORY_SHARE:g} x 1g (Spark's default)"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_training_size(
    rows: int, row_bytes: int, limit: int, limit_source: str, column: str
) -> int:
    """The gathered size in bytes, or `TrainingDataTooLargeError` saying the size and the limit."""
    total = rows * row_bytes
    if total > limit:
        raise TrainingDataTooLargeError(
            f"the training data from column {column!r} would take {_size(total)} ({rows} rows x "
            f"{row_bytes} bytes as float32 features and labels), over the limit of "
            f"{_size(limit)} for one worker ({limit_source}). Keras training holds every row in "
            "one worker's memory; train on fewer or smaller rows (e.g. a smaller image size in "
            "the imageLoader), or raise maxTrainingDataBytes if the workers have the memory"
        )
    return total


def label_array(dataset: DataFrame, column: str) -> Any:
    """A Column of one-hot label arrays for `column`, or a TypeError naming what is allowed."""
    dataType = dataset.schema[column].dataType
    if isinstance(dataType, T.UserDefinedType) and dataType.simpleString() == "vector":
        return vector_to_array(dataset)(dataset[column])
    if isinstance(dataType, T.ArrayType) and isinstance(dataType.elementType, T.NumericType):
        return dataset[column]
    raise TypeError(
        f"labelCol {column!r} has type {dataType.simpleString()}; expected one-hot labels as an "
        "array of numbers (e.g. array<float>) or a Spark ML vector, one value per model output"
    )


def check_label_column(dataset: DataFrame, column: str, width: int) -> int:
    """Check the one-hot labels with one aggregate (nulls, widths); return the row count."""
    if column not in dataset.columns:
        raise ValueError(
            f"labelCol {column!r} is not in the DataFrame; its columns are: "
            f"{', '.join(dataset.columns)}"
        )
    labels = label_array(dataset, column)
    F = sql_functions(dataset)
    stats = dataset.select(
        F.count(F.lit(1)).alias("rows"),
        F.sum(dataset[column].isNull().cast("long")).alias("null_rows"),
        F.sum((F.size(labels) != F.size(F.array_compact(labels))).cast("long")).alias(
            "null_values"
        ),
        F.min(F.size(labels)).alias("min_width"),
        F.max(F.size(labels)).alias("max_width"),
    ).head()
    assert stats is not None
    expected = f"one-hot labels of width {width} (the model's output width), no nulls"
    if not stats["rows"]:
        raise ValueError(f"the DataFrame is empty: no rows to train on (labelCol {column!r})")
    if stats["null_rows"]:
        raise ValueError(
            f"labelCol {column!r} is null in {stats['null_rows']} of {stats['rows']} rows; "
            f"expected {expected}. Drop or fill those rows first"
        )
    if stats["null_values"]:
        raise ValueError(
            f"labelCol {column!r} has null values inside {stats['null_values']} of "
            f"{stats['rows']} label arrays; expected {expected}"
        )
    if stats["min_width"] != width or stats["max_width"] != width:
        found = (
            f"width {stats['min_width']}"
            if stats["min_width"] == stats["max_width"]
            else f"widths {stats['min_width']} to {stats['max_width']}"
        )
        raise ValueError(f"labelCol {column!r} has labels of {found}; expected {expected}")
    return int(stats["rows"])


def labels_to_numpy(column: pa.Array | pa.ChunkedArray, name: str, width: int) -> np.ndarray:
    """An Arrow label column (arrays or vectors) as float32 (n, width)."""
    spec = TensorSpec(f"labels of {name}", np.dtype(np.float32), (None, width))
    return column_to_tensor(column, name, spec, allow_cast=True)


def features_to_numpy(
    column: pa.Array | pa.ChunkedArray, name: str, input_shape: tuple[int | None, ...]
) -> np.ndarray:
    """An Arrow feature column as the model input's float32 tensor (reshaped where needed)."""
    spec = TensorSpec("the Keras model's input", np.dtype(np.float32), input_shape)
    return column_to_tensor(column, name, spec, allow_cast=True)


def row_bytes(feature_shape: tuple[int, ...], width: int) -> int:
    """Bytes one row takes once gathered: float32 features plus float32 labels."""
    return 4 * (math.prod(feature_shape) + width)
