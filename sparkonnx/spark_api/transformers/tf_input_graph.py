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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparkonnx.converters.metadata import SOURCE_FORM
from sparkonnx.engine.model import OnnxModel, TensorSpec, UnknownTensorError
from sparkonnx.spark_api.transformers.tf_signatures import (
    checkpoint_meta_graph,
    names,
    rename_io,
    saved_model_meta_graph,
    set_form,
    signature_with,
    tags,
)

if TYPE_CHECKING:
    from sparkonnx.converters.result import ConversionResult

logger = logging.getLogger(__name__)

#: Source forms whose tensors are TF graph tensors ('name:0'); others use plain keys.
_GRAPH_FORMS = ("graph_def", "session", "checkpoint", "saved_model-tensors")


class TFInputGraph:
    """A TF graph, SavedModel, checkpoint or tf.function, held as its converted ONNX model.

    Build it with a `from...` constructor; extra keyword arguments go to the converter
    (`sparkonnx.ConversionOptions` fields such as `opset`, `tolerance`, `input_shapes`).
    """

    def __init__(self, model: OnnxModel, conversion: ConversionResult | None = None) -> None:
        self.model = model
        self.conversion = conversion
        self.form = model.metadata.get(SOURCE_FORM, "onnx")

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
    def _converted(
        cls,
        convert: Callable[..., ConversionResult],
        source: Any,
        feed_names: Sequence[str] | None,
        fetch_names: Sequence[str] | None,
        options: dict[str, Any],
    ) -> TFInputGraph:
        """The funnel of the constructors: `convert` with sparkdl's feed / fetch names."""
        return cls._of(
            convert(
                source,
                input_names=names(feed_names, "feed_names"),
                output_names=names(fetch_names, "fetch_names"),
                **options,
            )
        )

    @classmethod
    def _renamed(
        cls, result: ConversionResult, mapping: dict[str, str], form: str, source: str
    ) -> TFInputGraph:
        """The converted model with its inputs / outputs renamed (old -> new) and `form` set."""
        proto = rename_io(result.proto, mapping)
        set_form(proto, form)
        return cls(OnnxModel.from_bytes(proto.SerializeToString(), source), result)

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

        return cls._converted(from_function, function, feed_names, fetch_names, options)

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
        from sparkonnx.converters.tf_source import is_tf_function

        if is_tf_function(graph):
            return cls.fromFunction(graph, feed_names, fetch_names, **options)
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
        return cls._converted(from_graph_def, source, feed_names, fetch_names, options)

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

        return cls._converted(from_graph_def, graph_def, feed_names, fetch_names, options)

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

        return cls._converted(from_checkpoint, checkpoint_dir, feed_names, fetch_names, options)

    @classmethod
    def fromCheckpointWithSignature(
        cls, checkpoint_dir: str | os.PathLike[str], signature_def_key: str, **options: Any
    ) -> TFInputGraph:
        """A TF1 checkpoint whose meta graph has a SignatureDef; tensors are addressed by its
        input / output keys."""
        from sparkonnx.converters import from_checkpoint

        signatures = dict(checkpoint_meta_graph(checkpoint_dir).signature_def)
        if signature_def_key not in signatures:
            raise KeyError(
                f"the checkpoint's meta graph has no signature {signature_def_key!r}; its "
                f"signatures are {sorted(signatures)}"
            )
        sig = signatures[signature_def_key]
        in_keys, out_keys = sorted(sig.inputs), sorted(sig.outputs)
        result = from_checkpoint(
            checkpoint_dir,
            input_names=[sig.inputs[k].name for k in in_keys],
            output_names=[sig.outputs[k].name for k in out_keys],
            **options,
        )
        model = result.model
        mapping = {model.input(sig.inputs[k].name).name: k for k in in_keys}
        mapping |= {model.output(sig.outputs[k].name).name: k for k in out_keys}
        return cls._renamed(result, mapping, "checkpoint-signature", model.source)

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
        from sparkonnx.converters import _deps, from_graph_def, from_saved_model

        tf = _deps.tensorflow()
        path = Path(saved_model_dir)
        wanted = tags(tag_set)
        feeds = names(feed_names, "feed_names") or []
        fetches = names(fetch_names, "fetch_names") or []
        meta = saved_model_meta_graph(path, wanted)
        if len(meta.object_graph_def.nodes):  # TF2: functions, not one graph of tensors
            key, renames = signature_with(meta, path, feeds, fetches)
            result = from_saved_model(path, tags=wanted, signature=key, **options)
            return cls._renamed(result, renames, "saved_model-tensors", str(path))
        graph = tf.Graph()
        with tf.compat.v1.Session(graph=graph) as sess:
            tf.compat.v1.saved_model.loader.load(sess, list(wanted), str(path))
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
                saved_model_dir, tags=tags(tag_set), signature=signature_def_key, **options
            )
        )
