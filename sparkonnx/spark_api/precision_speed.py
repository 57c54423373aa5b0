"""Driver side of the int8 speed check for stages: time the candidates in one executor task.

`executor_timer(spark)` is the `Timer` a stage hands to `quantize`: the fp32 model, the int8
candidates that passed the gate and a few calibration rows are shipped by reference (small
ones inline, larger ones as Spark files), and a one-row DataFrame runs
`runtime.speed_probe.time_in_task` on an executor, which reports the seconds and its CPU.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
import onnx

from sparkonnx.converters.calibration import CalibrationSet
from sparkonnx.converters.int8_search import Timer, Timing
from sparkonnx.spark_api.runtime.speed_probe import PROBE_SCHEMA, time_in_task
from sparkonnx.spark_api.shipping import ship_bytes


def executor_timer(spark: Any) -> Timer:
    """A `Timer` that measures inside one task of `spark`'s executors."""

    def timer(
        fp32: onnx.ModelProto,
        models: Sequence[onnx.ModelProto],
        rows: CalibrationSet,
        batch: int,
    ) -> Timing:
        refs = [ship_bytes(spark, m.SerializeToString(), ".onnx") for m in (fp32, *models)]
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {k: np.ascontiguousarray(v) for k, v in rows.arrays.items()}
        np.savez(buffer, **arrays)
        rows_ref = ship_bytes(spark, buffer.getvalue(), ".npz")
        probe = partial(time_in_task, refs, rows_ref, batch)
        (row,) = spark.range(0, 1, 1, 1).mapInArrow(probe, PROBE_SCHEMA).collect()
        cpu = json.loads(row["cpu"])
        return Timing(tuple(float(s) for s in row["seconds"]), rows.rows, "one executor task", cpu)

    return timer
