"""Driver-only conversion of Keras / TensorFlow models to validated ONNX models.

TensorFlow, Keras and tf2onnx are imported lazily, inside functions.
"""
