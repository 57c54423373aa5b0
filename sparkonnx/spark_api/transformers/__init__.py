"""The Spark ML stages that apply a model: ONNX, Keras, TensorFlow, images, the model zoo.

Driver side: each stage checks columns against its model, ships the model by reference and
hands a plain `InferencePlan` to `sparkonnx.spark_api.runtime`.
"""
