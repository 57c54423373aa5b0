"""Keras 3 models (objects, `.keras`, legacy `.h5`) prepared for conversion."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sparkonnx.converters import _deps
from sparkonnx.converters.errors import ConversionError, UnsafeModelError
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.parity import SampleInput
from sparkonnx.converters.result import SourceInfo
from sparkonnx.converters.source import InputInfo, PreparedSource, sanitize_tf_name
from sparkonnx.converters.tf_function import named_function, runner

logger = logging.getLogger(__name__)

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def is_keras_model(obj: Any) -> bool:
    """True for a Keras 3 model object (checked without importing Keras)."""
    keras = _deps.loaded("keras")
    return keras is not None and isinstance(obj, keras.Model)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"


def keras_file_kind(path: str | os.PathLike[str]) -> str | None:
    """'.keras', '.h5' or 'dir' (an unzipped .keras) for what `model.save(path)` writes, None
    for anything else. Files are told by suffix, else by content (Keras 2 saved HDF5 files
    under any name)."""
    p = Path(path)
    if p.is_dir():
        return "dir" if (p / "config.json").is_file() else None
    if not p.is_file():
        return None
    if p.suffix.lower() in KERAS_SUFFIXES:
        return ".keras" if p.suffix.lower() == ".keras" else ".h5"
    with p.open("rb") as f:
        head = f.read(8)
    if head == _HDF5_SIGNATURE:
        return ".h5"
    return ".keras" if head.startswith(_ZIP_SIGNATURE) else None


def load_keras_file(path: str | os.PathLike[str], allow_unsafe: bool) -> Any:
    """Load what `model.save()` wrote (`.keras`, `.h5`, an unzipped `.keras` directory, or such a
    file under another name) with safe_mode (Lambda layers refused unless allowed)."""
    keras = _deps.keras()
    p = Path(path)
    kind = keras_file_kind(p)
    if kind is None:
        if not p.exists():
            raise FileNotFoundError(f"Keras model file not found: {p}")
        raise ConversionError(
            f"{p} is not a Keras model: expected what model.save() writes, a .keras or .h5 file "
            "(or an unzipped .keras directory holding config.json)"
        )
    with tempfile.TemporaryDirectory(prefix="sparkonnx-keras-") as tmp:
        if kind != "dir" and p.suffix.lower() not in KERAS_SUFFIXES:  # Keras goes by the suffix
            link = Path(tmp) / f"model{kind}"
            link.symlink_to(p.resolve())
            p = link
        return _load(keras, p, allow_unsafe)


def _load(keras: Any, p: Path, allow_unsafe: bool) -> Any:
    try:
        return keras.saving.load_model(p, compile=False, safe_mode=not allow_unsafe)
    except Exception as exc:
        text = str(exc)
        if "safe_mode" in text or "Lambda" in text:
            raise UnsafeModelError(
                f"{p}: the Keras model has a Lambda layer, whose Python code would run on "
                "loading, so it is refused by default; if you trust the file, pass "
                "allow_unsafe=True (CLI: --allow-unsafe)"
            ) from exc
        hint = (
            "register its custom classes (keras.saving.register_keras_serializable) or load it "
            "yourself and pass the model object"
            if "custom" in text.lower() or "locate" in text.lower()
            else "check that the file is a Keras model saved by model.save()"
        )
        raise ConversionError(
            f"{p}: Keras could not load the model: {_first_line(text)}; {hint}"
        ) from exc


def _input_struct(model: Any) -> Any | None:
    """The functional input structure; a Sequential model only has `inputs`, a subclassed none."""
    for attr in ("input", "inputs"):
        try:
            value = getattr(model, attr)
        except (AttributeError, ValueError):
            continue
        if isinstance(value, list | tuple):
            if not value:
                continue
            if attr == "inputs":
                return value[0] if len(value) == 1 else list(value)
        if value is not None:
            return value
    return None


def _inputs_from_sample(sample: SampleInput) -> tuple[Any, list[InputInfo]]:
    if isinstance(sample, np.ndarray):
        return "x", [InputInfo("x", sample.dtype, (None, *sample.shape[1:]))]
    if isinstance(sample, dict):
        infos = [
            InputInfo(k, np.asarray(v).dtype, (None, *np.shape(v)[1:]))
            for k, v in sorted(sample.items())
        ]
        return {i.name: i.name for i in infos}, infos
    infos = [
        InputInfo(f"input_{i}", a.dtype, (None, *a.shape[1:]))
        for i, a in enumerate(np.asarray(v) for v in sample)
    ]
    return [i.name for i in infos], infos


def _keras_inputs(
    model: Any, options: ConversionOptions, sample: SampleInput | None
) -> tuple[Any, list[InputInfo]]:
    """The model's input structure (names as leaves) and one InputInfo per flattened input."""
    keras = _deps.keras()
    struct = _input_struct(model)
    if struct is not None:
        infos: list[InputInfo] = []
        for t in keras.tree.flatten(struct):
            infos.append(InputInfo(str(t.name), np.dtype(t.dtype), tuple(t.shape)))
        leaves = [i.name for i in infos]
        return keras.tree.pack_sequence_as(struct, leaves), infos
    if options.input_shapes:
        infos = [InputInfo(n, np.dtype("float32"), s) for n, s in options.input_shapes.items()]
        names = [i.name for i in infos]
        return (names[0] if len(names) == 1 else names), infos
    if sample is not None:
        return _inputs_from_sample(sample)
    raise ConversionError(
        f"the Keras model {model.name!r} ({type(model).__name__}) has no defined inputs (a "
        "subclassed or unbuilt model), so its input shapes are unknown; pass "
        "input_shapes={'x': (None, 4)} (CLI: --inputs x:-1,4) or sample_input=..."
    )


