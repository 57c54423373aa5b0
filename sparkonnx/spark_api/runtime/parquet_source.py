"""The `sparkonnx` Python data source: Parquet row groups in, model outputs out, no JVM copy.

Each task opens its row groups with `pyarrow.parquet`, reads only the model's input columns
and the kept ones, runs the model through the same `infer_columns` / session cache as
ONNXTransformer, and yields Arrow batches of exactly the declared schema.

Planned either by `score_parquet` on the driver (the plan travels encoded in an internal
option) or, for ``spark.read.format("sparkonnx").option("modelFile", ...)``, from the user's
options in the data source's planner process (`sparkonnx.spark_api.transformers.parquet_scoring`,
imported lazily: executors never import it).
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from sparkonnx.engine.tensors import TensorConversionError
from sparkonnx.spark_api.runtime.code_names import UntrustedCodeError
from sparkonnx.spark_api.runtime.executor import (
    InferencePlan,
    RowPlace,
    infer_columns,
    session_for,
    task_partition_id,
)
from sparkonnx.spark_api.runtime.model_ref import ModelRef
from sparkonnx.spark_api.runtime.parquet_files import (
    FileSlice,
    ParquetTableError,
    filesystem_for,
    plan_tasks,
)

FORMAT_NAME = "sparkonnx"
#: The option `score_parquet` passes its driver-side plan in (base64 of a pickled ScoringSpec,
#: read back by `_PlanUnpickler`, which rebuilds sparkonnx's plan dataclasses and nothing else).
PLAN_OPTION = "__sparkonnx_plan"
#: Rows per Arrow batch read from a row group (the model still runs in `batchSize` slices).
READ_ROWS = 10_000
DEFAULT_TARGET_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class ScoringSpec:
    """Everything a scan needs: the table, the inference plan and the declared output schema."""

    path: str
    plan: InferencePlan
    schema_json: str  # the declared Spark schema: kept columns, then the model outputs
    partition_columns: tuple[str, ...] = ()
    target_bytes: int = DEFAULT_TARGET_BYTES
    min_tasks: int = 1  # the session's parallelism: small tables are cut to give every core work

    @property
    def schema(self) -> StructType:
        return StructType.fromJson(json.loads(self.schema_json))

    def encode(self) -> str:
        """This spec as an option value."""
        return base64.b64encode(pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)).decode()

    @staticmethod
    def decode(value: str) -> ScoringSpec:
        """The spec `encode` made; an option naming any other code is refused, never run."""
        try:
            spec = _PlanUnpickler(io.BytesIO(base64.b64decode(value))).load()
        except UntrustedCodeError:
            raise
        except Exception as error:
            raise ParquetTableError(
                f"option {PLAN_OPTION} is not a plan made by sparkonnx.score_parquet ({error}); "
                "set modelFile / inputCol / outputCol options instead"
            ) from error
        if not isinstance(spec, ScoringSpec):
            raise ParquetTableError(f"option {PLAN_OPTION} does not hold a ScoringSpec")
        return spec


#: Where the plan's classes live (the executor-side rooms: importing them imports no converters).
_PLAN_MODULES = ("sparkonnx.spark_api.runtime.", "sparkonnx.engine.")


class _PlanUnpickler(pickle.Unpickler):
    """Rebuilds only the dataclasses of sparkonnx's executor-side modules and numpy dtypes.

    The plan option is a string anyone can set (or store in a catalog table's OPTIONS), so
    reading it must not import or call anything else: a plain `pickle.loads` would run any
    callable the string names.
    """

    def find_class(self, module: str, name: str) -> Any:
        if module == "numpy" and name == "dtype":
            return super().find_class(module, name)
        if module.startswith(_PLAN_MODULES) and "." not in name:
            found = super().find_class(module, name)
            if (
                isinstance(found, type)
                and dataclasses.is_dataclass(found)
                and found.__module__ == module
            ):
                return found
        raise UntrustedCodeError(
            f"option {PLAN_OPTION} names {module}.{name}, which is not one of sparkonnx's plan "
            "classes; a plan option is refused rather than run (it must come from "
            "sparkonnx.score_parquet in this application)"
        )


@dataclass(frozen=True)
class UriModelRef(ModelRef):
    """A model every executor reads itself from a path or URI (``format("sparkonnx")`` with a
    large ``modelFile``); the session cache still builds it once per worker, by sha256."""

    uri: str = ""

    def load(self) -> bytes | str:
        """The local path, or the bytes read through pyarrow.fs."""
        fs, inner = filesystem_for(self.uri)
        if isinstance(fs, pafs.LocalFileSystem):
            if not os.path.exists(inner):
                raise FileNotFoundError(f"modelFile {self.uri!r} is not readable on this executor")
            return inner
        with fs.open_input_stream(inner) as stream:
            return bytes(stream.read())


@dataclass(frozen=True)
class RowGroupTask(InputPartition):
    """One Spark task: a few files' row groups."""

    slices: tuple[FileSlice, ...]


def _file_columns(spec: ScoringSpec) -> list[str]:
    """Columns read from the files: the model inputs, then kept non-partition columns."""
    outputs = {out.column for out in spec.plan.outputs}
    wanted = [column for column, _ in spec.plan.inputs]
    for name in spec.schema.fieldNames():
        if name not in outputs and name not in spec.partition_columns and name not in wanted:
            wanted.append(name)
    return wanted


def _assemble(
    spec: ScoringSpec,
    target: pa.Schema,
    batch: pa.RecordBatch,
    outputs: list[tuple[str, pa.Array]],
    partition_values: dict[str, object],
) -> pa.RecordBatch:
    """The declared batch: kept columns, partition values and outputs, cast to Spark's types."""
    produced = dict(outputs)
    arrays = []
    for field in target:
        if field.name in produced:
            values = produced[field.name]
        elif field.name in spec.partition_columns:
            scalar = pa.scalar(partition_values.get(field.name), field.type)
            values = pa.repeat(scalar, batch.num_rows)
        else:
            values = batch.column(field.name)
        arrays.append(values if values.type == field.type else values.cast(field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=target)


class ParquetScoringReader(DataSourceReader):
    """Plans row-group tasks on the driver; scores them on executors."""

    def __init__(self, spec: ScoringSpec) -> None:
        self.spec = spec

    def partitions(self) -> list[RowGroupTask]:
        """Row groups grouped into tasks of about `targetPartitionBytes` (smaller for tables
        that would otherwise give fewer tasks than the session has cores)."""
        tasks = plan_tasks(self.spec.path, self.spec.target_bytes, self.spec.min_tasks)
        return [RowGroupTask(tuple(slices)) for slices in tasks] or [RowGroupTask(())]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Score the task's row groups, one Arrow batch of at most READ_ROWS rows at a time."""
        assert isinstance(partition, RowGroupTask)
        spec = self.spec
        target = to_arrow_schema(spec.schema, timezone="UTC")
        columns = _file_columns(spec)
        fs, _ = filesystem_for(spec.path)
        session = session_for(spec.plan) if partition.slices else None
        place = RowPlace(task_partition_id())  # errors name the row's position in this task
        for piece in partition.slices:
            values = dict(piece.partition_values)
            for batch in _batches(fs, piece, columns):
                assert session is not None
                try:
                    outputs = infer_columns(spec.plan, session, batch, place)
                    place = place.next(batch.num_rows)
                except TensorConversionError as error:
                    raise TensorConversionError(
                        f"{error} (in Parquet file {piece.path!r}, row groups {piece.row_groups})"
                    ) from error
                yield _assemble(spec, target, batch, outputs, values)


def _batches(fs: Any, piece: FileSlice, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """The slice's row groups as batches of `columns`; errors name the file."""
    try:
        parquet = pq.ParquetFile(piece.path, filesystem=fs)
        yield from parquet.iter_batches(
            batch_size=READ_ROWS, row_groups=list(piece.row_groups), columns=columns
        )
    except (pa.ArrowException, OSError) as error:
        raise ParquetTableError(f"cannot read Parquet file {piece.path!r}: {error}") from error


class SparkOnnxDataSource(DataSource):
    """``spark.read.format("sparkonnx")``: score a Parquet table with an ONNX model.

    Options: ``path`` (or ``load(path)``), ``modelFile``, ``inputCol`` / ``outputCol`` or
    ``inputMapping`` / ``outputMapping`` (JSON objects), ``keepColumns`` (comma-separated),
    ``batchSize``, ``device``, ``deviceId``, ``allowCast``, ``targetPartitionBytes``.
    """

    @classmethod
    def name(cls) -> str:
        return FORMAT_NAME

    def _spec(self) -> ScoringSpec:
        options = {key.lower(): value for key, value in self.options.items()}
        encoded = options.pop(PLAN_OPTION, None)
        if encoded:
            return ScoringSpec.decode(encoded)
        from sparkonnx.spark_api.transformers.parquet_scoring import spec_from_options

        return spec_from_options(options)

    def schema(self) -> StructType:
        """Kept columns (as in the files), then one column per model output."""
        return self._spec().schema

    def reader(self, schema: StructType) -> DataSourceReader:
        """The reader of this scan (`schema` is ours: user schemas are refused)."""
        spec = self._spec()
        if schema.json() != spec.schema.json():
            raise ValueError(
                f"the {FORMAT_NAME} data source derives its schema from the files and the model; "
                f"do not pass .schema(...) (given {schema.simpleString()}, derived "
                f"{spec.schema.simpleString()})"
            )
        return ParquetScoringReader(spec)
