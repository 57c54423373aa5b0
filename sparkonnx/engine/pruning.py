"""Cut a model down to the outputs a stage uses: unused outputs, nodes and weights removed.

A featurizer that keeps only `features` of a zoo graph with `features` and `probabilities` need
not run (nor quantize, nor gate) the classifier head.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import onnx

from sparkonnx.engine.model import OnnxModel


def _subgraph_inputs(node: onnx.NodeProto) -> set[str]:
    """Every name read inside a node's subgraphs (If / Loop / Scan bodies may read outer names)."""
    names: set[str] = set()
    for attribute in node.attribute:
        graphs = list(attribute.graphs) + ([attribute.g] if attribute.HasField("g") else [])
        for graph in graphs:
            for inner in graph.node:
                names.update(inner.input)
                names.update(_subgraph_inputs(inner))
    return names


def _needed_nodes(
    graph: onnx.GraphProto, outputs: Iterable[str]
) -> tuple[list[onnx.NodeProto], set[str]]:
    """The nodes the given outputs depend on (in graph order), and every name they read."""
    needed = set(outputs)
    keep: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if needed.intersection(node.output):
            keep.append(node)
            needed.update(node.input)
            needed.update(_subgraph_inputs(node))
    keep.reverse()
    return keep, needed


def keep_outputs(model: OnnxModel, outputs: Sequence[str]) -> OnnxModel:
    """`model` with only `outputs` (in the model's order), and only what computes them.

    Returns `model` itself when it has no other output. Inputs and metadata are kept.
    """
    for name in outputs:
        model.output(name)  # UnknownTensorError listing the model's outputs
    wanted = set(outputs)
    if wanted == {spec.name for spec in model.outputs}:
        return model
    proto = onnx.ModelProto()
    proto.CopyFrom(model.proto)
    graph = proto.graph
    kept_outputs = [o for o in graph.output if o.name in wanted]
    nodes, used = _needed_nodes(graph, wanted)
    produced = {name for node in nodes for name in node.output}
    initializers = [t for t in graph.initializer if t.name in used]
    value_info = [v for v in graph.value_info if v.name in used or v.name in produced]
    del graph.output[:]
    graph.output.extend(kept_outputs)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    source = f"{model.source} (outputs {', '.join(o.name for o in kept_outputs)})"
    return OnnxModel.from_bytes(proto.SerializeToString(), source=source)
