"""Keras training as a Spark ML Estimator whose fitted model runs on ONNX Runtime.

`KerasEstimator` trains on a tensor column (features array or vector -> one-hot label);
`KerasImageFileEstimator` (in `keras_image_estimator`) trains on image URIs. Both share
`_KerasEstimatorBase`: the data is checked and gathered once, `fit` trains on the driver,
`fitMultiple` (what `CrossValidator` / `TrainValidationSplit` call) trains every param map in
its own Spark task, and each trained model is converted to ONNX and parity-checked on the driver.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
from pyspark import keyword_only
from pyspark.ml import Estimator, Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasInputCol, HasLabelCol, HasOutputCol, HasSeed
from pyspark.sql import DataFrame

from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.spark_api.params import HasRuntimeOptions, HasTensorOutputOptions
from sparkonnx.spark_api.persistence import OnnxStagePersistence
from sparkonnx.spark_api.shipping import ship_bytes
from sparkonnx.spark_api.training import data as training_data
from sparkonnx.spark_api.training import job as training
from sparkonnx.spark_api.transformers.onnx_transformer import ONNXTransformer
from sparkonnx.spark_api.types import check_input_column

logger = logging.getLogger(__name__)

#: Keys of kerasFitParams that the estimator supplies itself.
_RESERVED_FIT_KEYS = ("x", "y", "validation_data", "sample_weight", "callbacks")
#: Rows of training data used as the parity sample when converting a trained model.
PARITY_SAMPLE_ROWS = 16


def _json_able(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what} must be JSON-serializable so that the stage and CrossValidator grids can be "
            f"saved; got {value!r} ({exc})"
        ) from exc


def _to_keras_identifier(value: Any) -> str | dict[str, Any]:
    """An optimizer / loss: a Keras name ('adam') or a serialized config dict."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and "class_name" in value:
        _json_able(value, "a Keras optimizer / loss config")
        return dict(value)
    raise TypeError(
        f"expected a Keras name such as 'adam' / 'categorical_crossentropy', or a config dict "
        f"{{'class_name': 'Adam', 'config': {{'learning_rate': 0.01}}}}; got {value!r}"
    )


