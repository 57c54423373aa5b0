"""TensorFlow SavedModels, `tf.function`s and concrete functions prepared for conversion."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from sparkonnx.converters import _deps
from sparkonnx.converters.errors import ConversionError, SignatureError
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.parity import SampleInput
from sparkonnx.converters.result import SourceInfo
from sparkonnx.converters.source import InputInfo, PreparedSource, sanitize_tf_name
from sparkonnx.converters.tf_function import named_function, runner

logger = logging.getLogger(__name__)


def _tf_info(form: str, name: str) -> SourceInfo:
    return SourceInfo("tensorflow", str(_deps.tensorflow().__version__), form, name)


def is_tf_function(obj: Any) -> bool:
    """True for a `tf.function` or a ConcreteFunction (checked without importing TF)."""
    tf = _deps.loaded("tensorflow")
    if tf is None:
        return False
    kinds = (tf.types.experimental.GenericFunction, tf.types.experimental.ConcreteFunction)
    return isinstance(obj, kinds)


def is_saved_model_dir(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return p.is_dir() and ((p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file())


def _spec_inputs(specs: list[Any], options: ConversionOptions, what: str) -> list[InputInfo]:
    """InputInfos from TensorSpecs, with names made unique and shape overrides applied."""
    overrides = dict(options.input_shapes or {})
    used: list[str] = []
    infos = []
    renames = (
        options.input_names
        if options.input_names and len(options.input_names) == len(specs)
        else None
    )
    for i, spec in enumerate(specs):
        raw = spec.name or f"input_{i}"
        name = sanitize_tf_name(raw, used)
        used.append(name)
        shape = None if spec.shape.rank is None else tuple(spec.shape.as_list())
        keys = [raw, name, *([renames[i]] if renames else [])]
        shape = next((overrides.pop(k) for k in keys if k in overrides), shape)
        if options.dynamic_batch and shape:
            shape = (None, *shape[1:])
        infos.append(InputInfo(name, np.dtype(spec.dtype.as_numpy_dtype), shape))
    if overrides:
        raise ConversionError(
            f"input_shapes names {sorted(overrides)}, which are not inputs of {what}; its "
            f"inputs are {[i.name for i in infos]}"
        )
    return infos


def _prepared(
    call: Any, infos: list[InputInfo], info: SourceInfo, keep: list[Any], weights: int
) -> PreparedSource:
    from sparkonnx.converters.tf2onnx_core import convert_function

    function, specs, outputs = named_function(call, infos)
    return PreparedSource(
        info=info,
        inputs=infos,
        output_names=outputs,
        to_onnx=lambda opset, handlers, large: convert_function(
            function, specs, opset, handlers, large
        ),
        run=runner(function, outputs),
        weights_bytes=weights,
        keep_alive=[*keep, function],
    )


def _variables_bytes(variables: Any) -> int:
    return sum(int(np.prod(v.shape)) * v.dtype.size for v in variables)


def prepare_concrete(
    concrete: Any, options: ConversionOptions, info: SourceInfo, keep: list[Any] | None = None
) -> PreparedSource:
    """A ConcreteFunction (or a SavedModel signature): inputs from its structured signature."""
    tf = _deps.tensorflow()
    structure = concrete.structured_input_signature
    flat = [s for s in tf.nest.flatten(structure) if isinstance(s, tf.TensorSpec)]
    if len(flat) != len(tf.nest.flatten(structure)):
        raise ConversionError(
            f"{info.name}: only tensor arguments can be converted; the function takes {structure}"
        )
    if isinstance(structure[1], dict) and not structure[0]:
        keys = sorted(structure[1])  # a signature: keyword tensors, flattened by key
        flat = [tf.TensorSpec(s.shape, s.dtype, name=k) for k, s in zip(keys, flat)]
    infos = _spec_inputs(flat, options, info.name)

    def call(*args: Any) -> Any:
        pos, kw = tf.nest.pack_sequence_as(structure, list(args))
        return concrete(*pos, **kw)

    return _prepared(
        call, infos, info, [concrete, *(keep or [])], _variables_bytes(concrete.variables)
    )


def prepare_function(
    function: Any, options: ConversionOptions, sample: SampleInput | None, name: str | None = None
) -> PreparedSource:
    """A `tf.function` (its own input_signature, or one built from input_shapes / a sample)."""
    tf = _deps.tensorflow()
    display = name or getattr(function, "__name__", None) or getattr(function, "name", "function")
    info = _tf_info("function", str(display))
    if isinstance(function, tf.types.experimental.ConcreteFunction):
        return prepare_concrete(function, options, info)
    if function.input_signature is not None:
        return prepare_concrete(function.get_concrete_function(), options, info, [function])
    specs: list[Any]
    if options.input_shapes:
        specs = [tf.TensorSpec(s, tf.float32, name=n) for n, s in options.input_shapes.items()]
    elif sample is not None:
        arrays = (
            [sample]
            if isinstance(sample, np.ndarray)
            else list(sample.values() if isinstance(sample, dict) else sample)
        )
        names = (
            list(sample) if isinstance(sample, dict) else [f"input_{i}" for i in range(len(arrays))]
        )
        specs = [
            tf.TensorSpec((None, *np.shape(a)[1:]), tf.as_dtype(np.asarray(a).dtype), name=n)
            for n, a in zip(names, arrays)
        ]
    else:
        raise ConversionError(
            f"the tf.function {display!r} has no input_signature, so its inputs are unknown; "
            "decorate it with @tf.function(input_signature=[tf.TensorSpec(...)]) or pass "
            "input_shapes={'x': (None, 4)} or sample_input=..."
        )
    return prepare_concrete(function.get_concrete_function(*specs), options, info, [function])


def prepare_saved_model(path: str | os.PathLike[str], options: ConversionOptions) -> PreparedSource:
    """A SavedModel directory (Keras-2 SavedModels too), through the chosen signature."""
    tf = _deps.tensorflow()
    p = Path(path)
    if not is_saved_model_dir(p):
        raise FileNotFoundError(f"not a SavedModel directory (no saved_model.pb): {p}")
    try:
        loaded = tf.saved_model.load(str(p), tags=list(options.tags))
    except Exception as exc:
        raise ConversionError(
            f"{p}: TensorFlow could not load the SavedModel with tags {list(options.tags)}: "
            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"
        ) from exc
    signatures = {k: v for k, v in loaded.signatures.items() if not k.startswith("_")}
    if not signatures:
        raise SignatureError(
            f"{p}: the SavedModel has no signatures to convert; save it with "
            "tf.saved_model.save(obj, path, signatures=...) or keras model.export(path)"
        )
    if options.signature not in signatures:
        raise SignatureError(
            f"{p}: the SavedModel has no signature {options.signature!r}; its signatures are "
            f"{sorted(signatures)}; pick one with signature=... (CLI: --signature NAME)"
        )
    info = _tf_info("saved_model", f"{p.name}[{options.signature}]")
    return prepare_concrete(signatures[options.signature], options, info, [loaded])
