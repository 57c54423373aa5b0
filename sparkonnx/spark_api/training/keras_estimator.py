"""Keras training on a tensor column as a Spark ML Estimator whose fitted model runs on ONNX
Runtime.

`KerasEstimator` trains on a tensor column (features array or vector -> one-hot label);
`KerasImageFileEstimator` (in `keras_image_estimator`) trains on image URIs. Both share
`training.driver.KerasEstimatorBase`: the data is checked and gathered once, `fit` trains on
the driver, `fitMultiple` (what `CrossValidator` / `TrainValidationSplit` call) trains every
param map in its own Spark task, and each trained model is converted to ONNX and
parity-checked on the driver (`training.fitted`).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyspark import keyword_only
from pyspark.sql import DataFrame

from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.spark_api.params import HasRuntimeOptions, HasTensorOutputOptions, set_given
from sparkonnx.spark_api.training import data as training_data
from sparkonnx.spark_api.training.driver import KerasEstimatorBase, StartModel
from sparkonnx.spark_api.training.fitted import HasTrainingSummary, TrainingSummary
from sparkonnx.spark_api.transformers.onnx_transformer import ONNXTransformer
from sparkonnx.spark_api.types import check_input_column

logger = logging.getLogger(__name__)

__all__ = ["KerasEstimator", "KerasEstimatorModel", "TrainingSummary"]


class KerasEstimatorModel(ONNXTransformer, HasTrainingSummary):
    """A model trained by `KerasEstimator`: the trained network as ONNX on a tensor column
    (an ONNXTransformer with `trainingSummary`)."""


class KerasEstimator(KerasEstimatorBase, HasRuntimeOptions, HasTensorOutputOptions):
    """Trains a Keras model on a tensor column (array or vector features -> one-hot labels).

    `fit` trains a copy of `modelFile` on the driver; `fitMultiple` (CrossValidator,
    TrainValidationSplit) trains each param map in its own Spark task. The fitted
    `KerasEstimatorModel` runs the trained network with ONNX Runtime; ``outputCol``,
    ``batchSize``, ``device``, ``deviceId``, ``outputFormat`` and ``allowCast`` are passed on
    to it.
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
        deviceId: int | None = None,
        outputFormat: str = "array",
        allowCast: bool = True,
    ) -> None:
        super().__init__()
        self._set_training_defaults()
        self._setDefault(batchSize=1024, device="auto", outputFormat="array", allowCast=True)
        set_given(self, self._input_kwargs)

    def _feature_shape(self, dataset: DataFrame, start: StartModel) -> tuple[int, ...]:
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
        self, dataset: DataFrame, start: StartModel, shape: tuple[int, ...]
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
            deviceId=self.getDeviceId(),
            outputFormat=self.getOutputFormat(),
            allowCast=self.getAllowCast(),
        )
        fitted._summary = summary
        return fitted
