"""What runs on executors: Arrow batches in, model outputs out.

`run_partition` is a `mapInArrow` function (whole batches in, outputs appended); `run_columns`
an iterator `arrow_udf` function (only the input columns in, only the outputs out).

Everything here is pickled by reference (module functions) plus one plain `InferencePlan`
value, never a Transformer or a SparkSession.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.providers import ProviderPlan, gpu_id_from_resources, plan_providers
from sparkonnx.engine.sessions import SESSION_CACHE, ModelSession, SessionOptions
from sparkonnx.engine.tensors import arrow_type_for, column_to_tensor, tensor_to_arrow
from sparkonnx.spark_api.runtime.model_ref import ModelFilesRef, ModelRef
from sparkonnx.spark_api.runtime.where_ran import DeviceReport
from sparkonnx.spark_api.runtime.worker_logging import install_worker_logging

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
class FeedGroup:
    """Feeds for some rows of a batch that run on their own (e.g. the images of one size, for a
    model that takes any size): ``rows`` is the mask of the batch rows they hold."""

    feeds: dict[str, np.ndarray]
    rows: np.ndarray


@dataclass(frozen=True)
class PreparedBatch:
    """Model feeds made from a batch by an `InferencePlan.prepare` hook.

    ``rows`` marks the batch rows the feeds hold (None: every row); the other rows get null
    outputs. ``extra`` columns are appended after the outputs (e.g. a per-row error column).
    ``groups`` hold further rows (disjoint from ``rows`` and from each other), each run in its
    own ONNX Runtime call; their outputs are put back in row order.
    """

    feeds: dict[str, np.ndarray]
    rows: np.ndarray | None = None
    extra: tuple[tuple[str, pa.Array], ...] = field(default=())
    groups: tuple[FeedGroup, ...] = field(default=())


@dataclass(frozen=True)
class RowPlace:
    """Where a batch's rows are: the Spark partition, the position of the batch's first row
    in it, and the ``rowIdCol`` values; `label` names a row by all three in errors."""

    partition: int | None = None
    offset: int = 0
    id_column: str | None = None
    ids: pa.Array | None = None  # converted to Python only when an error names a row

    def label(self, i: int) -> str:
        """Row ``i`` of the batch as e.g. "row 2500 of partition 3 (id='a17')"."""
        where = f"partition {self.partition}" if self.partition is not None else "this task"
        text = f"row {self.offset + i} of {where}"
        if self.id_column is not None and self.ids is not None and i < len(self.ids):
            text += f" ({self.id_column}={self.ids[i].as_py()!r})"
        return text

    def next(self, rows: int) -> RowPlace:
        """The place of the batch after one of ``rows`` rows."""
        return dataclasses.replace(self, offset=self.offset + rows, ids=None)


def task_partition_id() -> int | None:
    """The Spark partition this code runs for (None outside a Spark task)."""
    try:
        from pyspark import TaskContext
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return None
    ctx = TaskContext.get()
    return None if ctx is None else int(ctx.partitionId())


#: (session, feeds, batch_size, output names, place=RowPlace) -> outputs by name.
RunHook = Callable[..., dict[str, np.ndarray]]


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
    #: Optional hook: (batch, place=RowPlace) -> PreparedBatch (a picklable module-level
    #: function or partial). None: each input column is converted with `column_to_tensor`.
    prepare: Callable[..., PreparedBatch] | None = None
    #: A column named in errors beside the row's partition and position (rowIdCol).
    row_id_column: str | None = None
    #: Optional hook: (session, feeds, batch_size, output names, place=RowPlace) -> outputs
    #: by name, one row per feed row (the text stages' length-bucketed runs). None:
    #: `ModelSession.run`.
    run: RunHook | None = None
    #: The executors' sparkonnx log level (`worker_logging`); None: their env var or WARNING.
    log_level: str | None = None
    #: Where tasks report the device their session uses (classic Spark; see `where_ran`).
    device_report: DeviceReport | None = None


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


def task_settings(plan: InferencePlan) -> tuple[ProviderPlan, SessionOptions]:
    """The providers and session options this task runs ``plan`` with: the GPU is the plan's
    ``deviceId``, else the first GPU of the task's Spark resources; threads follow its cores."""
    cpus, task_gpu = _task_resources()
    device_id = plan.device_id if plan.device_id is not None else task_gpu
    # a model kept on disk is big (over ON_DISK_BYTES): a pre-packed copy would double it
    prepack = not isinstance(plan.model, ModelFilesRef)
    options = SessionOptions(intra_op_threads=cpus, prepack_weights=prepack)
    return plan_providers(plan.device, device_id), options


def session_for(plan: InferencePlan) -> ModelSession:
    """The worker's cached session for this plan (built on first use in this process); in a
    task, the worker's log handler is installed first and the device used is reported."""
    install_worker_logging(plan.log_level)
    providers, options = task_settings(plan)
    session = SESSION_CACHE.get(plan.model.sha256, plan.model.load, providers, options)
    if plan.device_report is not None:
        plan.device_report.record(plan.model.sha256, session.device, session.providers)
    return session


def _prepare(plan: InferencePlan, batch: pa.RecordBatch, place: RowPlace) -> PreparedBatch:
    if plan.prepare is not None:
        return plan.prepare(batch, place=place)
    feeds = {
        spec.name: column_to_tensor(
            batch.column(column), column, spec, plan.allow_cast, label=place.label
        )
        for column, spec in plan.inputs
    }
    return PreparedBatch(feeds)


