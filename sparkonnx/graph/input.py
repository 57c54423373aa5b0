"""sparkdl's ``sparkdl.graph.input``: :class:`TFInputGraph`, converted to ONNX on the driver."""

from sparkonnx.spark_api.transformers.tf_input_graph import TFInputGraph

__all__ = ["TFInputGraph"]
