"""Small hand-built ONNX models for the TF-free converter tests."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def linear_model(
    opset: int = 15, scale_to: tuple[int, int] | None = None, hidden: int = 3
) -> onnx.ModelProto:
    """y = relu(x @ W + b) for x: float32[batch, 4]; optionally a Resize with float `scales`."""
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(size=(4, hidden)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=(hidden,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["z"]),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    inits = [weights, bias]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])]
    if scale_to is not None:
        inits.append(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "scales"))
        nodes.append(helper.make_node("Resize", ["y", "", "scales"], ["big"], mode="nearest"))
        outputs.append(
            helper.make_tensor_value_info("big", TensorProto.FLOAT, ["batch", 2 * hidden])
        )
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return np.maximum(x @ weights["W"] + weights["b"], 0)