def _to_fit_params(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(
            f"kerasFitParams must be a dict of keras Model.fit keyword arguments, e.g. "
            f"{{'epochs': 2, 'batch_size': 32}}; got {value!r}"
        )
    reserved = [k for k in value if k in _RESERVED_FIT_KEYS]
    if reserved:
        raise TypeError(
            f"kerasFitParams may not set {reserved}: the estimator passes the training data "
            f"itself; use e.g. validation_split instead of validation_data"
        )
    _json_able(value, "kerasFitParams")
    return dict(value)


def _to_non_negative_int(value: Any) -> int:
    number = TypeConverters.toInt(value)
    if number < 0:
        raise TypeError(f"maxTrainingDataBytes must be >= 0 (0: derive it); got {value!r}")
    return number


class HasKerasTraining(Params):
    """modelFile, kerasOptimizer, kerasLoss, kerasFitParams, maxTrainingDataBytes."""

    modelFile: Param[str] = Param(
        Params._dummy(),
        "modelFile",
        "path (readable by the driver) of a saved Keras model (.keras or .h5) to start from",
        TypeConverters.toString,
    )
    kerasOptimizer: Param[Any] = Param(
        Params._dummy(),
        "kerasOptimizer",
        "Keras optimizer: a name ('adam') or a config dict {'class_name': ..., 'config': ...}",
        _to_keras_identifier,
    )
    kerasLoss: Param[Any] = Param(
        Params._dummy(),
        "kerasLoss",
        "Keras loss: a name ('categorical_crossentropy') or a config dict",
        _to_keras_identifier,
    )
    kerasFitParams: Param[dict[str, Any]] = Param(
        Params._dummy(),
        "kerasFitParams",
        "keyword arguments of keras Model.fit (epochs, batch_size, verbose, shuffle, ...)",
        _to_fit_params,
    )
    maxTrainingDataBytes: Param[int] = Param(
        Params._dummy(),
        "maxTrainingDataBytes",
        "largest gathered training data allowed, in bytes; 0: half of one worker's memory "
        "(spark.executor.pyspark.memory, else spark.executor.memory)",
        _to_non_negative_int,
    )

    def getModelFile(self) -> str:
        return self.getOrDefault(self.modelFile)

    def setModelFile(self, value: str) -> Any:
        return self._set(modelFile=value)

    def getKerasOptimizer(self) -> str | dict[str, Any]:
        return self.getOrDefault(self.kerasOptimizer)

    def setKerasOptimizer(self, value: str | dict[str, Any]) -> Any:
        return self._set(kerasOptimizer=value)

    def getKerasLoss(self) -> str | dict[str, Any]:
        return self.getOrDefault(self.kerasLoss)

    def setKerasLoss(self, value: str | dict[str, Any]) -> Any:
        return self._set(kerasLoss=value)

    def getKerasFitParams(self) -> dict[str, Any]:
        return self.getOrDefault(self.kerasFitParams)

    def setKerasFitParams(self, value: dict[str, Any]) -> Any:
        return self._set(kerasFitParams=value)

    def getMaxTrainingDataBytes(self) -> int:
        return self.getOrDefault(self.maxTrainingDataBytes)

    def setMaxTrainingDataBytes(self, value: int) -> Any:
        return self._set(maxTrainingDataBytes=value)


@dataclass(frozen=True)
class TrainingSummary:
    """How a fitted model was trained: its settings, loss curves, time, and ONNX parity."""

    settings: training.TrainingSettings
    history: dict[str, list[float]]
    seconds: float
    host: str
    where: str  # "driver" or "executor"
    parity_max_abs_error: float | None
    parity: Any = field(default=None, repr=False)  # converters' ParityReport
    keras_bytes: bytes = field(default=b"", repr=False)  # the trained model as a .keras file

    def keras_model(self) -> Any:
        """The trained Keras model (a fresh copy loaded from `keras_bytes`; needs TensorFlow)."""
        return training.load_keras_bytes(self.keras_bytes, ".keras")


@dataclass(frozen=True)
class _StartModel:
    """A starting Keras model: its file bytes and the shapes training needs."""

    path: str
    data: bytes = field(repr=False)
    suffix: str
    input_shape: tuple[int | None, ...]  # batch axis included
    width: int  # units of the output's last axis


@dataclass(frozen=True)
class _Prepared:
    x: np.ndarray = field(repr=False)
    y: np.ndarray = field(repr=False)
    starts: dict[str, _StartModel]


def _inspect_keras_file(path: str) -> _StartModel:
    """Read a Keras model file on the driver and note its input shape and output width."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(
            f"modelFile {path!r} does not exist on the driver; save the starting model with "
            "model.save('model.keras') and pass that path"
        )
    data = file.read_bytes()
    model = training.load_keras_bytes(str(file), file.suffix)
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            f"modelFile {path!r} has {len(model.inputs)} inputs and {len(model.outputs)} "
            "outputs; Keras estimators train models with one input and one output"
        )
    input_shape = tuple(None if d is None else int(d) for d in model.inputs[0].shape)
    out_shape = tuple(model.outputs[0].shape)
    if len(out_shape) != 2 or out_shape[-1] is None:
        raise ValueError(
            f"modelFile {path!r} has output shape {out_shape}; expected [N, k] (k classes, "
            "matching one-hot labels of width k)"
        )
    return _StartModel(path, data, file.suffix, input_shape, int(out_shape[-1]))


class _KerasEstimatorBase(
    Estimator,
    HasInputCol,
    HasOutputCol,
    HasLabelCol,
    HasSeed,
    HasKerasTraining,
    OnnxStagePersistence,
):
    """Shared training flow; subclasses say how rows become features and what a fit returns."""

    #: Params that decide the gathered data: equal in every param map of one fitMultiple call.
    _DATA_PARAMS: tuple[str, ...] = ("inputCol", "labelCol", "maxTrainingDataBytes")

    def _set_training_defaults(self) -> None:
        self._setDefault(
            kerasOptimizer="adam",
            kerasLoss="categorical_crossentropy",
            kerasFitParams={"verbose": 0},
            maxTrainingDataBytes=0,
            seed=0,
        )

    # -- subclass hooks ------------------------------------------------------------------
    def _check_output(self, dataset: DataFrame, start: _StartModel) -> None:
        """Fail before training when the fitted model could not transform `dataset`."""
        column = self.getOutputCol()
        if column in dataset.columns:
            raise ValueError(
                f"outputCol {column!r} is already a column of the DataFrame "
                f"({', '.join(dataset.columns)}), so the fitted model could not add it; "
                "choose another outputCol or drop that column"
            )

    def _feature_shape(self, dataset: DataFrame, start: _StartModel) -> tuple[int, ...]:
        """The shape of one row's features (checked, without loading every row)."""
        raise NotImplementedError

    def _gather(
        self, dataset: DataFrame, start: _StartModel, shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """All rows as float32 (n, *shape) features and (n, width) labels."""
        raise NotImplementedError

    def _fitted_model(self, model: OnnxModel, summary: TrainingSummary) -> Transformer:
        """The Transformer a fit returns, running `model` with ONNX Runtime."""
        raise NotImplementedError

    # -- persistence: an estimator has Params only, no model -------------------------------
    def _model_for_saving(self) -> OnnxModel | None:
        return None

    def _set_loaded_model(self, model: OnnxModel) -> None:  # pragma: no cover - never called
        raise AssertionError("an estimator is saved without a model")

    # -- driver-side preparation, shared by fit and fitMultiple ----------------------------
    def _settings(self) -> training.TrainingSettings:
        return training.TrainingSettings(
            optimizer=self.getKerasOptimizer(),
            loss=self.getKerasLoss(),
            fit_params=self.getKerasFitParams(),
            seed=self.getSeed(),
        )

    def _check_model_file(self) -> str:
        if not self.isDefined(self.modelFile):
            raise ValueError(
                f"{type(self).__name__} needs modelFile: the path of a saved Keras model "
                "(.keras or .h5) to start training from"
            )
        return self.getModelFile()

    def _prepare(self, dataset: DataFrame, estimators: Sequence[_KerasEstimatorBase]) -> _Prepared:
        """Inspect the starting model(s), check labels and size, then gather the data once."""
        paths = list(dict.fromkeys(e._check_model_file() for e in estimators))
        starts = {p: _inspect_keras_file(p) for p in paths}
        first = starts[paths[0]]
        for other in starts.values():
            if (other.input_shape[1:], other.width) != (first.input_shape[1:], first.width):
                raise ValueError(
                    f"the param maps' modelFiles take different data: {first.path} has input "
                    f"{list(first.input_shape)} and {first.width} outputs, {other.path} has "
                    f"{list(other.input_shape)} and {other.width}; one fitMultiple call gathers "
                    "the data once, so every starting model must share input shape and width"
                )
        for estimator in estimators:  # each param map's output, before any data is loaded
            estimator._check_output(dataset, starts[estimator.getModelFile()])
        label_col = self.getLabelCol()
        rows = training_data.check_label_column(dataset, label_col, first.width)
        shape = self._feature_shape(dataset, first)
        limit = self.getMaxTrainingDataBytes()
        source = "maxTrainingDataBytes"
        if not limit:
            limit, source = training_data.worker_memory_limit(dataset.sparkSession)
        size = training_data.check_training_size(
            rows, training_data.row_bytes(shape, first.width), limit, source, self.getInputCol()
        )
        logger.info("gathering %d rows (%d bytes) of training data", rows, size)
        x, y = self._gather(dataset, first, shape)
        return _Prepared(x, y, starts)

    def _finish(
        self, prepared: _Prepared, trained: training.TrainedKeras, where: str
    ) -> Transformer:
        """Convert a trained Keras model to ONNX (parity-checked on training rows) and wrap it."""
        from sparkonnx.converters.api import from_keras

        keras_model = training.load_keras_bytes(trained.keras_bytes, ".keras")
        sample = prepared.x[:PARITY_SAMPLE_ROWS]
        result = from_keras(keras_model, sample_input=sample)
        parity = result.parity
        summary = TrainingSummary(
            settings=self._settings(),
            history=trained.history,
            seconds=trained.seconds,
            host=trained.host,
            where=where,
            parity_max_abs_error=parity.max_abs_error if parity else None,
            parity=parity,
            keras_bytes=trained.keras_bytes,
        )
        logger.info(
            "trained model %d converted to ONNX: %s",
            trained.index,
            parity.summary() if parity else "parity not checked",
        )
        return self._fitted_model(result.model, summary)

    # -- fit: one param map, trained on the driver -----------------------------------------
    def _fit(self, dataset: DataFrame) -> Transformer:
        prepared = self._prepare(dataset, [self])
        start = prepared.starts[self.getModelFile()]
        trained = training.train_keras(
            start.data, start.suffix, prepared.x, prepared.y, self._settings()
        )
        return self._finish(prepared, trained, "driver")

    # -- fitMultiple: one Spark task per param map -------------------------------------------
    def fitMultiple(
        self, dataset: DataFrame, paramMaps: Sequence[dict[Param, Any]]
    ) -> _TrainedModelIterator:
        """Train every param map in its own Spark task; yields (index, fitted model).

        The data is checked and gathered once for all maps, when the first model is asked for.
        """
        estimators = [self.copy(dict(pm)) for pm in paramMaps]
        self._check_same_data(estimators)

        def train_all() -> tuple[_Prepared, list[training.TrainedKeras]]:
            prepared = self._prepare(dataset, estimators)
            return prepared, self._train_on_executors(dataset, prepared, estimators)

        def finish(index: int, state: tuple[_Prepared, list[training.TrainedKeras]]) -> Any:
            prepared, trained = state
            return estimators[index]._finish(prepared, trained[index], "executor")

        return _TrainedModelIterator(train_all, finish, len(estimators))

    def _check_same_data(self, estimators: Sequence[_KerasEstimatorBase]) -> None:
        for name in self._DATA_PARAMS:
            param = self.getParam(name)
            values = [e.getOrDefault(param) if e.isDefined(param) else None for e in estimators]
            if any(v is not values[0] and v != values[0] for v in values):
                raise ValueError(
                    f"{name} differs between the param maps ({values!r}); fitMultiple gathers "
                    "the training data once for all maps, so only training settings may vary "
                    "(kerasOptimizer, kerasLoss, kerasFitParams, modelFile, seed)"
                )

    def _train_on_executors(
        self,
        dataset: DataFrame,
        prepared: _Prepared,
        estimators: Sequence[_KerasEstimatorBase],
    ) -> list[training.TrainedKeras]:
        spark = dataset.sparkSession
        data = ship_bytes(spark, training.pack_arrays(prepared.x, prepared.y), ".npz")
        shipped = {
            path: ship_bytes(spark, start.data, start.suffix)
            for path, start in prepared.starts.items()
        }
        tasks = tuple(
            training.TrainingTask(
                index=i,
                model=shipped[e.getModelFile()],
                model_suffix=prepared.starts[e.getModelFile()].suffix,
                settings=e._settings(),
            )
            for i, e in enumerate(estimators)
        )
        logger.info("training %d param maps on executors, one task each", len(tasks))
        return training.run_training_job(spark, training.TrainingJob(data, tasks))


class _TrainedModelIterator:
    """Thread-safe iterator of (index, model): trains all maps on the first `next`."""

    def __init__(
        self,
        train_all: Callable[[], Any],
        finish: Callable[[int, Any], Transformer],
        count: int,
    ) -> None:
        self._train_all = train_all
        self._finish = finish
        self._count = count
        self._next = 0
        self._state: Any = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    def __iter__(self) -> _TrainedModelIterator:
        return self

    def __next__(self) -> tuple[int, Transformer]:
        with self._lock:  # conversion included: tf2onnx is not known to be thread-safe
            if self._next >= self._count:
                raise StopIteration
            if self._error is not None:
                raise self._error
            if self._state is None:
                try:
                    self._state = self._train_all()
                except BaseException as exc:
                    self._error = exc
                    raise
            index = self._next
            self._next += 1
            return index, self._finish(index, self._state)


class KerasEstimatorModel(ONNXTransformer):
    """A model trained by `KerasEstimator`: the trained network as ONNX on a tensor column."""

    _summary: TrainingSummary | None = None

    @property
    def trainingSummary(self) -> TrainingSummary | None:
        """How this model was trained (None after loading from disk)."""
        return self._summary

    def copy(self, extra: Any = None) -> KerasEstimatorModel:
        that = cast(KerasEstimatorModel, super().copy(extra))
        that._summary = self._summary
        return that


class KerasEstimator(_KerasEstimatorBase, HasRuntimeOptions, HasTensorOutputOptions):
    """Trains a Keras model on a tensor column (array or vector features -> one-hot labels).

    `fit` trains a copy of `modelFile` on the driver; `fitMultiple` (CrossValidator,
    TrainValidationSplit) trains each param map in its own Spark task. The fitted
    `KerasEstimatorModel` runs the trained network with ONNX Runtime.
    """

    _input_kwargs: dict[str, Any]  # set by pyspark's @keyword_only

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        labelCol: str | None = None,
        modelFile: str | None = None,
        kerasOptimizer: str | dict[str, Any] | None = None,
        kerasLoss: str | dict[str, Any] | None = None,
        kerasFitParams: dict[str, Any] | None = None,
        seed: int | None = None,
        maxTrainingDataBytes: int | None = None,
        batchSize: int = 1024,
        device: str = "auto",
        outputFormat: str = "array",
        allowCast: bool = True,
    ) -> None:
        super().__init__()
        self._set_training_defaults()
        self._setDefault(batchSize=1024, device="auto", outputFormat="array", allowCast=True)
        self._set(**{k: v for k, v in self._input_kwargs.items() if v is not None})

    def _feature_shape(self, dataset: DataFrame, start: _StartModel) -> tuple[int, ...]:
        column = self.getInputCol()
        spec = TensorSpec("the Keras model's input", np.dtype(np.float32), start.input_shape)
        check_input_column(dataset.schema, column, spec, allow_cast=True)
        inner = start.input_shape[1:]
        if all(d is not None for d in inner):
            return tuple(int(d) for d in inner)  # type: ignore[arg-type]
        row = dataset.select(column).where(dataset[column].isNotNull()).head()
        if row is None:
            raise ValueError(f"inputCol {column!r} has no non-null rows to train on")
        value = row[0].toArray() if hasattr(row[0], "toArray") else row[0]
        return tuple(np.asarray(value, dtype=np.float32).shape)

    def _gather(
        self, dataset: DataFrame, start: _StartModel, shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        table = dataset.select(self.getInputCol(), self.getLabelCol()).toArrow()
        x = training_data.features_to_numpy(table.column(0), self.getInputCol(), start.input_shape)
        y = training_data.labels_to_numpy(table.column(1), self.getLabelCol(), start.width)
        return x, y

    def _fitted_model(self, model: OnnxModel, summary: TrainingSummary) -> KerasEstimatorModel:
        fitted = KerasEstimatorModel(
            model=model,
            inputCol=self.getInputCol(),
            outputCol=self.getOutputCol(),
            batchSize=self.getBatchSize(),
            device=self.getDevice(),
            outputFormat=self.getOutputFormat(),
            allowCast=self.getAllowCast(),
        )
        device_id = self.getDeviceId()
        if device_id is not None:
            fitted.setDeviceId(device_id)
        fitted._summary = summary
        return fitted
