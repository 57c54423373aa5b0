"""sparkdl's ``sparkdl.graph`` path: ``sparkonnx.graph.input`` (``TFInputGraph``) and
``sparkonnx.graph.utils`` (``tensor_name``, ``op_name``, ``strip_and_freeze_until``, ...).

Holds no logic: the modules re-export `sparkonnx.spark_api.transformers.tf_input_graph` and
:mod:`sparkonnx.compat.tf_graph`. Importing them does not import TensorFlow.
"""
