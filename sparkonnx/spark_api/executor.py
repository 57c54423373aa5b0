"""What runs inside `mapInArrow` on executors: Arrow batches in, model outputs appended.

Everything here is pickled by reference (module functions) plus one plain `InferencePlan`
value, never a Transformer or a SparkSession.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.providers import gpu_id_from_resources, plan_providers
from sparkonnx.engine.sessions import SESSION_CACHE, ModelSession, SessionOptions
from sparkonnx.engine.tensors import arrow_type_for, column_to_tensor, tensor_to_arrow
from sparkonnx.spark_api.shipping import ModelRef

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputColumn:
    """A model output, the column it becomes, and the numpy dtype / rank Spark will hold."""

    output: str
    column: str
    dtype: str
    rank: int

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type_for(np.dtype(self.dtype), self.rank)


@dataclass(frozen=True)
class InferencePlan:
    """Plain values a task needs: the model reference, the column <-> tensor maps and options."""

    model: ModelRef
    inputs: tuple[tuple[str, TensorSpec], ...]  # (column, model input spec)
    outputs: tuple[OutputColumn, ...]
    batch_size: int
    device: str = "auto"
    device_id: int | None = None
    allow_cast: bool = False


def _task_resources() -> tuple[int | None, int | None]:
    """(cores this task owns, GPU id from its resources) when running inside a Spark task."""
    try:
        from pyspark import TaskContext
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return None, None
    ctx = TaskContext.get()
    if ctx is None:
        return None, None
    return ctx.cpus(), gpu_id_from_resources(ctx.resources())


def session_for(plan: InferencePlan) -> ModelSession:
    """The worker's cached session for this plan (built on first use in this process)."""
    cpus, task_gpu = _task_resources()
    device_id = plan.device_id if plan.device_id is not None else task_gpu
    providers = plan_providers(plan.device, device_id)
    options = SessionOptions(intra_op_threads=cpus)
    return SESSION_CACHE.get(plan.model.sha256, plan.model.load, providers, options)


def infer_batch(
    plan: InferencePlan, session: ModelSession, batch: pa.RecordBatch
) -> pa.RecordBatch:
    """One Arrow batch in, the same batch with one column per model output appended."""
    names = list(batch.schema.names)
    columns = list(batch.columns)
    out_names = [out.column for out in plan.outputs]
    if batch.num_rows == 0:
        empty = [pa.array([], type=out.arrow_type) for out in plan.outputs]
        return pa.RecordBatch.from_arrays(columns + empty, names=names + out_names)
    feeds = {
        spec.name: column_to_tensor(batch.column(column), column, spec, plan.allow_cast)
        for column, spec in plan.inputs
    }
    results = session.run(feeds, plan.batch_size, [out.output for out in plan.outputs])
    for out in plan.outputs:
        columns.append(tensor_to_arrow(results[out.output].astype(out.dtype, copy=False)))
    return pa.RecordBatch.from_arrays(columns, names=names + out_names)


def run_partition(
    plan: InferencePlan, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The `mapInArrow` function: load (once per worker) and run the model on every batch."""
    session = session_for(plan)
    for batch in batches:
        yield infer_batch(plan, session, batch)


def session_stats(_: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A `mapInArrow` function reporting this worker's session cache (pid, model, builds)."""
    rows = SESSION_CACHE.builds_by_model.items()
    yield pa.RecordBatch.from_arrays(
        [
            pa.array([os.getpid()] * len(rows), pa.int64()),
            pa.array([sha for sha, _ in rows], pa.string()),
            pa.array([count for _, count in rows], pa.int64()),
        ],
        names=["pid", "model_sha256", "sessions_built"],
    )
