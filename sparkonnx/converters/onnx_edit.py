"""Edits of a converted ONNX graph: names, output order, batch dims, opset upgrade, checking."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import onnx
from onnx import external_data_helper

from sparkonnx.converters.errors import ConversionError
from sparkonnx.converters.saving import needs_external_data

logger = logging.getLogger(__name__)

BATCH_DIM = "batch"


def _rename_in_graph(graph: onnx.GraphProto, mapping: Mapping[str, str]) -> None:
    for vi in [*graph.input, *graph.output, *graph.value_info]:
        vi.name = mapping.get(vi.name, vi.name)
    for tensor in graph.initializer:
        tensor.name = mapping.get(tensor.name, tensor.name)
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _rename_in_graph(sub, mapping)  # subgraphs may read outer-scope tensors


def rename_tensors(proto: onnx.ModelProto, mapping: Mapping[str, str]) -> None:
    """Rename tensors everywhere in the model (graph I/O, nodes, subgraphs)."""
    mapping = {k: v for k, v in mapping.items() if k != v}
    if not mapping:
        return
    taken = {n for node in proto.graph.node for n in node.output} | {
        v.name for v in proto.graph.input
    }
    clash = sorted((set(mapping.values()) & taken) - set(mapping))
    if clash:
        raise ConversionError(
            f"cannot rename to {clash}: the converted graph already has tensors with those "
            "names; choose other input/output names"
        )
    _rename_in_graph(proto.graph, mapping)


def order_outputs(proto: onnx.ModelProto, names: Sequence[str]) -> None:
    """Put the graph outputs in the order of `names` (which must all be outputs)."""
    by_name = {o.name: o for o in proto.graph.output}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ConversionError(
            f"the converted graph has no output(s) {missing}; it has {list(by_name)}"
        )
    ordered = [onnx.ValueInfoProto() for _ in names]
    for dst, name in zip(ordered, names):
        dst.CopyFrom(by_name[name])
    del proto.graph.output[:]
    proto.graph.output.extend(ordered)


def name_batch_dims(proto: onnx.ModelProto, names: Sequence[str]) -> None:
    """Name the dynamic first axis of the given inputs/outputs `batch`."""
    wanted = set(names)
    for vi in [*proto.graph.input, *proto.graph.output]:
        if vi.name not in wanted or not vi.type.HasField("tensor_type"):
            continue
        dims = vi.type.tensor_type.shape.dim
        if len(dims) > 0 and not dims[0].HasField("dim_value"):
            dims[0].dim_param = BATCH_DIM


@contextmanager
def weights_offloaded(proto: onnx.ModelProto) -> Iterator[onnx.ModelProto]:
    """For models over 2 GB: park the weights in a temporary file while onnx tools run."""
    if not needs_external_data(proto):
        yield proto
        return
    with tempfile.TemporaryDirectory(prefix="sparkonnx-weights-") as tmp:
        external_data_helper.convert_model_to_external_data(
            proto, all_tensors_to_one_file=True, location="weights.data", size_threshold=1024
        )
        external_data_helper.write_external_data_tensors(proto, tmp)
        try:
            yield proto
        finally:
            external_data_helper.load_external_data_for_model(proto, tmp)


def upgrade_opset(proto: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """Convert the model to default-domain opset `target` with onnx's version converter."""
    current = next((int(i.version) for i in proto.opset_import if i.domain in ("", "ai.onnx")), 0)
    if current >= target:
        return proto
    logger.info("upgrading the model from opset %d to %d", current, target)
    with weights_offloaded(proto) as light:
        try:
            upgraded = onnx.version_converter.convert_version(light, target)
        except Exception as exc:
            raise ConversionError(
                f"onnx could not upgrade the model from opset {current} to {target}: "
                f"{str(exc).strip().splitlines()[0]}; use an opset from 13 to {current}"
            ) from exc
        upgraded.ir_version = max(
            int(light.ir_version), onnx.helper.find_min_ir_version_for(list(upgraded.opset_import))
        )
    if needs_external_data(proto):
        # the converter returned a light copy that points at the parked weights: reattach them
        initializers = {t.name: t for t in proto.graph.initializer}
        for tensor in upgraded.graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL and tensor.name in initializers:
                tensor.CopyFrom(initializers[tensor.name])
    return upgraded


def check_model(proto: onnx.ModelProto, source_name: str) -> None:
    """Run the onnx checker; on failure say which model and what the checker found."""
    try:
        with weights_offloaded(proto) as light:
            onnx.checker.check_model(light)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise ConversionError(
            f"{source_name}: the converted ONNX model is invalid ({first}); this is a converter "
            "bug or an unsupported construct in the source: please report it with the model"
        ) from exc
