"""sparkdl's ``sparkdl.graph.utils`` (``import sparkonnx.graph.utils as tfx``), re-exported
from :mod:`sparkonnx.compat.tf_graph`; TensorFlow is imported only when a helper runs."""

from sparkonnx.compat import tf_graph as _tf_graph
from sparkonnx.compat.tf_graph import *  # noqa: F403  (the names in its __all__)

__all__ = [n for n in _tf_graph.__all__ if n not in _tf_graph.IMAGE_HELPERS]
