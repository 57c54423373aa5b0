"""A driver process for test_large_model: score `testing.write_big_matmul`'s model (weights just
over 2 GiB, kept on disk) with ONNXTransformer on local[2], in two Spark applications one after
the other; print one JSON line of figures.

Run: python -m tests.spark_api.large_model_job MODEL.onnx CACHE_DIR
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd

ROWS = 4


def worker_peak(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """This Python worker's pid and peak RSS (MiB); pickled by value (defined in __main__)."""
    import os as worker_os
    import resource as worker_resource

    for _ in batches:
        pass
    peak = worker_resource.getrusage(worker_resource.RUSAGE_SELF).ru_maxrss // 1024
    yield pd.DataFrame({"pid": [worker_os.getpid()], "peak_mib": [peak]})


def score(model_path: str, cache: str) -> dict[str, object]:
    """One Spark application: load the model, score ROWS rows on one Python worker, stop."""
    from pyspark.sql import SparkSession

    from sparkonnx import ONNXTransformer, testing
    from sparkonnx.engine.model import OnnxModel
    from sparkonnx.engine.model_cache import CACHE_CONF

    started = time.monotonic()
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sparkonnx-large-model")
        .config("spark.ui.enabled", "false")
        .config("spark.task.maxFailures", "1")
        .config("spark.driver.memory", "1g")
        .config(CACHE_CONF, cache)
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    application = spark.sparkContext.applicationId
    loaded = time.monotonic()
    model = OnnxModel.from_path(model_path)
    hashed = time.monotonic()
    k = int(model.inputs[0].shape[1])  # type: ignore[index, arg-type]
    x = np.random.default_rng(0).standard_normal((ROWS, k)).astype(np.float32)
    rows = [(i, x[i].tolist()) for i in range(ROWS)]
    df = spark.createDataFrame(rows, "id int, x array<float>").coalesce(1)  # one Python worker
    stage = ONNXTransformer(model=model, inputCol="x", outputCol="y", batchSize=2)
    result = sorted(stage.transform(df).collect(), key=lambda r: r.id)
    scored = time.monotonic()
    y = np.array([r.y for r in result], np.float32)
    workers = spark.range(1, numPartitions=1).mapInPandas(worker_peak, "pid long, peak_mib long")
    worker = workers.collect()[0]
    spark.stop()
    return {
        "application": application,
        "on_disk": model.on_disk,
        "size_bytes": model.size_bytes,
        "sha256": model.sha256,
        "max_abs_error": float(np.abs(y - testing.big_matmul_reference(x)).max()),
        "rows": len(result),
        "worker_python_peak_mib": int(worker.peak_mib),
        "seconds_session": round(loaded - started, 1),
        "seconds_load_and_hash": round(hashed - loaded, 1),
        "seconds_ship_and_score": round(scored - hashed, 1),
    }


def main(model_path: str, cache: str) -> dict[str, object]:
    """Two applications one after the other (the second finds the model in the disk cache),
    then this driver process's peak RSS."""
    first = score(model_path, cache)
    cached = os.stat(os.path.join(cache, str(first["sha256"]), "w.bin"))
    second = score(model_path, cache)
    again = os.stat(os.path.join(cache, str(first["sha256"]), "w.bin"))
    return {
        "first": first,
        "second": second,
        "cache_entry_kept": (cached.st_ino, cached.st_mtime_ns)
        == (again.st_ino, again.st_mtime_ns),
        "driver_python_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
