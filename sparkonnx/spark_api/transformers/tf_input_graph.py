"""TFInputGraph: a TensorFlow graph converted once, on the driver, to an ONNX model.

sparkdl's constructors (`fromGraph`, `fromGraphDef`, `fromCheckpoint`,
`fromCheckpointWithSignature`, `fromSavedModel`, `fromSavedModelWithSignature`) plus
`fromFunction` for TF2's `tf.function` / ConcreteFunction. Each converts through
`sparkonnx.converters` (with its parity check) and keeps only the ONNX model: executors never
need TensorFlow. Tensors are addressed as in sparkdl: graph tensor names (':0' optional) for
graph sources, signature keys for the `...WithSignature` constructors.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx

from sparkonnx.engine.model import OnnxModel, TensorSpec, UnknownTensorError

if TYPE_CHECKING:
    from sparkonnx.converters.result import ConversionResult

logger = logging.getLogger(__name__)

#: Source forms whose tensors are TF graph tensors ('name:0'); others use plain keys.
_GRAPH_FORMS = ("graph_def", "session", "checkpoint", "saved_model-tensors")
_FORM_KEY = "sparkonnx.source.form"  # written by the converters' metadata


def _names(value: str | Sequence[str] | None, what: str) -> list[str] | None:
    if value is None:
        return None
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what} must be a non-empty list of tensor names, got {value!r}")
    return names


def _tags(tag_set: str | Sequence[str] | None) -> tuple[str, ...]:
    """sparkdl took tags as one comma-separated string ('serve'); a list works too."""
    if tag_set is None:
        return ("serve",)
    tags = tag_set.split(",") if isinstance(tag_set, str) else list(tag_set)
    cleaned = tuple(t.strip() for t in tags if t and t.strip())
    if not cleaned:
        raise ValueError(f"tag_set must name at least one tag (e.g. 'serve'), got {tag_set!r}")
    return cleaned


def _tensorflow() -> Any:
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - the convert extra is missing
        raise ImportError(
            f"TFInputGraph needs TensorFlow on the driver ({exc}); pip install 'sparkonnx[convert]'"
        ) from exc
    return tf


def _is_tf_function(obj: Any) -> bool:
    """True for a tf.function or ConcreteFunction (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return False
    kinds = (tf.types.experimental.GenericFunction, tf.types.experimental.ConcreteFunction)
    return isinstance(obj, kinds)


def _rename_io(proto: onnx.ModelProto, mapping: dict[str, str]) -> onnx.ModelProto:
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


def _set_form(proto: onnx.ModelProto, form: str) -> None:
    for prop in proto.metadata_props:
        if prop.key == _FORM_KEY:
            prop.value = form
            return
    proto.metadata_props.add(key=_FORM_KEY, value=form)


class TFInputGraph:
    """A TF graph, SavedModel, checkpoint or tf.function, held as its converted ONNX model.

    Build it with a `from...` constructor; extra keyword arguments go to the converter
    (`sparkonnx.ConversionOptions` fields such as `opset`, `tolerance`, `input_shapes`).
    """

    def __init__(self, model: OnnxModel, conversion: ConversionResult | None = None) -> None:
        self.model = model
        self.conversion = conversion
        self.form = model.metadata.get(_FORM_KEY, "onnx")

    # -- names -----------------------------------------------------------------------------
    def _display(self, name: str) -> str:
        if self.form in _GRAPH_FORMS and ":" not in name:
            return f"{name}:0"
        return name

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The graph's inputs, as the ONNX model names them."""
        return self.model.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.model.outputs

    @property
    def input_names(self) -> list[str]:
        """Input names as users write them ('x:0' for graph tensors, keys for signatures)."""
        return [self._display(s.name) for s in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [self._display(s.name) for s in self.outputs]

    def describe(self) -> str:
        """'inputs [x:0 float32[?, 2]], outputs [y:0 float32[?, 1]]'."""

        def one(spec: TensorSpec) -> str:
            dims = (
                "?"
                if spec.shape is None
                else ", ".join(str(d) if isinstance(d, int) else "?" for d in spec.shape)
            )
            return f"{self._display(spec.name)!r} {spec.dtype.name}[{dims}]"

        ins = ", ".join(one(s) for s in self.inputs)
        outs = ", ".join(one(s) for s in self.outputs)
        return f"inputs [{ins}], outputs [{outs}]"

    def _find(self, name: str, kind: str) -> TensorSpec:
        try:
            return self.model.input(name) if kind == "input" else self.model.output(name)
        except UnknownTensorError:
            hint = "':0' is optional" if self.form in _GRAPH_FORMS else "use the signature keys"
            raise UnknownTensorError(
                f"the TF graph ({self.form}) has no {kind} tensor {name!r}; it has "
                f"{self.describe()}. Use one of these names in "
                f"{'inputMapping' if kind == 'input' else 'outputMapping'} ({hint})"
            ) from None

    def input(self, name: str) -> TensorSpec:
        """The input spec for a tensor name or signature key; the error lists the real ones."""
        return self._find(name, "input")

    def output(self, name: str) -> TensorSpec:
        """The output spec for a tensor name or signature key; the error lists the real ones."""
        return self._find(name, "output")

    def __repr__(self) -> str:
        return f"TFInputGraph({self.form}, {self.describe()}, sha256={self.model.sha256[:12]})"

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def _of(cls, result: ConversionResult) -> TFInputGraph:
        if result.parity is not None:
            logger.info("TFInputGraph %s: %s", result.source.name, result.parity.summary())
        return cls(result.model, result)

    @classmethod
    def fromOnnx(cls, model: OnnxModel | bytes | str | os.PathLike[str]) -> TFInputGraph:
        """Wrap an ONNX model converted earlier (e.g. by a saved TFTransformer)."""
        return cls(OnnxModel.load(model))

    @classmethod
    def fromFunction(
        cls,
        function: Any,
        feed_names: Sequence[str] | None = None,
        fetch_names: Sequence[str] | None = None,
        **options: Any,
    ) -> TFInputGraph:
        """A `tf.function` (with an input_signature) or ConcreteFunction: TF2's graph.

        Inputs are named after the TensorSpec names, outputs after the keys of a returned dict;
        `feed_names` / `fetch_names` rename them (one name each, in order).
        """
        from sparkonnx.converters import from_function

        return cls._of(
            from_function(
                function,
                input_names=_names(feed_names, "feed_names"),
                output_names=_names(fetch_names, "fetch_names"),
                **options,
            )
        )

    @classmethod
    def fromGraph(
        cls,
        graph: Any,
        sess: Any,
        feed_names: Sequence[str],
        fetch_names: Sequence[str],
        **options: Any,
    ) -> TFInputGraph:
        """A `tf.compat.v1.Graph` with the Session holding its variables (frozen here).

        `sess` may be None for a graph without variables. A `tf.function` given as `graph` is
        converted with `fromFunction`.
        """
        from sparkonnx.converters import from_graph_def

        if _is_tf_function(graph):
            return cls.fromFunction(graph, feed_names, fetch_names, **options)
        feeds = _names(feed_names, "feed_names")
        fetches = _names(fetch_names, "fetch_names")
        if sess is not None:
            if graph is not None and sess.graph is not graph:
                raise ValueError(
                    "fromGraph got a Session whose graph is not `graph`; pass the session "
                    "that holds this graph's variables (tf.compat.v1.Session(graph=graph))"
                )
            source = sess
        else:
            if not hasattr(graph, "as_graph_def"):
                raise TypeError(
                    f"fromGraph expects a tf.compat.v1.Graph (or a tf.function), got "
                    f"{type(graph).__name__}; for a GraphDef use fromGraphDef"
                )
            source = graph.as_graph_def()
        return cls._of(from_graph_def(source, input_names=feeds, output_names=fetches, **options))

    @classmethod
    def fromGraphDef(
        cls,
        graph_def: Any,
        feed_names: Sequence[str],
        fetch_names: Sequence[str],
        **options: Any,
    ) -> TFInputGraph:
        """A frozen `tf.compat.v1.GraphDef` (or a .pb / .pbtxt path)."""
        from sparkonnx.converters import from_graph_def

        return cls._of(
            from_graph_def(
                graph_def,
                input_names=_names(feed_names, "feed_names"),
                output_names=_names(fetch_names, "fetch_names"),
                **options,
            )
        )

    @classmethod
    def fromCheckpoint(
        cls,
        checkpoint_dir: str | os.PathLike[str],
        feed_names: Sequence[str],
        fetch_names: Sequence[str],
        **options: Any,
    ) -> TFInputGraph:
        """A TF1 checkpoint with its meta graph (directory, prefix or .meta file)."""
        from sparkonnx.converters import from_checkpoint

        return cls._of(
            from_checkpoint(
                checkpoint_dir,
                input_names=_names(feed_names, "feed_names"),
                output_names=_names(fetch_names, "fetch_names"),
                **options,
            )
        )

    @classmethod
    def fromCheckpointWithSignature(
        cls, checkpoint_dir: str | os.PathLike[str], signature_def_key: str, **options: Any
    ) -> TFInputGraph:
        """A TF1 checkpoint whose meta graph has a SignatureDef; tensors are addressed by its
        input / output keys."""
        from sparkonnx.converters import from_checkpoint

        meta = _checkpoint_meta_graph(checkpoint_dir)
        signatures = dict(meta.signature_def)
        if signature_def_key not in signatures:
            raise KeyError(
                f"the checkpoint's meta graph has no signature {signature_def_key!r}; its "
                f"signatures are {sorted(signatures)}"
            )
        sig = signatures[signature_def_key]
        in_keys = sorted(sig.inputs)
        out_keys = sorted(sig.outputs)
        result = from_checkpoint(
            checkpoint_dir,
            input_names=[sig.inputs[k].name for k in in_keys],
            output_names=[sig.outputs[k].name for k in out_keys],
            **options,
        )
        mapping: dict[str, str] = {}
        model = result.model
        for keys, table, find in (
            (in_keys, sig.inputs, model.input),
            (out_keys, sig.outputs, model.output),
        ):
            for key in keys:
                mapping[find(table[key].name).name] = key
        renamed = _rename_io(result.proto, mapping)
        _set_form(renamed, "checkpoint-signature")
        return cls(OnnxModel.from_bytes(renamed.SerializeToString(), model.source), result)

    @classmethod
    def fromSavedModel(
        cls,
        saved_model_dir: str | os.PathLike[str],
        tag_set: str | Sequence[str] | None,
        feed_names: Sequence[str],
        fetch_names: Sequence[str],
        **options: Any,
    ) -> TFInputGraph:
        """A SavedModel's meta graph between named graph tensors.

        TF1 SavedModels are loaded into a Session and frozen; in a TF2 SavedModel the graph
        tensors are a signature's (e.g. 'serving_default_x:0' -> 'StatefulPartitionedCall:0'),
        so the signature that has them is converted.
        """
        from sparkonnx.converters import from_graph_def, from_saved_model

        tf = _tensorflow()
        path = Path(saved_model_dir)
        tags = _tags(tag_set)
        feeds = _names(feed_names, "feed_names") or []
        fetches = _names(fetch_names, "fetch_names") or []
        meta = _saved_model_meta_graph(path, tags)
        if len(meta.object_graph_def.nodes):  # TF2: functions, not one graph of tensors
            key, renames = _signature_with(meta, path, feeds, fetches)
            result = from_saved_model(path, tags=tags, signature=key, **options)
            proto = _rename_io(result.proto, renames)
            _set_form(proto, "saved_model-tensors")
            return cls(OnnxModel.from_bytes(proto.SerializeToString(), str(path)), result)
        graph = tf.Graph()
        with tf.compat.v1.Session(graph=graph) as sess:
            tf.compat.v1.saved_model.loader.load(sess, list(tags), str(path))
            result = from_graph_def(sess, input_names=feeds, output_names=fetches, **options)
        return cls._of(result)

    @classmethod
    def fromSavedModelWithSignature(
        cls,
        saved_model_dir: str | os.PathLike[str],
        tag_set: str | Sequence[str] | None,
        signature_def_key: str,
        **options: Any,
    ) -> TFInputGraph:
        """A SavedModel through one signature; tensors are addressed by its keys."""
        from sparkonnx.converters import from_saved_model

        return cls._of(
            from_saved_model(
                saved_model_dir, tags=_tags(tag_set), signature=signature_def_key, **options
            )
        )


def _checkpoint_meta_graph(checkpoint_dir: str | os.PathLike[str]) -> Any:
    """The MetaGraphDef stored beside a checkpoint (directory, prefix or .meta file)."""
    tf = _tensorflow()
    p = Path(checkpoint_dir)
    if p.suffix == ".meta":
        meta_path = p
    else:
        prefix = tf.train.latest_checkpoint(str(p)) if p.is_dir() else str(p)
        if prefix is None:
            raise FileNotFoundError(f"no TensorFlow checkpoint in directory {p}")
        meta_path = Path(f"{prefix}.meta")
    if not meta_path.is_file():
        raise FileNotFoundError(
            f"the checkpoint has no meta graph ({meta_path} is missing); save it with "
            "tf.compat.v1.train.Saver().save(sess, prefix) (write_meta_graph=True)"
        )
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString(meta_path.read_bytes())
    return meta


def _saved_model_meta_graph(path: Path, tags: tuple[str, ...]) -> Any:
    """The MetaGraphDef of a SavedModel directory with exactly these tags."""
    from tensorflow.core.protobuf import saved_model_pb2

    pb = path / "saved_model.pb"
    if not pb.is_file():
        raise FileNotFoundError(f"not a SavedModel directory (no saved_model.pb): {path}")
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString(pb.read_bytes())
    found = [sorted(m.meta_info_def.tags) for m in saved.meta_graphs]
    for meta in saved.meta_graphs:
        if sorted(meta.meta_info_def.tags) == sorted(tags):
            return meta
    raise ValueError(f"{path}: no meta graph with tags {list(tags)}; its tag sets are {found}")


def _signature_with(
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
