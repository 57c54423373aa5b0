"""TextEmbedder's pooling and L2 normalisation as ONNX nodes appended to a copy of the model.

Used for `precision`: the lower-precision build quantizes and gates the pooled graph, so the
accuracy gate judges the sentence embeddings the stage returns (one [batch, dim] vector per
text), not the per-token vectors with their padded positions; the executors then run that
gated graph as it is. The nodes compute what `runtime.text.pool` and `l2_normalize` compute in
numpy: masked mean (Where + ReduceSum / max(count, 1)), the first token (Gather 0), masked max
(ReduceMax with the padding replaced by the first token, a real token under right padding, so
the result equals numpy's -inf masking with no infinity for int8 calibration to meet), and
x / max(ReduceL2(x), 1e-12). Driver only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sparkonnx.engine.model import OnnxModel
from sparkonnx.engine.pruning import keep_outputs
from sparkonnx.spark_api.runtime.text import POOLINGS

Feeds = tuple[tuple[str, str, str], ...]
POOLED_NAME = "sentence_embedding"
_PREFIX = "sparkonnx_pooling/"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


class _Nodes:
    """Appends nodes and constants to a graph, writing axes as the model's opset wants them."""

    def __init__(self, graph: onnx.GraphProto, opset: int) -> None:
        self.graph, self.opset = graph, opset

    def const(self, name: str, value: np.ndarray) -> str:
        full = _PREFIX + name
        self.graph.initializer.append(numpy_helper.from_array(value, full))
        return full

    def add(self, op: str, inputs: list[str], name: str, **attrs: Any) -> str:
        out = _PREFIX + name
        self.graph.node.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def unsqueeze_last(self, x: str, name: str) -> str:
        if self.opset >= 13:
            return self.add(
                "Unsqueeze", [x, self.const(f"{name}_axes", np.array([2], np.int64))], name
            )
        return self.add("Unsqueeze", [x], name, axes=[2])

    def reduce(self, op: str, x: str, axis: int, keepdims: int, name: str) -> str:
        """ReduceSum takes its axes as an input from opset 13, ReduceMax / ReduceL2 from 18."""
        as_input = self.opset >= (13 if op == "ReduceSum" else 18)
        if as_input:
            axes = self.const(f"{name}_axes", np.array([axis], np.int64))
            return self.add(op, [x, axes], name, keepdims=keepdims)
        return self.add(op, [x], name, axes=[axis], keepdims=keepdims)


def with_pooling(
    model: OnnxModel, output: str, pooling: str, normalize: bool, feeds: Feeds
) -> tuple[OnnxModel, str, Feeds]:
    """`model` cut to token-level `output` [batch, seq, dim] plus its pooling (and L2 norm):
    (the pooled model, its [batch, dim] output's name, the feeds it takes)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
    proto = onnx.ModelProto()
    proto.CopyFrom(keep_outputs(model, [output]).proto)
    graph = proto.graph
    taken = {v.name for v in [*graph.input, *graph.output, *graph.initializer, *graph.value_info]}
    taken |= {name for node in graph.node for name in node.output}
    mask, feeds = _mask_input(graph, feeds, taken)
    nodes = _Nodes(graph, model.opset)
    hidden = output
    if model.output(output).dtype != np.float32:
        hidden = nodes.add("Cast", [output], "hidden", to=TensorProto.FLOAT)
    pooled = _pool(nodes, hidden, mask, pooling)
    if normalize:
        norm = nodes.reduce("ReduceL2", pooled, 1, 1, "norm")
        floor = nodes.add("Max", [norm, nodes.const("eps", np.array(1e-12, np.float32))], "floor")
        pooled = nodes.add("Div", [pooled, floor], "normalized")
    name = _unique(POOLED_NAME, taken)
    graph.node[-1].output[0] = name
    shape = model.output(output).shape or ("batch", None, None)
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, [shape[0], shape[-1]])
    )
    source = f"{model.source} (+ {pooling} pooling{', L2-normalized' if normalize else ''})"
    return OnnxModel.from_bytes(proto.SerializeToString(), source=source), name, feeds


def _mask_input(graph: onnx.GraphProto, feeds: Feeds, taken: set[str]) -> tuple[str, Feeds]:
    """The attention mask input's name; a model that takes none gets one (fed by the stage)."""
    for role, name, _dtype in feeds:
        if role == "attention_mask":
            return name, feeds
    name = _unique("attention_mask", taken)
    graph.input.append(
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
    )
    return name, (*feeds, ("attention_mask", name, "int64"))


def _pool(nodes: _Nodes, hidden: str, mask: str, pooling: str) -> str:
    """The [batch, dim] pooled vectors of `hidden` [batch, seq, dim] under `mask` [batch, seq]."""
    if pooling == "cls":
        return nodes.add(
            "Gather", [hidden, nodes.const("first", np.array(0, np.int64))], "cls", axis=1
        )
    keep = nodes.unsqueeze_last(nodes.add("Cast", [mask], "keep", to=TensorProto.BOOL), "keep3")
    if pooling == "max":  # padding (on the right) stands in as the first token, never -inf:
        # static int8 calibrates this Where, and an infinite range would ruin its scale
        first = nodes.add(
            "Gather", [hidden, nodes.const("first_1d", np.array([0], np.int64))], "first", axis=1
        )
        masked = nodes.add("Where", [keep, hidden, first], "masked")
        return nodes.reduce("ReduceMax", masked, 1, 0, "max")
    zero = nodes.const("zero", np.array(0.0, np.float32))
    masked = nodes.add("Where", [keep, hidden, zero], "masked")
    total = nodes.reduce("ReduceSum", masked, 1, 0, "sum")
    counts = nodes.add("Cast", [keep], "keep_float", to=TensorProto.FLOAT)
    count = nodes.reduce("ReduceSum", counts, 1, 0, "count")
    floor = nodes.add("Max", [count, nodes.const("one", np.array(1.0, np.float32))], "count_floor")
    return nodes.add("Div", [total, floor], "mean")
