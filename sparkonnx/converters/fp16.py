"""float16 conversion that keeps float32 inputs and outputs (casts at the graph edges)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sparkonnx.converters.onnx_edit import weights_offloaded

logger = logging.getLogger(__name__)

FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16
_FP16_MAX = float(np.finfo(np.float16).max)
_DTYPE_ATTR_OPS = {
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "EyeLike",
}


def _subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _collect_types(graph: onnx.GraphProto, types: dict[str, int]) -> None:
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for t in graph.initializer:
        types[t.name] = t.data_type
    for node in graph.node:
        for sub in _subgraphs(node):
            _collect_types(sub, types)


def _half_tensor(tensor: onnx.TensorProto) -> int:
    """Convert a float32 tensor to float16 in place; return how many values were clipped."""
    values = numpy_helper.to_array(tensor)
    clipped = int(np.count_nonzero(np.abs(values[np.isfinite(values)]) > _FP16_MAX))
    half = np.clip(values, -_FP16_MAX, _FP16_MAX).astype(np.float16)
    tensor.CopyFrom(numpy_helper.from_array(half, tensor.name))
    return clipped


def _formal(
    schema: onnx.defs.OpSchema, index: int, outputs: bool
) -> onnx.defs.OpSchema.FormalParameter | None:
    params = schema.outputs if outputs else schema.inputs
    if not params:
        return None
    if index < len(params):
        return params[index]
    last = params[-1]
    return last if last.option == onnx.defs.OpSchema.FormalParameterOption.Variadic else None


def _allows_half(schema: onnx.defs.OpSchema, param: onnx.defs.OpSchema.FormalParameter) -> bool:
    for constraint in schema.type_constraints:
        if constraint.type_param_str == param.type_str:
            return "tensor(float16)" in constraint.allowed_type_strs
    return param.type_str == "tensor(float16)"


class _Converter:
    def __init__(self, types: dict[str, int], opset: int) -> None:
        self.types = types
        self.opset = opset
        self.clipped = 0
        self.counter = 0

    def _name(self, base: str) -> str:
        self.counter += 1
        return f"{base}__fp16_cast{self.counter}"

    def _is_float(self, name: str) -> bool:
        return self.types.get(name) == FLOAT

    def graph(self, graph: onnx.GraphProto, top: bool) -> None:
        for tensor in graph.initializer:
            if tensor.data_type == FLOAT:
                self.clipped += _half_tensor(tensor)
        del graph.value_info[:]  # element types changed; ONNX Runtime infers them again
        if not top:
            for vi in [*graph.input, *graph.output]:
                if vi.type.tensor_type.elem_type == FLOAT:
                    vi.type.tensor_type.elem_type = HALF
        new_nodes: list[onnx.NodeProto] = []
        for node in graph.node:
            self._node(node, new_nodes)
        if top:
            new_nodes = self._edges(graph, new_nodes)
        del graph.node[:]
        graph.node.extend(new_nodes)

    def _node(self, node: onnx.NodeProto, out: list[onnx.NodeProto]) -> None:
        for sub in _subgraphs(node):
            self.graph(sub, top=False)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == FLOAT:
                self.clipped += _half_tensor(attr.t)
            if (
                attr.name in ("to", "dtype")
                and attr.i == FLOAT
                and (node.op_type == "Cast" or node.op_type in _DTYPE_ATTR_OPS)
            ):
                attr.i = HALF
        schema = None
        if node.domain in ("", "ai.onnx"):
            try:
                schema = onnx.defs.get_schema(node.op_type, self.opset, "")
            except onnx.defs.SchemaError:
                schema = None
        if schema is None:
            out.append(node)
            return
        keep_fp32 = any(
            self._is_float(name)
            and (p := _formal(schema, i, False)) is not None
            and not _allows_half(schema, p)
            for i, name in enumerate(node.input)
            if name
        )
        for i, name in enumerate(node.input):
            param = _formal(schema, i, False)
            if (
                name
                and self._is_float(name)
                and param is not None
                and (keep_fp32 or not _allows_half(schema, param))
            ):
                cast = self._name(name)
                out.append(helper.make_node("Cast", [name], [cast], to=FLOAT, name=cast))
                node.input[i] = cast
        out.append(node)
        for i, name in enumerate(node.output):
            param = _formal(schema, i, True)
            if (
                name
                and self._is_float(name)
                and param is not None
                and (keep_fp32 or not _allows_half(schema, param))
            ):
                raw = self._name(name)
                node.output[i] = raw
                out.append(helper.make_node("Cast", [raw], [name], to=HALF, name=raw + "_back"))

    def _edges(self, graph: onnx.GraphProto, nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
        """float32 graph inputs cast to float16 on entry, float16 results cast back on exit."""
        head: list[onnx.NodeProto] = []
        renames: dict[str, str] = {}
        for vi in graph.input:
            if vi.type.tensor_type.elem_type == FLOAT:
                half = self._name(vi.name)
                head.append(helper.make_node("Cast", [vi.name], [half], to=HALF, name=half))
                renames[vi.name] = half
        for node in nodes:
            node.input[:] = [renames.get(n, n) for n in node.input]
        inputs = {vi.name for vi in graph.input}
        tail: list[onnx.NodeProto] = []
        for vi in graph.output:
            if vi.type.tensor_type.elem_type != FLOAT or vi.name in inputs:
                continue
            half = self._name(vi.name)
            for node in nodes:
                node.output[:] = [half if n == vi.name else n for n in node.output]
                node.input[:] = [half if n == vi.name else n for n in node.input]
            tail.append(helper.make_node("Cast", [half], [vi.name], to=FLOAT, name=half + "_out"))
        return [*head, *nodes, *tail]


def to_fp16(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A float16 copy of `proto`: weights and compute in float16, float32 inputs/outputs kept."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    types: dict[str, int] = {}
    with weights_offloaded(model) as light:
        inferred = onnx.shape_inference.infer_shapes(light)
    _collect_types(inferred.graph, types)
    opset = next((int(i.version) for i in model.opset_import if i.domain in ("", "ai.onnx")), 0)
    converter = _Converter(types, opset)
    converter.graph(model.graph, top=True)
    if converter.clipped:
        logger.warning(
            "%d weight values were beyond float16's range (+-%g) and were clipped",
            converter.clipped,
            _FP16_MAX,
        )
    return model
