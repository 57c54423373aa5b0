"""The one place that calls tf2onnx: a tf.function or a frozen GraphDef in, an ONNX proto out."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import onnx

from sparkonnx.converters import _deps
from sparkonnx.converters.quiet import native_quiet

logger = logging.getLogger(__name__)


@contextmanager
def _numpy2_compat() -> Iterator[None]:
    """tf2onnx 1.17's large-model path calls `np.product` (gone in numpy 2): alias it meanwhile."""
    added = not hasattr(np, "product")
    if added:
        np.product = np.prod  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if added:
            del np.product  # type: ignore[attr-defined]


@contextmanager
def _tf2onnx_catch_errors(catch: bool) -> Iterator[None]:
    """tf2onnx deep-copies the whole graph (weights included) before each of its optimizers
    so that it can roll back on an error: ResNet50 then peaks near 8 GB and spends 20 s there.
    Its TF2ONNX_CATCH_ERRORS switch turns that off; set it only for the call.

    tf2onnx 1.17 compares the variable's *name* with "TRUE", so any value set means "do not
    catch": catching (the default for non-large models) needs the variable unset."""
    key = "TF2ONNX_CATCH_ERRORS"
    previous = os.environ.get(key)
    if catch:
        os.environ.pop(key, None)
    else:
        os.environ[key] = "FALSE"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = previous


def _lean_then_safe(call: Callable[[], Any], what: str) -> Any:
    """Run a tf2onnx call without its per-optimizer graph copies; on failure retry with them.

    TensorFlow's grappler prints from C++ on each call (when TF was imported without its log
    level raised): muted unless sparkonnx logs at DEBUG.
    """
    try:
        with _tf2onnx_catch_errors(False), native_quiet():
            return call()
    except Exception as exc:
        logger.warning(
            "tf2onnx failed on %s without optimizer rollback (%s); retrying with rollback",
            what,
            exc,
        )
        with _tf2onnx_catch_errors(True), native_quiet():
            return call()


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.GRAPH:
                yield from _graph_tensors(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    yield from _graph_tensors(g)


def _inline_external_storage(proto: onnx.ModelProto, storage: Any) -> None:
    """Move tf2onnx's external tensor storage back into the proto (written out again on save)."""
    if storage is None:
        return
    data: dict[str, bytes] = storage.name_to_tensor_data
    for tensor in _graph_tensors(proto.graph):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in tensor.external_data}.get("location", "")
        if location not in data:
            raise RuntimeError(f"tf2onnx lost the external data of tensor {tensor.name!r}")
        tensor.raw_data = data[location]
        del tensor.external_data[:]
        tensor.data_location = onnx.TensorProto.DEFAULT


def convert_function(
    function: Any,
    input_signature: Sequence[Any],
    opset: int,
    handlers: Mapping[str, Any],
    large_model: bool,
) -> onnx.ModelProto:
    """Convert a `tf.function` traced with `input_signature` (outputs named by its dict keys).

    Frozen with tf2onnx's loader, then converted as a GraphDef: tf2onnx's own `from_function`
    would turn every tensor the function captured (an eager constant) into a model input.
    """
    tf = _deps.tensorflow()
    tf2onnx = _deps.tf2onnx()
    from tf2onnx import tf_loader

    if large_model:  # external tensor storage exists only on tf2onnx's function path
        with _numpy2_compat(), native_quiet():
            proto, storage = tf2onnx.convert.from_function(
                function,
                input_signature=list(input_signature),
                opset=opset,
                custom_op_handlers=dict(handlers),
                large_model=True,
            )
        _inline_external_storage(proto, storage)
        return proto
    concrete = function.get_concrete_function(*input_signature)
    specs = [
        s
        for s in tf.nest.flatten(concrete.structured_input_signature)
        if isinstance(s, tf.TensorSpec)
    ]
    inputs = [t.name for t in concrete.inputs[: len(specs)]]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    renames = dict(zip(inputs, (s.name for s in specs)))
    if isinstance(concrete.structured_outputs, dict):
        renames.update({t.name: k for k, t in concrete.structured_outputs.items()})
    with tf.device("/cpu:0"), native_quiet():
        graph_def = tf_loader.from_function(concrete, inputs, outputs)
    proto, _ = _lean_then_safe(
        lambda: tf2onnx.convert.from_graph_def(
            graph_def,
            name=getattr(concrete, "name", "function"),
            input_names=inputs,
            output_names=outputs,
            opset=opset,
            custom_op_handlers=dict(handlers),
            tensors_to_rename=renames,
        ),
        "the function's graph",
    )
    return proto


def convert_graph_def(
    graph_def: Any,
    input_names: Sequence[str],
    output_names: Sequence[str],
    opset: int,
    handlers: Mapping[str, Any],
    large_model: bool,
    shape_override: Mapping[str, list[int | None]] | None = None,
) -> onnx.ModelProto:
    """Convert a frozen GraphDef between the named tensors ('name:0')."""
    tf2onnx = _deps.tf2onnx()
    with _numpy2_compat():
        proto, storage = _lean_then_safe(
            lambda: tf2onnx.convert.from_graph_def(
                graph_def,
                name="graph_def",
                input_names=list(input_names),
                output_names=list(output_names),
                opset=opset,
                custom_op_handlers=dict(handlers),
                shape_override=dict(shape_override) if shape_override else None,
                large_model=large_model,
            ),
            "the GraphDef",
        )
    _inline_external_storage(proto, storage)
    return proto
