"""Public entry points: `convert` (dispatch on the source) and one `from_*` per source form."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from sparkonnx.converters import _deps
from sparkonnx.converters.errors import UnsupportedSourceError
from sparkonnx.converters.options import ConversionOptions, resolve_options
from sparkonnx.converters.parity import SampleInput
from sparkonnx.converters.quiet import quietly
from sparkonnx.converters.result import ConversionResult

logger = logging.getLogger(__name__)

_ALLOWED = (
    "a Keras model object, a .keras / .h5 file, a SavedModel directory, a tf.function or "
    "ConcreteFunction, a tf.compat.v1.GraphDef or Session, a .pb / .pbtxt GraphDef file, or a "
    "TF checkpoint (prefix, .meta file, or directory)"
)


@quietly
def from_keras(
    model: Any,
    options: ConversionOptions | None = None,
    *,
    sample_input: SampleInput | None = None,
    **overrides: Any,
) -> ConversionResult:
    """Convert a Keras 3 model object or what `model.save()` wrote (`.keras`, `.h5`, an unzipped
    `.keras` directory), loaded with safe_mode."""
    from sparkonnx.converters import keras_source, pipeline

    opts = resolve_options(options, overrides)
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        loaded = keras_source.load_keras_file(path, opts.allow_unsafe)
        form = "h5" if keras_source.keras_file_kind(path) == ".h5" else "keras-file"
        info = keras_source.keras_source_info(loaded, form, path.name)
    else:
        _deps.keras()
        if not keras_source.is_keras_model(model):
            raise UnsupportedSourceError(
                f"from_keras expects a keras.Model or a .keras / .h5 path, got "
                f"{type(model).__name__}; for other sources use sparkonnx.convert(...)"
            )
        loaded = model
        info = keras_source.keras_source_info(loaded, "keras-model")
    prepared = keras_source.prepare_keras(loaded, opts, info, sample_input)
    return pipeline.run(prepared, opts, sample_input)


@quietly
def from_saved_model(
    path: str | os.PathLike[str],
    options: ConversionOptions | None = None,
    *,
    sample_input: SampleInput | None = None,
    **overrides: Any,
) -> ConversionResult:
    """Convert a SavedModel directory through one signature (default `serving_default`)."""
    from sparkonnx.converters import pipeline, tf_source

    opts = resolve_options(options, overrides)
    prepared = tf_source.prepare_saved_model(path, opts)
    return pipeline.run(prepared, opts, sample_input)


@quietly
def from_function(
    function: Any,
    options: ConversionOptions | None = None,
    *,
    sample_input: SampleInput | None = None,
    **overrides: Any,
) -> ConversionResult:
    """Convert a `tf.function` or ConcreteFunction (outputs named after a returned dict's keys)."""
    from sparkonnx.converters import pipeline, tf_source

    opts = resolve_options(options, overrides)
    _deps.tensorflow()
    if not tf_source.is_tf_function(function):
        raise UnsupportedSourceError(
            f"from_function expects a tf.function or ConcreteFunction, got "
            f"{type(function).__name__}; wrap plain Python code with @tf.function"
        )
    prepared = tf_source.prepare_function(function, opts, sample_input)
    return pipeline.run(prepared, opts, sample_input)


@quietly
def from_graph_def(
    graph_def: Any,
    options: ConversionOptions | None = None,
    *,
    sample_input: SampleInput | None = None,
    **overrides: Any,
) -> ConversionResult:
    """Convert a frozen GraphDef (object or .pb / .pbtxt file) or a Session (frozen first);
    `output_names` (TF tensors) are required, `input_names` default to the placeholders."""
    from sparkonnx.converters import graph_source, pipeline

    opts = resolve_options(options, overrides)
    name = "graph_def"
    if isinstance(graph_def, str | os.PathLike):
        name = Path(graph_def).name
        graph_def = graph_source.read_graph_def(graph_def)
    else:
        _deps.tensorflow()
        if not graph_source.is_graph_def(graph_def):
            raise UnsupportedSourceError(
                f"from_graph_def expects a tf.compat.v1.GraphDef, a Session or a .pb path, got "
                f"{type(graph_def).__name__}"
            )
    prepared = graph_source.prepare_graph_def(graph_def, opts, name=name)
    return pipeline.run(prepared, opts, sample_input)


@quietly
def from_checkpoint(
    path: str | os.PathLike[str],
    options: ConversionOptions | None = None,
    *,
    sample_input: SampleInput | None = None,
    **overrides: Any,
) -> ConversionResult:
    """Convert a TF1 checkpoint with its meta graph (prefix, `.meta` file or directory);
    `output_names` (TF tensors) are required."""
    from sparkonnx.converters import graph_source, pipeline

    opts = resolve_options(options, overrides)
    prepared = graph_source.prepare_checkpoint(path, opts)
    return pipeline.run(prepared, opts, sample_input)


def _is_checkpoint_path(p: Path) -> bool:
    if p.suffix == ".meta" or Path(f"{p}.index").is_file():
        return True
    return p.is_dir() and (p / "checkpoint").is_file()


@quietly
def convert(
    source: Any,
    options: ConversionOptions | None = None,
    *,
    sample_input: SampleInput | None = None,
    **overrides: Any,
) -> ConversionResult:
    """Convert any supported source to a checked ONNX model, dispatching on its type or path."""
    kwargs: dict[str, Any] = {"sample_input": sample_input, **overrides}
    if isinstance(source, str | os.PathLike):
        p = Path(source)
        if p.suffix in (".keras", ".h5", ".hdf5"):
            return from_keras(p, options, **kwargs)
        if p.suffix in (".pb", ".pbtxt") and p.name not in ("saved_model.pb", "saved_model.pbtxt"):
            return from_graph_def(p, options, **kwargs)
        if p.name in ("saved_model.pb", "saved_model.pbtxt"):
            p = p.parent
        from sparkonnx.converters.tf_source import is_saved_model_dir

        if is_saved_model_dir(p):
            return from_saved_model(p, options, **kwargs)
        if _is_checkpoint_path(p):
            return from_checkpoint(p, options, **kwargs)
        from sparkonnx.converters.keras_source import keras_file_kind

        if p.suffix != ".onnx" and keras_file_kind(p) is not None:  # unzipped / renamed Keras
            return from_keras(p, options, **kwargs)
        if p.suffix == ".onnx":
            raise UnsupportedSourceError(
                f"{p} is already an ONNX model; inspect it with `sparkonnx inspect {p}` or load "
                "it with sparkonnx.OnnxModel.from_path"
            )
        if not p.exists():
            raise FileNotFoundError(f"model source not found: {p}")
        raise UnsupportedSourceError(
            f"{p}: not a model source sparkonnx recognizes; use {_ALLOWED}"
        )
    from sparkonnx.converters import graph_source, keras_source, tf_source

    if keras_source.is_keras_model(source):
        return from_keras(source, options, **kwargs)
    if tf_source.is_tf_function(source):
        return from_function(source, options, **kwargs)
    if graph_source.is_graph_def(source):
        return from_graph_def(source, options, **kwargs)
    raise UnsupportedSourceError(
        f"cannot convert a {type(source).__module__}.{type(source).__name__}; use {_ALLOWED}"
    )
