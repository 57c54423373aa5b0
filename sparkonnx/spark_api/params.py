"""Shared Params for sparkonnx stages, camelCase as in pyspark.ml (one definition each).

Each Param is declared once, in a mixin holding it with its typed getter and a setter that
returns the stage itself (`Self`). A stage lists the mixins of exactly the Params its
`__init__` accepts and uses; Params used by one room only live in that room
(`transformers/image_params.py`, `training/keras_params.py`).

Adding a Param (say `scaleHint`):

1. a mixin `HasScaleHint(Params)` here (or in the room's params module) with the `Param`
   (its doc says what it does and what it takes), `getScaleHint` and `setScaleHint -> Self`,
   and its default set with `self._setDefault(...)` in the stage's `__init__`;
2. the mixin among the stage's bases and `scaleHint=<the same default>` in its `__init__`;
3. a sample value in `tests/spark_api/test_stage_params.py` (`SAMPLES`): that test walks
   every public stage and checks each Param is an `__init__` keyword with the Param's default,
   has a doc, a getter and a setter, and survives save / load.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param import shared as pyspark_shared
from typing_extensions import Self

from sparkonnx.converters.precisions import validate_precision
from sparkonnx.engine.providers import validate_device, validate_device_id
from sparkonnx.engine.sessions import validate_batch_size
from sparkonnx.errors import InvalidParamError, check_int, check_one_of


def warn_ignored(stage: str, argument: str, replacement: str) -> None:
    """A DeprecationWarning for a sparkdl argument that means nothing any more: it is accepted
    (not a TypeError) and ignored, and the message says what replaced it."""
    warnings.warn(
        f"{stage}({argument}=...) is accepted for sparkdl code and ignored: {replacement}",
        DeprecationWarning,
        stacklevel=4,  # warn_ignored <- __init__ <- pyspark's keyword_only <- the caller
    )


def _to_str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"expected a dict of str -> str, got {value!r}")
    return dict(value)


# Value checks raise InvalidParamError (a ValueError, which pyspark's setters pass through
# unchanged) from the same validator the engine / converters use; wrong types raise TypeError.
def _to_device_id(value: Any) -> int:
    return validate_device_id(TypeConverters.toInt(value))


def _to_output_format(value: Any) -> str:
    return check_one_of(
        "outputFormat",
        value,
        ("array", "vector"),
        fix="'vector' gives Spark ML DenseVectors (rank-2 outputs only)",
    )


def int_at_least(name: str, minimum: int, fix: str = "") -> Callable[[Any], int]:
    """A Param type converter for a count: an integer >= ``minimum`` (pyspark's toInt first, so
    2.0 is 2), else `check_int`'s InvalidParamError naming the Param ``name`` and ``fix``."""

    def convert(value: Any) -> int:
        return check_int(name, TypeConverters.toInt(value), minimum=minimum, fix=fix)

    return convert


def _to_positive_int(value: Any) -> int:
    return validate_batch_size(TypeConverters.toInt(value))


def set_given(stage: Params, kwargs: Mapping[str, Any]) -> None:
    """Set the `__init__` keyword arguments that were given (None leaves a Param unset)."""
    stage._set(**{k: v for k, v in kwargs.items() if v is not None})


class HasInputCol(pyspark_shared.HasInputCol):
    """pyspark's inputCol, with its setter."""

    def setInputCol(self, value: str) -> Self:
        return self._set(inputCol=value)


class HasOutputCol(pyspark_shared.HasOutputCol):
    """pyspark's outputCol (default `<uid>__output`), with its setter."""

    def setOutputCol(self, value: str) -> Self:
        return self._set(outputCol=value)


class HasLabelCol(pyspark_shared.HasLabelCol):
    """pyspark's labelCol (default 'label'), with its setter."""

    def setLabelCol(self, value: str) -> Self:
        return self._set(labelCol=value)


class HasSeed(pyspark_shared.HasSeed):
    """pyspark's seed, with its setter (stages set their own default, 0)."""

    def setSeed(self, value: int) -> Self:
        return self._set(seed=value)