def _output_default_names(model: Any) -> list[str] | None:
    """Keras' output names, else the names of the layers that produce the outputs."""
    try:
        names = getattr(model, "output_names", None)
        if names:
            return [str(n) for n in names]
        outputs = model.outputs
        return [str(t._keras_history[0].name) for t in outputs] if outputs else None
    except (AttributeError, ValueError, TypeError, IndexError):
        return None


def prepare_keras(
    model: Any, options: ConversionOptions, info: SourceInfo, sample: SampleInput | None
) -> PreparedSource:
    """Wrap a Keras model in a tf.function with an explicit signature (not tf2onnx.from_keras,
    which fails on every Keras 3 Sequential model)."""
    keras = _deps.keras()
    struct, raw = _keras_inputs(model, options, sample)
    overrides = dict(options.input_shapes or {})
    used: list[str] = []
    infos: list[InputInfo] = []
    renames = (
        options.input_names
        if options.input_names and len(options.input_names) == len(raw)
        else None
    )
    for index, spec in enumerate(raw):
        name = sanitize_tf_name(spec.name, used)
        used.append(name)
        keys = [spec.name, name, *([renames[index]] if renames else [])]
        shape = next((overrides.pop(k) for k in keys if k in overrides), spec.shape)
        if options.dynamic_batch and shape:
            shape = (None, *shape[1:])
        infos.append(InputInfo(name, spec.dtype, shape))
    if overrides:
        raise ConversionError(
            f"input_shapes names {sorted(overrides)}, which are not inputs of the Keras model "
            f"{model.name!r}; its inputs are {[i.name for i in raw]}"
        )
    leaf_to_index = {spec.name: i for i, spec in enumerate(raw)}

    def call(*args: Any) -> Any:
        packed = keras.tree.map_structure(lambda leaf: args[leaf_to_index[leaf]], struct)
        return model(packed, training=False)

    function, _specs, outputs = named_function(call, infos, _output_default_names(model))
    weights = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return PreparedSource(
        info=info,
        inputs=infos,
        output_names=outputs,
        to_onnx=lambda opset, handlers, large: _convert(function, _specs, opset, handlers, large),
        run=runner(function, outputs),
        weights_bytes=weights,
        keep_alive=[model, function],
    )


def _convert(function: Any, specs: Sequence[Any], opset: int, handlers: Any, large: bool) -> Any:
    from sparkonnx.converters.tf2onnx_core import convert_function

    return convert_function(function, specs, opset, handlers, large)


def keras_source_info(model: Any, form: str, name: str | None = None) -> SourceInfo:
    """SourceInfo for a Keras model."""
    keras = _deps.keras()
    return SourceInfo("keras", str(keras.__version__), form, name or str(model.name))


def _first_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "unknown error"
