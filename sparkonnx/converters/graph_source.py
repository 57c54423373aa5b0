"""TF1-style graphs: frozen GraphDefs (.pb / .pbtxt), Sessions and checkpoints, frozen here."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparkonnx.converters import _deps
from sparkonnx.converters.errors import ConversionError, SignatureError
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.result import SourceInfo
from sparkonnx.converters.source import InputInfo, PreparedSource

logger = logging.getLogger(__name__)

_VARIABLE_OPS = {"VariableV2", "Variable", "VarHandleOp", "AutoReloadVariable"}
_NOT_OUTPUTS = {"NoOp", "Const", "Placeholder", "Assign", "AssignVariableOp", "SaveV2", "RestoreV2"}


def tensor_name(name: str) -> str:
    """'x' -> 'x:0'; names with a port are kept."""
    return name if ":" in name else f"{name}:0"


def is_graph_def(obj: Any) -> bool:
    tf = _deps.loaded("tensorflow")
    return tf is not None and isinstance(obj, tf.compat.v1.GraphDef | tf.compat.v1.Session)


def read_graph_def(path: str | os.PathLike[str]) -> Any:
    """Read a binary (.pb) or text (.pbtxt) GraphDef file."""
    tf = _deps.tensorflow()
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"GraphDef file not found: {p}")
    graph_def = tf.compat.v1.GraphDef()
    data = p.read_bytes()
    try:
        if p.suffix == ".pbtxt":
            from google.protobuf import text_format

            text_format.Merge(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    except Exception as exc:
        raise ConversionError(f"{p}: not a readable TensorFlow GraphDef: {exc}") from exc
    return graph_def


def _sinks(graph_def: Any) -> list[str]:
    consumed = {i.split(":")[0].lstrip("^") for n in graph_def.node for i in n.input}
    return [
        f"{n.name}:0" for n in graph_def.node if n.name not in consumed and n.op not in _NOT_OUTPUTS
    ]


def _io_names(
    graph_def: Any, options: ConversionOptions, where: str
) -> tuple[list[str], list[str]]:
    nodes = {n.name: n for n in graph_def.node}
    if options.input_names:
        inputs = [tensor_name(n) for n in options.input_names]
    else:
        inputs = [f"{n.name}:0" for n in graph_def.node if n.op == "Placeholder"]
    if not options.output_names:
        raise SignatureError(
            f"{where}: a graph has no declared outputs; name them with output_names=[...] "
            f"(CLI: --outputs NAME ...); tensors nothing consumes: {_sinks(graph_def)[:10]}"
        )
    outputs = [tensor_name(n) for n in options.output_names]
    missing = [t for t in [*inputs, *outputs] if t.split(":")[0] not in nodes]
    if missing:
        raise SignatureError(
            f"{where}: the graph has no tensor(s) {missing}; placeholders: "
            f"{[n.name for n in graph_def.node if n.op == 'Placeholder']}, tensors nothing "
            f"consumes: {_sinks(graph_def)[:10]}"
        )
    return inputs, outputs


def _input_infos(
    graph_def: Any, inputs: Sequence[str], options: ConversionOptions
) -> list[InputInfo]:
    tf = _deps.tensorflow()
    nodes = {n.name: n for n in graph_def.node}
    overrides = dict(options.input_shapes or {})
    infos = []
    for name in inputs:
        node = nodes[name.split(":")[0]]
        dtype = np.dtype(tf.as_dtype(node.attr["dtype"].type).as_numpy_dtype)
        shape: tuple[int | None, ...] | None = None
        if "shape" in node.attr and not node.attr["shape"].shape.unknown_rank:
            shape = tuple(None if d.size < 0 else int(d.size) for d in node.attr["shape"].shape.dim)
        for key in (name, name.split(":")[0]):
            if key in overrides:
                shape = overrides.pop(key)
        infos.append(InputInfo(name, dtype, shape))
    if overrides:
        raise ConversionError(
            f"input_shapes names {sorted(overrides)}, which are not graph inputs {list(inputs)}"
        )
    return infos


def freeze_session(session: Any, outputs: Sequence[str]) -> Any:
    """A frozen GraphDef of the session's graph, pruned to `outputs`."""
    tf = _deps.tensorflow()
    return tf.compat.v1.graph_util.convert_variables_to_constants(
        session, session.graph.as_graph_def(), [o.split(":")[0] for o in outputs]
    )