class HasModelFile(Params):
    """modelFile: the file the stage's model is read from, on the driver."""

    modelFile: Param[str] = Param(
        Params._dummy(),
        "modelFile",
        "path (readable by the driver) of the stage's model file: ONNX (.onnx) for "
        "ONNXTransformer and ImageTransformer; Keras (.keras, legacy .h5) for KerasTransformer "
        "and, as the model training starts from, the Keras estimators; either for "
        "KerasImageFileTransformer",
        TypeConverters.toString,
    )

    def getModelFile(self) -> str:
        return self.getOrDefault(self.modelFile)

    def setModelFile(self, value: str) -> Self:
        return self._set(modelFile=value)


class HasInputMapping(Params):
    inputMapping: Param[dict[str, str]] = Param(
        Params._dummy(), "inputMapping", "{input column: model input name}", _to_str_dict
    )

    def getInputMapping(self) -> dict[str, str]:
        return self.getOrDefault(self.inputMapping)

    def setInputMapping(self, value: dict[str, str]) -> Self:
        return self._set(inputMapping=value)


class HasOutputMapping(Params):
    outputMapping: Param[dict[str, str]] = Param(
        Params._dummy(), "outputMapping", "{model output name: output column}", _to_str_dict
    )

    def getOutputMapping(self) -> dict[str, str]:
        return self.getOrDefault(self.outputMapping)

    def setOutputMapping(self, value: dict[str, str]) -> Self:
        return self._set(outputMapping=value)


class HasTensorMappings(HasInputMapping, HasOutputMapping):
    """inputMapping and outputMapping."""


class HasRuntimeOptions(Params):
    """batchSize, device, deviceId: how executors run the model."""

    batchSize: Param[int] = Param(
        Params._dummy(), "batchSize", "rows per ONNX Runtime call", _to_positive_int
    )
    device: Param[str] = Param(
        Params._dummy(),
        "device",
        "'auto' (CUDA when usable, else CPU), 'cpu' or 'cuda'",
        validate_device,
    )
    deviceId: Param[int] = Param(
        Params._dummy(),
        "deviceId",
        "GPU ordinal; unset: the task's GPU resource if any, else 0",
        _to_device_id,
    )

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def setBatchSize(self, value: int) -> Self:
        return self._set(batchSize=value)

    def getDevice(self) -> str:
        return self.getOrDefault(self.device)

    def setDevice(self, value: str) -> Self:
        return self._set(device=value)

    def getDeviceId(self) -> int | None:
        return self.getOrDefault(self.deviceId) if self.isDefined(self.deviceId) else None

    def setDeviceId(self, value: int) -> Self:
        return self._set(deviceId=value)


class HasRowIdCol(Params):
    """rowIdCol: a column whose value names a row in errors (beside partition and position)."""

    rowIdCol: Param[str] = Param(
        Params._dummy(),
        "rowIdCol",
        "an id-like column (e.g. 'id'); its value is named, beside the row's partition and "
        "position, when a row cannot be converted or is invalid. Used only in messages",
        TypeConverters.toString,
    )

    def getRowIdCol(self) -> str | None:
        return self.getOrDefault(self.rowIdCol) if self.isDefined(self.rowIdCol) else None

    def setRowIdCol(self, value: str) -> Self:
        return self._set(rowIdCol=value)

    def _checked_row_id_col(self, columns: list[str]) -> str | None:
        """rowIdCol, after checking that the DataFrame has it."""
        name = self.getRowIdCol()
        if name is not None and name not in columns:
            raise InvalidParamError(
                f"rowIdCol {name!r} is not a column of the DataFrame; its columns are "
                f"{columns}. Name an id-like column (it is used only in error messages)"
            )
        return name


class HasOutputFormat(Params):
    outputFormat: Param[str] = Param(
        Params._dummy(),
        "outputFormat",
        "'array' (default) or 'vector' (Spark ML DenseVector; rank-2 outputs only)",
        _to_output_format,
    )

    def getOutputFormat(self) -> str:
        return self.getOrDefault(self.outputFormat)

    def setOutputFormat(self, value: str) -> Self:
        return self._set(outputFormat=value)


class HasTensorOutputOptions(HasOutputFormat):
    allowCast: Param[bool] = Param(
        Params._dummy(),
        "allowCast",
        "allow lossy casts of input columns to the model's input types (e.g. double -> float)",
        TypeConverters.toBoolean,
    )

    def getAllowCast(self) -> bool:
        return self.getOrDefault(self.allowCast)

    def setAllowCast(self, value: bool) -> Self:
        return self._set(allowCast=value)


