"""sparkdl's ``sparkdl.udf.keras_image_model``: ``registerKerasImageUDF(name, model_or_file,
preprocessor=None)`` registers a Keras image model as a SQL function (`sparkonnx.spark_api.sql`)."""

from sparkonnx.spark_api.sql import registerKerasImageUDF

__all__ = ["registerKerasImageUDF"]
