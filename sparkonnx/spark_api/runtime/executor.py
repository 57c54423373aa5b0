"""What runs on executors: Arrow batches in, model outputs out.

`run_partition` is a `mapInArrow` function (whole batches in, outputs appended); `run_columns`
an iterator `arrow_udf` function (only the input columns in, only the outputs out).

Everything here is pickled by reference (module functions) plus one plain `InferencePlan`
value, never a Transformer or a SparkSession.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.providers import gpu_id_from_resources, plan_providers
from sparkonnx.engine.sessions import SESSION_CACHE, ModelSession, SessionOptions
from sparkonnx.engine.tensors import arrow_type_for, column_to_tensor, tensor_to_arrow
from sparkonnx.spark_api.runtime.model_ref import ModelRef

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

    def to_arrow(
        self, tensor: np.ndarray, batch: pa.RecordBatch, rows: np.ndarray | None
    ) -> pa.Array:
        """The output column for the rows fed (``rows``: their mask in ``batch``, None: all).

        Subclasses override this (and `arrow_type`) to build other column types.
        """
        return tensor_to_arrow(tensor.astype(self.dtype, copy=False))


@dataclass(frozen=True)
class PreparedBatch:
    """Model feeds made from a batch by an `InferencePlan.prepare` hook.

    ``rows`` marks the batch rows the feeds hold (None: every row); the other rows get null
    outputs. ``extra`` columns are appended after the outputs (e.g. a per-row error column).
    """

    feeds: dict[str, np.ndarray]
    rows: np.ndarray | None = None
    extra: tuple[tuple[str, pa.Array], ...] = field(default=())


RunHook = Callable[[ModelSession, dict[str, np.ndarray], int, list[str]], dict[str, np.ndarray]]


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
    #: Optional hook: batch -> PreparedBatch (a picklable module-level function or partial).
    #: None: each input column is converted with `column_to_tensor`.
    prepare: Callable[[pa.RecordBatch], PreparedBatch] | None = None
    #: Optional hook: (session, feeds, batch_size, output names) -> outputs by name, one row
    #: per feed row (the text stages' length-bucketed runs). None: `ModelSession.run`.
    run: RunHook | None = None


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


def _prepare(plan: InferencePlan, batch: pa.RecordBatch) -> PreparedBatch:
    if plan.prepare is not None:
        return plan.prepare(batch)
    feeds = {
        spec.name: column_to_tensor(batch.column(column), column, spec, plan.allow_cast)
        for column, spec in plan.inputs
    }
    return PreparedBatch(feeds)


def _scatter(values: pa.Array, rows: np.ndarray) -> pa.Array:
    """``values`` (one per True in ``rows``) spread over len(rows) rows, null elsewhere."""
    index = np.cumsum(rows) - 1
    return values.take(pa.array(index, mask=~rows))


def infer_columns(
    plan: InferencePlan, session: ModelSession, batch: pa.RecordBatch
) -> list[tuple[str, pa.Array]]:
    """(column name, values) of the model outputs for one batch, then any `prepare` extras.

    With a `prepare` hook, rows it leaves out get null outputs.
    """
    if batch.num_rows == 0:
        empty = [(out.column, pa.array([], type=out.arrow_type)) for out in plan.outputs]
        if plan.prepare is not None:
            empty += list(plan.prepare(batch).extra)
        return empty
    prepared = _prepare(plan, batch)
    rows = prepared.rows
    if rows is not None and rows.all():
        rows = None
    columns: list[tuple[str, pa.Array]] = []
    if rows is not None and not rows.any():
        columns += [(out.column, pa.nulls(batch.num_rows, out.arrow_type)) for out in plan.outputs]
    else:
        names = [out.output for out in plan.outputs]
        if plan.run is not None:
            results = plan.run(session, prepared.feeds, plan.batch_size, names)
        else:
            results = session.run(prepared.feeds, plan.batch_size, names)
        for out in plan.outputs:
            values = out.to_arrow(results[out.output], batch, rows)
            columns.append((out.column, values if rows is None else _scatter(values, rows)))
    return columns + list(prepared.extra)


def infer_batch(
    plan: InferencePlan, session: ModelSession, batch: pa.RecordBatch
) -> pa.RecordBatch:
    """One Arrow batch in, the same batch with one column per model output appended.

    With a `prepare` hook, rows it leaves out get null outputs, and its extra columns follow.
    """
    added = infer_columns(plan, session, batch)
    return pa.RecordBatch.from_arrays(
        [*batch.columns, *(values for _, values in added)],
        names=[*batch.schema.names, *(name for name, _ in added)],
    )


def run_partition(
    plan: InferencePlan, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The `mapInArrow` function: load (once per worker) and run the model on every batch."""
    session = session_for(plan)
    for batch in batches:
        yield infer_batch(plan, session, batch)


def run_columns(
    plan: InferencePlan, arrays: Iterator[pa.Array | tuple[pa.Array, ...]]
) -> Iterator[pa.Array]:
    """The iterator `arrow_udf` function: the model's input columns in, its outputs out.

    ``arrays`` yields one Arrow array per batch (one input column) or a tuple of them, in the
    order of ``plan.inputs``. Yields the output column, or a struct with one field per output
    (named after its column) when the model has several. Spark keeps the other columns on the
    JVM side, so only the inputs travel to Python and only the outputs travel back. A `prepare`
    hook (the image stages) gets a batch holding only the input columns.
    """
    session = session_for(plan)
    names = [column for column, _ in plan.inputs]
    for args in arrays:
        columns = list(args) if isinstance(args, tuple) else [args]
        batch = pa.RecordBatch.from_arrays(columns, names=names)
        outputs = infer_columns(plan, session, batch)
        if len(outputs) == 1:
            yield outputs[0][1]
        else:
            yield pa.StructArray.from_arrays(
                [values for _, values in outputs], names=[name for name, _ in outputs]
            )


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
