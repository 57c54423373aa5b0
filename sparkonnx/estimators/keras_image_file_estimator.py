"""sparkdl's ``sparkdl.estimators.keras_image_file_estimator``: :class:`KerasImageFileEstimator`
(Keras training on image URIs; the fitted model runs on ONNX Runtime)."""

from sparkonnx.spark_api.training.keras_image_estimator import (
    KerasImageFileEstimator,
    KerasImageFileModel,
)

__all__ = ["KerasImageFileEstimator", "KerasImageFileModel"]