def _to_tolerance(value: Any) -> dict[str, float]:
    allowed = ("top1", "cosine", "max_rel", "min_rows", "min_speedup", "search_seconds")
    message = (
        f"precisionTolerance must be a dict with keys among {allowed} and number values, "
        f"e.g. {{'top1': 0.99, 'cosine': 0.99, 'min_rows': 16}}; got {value!r}"
    )
    if not isinstance(value, dict):
        raise TypeError(message)
    if not all(k in allowed and isinstance(v, int | float) for k, v in value.items()):
        raise InvalidParamError(message)
    return {k: float(v) for k, v in value.items()}


_to_calibration_rows = int_at_least(
    "calibrationRows",
    2,
    fix="Give 2 or more rows (100+ recommended; a quarter are held out for the accuracy gate)",
)


class HasPrecision(Params):
    """precision ('fp32', 'int8', 'int8-static', 'int8-dynamic', 'fp16') and how it is made.

    'int8' is static (calibrated) for convolutional graphs and dynamic for MatMul graphs. It is
    calibrated once on `calibrationRows` rows drawn (seeded) from the DataFrame being
    transformed, or on `calibrationPath`; a short search of int8 configurations is judged by an
    accuracy gate against fp32 on held-out rows, the passing ones are timed in one executor
    task, and the fastest is kept unless under `precisionTolerance` (thresholds, 'min_speedup',
    'search_seconds'). See sparkonnx.spark_api.precision.
    """

    precision: Param[str] = Param(
        Params._dummy(),
        "precision",
        "'fp32' (default), 'int8' (static for convolutional graphs, dynamic for MatMul graphs; "
        "used only where it is faster), 'int8-static' / 'int8-dynamic' (weights only) force "
        "one, or 'fp16' (GPUs; no speed-up on CPU)",
        validate_precision,
    )
    calibrationPath: Param[str] = Param(
        Params._dummy(),
        "calibrationPath",
        "int8 calibration data readable by the driver: a folder of images, or a .npy / .npz / "
        ".parquet of input tensors; unset: a sample of the DataFrame being transformed",
        TypeConverters.toString,
    )
    calibrationRows: Param[int] = Param(
        Params._dummy(),
        "calibrationRows",
        "rows sampled for calibration and the accuracy gate (a quarter are held out for the gate)",
        _to_calibration_rows,
    )
    calibrationSeed: Param[int] = Param(
        Params._dummy(), "calibrationSeed", "seed of the calibration sample", TypeConverters.toInt
    )
    precisionTolerance: Param[dict[str, float]] = Param(
        Params._dummy(),
        "precisionTolerance",
        "accuracy gate thresholds vs fp32: {'top1': min agreement, 'cosine': min mean cosine, "
        "'max_rel': max error / output range, 'min_rows': fewest held-out rows, 'min_speedup': "
        "int8 must run this many times as fast as fp32 in an executor task, 'search_seconds': "
        "budget of the int8 configuration search (0: the single MinMax try)}; defaults 0.99, "
        "0.99, 0.05, 16, 1.2, 120",
        _to_tolerance,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(precision="fp32", calibrationRows=128, calibrationSeed=0)

    def getPrecision(self) -> str:
        return self.getOrDefault(self.precision)

    def setPrecision(self, value: str) -> Self:
        return self._set(precision=value)

    def getCalibrationPath(self) -> str | None:
        return (
            self.getOrDefault(self.calibrationPath)
            if self.isDefined(self.calibrationPath)
            else None
        )

    def setCalibrationPath(self, value: str) -> Self:
        return self._set(calibrationPath=value)

    def getCalibrationRows(self) -> int:
        return self.getOrDefault(self.calibrationRows)

    def setCalibrationRows(self, value: int) -> Self:
        return self._set(calibrationRows=value)

    def getCalibrationSeed(self) -> int:
        return self.getOrDefault(self.calibrationSeed)

    def setCalibrationSeed(self, value: int) -> Self:
        return self._set(calibrationSeed=value)

    def getPrecisionTolerance(self) -> dict[str, float]:
        if not self.isDefined(self.precisionTolerance):
            return {}
        value: dict[str, float] = self.getOrDefault(self.precisionTolerance)
        return dict(value)

    def setPrecisionTolerance(self, value: dict[str, float]) -> Self:
        return self._set(precisionTolerance=value)
