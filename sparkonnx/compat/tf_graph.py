"""sparkdl's TF1 graph helpers (``sparkdl.graph.utils``, ``imageInputPlaceholder``).

TensorFlow names a graph element four ways: a ``tf.Tensor``, a ``tf.Operation``, or the name of
either ('x:0', 'x'). These helpers turn any of them into the form an API wants, checking it
exists when a graph is given. They run on the driver only, where graphs are built and converted
to ONNX; TensorFlow is imported when a helper needs it, never when this module is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sparkonnx.converters import _deps
from sparkonnx.converters.graph_source import freeze_session
from sparkonnx.converters.graph_source import tensor_name as _with_port

__all__ = [
    "IMAGE_INPUT_PLACEHOLDER_NAME",
    "add_scope_to_name",
    "get_op",
    "get_shape",
    "get_tensor",
    "imageInputPlaceholder",
    "op_name",
    "strip_and_freeze_until",
    "tensor_name",
    "validated_graph",
    "validated_input",
    "validated_output",
]

#: What sparkdl kept in `sparkdl.transformers.utils` rather than `sparkdl.graph.utils`.
IMAGE_HELPERS = ("IMAGE_INPUT_PLACEHOLDER_NAME", "imageInputPlaceholder")
#: The name sparkdl gave the image placeholder (TFImageTransformer's default `inputTensor`).
IMAGE_INPUT_PLACEHOLDER_NAME = "sparkdl_image_input"


def _is_tf_object(obj: Any) -> bool:
    """A tf.Tensor or tf.Operation (both carry their graph), checked without importing TF."""
    return hasattr(obj, "graph") and hasattr(obj, "name")


def _check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not name or name.count(":") > 1:
        raise TypeError(
            f"expected a tf.Tensor, a tf.Operation or the name of one ('x' or 'x:0') for "
            f"{what}, got {type(name).__name__} {name!r}"
        )
    return name


def validated_graph(graph: Any) -> Any:
    """`graph` if it is a ``tf.Graph``; TypeError otherwise."""
    tf = _deps.tensorflow()
    if not isinstance(graph, tf.Graph):
        raise TypeError(
            f"expected a tf.Graph, got {type(graph).__name__}; build one with "
            "tf.Graph() and tf.compat.v1.Session(graph=graph)"
        )
    return graph


def _same_graph(obj: Any, graph: Any) -> None:
    if _is_tf_object(obj) and obj.graph is not graph:
        raise ValueError(f"{obj.name!r} belongs to another tf.Graph than the one given")


def _element(tfobj_or_name: Any, graph: Any, tensor: bool) -> Any:
    """The tensor (``tensor=True``) or operation of `graph` for a tensor, operation or name."""
    tf = _deps.tensorflow()
    graph = validated_graph(graph)
    _same_graph(tfobj_or_name, graph)
    own, other = (tf.Tensor, tf.Operation) if tensor else (tf.Operation, tf.Tensor)
    if isinstance(tfobj_or_name, own):
        return tfobj_or_name
    name = tfobj_or_name.name if isinstance(tfobj_or_name, other) else tfobj_or_name
    checked = _check_name(name, "a tensor" if tensor else "an operation")
    key = _with_port(checked) if tensor else checked.split(":")[0]
    try:
        return graph.get_tensor_by_name(key) if tensor else graph.get_operation_by_name(key)
    except (KeyError, ValueError) as exc:
        kind = "tensor" if tensor else "operation"
        raise ValueError(f"the graph has no {kind} {key!r} ({exc})") from None


def get_tensor(tfobj_or_name: Any, graph: Any) -> Any:
    """The ``tf.Tensor`` of `graph` for a tensor, an operation (its first output) or a name."""
    return _element(tfobj_or_name, graph, tensor=True)


def get_op(tfobj_or_name: Any, graph: Any) -> Any:
    """The ``tf.Operation`` of `graph` for an operation, a tensor (its producer) or a name."""
    return _element(tfobj_or_name, graph, tensor=False)


def get_shape(tfobj_or_name: Any, graph: Any) -> list[int]:
    """The tensor's static shape as a list, -1 for unknown dims (as sparkdl)."""
    dims = get_tensor(tfobj_or_name, graph).get_shape().as_list()
    return [-1 if d is None else int(d) for d in dims]


def _name_of(tfobj_or_name: Any, graph: Any, get: Any, from_name: Any, what: str) -> str:
    """The name `get` finds in `graph` (or in a TF object's own graph); plain names by rule."""
    if graph is None and _is_tf_object(tfobj_or_name):
        graph = tfobj_or_name.graph
    if graph is not None:
        return str(get(tfobj_or_name, graph).name)
    return str(from_name(_check_name(tfobj_or_name, what)))


def tensor_name(tfobj_or_name: Any, graph: Any = None) -> str:
    """The tensor name ('x:0'): of a tensor or operation, or of a name ('x' -> 'x:0').

    With `graph` (or a TF object, which knows its graph) the tensor must exist there.
    """
    return _name_of(tfobj_or_name, graph, get_tensor, _with_port, "tensor_name")


def op_name(tfobj_or_name: Any, graph: Any = None) -> str:
    """The operation name ('x'): of a tensor or operation, or of a name ('x:0' -> 'x').

    With `graph` (or a TF object, which knows its graph) the operation must exist there.
    """
    return _name_of(tfobj_or_name, graph, get_op, lambda n: n.split(":")[0], "op_name")


def add_scope_to_name(scope: str, name: str) -> str:
    """'scope/name'."""
    return f"{scope}/{name}"


def validated_output(tfobj_or_name: Any, graph: Any) -> str:
    """The operation name of an output of `graph` (checked to exist)."""
    return op_name(tfobj_or_name, validated_graph(graph))


def validated_input(tfobj_or_name: Any, graph: Any) -> str:
    """The operation name of an input of `graph`, which must be a Placeholder."""
    op = get_op(tfobj_or_name, validated_graph(graph))
    if op.type != "Placeholder":
        raise ValueError(f"input {op.name!r} must be a Placeholder, but it is a {op.type}")
    return str(op.name)


def strip_and_freeze_until(
    fetches: Sequence[Any], graph: Any, sess: Any = None, return_graph: bool = False
) -> Any:
    """A frozen copy of `graph` holding only what `fetches` need, variables made constants.

    `sess` holds the variables' values (a fresh session is used when None, for graphs without
    variables). Returns a ``GraphDef``, or with ``return_graph=True`` a new ``tf.Graph``.
    """
    tf = _deps.tensorflow()
    graph = validated_graph(graph)
    if isinstance(fetches, str) or _is_tf_object(fetches):
        raise TypeError("fetches must be a list of tensors / operations / names, e.g. [output]")
    outputs = [tensor_name(op_name(f, graph)) for f in fetches]
    if sess is None:
        with tf.compat.v1.Session(graph=graph) as session:
            frozen = freeze_session(session, outputs)
    elif sess.graph is not graph:
        raise ValueError("sess runs another graph than `graph`; pass the session of this graph")
    else:
        frozen = freeze_session(sess, outputs)
    if not return_graph:
        return frozen
    result = tf.Graph()
    with result.as_default():
        tf.compat.v1.import_graph_def(frozen, name="")
    return result


def imageInputPlaceholder(nChannels: int | None = None) -> Any:
    """sparkdl's image input: a float32 placeholder [batch, height, width, nChannels] (any
    size), named ``sparkdl_image_input``, in the current default graph."""
    tf = _deps.tensorflow()
    return tf.compat.v1.placeholder(
        tf.float32, [None, None, None, nChannels], name=IMAGE_INPUT_PLACEHOLDER_NAME
    )
