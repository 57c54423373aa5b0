"""KerasImageFileEstimator: Keras training on a column of image URIs, as in sparkdl.

The user's `imageLoader(uri) -> np.ndarray` reads each image on the executors; the images are
gathered once, a copy of `modelFile` is trained with Keras (on the driver for `fit`, one Spark
task per param map for `fitMultiple`), and the fitted `KerasImageFileModel` is a
`KerasImageFileTransformer` running the trained network, converted to ONNX and parity-checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.errors import SparkOnnxError
from sparkonnx.spark_api.params import HasRuntimeOptions, set_given
from sparkonnx.spark_api.training import data as training_data
from sparkonnx.spark_api.training.driver import KerasEstimatorBase, StartModel
from sparkonnx.spark_api.training.fitted import HasTrainingSummary, TrainingSummary
from sparkonnx.spark_api.transformers.image_params import HasImageOutput
from sparkonnx.spark_api.transformers.keras_image_transformer import (
    HasImageLoader,
    ImageLoader,
    KerasImageFileTransformer,
    _one_image,
    resolve_loader,
)

logger = logging.getLogger(__name__)

_FEATURES = "__sparkonnx_features"
_LABELS = "__sparkonnx_labels"


class ImageLoadingError(SparkOnnxError, ValueError):
    """The imageLoader failed on a training row or returned an unusable array."""


def _load_one(load: ImageLoader, uri: Any, column: str, spec: TensorSpec) -> np.ndarray:
    if uri is None:
        raise ImageLoadingError(
            f"column {column!r} has a null URI; every training row needs an image. Filter "
            f"nulls first (df.where(df[{column!r}].isNotNull()))"
        )
    try:
        return _one_image(load(uri), spec)
    except Exception as exc:
        raise ImageLoadingError(
            f"imageLoader failed on {uri!r} from column {column!r}: {type(exc).__name__}: {exc}"
        ) from exc


def probe_partition(
    loader: ImageLoader | str, column: str, spec: TensorSpec, frames: Iterator[Any]
) -> Iterator[Any]:
    """`mapInPandas`: the per-image shape the loader gives for the first URI (or the error)."""
    import pandas as pd

    load = resolve_loader(loader)
    for frame in frames:
        for uri in frame[column].tolist()[:1]:
            try:
                shape = list(_load_one(load, uri, column, spec).shape)
                yield pd.DataFrame({"shape": [shape], "error": [None]})
            except ImageLoadingError as exc:
                yield pd.DataFrame({"shape": [None], "error": [str(exc)]})
            return


def load_partition(
    loader: ImageLoader | str,
    column: str,
    spec: TensorSpec,
    shape: tuple[int, ...],
    batches: Iterator[pa.RecordBatch],
) -> Iterator[pa.RecordBatch]:
    """`mapInArrow`: each URI through the loader, as flat float32 features beside its labels."""
    load = resolve_loader(loader)
    per_row = int(np.prod(shape))
    for batch in batches:
        uris = batch.column(column).to_pylist()
        values = np.empty((len(uris), per_row), np.float32)
        for i, uri in enumerate(uris):
            image = _load_one(load, uri, column, spec)
            if image.shape != shape:
                raise ImageLoadingError(
                    f"imageLoader returned shape {image.shape} for {uri!r} from column "
                    f"{column!r}, but {shape} for the first image; training needs one shape: "
                    "resize in the loader"
                )
            values[i] = image.reshape(-1)
        offsets = pa.array(np.arange(len(uris) + 1, dtype=np.int32) * per_row)
        features = pa.ListArray.from_arrays(offsets, pa.array(values.reshape(-1)))
        yield pa.RecordBatch.from_arrays(
            [features, batch.column(_LABELS)], names=[_FEATURES, _LABELS]
        )


class KerasImageFileModel(KerasImageFileTransformer, HasTrainingSummary):
    """A model trained by `KerasImageFileEstimator`: the trained network (ONNX) on image URIs
    (a KerasImageFileTransformer with `trainingSummary`)."""

    def _transform(self, dataset: DataFrame) -> DataFrame:
        loader = self.getImageLoader() if self.isDefined(self.imageLoader) else None
        if isinstance(loader, str):
            # A reloaded model names its loader 'module:function'; resolve it here so that a
            # loader from the driver's script (__main__) travels by value to the executors.
            return super(
                KerasImageFileModel, self.copy({self.imageLoader: resolve_loader(loader)})
            )._transform(dataset)
        return super()._transform(dataset)


class KerasImageFileEstimator(
    HasImageLoader, KerasEstimatorBase, HasImageOutput, HasRuntimeOptions
):
    """Trains a Keras model on image URIs (`inputCol`) and one-hot labels (`labelCol`).

    - ``imageLoader(uri) -> np.ndarray``: reads and preprocesses one image on the executors,
      returning it in the model's input shape with a leading batch axis of 1 (or without it).
    - ``modelFile``: the saved Keras model (.keras / .h5) to start from; never modified.
    - ``kerasOptimizer``, ``kerasLoss``, ``kerasFitParams``: how to compile and fit; tune them
      with ``ParamGridBuilder`` and ``CrossValidator`` / ``TrainValidationSplit``.
    - ``outputMode``, ``outputFormat``, ``handleInvalid``, ``errorCol``, ``batchSize``,
      ``device``, ``deviceId``: passed on to the fitted model (training fails on any
      unreadable row). The fitted model's output is a Spark ML DenseVector by default
      (outputMode 'vector', as sparkdl), what the evaluators read
      (``BinaryClassificationEvaluator(rawPredictionCol=...)``); the output settings are
      checked before any image is loaded.

    `fit` trains on the driver; `fitMultiple` trains one param map per Spark task, which needs
    TensorFlow on the executors. The data is gathered once and must fit one worker's memory.
    """

    _input_kwargs: dict[str, Any]  # set by pyspark's @keyword_only

    _DATA_PARAMS = ("inputCol", "labelCol", "maxTrainingDataBytes", "imageLoader")

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        labelCol: str | None = None,
        imageLoader: ImageLoader | str | None = None,
        modelFile: str | None = None,
        kerasOptimizer: str | dict[str, Any] | None = None,
        kerasLoss: str | dict[str, Any] | None = None,
        kerasFitParams: dict[str, Any] | None = None,
        seed: int | None = None,
        maxTrainingDataBytes: int | None = None,
        outputMode: str = "vector",
        outputFormat: str = "vector",
        handleInvalid: str = "keep",
        errorCol: str | None = None,
        batchSize: int = 64,
        device: str = "auto",
        deviceId: int | None = None,
    ) -> None:
        super().__init__()
        self._set_training_defaults()
        self._setDefault(
            outputMode="vector",
            outputFormat="vector",
            handleInvalid="keep",
            batchSize=64,
            device="auto",
        )
        set_given(self, self._input_kwargs)

    # -- hooks -----------------------------------------------------------------------------
    def _check_output(self, dataset: DataFrame, start: StartModel) -> None:
        super()._check_output(dataset, start)
        mode = self.getOutputMode()  # raises when outputMode and outputFormat disagree
        if mode == "image":
            raise ValueError(
                f"outputMode='image' needs a model whose output is an image, but modelFile "
                f"{start.path!r} outputs [N, {start.width}] (class scores); use "
                "outputMode='vector' (a Spark ML DenseVector, what the evaluators read)"
            )

    def _spec(self, start: StartModel) -> TensorSpec:
        return TensorSpec("the Keras model's input", np.dtype(np.float32), start.input_shape)

    def _feature_shape(self, dataset: DataFrame, start: StartModel) -> tuple[int, ...]:
        column = self.getInputCol()
        if column not in dataset.columns:
            raise ValueError(
                f"inputCol {column!r} (image URIs) is not in the DataFrame; its columns are: "
                f"{', '.join(dataset.columns)}"
            )
        found = dataset.schema[column].dataType
        if not isinstance(found, T.StringType):
            raise TypeError(
                f"inputCol {column!r} must hold image URIs (string), found {found.simpleString()}"
            )
        if not self.isDefined(self.imageLoader):
            raise ValueError(
                "KerasImageFileEstimator needs imageLoader=<function uri -> numpy array>"
            )
        resolve_loader(self.getImageLoader())  # a bad or forged name fails here, before any job
        probe = partial(probe_partition, self.getImageLoader(), column, self._spec(start))
        row = (
            dataset.select(column)
            .where(dataset[column].isNotNull())
            .limit(1)
            .mapInPandas(probe, "shape array<long>, error string")
            .head()
        )
        if row is None:
            raise ValueError(f"inputCol {column!r} has no non-null URIs to train on")
        if row["error"]:
            raise ImageLoadingError(row["error"])
        return tuple(int(d) for d in row["shape"])

    def _gather(
        self, dataset: DataFrame, start: StartModel, shape: tuple[int, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        column, label = self.getInputCol(), self.getLabelCol()
        labels = training_data.label_array(dataset, label)
        rows = dataset.select(dataset[column], labels.cast("array<float>").alias(_LABELS))
        schema = T.StructType(
            [
                T.StructField(_FEATURES, T.ArrayType(T.FloatType(), False)),
                T.StructField(_LABELS, T.ArrayType(T.FloatType())),
            ]
        )
        load = partial(load_partition, self.getImageLoader(), column, self._spec(start), shape)
        table = rows.mapInArrow(load, schema).toArrow()
        x = training_data.features_to_numpy(table.column(_FEATURES), column, (None, *shape))
        y = training_data.labels_to_numpy(table.column(_LABELS), label, start.width)
        return x, y

    def _fitted_model(self, model: OnnxModel, summary: TrainingSummary) -> KerasImageFileModel:
        fitted = KerasImageFileModel(
            inputCol=self.getInputCol(),
            outputCol=self.getOutputCol(),
            model=model,
            imageLoader=self.getImageLoader(),
            outputMode=self.getOutputMode(),
            handleInvalid=self.getHandleInvalid(),
            errorCol=self.getErrorCol(),
            batchSize=self.getBatchSize(),
            device=self.getDevice(),
            deviceId=self.getDeviceId(),
        )
        fitted._summary = summary
        return fitted
