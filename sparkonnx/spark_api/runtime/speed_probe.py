"""The executor side of the int8 speed check: time fp32 and int8 models inside one task.

The driver ships the models and a few calibration rows (as an .npz) by reference and runs a
one-row DataFrame through `time_in_task` with `mapInArrow`; the task times the models with as
many ONNX Runtime threads as it has cores (`spark.task.cpus`) and returns the seconds with
the executor's CPU features, so the verdict is about the machines that will run the model.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa

from sparkonnx.engine.cpu_features import cpu_features
from sparkonnx.engine.timing import time_models
from sparkonnx.spark_api.runtime.model_ref import ModelRef

#: What the one timing task returns.
PROBE_SCHEMA = "seconds array<double>, cpu string"


def time_in_task(
    models: Sequence[ModelRef], rows: ModelRef, batch: int, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """mapInArrow body: one row of seconds per pass (best round, models in order) + CPU JSON."""
    from pyspark import TaskContext

    for _ in batches:  # the one input row only starts the task
        pass
    context = TaskContext.get()
    threads = context.cpus() if context is not None else 1
    data = rows.load()
    raw = data if isinstance(data, bytes) else open(data, "rb").read()  # noqa: SIM115
    with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    count = len(next(iter(arrays.values())))
    feeds = [{k: v[i : i + batch] for k, v in arrays.items()} for i in range(0, count, batch)]
    seconds = time_models([m.load() for m in models], feeds, threads=threads)
    cpu = cpu_features()
    record = cpu.to_dict() | {"summary": cpu.summary(), "threads": threads}
    yield pa.RecordBatch.from_pydict(
        {"seconds": [seconds], "cpu": [json.dumps(record)]},
        schema=pa.schema([("seconds", pa.list_(pa.float64())), ("cpu", pa.string())]),
    )
