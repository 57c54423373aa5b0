"""sparkdl's ``sparkdl.estimators`` path: :mod:`sparkonnx.estimators.keras_image_file_estimator`
re-exports ``KerasImageFileEstimator`` from `sparkonnx.spark_api.training`. Holds no logic."""