def _run(
    plan: InferencePlan, session: ModelSession, feeds: dict[str, np.ndarray], place: RowPlace
) -> dict[str, np.ndarray]:
    """The plan's outputs for ``feeds``, through its `run` hook when it has one."""
    names = [out.output for out in plan.outputs]
    if plan.run is not None:
        return plan.run(session, feeds, plan.batch_size, names, place=place)
    return session.run(feeds, plan.batch_size, names)


def _merge(parts: list[tuple[np.ndarray, pa.Array]], n: int, arrow_type: pa.DataType) -> pa.Array:
    """One column of ``n`` rows from (rows mask, values for its True rows) parts; null elsewhere."""
    if not parts:
        return pa.nulls(n, arrow_type)
    index = np.full(n, -1, np.int64)
    offset = 0
    for rows, _ in parts:
        where = np.flatnonzero(rows)
        index[where] = offset + np.arange(where.size)
        offset += where.size
    values = parts[0][1] if len(parts) == 1 else pa.concat_arrays([v for _, v in parts])
    return values.take(pa.array(index, mask=index < 0))


def _run_groups(
    plan: InferencePlan,
    session: ModelSession,
    batch: pa.RecordBatch,
    prepared: PreparedBatch,
    place: RowPlace,
) -> list[tuple[str, pa.Array]]:
    """The output columns of a prepared batch whose feeds leave rows out or come in groups."""
    n = batch.num_rows
    first = np.ones(n, bool) if prepared.rows is None else prepared.rows
    runs = [FeedGroup(prepared.feeds, first), *prepared.groups]
    parts: list[list[tuple[np.ndarray, pa.Array]]] = [[] for _ in plan.outputs]
    for run in runs:
        if not run.rows.any():
            continue
        results = _run(plan, session, run.feeds, place)
        for part, out in zip(parts, plan.outputs):
            part.append((run.rows, out.to_arrow(results[out.output], batch, run.rows)))
    return [(out.column, _merge(part, n, out.arrow_type)) for part, out in zip(parts, plan.outputs)]


def place_of(plan: InferencePlan, start: RowPlace, ids: pa.Array | None) -> RowPlace:
    """``start`` with this batch's ``rowIdCol`` values (read only when a row is named)."""
    if plan.row_id_column is None or ids is None:
        return start
    return dataclasses.replace(start, id_column=plan.row_id_column, ids=ids)


def infer_columns(
    plan: InferencePlan,
    session: ModelSession,
    batch: pa.RecordBatch,
    place: RowPlace | None = None,
) -> list[tuple[str, pa.Array]]:
    """(column name, values) of the model outputs for one batch, then any `prepare` extras.

    With a `prepare` hook, rows it leaves out get null outputs. ``place``: where the batch's
    rows are, for errors that name a row.
    """
    place = place or RowPlace(task_partition_id())
    if batch.num_rows == 0:
        empty = [(out.column, pa.array([], type=out.arrow_type)) for out in plan.outputs]
        if plan.prepare is not None:
            empty += list(plan.prepare(batch, place=place).extra)
        return empty
    prepared = _prepare(plan, batch, place)
    if prepared.groups or (prepared.rows is not None and not prepared.rows.all()):
        return _run_groups(plan, session, batch, prepared, place) + list(prepared.extra)
    results = _run(plan, session, prepared.feeds, place)
    columns = [(out.column, out.to_arrow(results[out.output], batch, None)) for out in plan.outputs]
    return columns + list(prepared.extra)


def infer_batch(
    plan: InferencePlan,
    session: ModelSession,
    batch: pa.RecordBatch,
    place: RowPlace | None = None,
) -> pa.RecordBatch:
    """One Arrow batch in, the same batch with one column per model output appended.

    With a `prepare` hook, rows it leaves out get null outputs, and its extra columns follow.
    """
    added = infer_columns(plan, session, batch, place)
    return pa.RecordBatch.from_arrays(
        [*batch.columns, *(values for _, values in added)],
        names=[*batch.schema.names, *(name for name, _ in added)],
    )


def run_partition(
    plan: InferencePlan, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The `mapInArrow` function: load (once per worker) and run the model on every batch."""
    session = session_for(plan)
    place = RowPlace(task_partition_id())
    ids_column = plan.row_id_column
    for batch in batches:
        ids = batch.column(ids_column) if ids_column in batch.schema.names else None
        yield infer_batch(plan, session, batch, place_of(plan, place, ids))
        place = place.next(batch.num_rows)


def run_columns(
    plan: InferencePlan, arrays: Iterator[pa.Array | tuple[pa.Array, ...]]
) -> Iterator[pa.Array]:
    """The iterator `arrow_udf` function: the model's input columns in, its outputs out.

    ``arrays`` yields one Arrow array per batch (one input column) or a tuple of them, in the
    order of ``plan.inputs`` (then the ``rowIdCol`` column, when the plan names one). Yields the
    output column, or a struct with one field per output
    (named after its column) when the model has several. Spark keeps the other columns on the
    JVM side, so only the inputs travel to Python and only the outputs travel back. A `prepare`
    hook (the image stages) gets a batch holding only the input columns.
    """
    session = session_for(plan)
    names = [column for column, _ in plan.inputs]
    place = RowPlace(task_partition_id())
    for args in arrays:
        columns = list(args) if isinstance(args, tuple) else [args]
        ids = columns.pop() if plan.row_id_column is not None else None  # passed last
        batch = pa.RecordBatch.from_arrays(columns, names=names)
        outputs = infer_columns(plan, session, batch, place_of(plan, place, ids))
        place = place.next(batch.num_rows)
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
