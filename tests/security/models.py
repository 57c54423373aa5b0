"""Hostile ONNX models built in code: unknown operators and external data that points away."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper


def _model(graph: onnx.GraphProto, extra_domains: tuple[str, ...] = ()) -> onnx.ModelProto:
    imports = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, 1) for d in extra_domains]
    model = helper.make_model(graph, opset_imports=imports, producer_name="tests.security")
    model.ir_version = 8
    return model


def evil_op(width: int = 4) -> onnx.ModelProto:
    """x: float32[N, width] -> Relu -> com.evil:EvilOp (node 'n_evil') -> y. onnx.checker
    accepts it (it does not know the domain); ONNX Runtime has no such operator."""
    nodes = [
        helper.make_node("Relu", ["x"], ["h"], name="n_relu"),
        helper.make_node("EvilOp", ["h"], ["y"], name="n_evil", domain="com.evil"),
    ]
    graph = helper.make_graph(
        nodes,
        "evil",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])],
    )
    return _model(graph, ("com.evil",))


def tiny_image_stage(**params: Any) -> Any:
    """An ImageTransformer of `testing.tiny_cnn_nhwc` on 8 x 8 images of column 'image'."""
    from sparkonnx import ImageTransformer, testing

    return ImageTransformer(
        inputCol="image",
        outputCol="out",
        model=testing.tiny_cnn_nhwc(size=8),
        inputSize=[8, 8],
        **params,
    )


def external_data(location: str, length: int = 9) -> onnx.ModelProto:
    """x: uint8[length] -> x + w, with the initializer w read from the external file
    ``location``: a model whose output would reveal that file's first bytes."""
    weight = onnx.TensorProto()
    weight.name = "w"
    weight.data_type = TensorProto.UINT8
    weight.dims.extend([length])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"], name="n_add")],
        "leak",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [length])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [length])],
        [weight],
    )
    return _model(graph)


def evil_on_disk(folder: Path) -> Path:
    """`evil_op` after an Add of a weight kept in the external file `weights.bin`, written to
    `folder/evil.onnx` (a model that can stay on disk)."""
    import numpy as np

    from sparkonnx import testing

    evil = evil_op()
    evil.graph.node[0].input[0] = "xw"
    evil.graph.node.insert(0, helper.make_node("Add", ["x", "w"], ["xw"], name="n_add"))
    evil.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(4, np.float32), "w"))
    return testing.save_with_external_data(evil, folder / "evil.onnx")
