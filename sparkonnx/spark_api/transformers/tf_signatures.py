"""What TFInputGraph reads from TensorFlow sources besides the conversion itself, driver side.

sparkdl's argument forms (tensor-name lists, comma-separated tag sets), the meta graphs stored
beside a checkpoint or in a SavedModel, the signature that holds given graph tensors, and the
renaming of a converted ONNX model's inputs / outputs to the names users address them by.
TensorFlow is imported only inside the functions that read its files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx

from sparkonnx.converters.metadata import SOURCE_FORM

__all__ = [
    "checkpoint_meta_graph",
    "names",
    "rename_io",
    "saved_model_meta_graph",
    "set_form",
    "signature_with",
    "tags",
]


def names(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    """One tensor name or a list of them as a list (None stays None); ValueError naming `what`."""
    if value is None:
        return None
    listed = [value] if isinstance(value, str) else list(value)
    if not listed or not all(isinstance(n, str) and n for n in listed):
        raise ValueError(f"{what} must be a non-empty list of tensor names, got {value!r}")
    return listed


def tags(tag_set: str | Sequence[str] | None) -> tuple[str, ...]:
    """sparkdl took tags as one comma-separated string ('serve'); a list works too."""
    if tag_set is None:
        return ("serve",)
    tags = tag_set.split(",") if isinstance(tag_set, str) else list(tag_set)
    cleaned = tuple(t.strip() for t in tags if t and t.strip())
    if not cleaned:
        raise ValueError(f"tag_set must name at least one tag (e.g. 'serve'), got {tag_set!r}")
    return cleaned


def rename_io(proto: onnx.ModelProto, mapping: dict[str, str]) -> onnx.ModelProto:
    """A copy of `proto` with graph inputs / outputs renamed (old -> new) everywhere."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    graph = out.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        value.name = mapping.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    return out


def set_form(proto: onnx.ModelProto, form: str) -> None:
    """Record `form` as the model's source form (in place, keeping the other entries' order)."""
    for prop in proto.metadata_props:
        if prop.key == SOURCE_FORM:
            prop.value = form
            return
    proto.metadata_props.add(key=SOURCE_FORM, value=form)


def checkpoint_meta_graph(checkpoint_dir: str | os.PathLike[str]) -> Any:
    """The MetaGraphDef stored beside a checkpoint (directory, prefix or .meta file)."""
    from sparkonnx.converters import _deps
    from sparkonnx.converters.graph_source import checkpoint_prefix

    tf = _deps.tensorflow()
    meta_path = Path(f"{checkpoint_prefix(checkpoint_dir)}.meta")
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"the checkpoint has no meta graph ({meta_path} is missing); save it with "
            "tf.compat.v1.train.Saver().save(sess, prefix) (write_meta_graph=True)"
        )
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString(meta_path.read_bytes())
    return meta


def saved_model_meta_graph(path: Path, wanted: tuple[str, ...]) -> Any:
    """The MetaGraphDef of a SavedModel directory with exactly these tags."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    if not pb.is_file():
        raise FileNotFoundError(f"not a SavedModel directory (no saved_model.pb): {path}")
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pb.read_bytes())
    found = [sorted(m.meta_info_def.tags) for m in saved.meta_graphs]
    for meta in saved.meta_graphs:
        if sorted(meta.meta_info_def.tags) == sorted(wanted):
            return meta
    raise ValueError(f"{path}: no meta graph with tags {list(wanted)}; its tag sets are {found}")


def signature_with(
    meta: Any, path: Path, feeds: list[str], fetches: list[str]
) -> tuple[str, dict[str, str]]:
    """The signature whose tensors include `feeds` and `fetches`, and {key: tensor name}."""

    def norm(name: str) -> str:
        return name if ":" in name else f"{name}:0"

    listed = []
    for key, sig in meta.signature_def.items():
        ins = {norm(v.name): k for k, v in sig.inputs.items()}
        outs = {norm(v.name): k for k, v in sig.outputs.items()}
        listed.append(f"{key}: {sorted(ins)} -> {sorted(outs)}")
        if set(map(norm, feeds)) == set(ins) and set(map(norm, fetches)) <= set(outs):
            renames = {ins[n]: n.removesuffix(":0") for n in ins}
            renames |= {outs[norm(n)]: norm(n).removesuffix(":0") for n in fetches}
            return key, renames
    raise KeyError(
        f"{path} is a TF2 SavedModel: its graph tensors are those of its signatures, and no "
        f"signature has inputs {feeds} and outputs {fetches}. Its signatures: "
        f"{'; '.join(listed)}. Use those tensor names, or fromSavedModelWithSignature"
    )