def prepare_graph_def(
    graph_def: Any, options: ConversionOptions, name: str = "graph_def", form: str = "graph_def"
) -> PreparedSource:
    """A GraphDef (or a Session, frozen first) between named input and output tensors."""
    tf = _deps.tensorflow()
    if isinstance(graph_def, tf.compat.v1.Session):
        session = graph_def
        graph_def = session.graph.as_graph_def()
        _inputs, outputs = _io_names(graph_def, options, name)
        graph_def = freeze_session(session, outputs)
        form = "session"
    inputs, outputs = _io_names(graph_def, options, name)
    variables = sorted(n.name for n in graph_def.node if n.op in _VARIABLE_OPS)
    if variables:
        raise ConversionError(
            f"{name}: the GraphDef is not frozen (it has variables {variables[:5]}); pass the "
            "tf.compat.v1.Session holding their values, or the checkpoint (from_checkpoint), "
            "and it is frozen first"
        )
    graph_def = tf.compat.v1.graph_util.extract_sub_graph(
        graph_def, [o.split(":")[0] for o in outputs]
    )
    inputs, outputs = _io_names(graph_def, options, name)  # placeholders that reach the outputs
    infos = _input_infos(graph_def, inputs, options)
    shape_override = {
        i.name: list(i.shape) for i in infos if i.shape is not None and options.input_shapes
    }
    weights = sum(
        len(n.attr["value"].tensor.tensor_content) for n in graph_def.node if n.op == "Const"
    )
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(x) for x in session.run(outputs, dict(zip(inputs, arrays)))]

    def to_onnx(opset: int, handlers: Any, large: bool) -> Any:
        from sparkonnx.converters.tf2onnx_core import convert_graph_def

        return convert_graph_def(graph_def, inputs, outputs, opset, handlers, large, shape_override)

    info = SourceInfo("tensorflow", str(tf.__version__), form, name)
    return PreparedSource(info, infos, outputs, to_onnx, run, weights, [session])


def checkpoint_prefix(path: str | os.PathLike[str]) -> str:
    """The checkpoint prefix for a '.meta' file, a prefix, or a directory with a checkpoint."""
    tf = _deps.tensorflow()
    p = Path(path)
    if p.is_dir():
        latest = tf.train.latest_checkpoint(str(p))
        if latest is None:
            raise FileNotFoundError(f"no TensorFlow checkpoint in directory {p}")
        return str(latest)
    prefix = str(p)[: -len(".meta")] if p.suffix == ".meta" else str(p)
    if not Path(f"{prefix}.index").is_file():
        raise FileNotFoundError(f"TensorFlow checkpoint not found: {prefix}.index does not exist")
    return prefix


def prepare_checkpoint(path: str | os.PathLike[str], options: ConversionOptions) -> PreparedSource:
    """A TF1 checkpoint with its meta graph: restored, frozen, then converted as a GraphDef."""
    tf = _deps.tensorflow()
    prefix = checkpoint_prefix(path)
    meta = Path(f"{prefix}.meta")
    if not meta.is_file():
        raise FileNotFoundError(
            f"the checkpoint {prefix} has no meta graph ({meta} is missing); a checkpoint alone "
            "holds only weights: convert the code's graph as a Session or SavedModel instead"
        )
    graph = tf.Graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        saver = tf.compat.v1.train.import_meta_graph(str(meta), clear_devices=True)
        saver.restore(session, prefix)
        _inputs, outputs = _io_names(graph.as_graph_def(), options, str(prefix))
        frozen = freeze_session(session, outputs)
    return prepare_graph_def(frozen, options, name=Path(prefix).name, form="checkpoint")
