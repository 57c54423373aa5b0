"""keep_outputs: a model cut down to the outputs a stage uses."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from sparkonnx.engine.model import OnnxModel, UnknownTensorError
from sparkonnx.engine.pruning import keep_outputs


def _features_and_head() -> OnnxModel:
    """x[N,4] -> features = relu(x @ w1) [N,3] -> probabilities = softmax(features @ w2) [N,2]."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(size=(3, 2)).astype(np.float32), "w2")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w1"], ["h"]),
            helper.make_node("Relu", ["h"], ["features"]),
            helper.make_node("MatMul", ["features", "w2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"]),
        ],
        "head",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
        ],
        [w1, w2],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    helper.set_model_props(proto, {"kept": "yes"})
    return OnnxModel.load(proto)


def _run(model: OnnxModel, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.model_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"x": x})))


def test_keeps_only_what_computes_the_output() -> None:
    model = _features_and_head()
    pruned = keep_outputs(model, ["features"])
    onnx.checker.check_model(pruned.proto)
    assert [o.name for o in pruned.outputs] == ["features"]
    assert [n.op_type for n in pruned.proto.graph.node] == ["MatMul", "Relu"]
    assert [t.name for t in pruned.proto.graph.initializer] == ["w1"]
    assert pruned.metadata == {"kept": "yes"} and pruned.inputs == model.inputs
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(_run(pruned, x)["features"], _run(model, x)["features"])


def test_all_outputs_kept_returns_the_same_model() -> None:
    model = _features_and_head()
    assert keep_outputs(model, ["probabilities", "features"]) is model


def test_unknown_output_names_the_ones_the_model_has() -> None:
    with pytest.raises(UnknownTensorError, match="probabilities"):
        keep_outputs(_features_and_head(), ["logits"])
