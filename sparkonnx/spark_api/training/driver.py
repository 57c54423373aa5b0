"""The Keras estimators' training driver: what `fit` and `fitMultiple` do on the driver.

`KerasEstimatorBase` inspects the starting Keras model(s), checks labels and the data's size,
gathers the data once (the subclass says how rows become features), trains (on the driver for
`fit`, one Spark task per param map for `fitMultiple`, see `training.job`) and converts each
trained model to ONNX (`training.fitted`). Subclasses: `KerasEstimator` (tensor columns) and
`KerasImageFileEstimator` (image URIs).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pyspark.ml import Estimator, Transformer
from pyspark.ml.param import Param
from pyspark.sql import DataFrame

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.params import (
    HasInputCol,
    HasLabelCol,
    HasModelFile,
    HasOutputCol,
    HasSeed,
)
from sparkonnx.spark_api.persistence import OnnxStagePersistence
from sparkonnx.spark_api.shipping import ship_bytes
from sparkonnx.spark_api.training import data as training_data
from sparkonnx.spark_api.training import job as training
from sparkonnx.spark_api.training.fitted import TrainingSummary, convert_trained
from sparkonnx.spark_api.training.keras_params import HasKerasTraining

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StartModel:
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
    starts: dict[str, StartModel]


def _inspect_keras_file(path: str) -> StartModel:
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
    return StartModel(path, data, file.suffix, input_shape, int(out_shape[-1]))


class KerasEstimatorBase(
    Estimator,
    HasInputCol,
    HasOutputCol,
    HasLabelCol,
    HasSeed,
    HasModelFile,
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
    def _check_output(self, dataset: DataFrame, start: StartModel) -> None:
        """Fail before training when the fitted model could not transform `dataset`."""
        column = self.getOutputCol()
        if column in dataset.columns:
            raise ValueError(
                f"outputCol {column!r} is already a column of the DataFrame "
                f"({', '.join(dataset.columns)}), so the fitted model could not add it; "
                "choose another outputCol or drop that column"
            )

    def _feature_shape(self, dataset: DataFrame, start: StartModel) -> tuple[int, ...]:
        """The shape of one row's features (checked, without loading every row)."""
        raise NotImplementedError

    def _gather(
        self, dataset: DataFrame, start: StartModel, shape: tuple[int, ...]
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

    def _prepare(self, dataset: DataFrame, estimators: Sequence[KerasEstimatorBase]) -> _Prepared:
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
        model, summary = convert_trained(trained, prepared.x, self._settings(), where)
        return self._fitted_model(model, summary)

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
            require_training_on_executors(dataset.sparkSession)  # before gathering the data
            prepared = self._prepare(dataset, estimators)
            return prepared, self._train_on_executors(dataset, prepared, estimators)

        def finish(index: int, state: tuple[_Prepared, list[training.TrainedKeras]]) -> Any:
            prepared, trained = state
            return estimators[index]._finish(prepared, trained[index], "executor")

        return _TrainedModelIterator(train_all, finish, len(estimators))

    def _check_same_data(self, estimators: Sequence[KerasEstimatorBase]) -> None:
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
        estimators: Sequence[KerasEstimatorBase],
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


def require_training_on_executors(spark: Any) -> None:
    """`TrainingDependencyError` naming each executor (host, Python) that cannot import
    TensorFlow / Keras, from the doctor's probe (one tiny job, cached per session)."""
    from sparkonnx.spark_api.runtime.executor_facts import executors_without_training

    missing = executors_without_training(spark)
    if not missing:
        return
    names = "; ".join(
        f"executor {f.executor} with Python {f.python_executable} ({_lacking(f)} not found)"
        for f in missing
    )
    raise training.TrainingDependencyError(
        f"Keras training needs TensorFlow and Keras on every executor, but {len(missing)} cannot "
        f"import them: {names}. {training.TRAINING_FIX}. (Checked before gathering the "
        "training data; 'sparkonnx doctor' shows every executor.)"
    )


def _lacking(facts: Any) -> str:
    pairs = (("tensorflow", facts.tensorflow), ("keras", facts.keras))
    return " and ".join(name for name, found in pairs if not found)


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
