"""sparkdl's ``sparkdl.udf`` path: :mod:`sparkonnx.udf.keras_image_model` re-exports
``registerKerasImageUDF`` from `sparkonnx.spark_api.sql`. Holds no logic."""
