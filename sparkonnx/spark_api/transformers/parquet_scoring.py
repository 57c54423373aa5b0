"""`score_parquet`: an ONNX model over a Parquet table, read by the Python workers themselves.

The opt-in fast path for light models on array columns: the `sparkonnx` data source
(`sparkonnx.spark_api.runtime.parquet_source`) opens the row groups with pyarrow in each task,
so the JVM never copies the tensors into Arrow. Planning reuses ONNXTransformer: its Params,
mappings, column checks, output schema, precision and model shipping.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from pyspark.sql.pandas.types import from_arrow_type

from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import check_int
from sparkonnx.spark_api.runtime.executor_facts import ready_plan
from sparkonnx.spark_api.runtime.model_ref import ModelRef
from sparkonnx.spark_api.runtime.parquet_files import (
    ParquetTableError,
    open_dataset,
    partition_columns,
    refuse_table_formats,
)
from sparkonnx.spark_api.runtime.parquet_source import (
    DEFAULT_TARGET_BYTES,
    FORMAT_NAME,
    PLAN_OPTION,
    ScoringSpec,
    SparkOnnxDataSource,
    UriModelRef,
)
from sparkonnx.spark_api.session import default_parallelism, session_key
from sparkonnx.spark_api.shipping import INLINE_LIMIT_BYTES, ship_model
from sparkonnx.spark_api.transformers.onnx_transformer import ModelLike, ONNXTransformer

logger = logging.getLogger(__name__)

_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_data_source(spark: Any) -> None:
    """Make ``spark.read.format("sparkonnx")`` available in this session (once per session)."""
    key = session_key(spark)
    with _registered_lock:
        if key not in _registered:
            spark.dataSource.register(SparkOnnxDataSource)
            _registered.add(key)


def _spark_field(field: pa.Field, path: str) -> T.StructField:
    try:
        return T.StructField(field.name, from_arrow_type(field.type), nullable=True)
    except Exception as error:  # pyspark raises several types for unsupported Arrow types
        raise TypeError(
            f"column {field.name!r} of {path!r} has Arrow type {field.type}, which Spark cannot "
            f"hold ({error}); leave it out of keepColumns / the model inputs"
        ) from error


def _table_schema(arrow: pa.Schema, names: Sequence[str], path: str) -> T.StructType:
    """The Spark schema of the named columns of the table (errors name missing columns)."""
    missing = [name for name in names if name not in arrow.names]
    if missing:
        raise ValueError(
            f"columns {missing} are not in the Parquet table at {path!r}; its columns are: "
            f"{', '.join(arrow.names)}"
        )
    return T.StructType([_spark_field(arrow.field(name), path) for name in names])


def build_spec(
    stage: ONNXTransformer,
    path: str,
    keep_columns: Sequence[str],
    target_bytes: int,
    model_ref: ModelRef | None = None,
) -> tuple[ScoringSpec, OnnxModel]:
    """The scan of `path` by `stage`'s model with ONNXTransformer's checks and output schema.

    The plan holds `model_ref` (the shipped model) or, when None, a bare sha256 reference to
    replace before the scan runs.
    """
    if target_bytes < 1:
        raise ValueError(
            f"targetPartitionBytes must be a positive number of bytes, got {target_bytes}"
        )
    refuse_table_formats(path)
    dataset = open_dataset(path)
    model = stage.getModel()
    inputs, _ = stage._mappings(model)
    keep = list(dict.fromkeys(keep_columns))
    checked = keep + [column for column in inputs if column not in keep]
    plan, planned = stage._plan(_table_schema(dataset.schema, checked, path), model)
    if stage.getOutputFormat() != "array":
        raise ValueError(
            "score_parquet writes array outputs only; use array_to_vector on the result"
        )
    fields = [planned[name] for name in keep] + planned.fields[len(checked) :]
    plan = dataclasses.replace(plan, model=model_ref or ModelRef(model.sha256))
    spec = ScoringSpec(
        path=path,
        plan=plan,
        schema_json=T.StructType(fields).json(),
        partition_columns=tuple(c for c in partition_columns(dataset) if c in keep),
        target_bytes=target_bytes,
    )
    return spec, model


def score_parquet(
    spark: Any,
    path: str,
    *,
    modelFile: str | None = None,
    model: ModelLike | None = None,
    inputCol: str | None = None,
    outputCol: str | None = None,
    inputMapping: dict[str, str] | None = None,
    outputMapping: dict[str, str] | None = None,
    keepColumns: Sequence[str] = (),
    batchSize: int = 1024,
    device: str = "auto",
    deviceId: int | None = None,
    allowCast: bool = False,
    precision: str = "fp32",
    targetPartitionBytes: int = DEFAULT_TARGET_BYTES,
    minPartitions: int | None = None,
    **precisionOptions: Any,
) -> DataFrame:
    """A DataFrame of `keepColumns` plus the model outputs, scored straight from Parquet files.

    `path`: a Parquet file or folder (Hive partition folders become columns when kept) on any
    `pyarrow.fs` file system. Model Params as for ONNXTransformer; `precisionOptions` are its
    calibration Params (calibrationPath, calibrationRows, ...). Delta / Iceberg / Hudi folders
    are refused: read them with their format and use ONNXTransformer. Tasks hold about
    `targetPartitionBytes` of row groups, fewer bytes when that gives at least `minPartitions`
    tasks (default: the session's default parallelism, so a small table uses every core).
    """
    if isinstance(keepColumns, str):
        keepColumns = [keepColumns]
    given: dict[str, Any] = dict(modelFile=modelFile, model=model, inputCol=inputCol)
    given.update(outputCol=outputCol, inputMapping=inputMapping, outputMapping=outputMapping)
    given.update(deviceId=deviceId)
    stage = ONNXTransformer(
        **{k: v for k, v in given.items() if v is not None},
        batchSize=batchSize,
        device=device,
        allowCast=allowCast,
        precision=precision,
        **precisionOptions,
    )
    spec, onnx_model = build_spec(stage, path, keepColumns, targetPartitionBytes)
    if stage.getPrecision() != "fp32":
        onnx_model = stage._precision_model(onnx_model, spec.plan, spark.read.parquet(path))
    plan = dataclasses.replace(spec.plan, model=ship_model(spark, onnx_model))
    plan = ready_plan(spark, plan, "score_parquet", report=False)
    min_tasks = default_parallelism(spark) if minPartitions is None else minPartitions
    check_int("minPartitions", min_tasks, minimum=1)
    spec = dataclasses.replace(spec, plan=plan, min_tasks=min_tasks)
    register_data_source(spark)
    return spark.read.format(FORMAT_NAME).option(PLAN_OPTION, spec.encode()).load()


_OPTION_PARAMS = {
    "modelfile": "modelFile",
    "inputcol": "inputCol",
    "outputcol": "outputCol",
    "batchsize": "batchSize",
    "device": "device",
    "deviceid": "deviceId",
    "allowcast": "allowCast",
}
_OTHER_OPTIONS = ("path", "inputmapping", "outputmapping", "keepcolumns", "targetpartitionbytes")


def _option_value(name: str, value: str) -> Any:
    if name in ("batchSize", "deviceId"):
        return int(value)
    if name == "allowCast":
        return value.strip().lower() in ("true", "1", "yes")
    return value


def spec_from_options(options: dict[str, str]) -> ScoringSpec:
    """The scan ``spark.read.format("sparkonnx")`` describes (keys lower-cased, as Spark gives)."""
    unknown = sorted(set(options) - set(_OPTION_PARAMS) - set(_OTHER_OPTIONS))
    if unknown:
        allowed = [*_OPTION_PARAMS.values(), "inputMapping", "outputMapping", "keepColumns"]
        allowed.append("targetPartitionBytes")
        raise ValueError(
            f"unknown {FORMAT_NAME} options {unknown}; allowed: {allowed} (precision other than "
            "fp32: use sparkonnx.score_parquet)"
        )
    if not options.get("path"):
        raise ValueError(f'give the Parquet table: spark.read.format("{FORMAT_NAME}").load(path)')
    kwargs = {
        _OPTION_PARAMS[k]: _option_value(_OPTION_PARAMS[k], v)
        for k, v in options.items()
        if k in _OPTION_PARAMS
    }
    for key, param in (("inputmapping", "inputMapping"), ("outputmapping", "outputMapping")):
        if key in options:
            kwargs[param] = json.loads(options[key])
    stage = ONNXTransformer(**kwargs)
    keep = [c.strip() for c in options.get("keepcolumns", "").split(",") if c.strip()]
    target = int(options.get("targetpartitionbytes", DEFAULT_TARGET_BYTES))
    if "modelFile" not in kwargs:
        raise ParquetTableError(f'the {FORMAT_NAME} data source needs .option("modelFile", path)')
    spec, model = build_spec(stage, options["path"], keep, target)
    ref: ModelRef = (
        ModelRef(model.sha256, inline=model.model_bytes)
        if not model.on_disk and model.size_bytes <= INLINE_LIMIT_BYTES
        else UriModelRef(model.sha256, uri=kwargs["modelFile"])
    )
    return dataclasses.replace(spec, plan=dataclasses.replace(spec.plan, model=ref))
