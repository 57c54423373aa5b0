"""Our tf2onnx handlers for TF ops it leaves unconverted, and the scan for ops nothing can run."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import numpy as np
import onnx

from sparkonnx.converters.errors import UnsupportedOpsError

logger = logging.getLogger(__name__)

# Domains ONNX Runtime implements besides the default one.
_RUNTIME_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc"}


def _erfc(ctx: Any, node: Any, name: str, args: Any) -> Any:
    """Erfc(x) = 1 - Erf(x): Keras' exact gelu uses Erfc, which tf2onnx 1.17 leaves as is."""
    from tf2onnx import utils

    x = node.input[0]
    erf = ctx.make_node("Erf", [x], op_name_scope=node.name)
    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(x))
    one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])
    return node


def custom_handlers() -> dict[str, tuple[Any, list[Any]]]:
    """tf2onnx `custom_op_handlers`: TF op type -> (handler, args)."""
    return {"Erfc": (_erfc, [])}


def _ops(graph: onnx.GraphProto, imports: dict[str, int], found: Counter[str]) -> None:
    for node in graph.node:
        domain = node.domain or ""
        if domain not in _RUNTIME_DOMAINS:
            found[f"{node.op_type} (domain {domain})"] += 1
        elif domain in ("", "ai.onnx"):
            version = imports.get("", imports.get("ai.onnx", 0))
            try:
                onnx.defs.get_schema(node.op_type, version, "")
            except onnx.defs.SchemaError:
                found[node.op_type] += 1
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                _ops(sub, imports, found)


def unsupported_ops(proto: onnx.ModelProto) -> dict[str, int]:
    """Op types (with counts) that are not ONNX operators of the model's opset."""
    imports = {i.domain: int(i.version) for i in proto.opset_import}
    found: Counter[str] = Counter()
    _ops(proto.graph, imports, found)
    return dict(found)


def raise_on_unsupported_ops(proto: onnx.ModelProto, source_name: str) -> None:
    """Fail, naming them, when tf2onnx left TF ops in the graph (it only logs them)."""
    ops = unsupported_ops(proto)
    if not ops:
        return
    listed = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))
    raise UnsupportedOpsError(
        f"{source_name}: tf2onnx could not convert these TensorFlow ops, so ONNX Runtime could "
        f"not load the model: {listed}. Replace them in the model (e.g. resize without "
        "antialias, a supported activation) or convert a graph that avoids them",
        ops,
    )
