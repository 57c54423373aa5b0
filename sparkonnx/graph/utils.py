"""sparkdl's ``sparkdl.graph.utils`` (``import sparkonnx.graph.utils as tfx``), re-exported
from :mod:`sparkonnx.compat.tf_graph`; TensorFlow is imported only when a helper runs."""

from sparkonnx.compat.tf_graph import (
    add_scope_to_name,
    get_op,
    get_shape,
    get_tensor,
    op_name,
    strip_and_freeze_until,
    tensor_name,
    validated_graph,
    validated_input,
    validated_output,
)

__all__ = [
    "add_scope_to_name",
    "get_op",
    "get_shape",
    "get_tensor",
    "op_name",
    "strip_and_freeze_until",
    "tensor_name",
    "validated_graph",
    "validated_input",
    "validated_output",
]
