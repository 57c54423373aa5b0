"""sparkdl's ``sparkdl.transformers.utils``: ``imageInputPlaceholder()`` for TFImageTransformer
graphs, re-exported from :mod:`sparkonnx.compat.tf_graph` (TensorFlow imported when called)."""

from sparkonnx.compat.tf_graph import IMAGE_INPUT_PLACEHOLDER_NAME, imageInputPlaceholder

__all__ = ["IMAGE_INPUT_PLACEHOLDER_NAME", "imageInputPlaceholder"]
