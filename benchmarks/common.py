"""What the benchmarks share: interleaved timing, the Spark session, the image DataFrame, the Keras
baseline and the Python workers' peak memory. Not a test: imported by the bench_* scripts.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow as pa


def local_spark(batch_rows: int = 10_000) -> Any:
    """local[2], one core per task, quiet."""
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def image_dataframe(spark: Any, bgr: np.ndarray) -> Any:
    """A cached DataFrame: id, image (Spark image struct) and pixels (the same BGR bytes as a
    numeric array, for predict_batch_udf, which takes numeric arrays only)."""
    from sparkonnx.engine.image_batch import batch_to_image_structs

    n = len(bgr)
    structs = batch_to_image_structs(bgr, origins=[f"img{i}" for i in range(n)])
    pixels = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * bgr[0].size),
        pa.array(bgr.reshape(-1).astype(np.int16)),
    )
    table = pa.table({"id": pa.array(np.arange(n)), "image": structs, "pixels": pixels})
    df = spark.createDataFrame(table).repartition(2).cache()
    df.count()
    return df


def keras_zoo_udf(model_name: str, output: str, batch_size: int, size: tuple[int, int]) -> Any:
    """predict_batch_udf running the zoo's Keras network (same seeded random weights) with its
    preprocessing as one tf.function, one TF thread per task, on the `pixels` column."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    def make_predict_fn() -> Callable[[np.ndarray], np.ndarray]:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from sparkonnx.model_zoo.build import WeightsChoice, _build_keras, fused_function
        from sparkonnx.model_zoo.registry import get_model

        spec = get_model(model_name)
        serve = fused_function(spec, _build_keras(spec, WeightsChoice(None, "random"), seed=0))

        def predict(x: np.ndarray) -> np.ndarray:
            return serve(tf.constant(x.astype(np.uint8)))[output].numpy()

        return predict

    return predict_batch_udf(
        make_predict_fn,
        return_type=ArrayType(FloatType()),
        batch_size=batch_size,
        input_tensor_shapes=[[size[0], size[1], 3]],
    )


def interleaved(paths: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds per path: one untimed warm-up call each, then `repeats` rounds calling
    every path once in turn, so a change of machine load hits all paths alike."""
    for fn in paths.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, fn in paths.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def _status(pid: str) -> dict[str, str]:
    lines = (Path("/proc") / pid / "status").read_text().splitlines()
    return dict(line.split(":\t", 1) for line in lines if ":\t" in line)


def _descends_from(pid: str, ancestor: int) -> bool:
    while pid not in ("0", "1"):
        try:
            pid = _status(pid)["PPid"].strip()
        except (OSError, KeyError):
            return False
        if pid == str(ancestor):
            return True
    return False


def python_worker_peak_mb() -> dict[int, float]:
    """Peak RSS (VmHWM, MB) of this benchmark's live pyspark Python workers, by pid (Linux):
    the processes running pyspark.daemon / pyspark.worker under this process's JVM."""
    peaks = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            if b"pyspark.daemon" not in cmdline and b"pyspark.worker" not in cmdline:
                continue
            if not _descends_from(proc.name, os.getpid()):
                continue
            peaks[int(proc.name)] = int(_status(proc.name)["VmHWM"].split()[0]) / 1024
        except (OSError, KeyError, ValueError):
            continue
    return peaks


def describe_worker_memory() -> str:
    """One line: the largest Python worker peak RSS and how many workers there were."""
    peaks = python_worker_peak_mb()
    if not peaks:
        return "Python worker peak RSS: no worker found (not Linux, or workers exited)"
    return (
        f"Python worker peak RSS: max {max(peaks.values()):.0f} MB over {len(peaks)} "
        f"processes (daemon + workers)"
    )


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of `a` with the same row of `b`."""
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def collect_vectors(df: Any, column: str) -> np.ndarray:
    """The `column` (array or Spark ML vector) of `df`, ordered by id, as a 2-D array."""
    rows = sorted(df.select("id", column).collect(), key=lambda r: r.id)
    values = [r[column].toArray() if hasattr(r[column], "toArray") else r[column] for r in rows]
    return np.array(values, np.float64)
