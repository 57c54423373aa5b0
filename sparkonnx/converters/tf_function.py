"""Wrapping any TF/Keras callable as a `tf.function` with an input signature and named outputs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sparkonnx.converters import _deps
from sparkonnx.converters.errors import ConversionError
from sparkonnx.converters.source import InputInfo


def output_names_for(structure: Any, default: Sequence[str] | None) -> list[str]:
    """Names of a callable's flattened outputs: dict keys, else `default`, else output_<i>."""
    tf = _deps.tensorflow()
    flat = tf.nest.flatten(structure)
    if isinstance(structure, dict) and all(isinstance(k, str) for k in structure):
        return [str(k) for k in sorted(structure)]  # tf.nest flattens dicts in key order
    if default is not None and len(default) == len(flat) and len(set(default)) == len(default):
        return list(default)
    return ["output"] if len(flat) == 1 else [f"output_{i}" for i in range(len(flat))]


def named_function(
    call: Callable[..., Any],
    inputs: Sequence[InputInfo],
    default_output_names: Sequence[str] | None = None,
) -> tuple[Any, list[Any], list[str]]:
    """A `tf.function(*inputs)` returning a dict of named outputs; also its specs and names.

    tf2onnx names ONNX inputs after the specs and outputs after the dict keys; the wrapper is
    traced here once so that the output names are known before conversion.
    """
    tf = _deps.tensorflow()
    specs = [tf.TensorSpec(i.shape, tf.as_dtype(i.dtype), name=i.name) for i in inputs]
    names: list[str] = []

    @tf.function(input_signature=specs, autograph=False)
    def wrapper(*args: Any) -> dict[str, Any]:
        outputs = call(*args)
        flat = tf.nest.flatten(outputs)
        names[:] = output_names_for(outputs, default_output_names)
        return {n: tf.identity(t) for n, t in zip(names, flat)}

    try:
        wrapper.get_concrete_function()
    except ConversionError:
        raise
    except Exception as exc:
        shapes = {i.name: i.shape for i in inputs}
        hint = (
            "Python if/while on tensor values cannot be traced into a graph: use "
            "keras.ops.cond / keras.ops.while_loop (or tf.cond) in the model"
            if type(exc).__name__ == "OperatorNotAllowedInGraphError"
            else "check the input shapes and dtypes (input_shapes=... / --inputs) against what "
            "the model expects"
        )
        raise ConversionError(
            f"tracing the model with inputs {shapes} failed: {_last_line(exc)}; {hint}"
        ) from exc
    return wrapper, specs, list(names)


def runner(function: Any, names: Sequence[str]) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    """Call the wrapped function on numpy arrays; outputs as arrays in `names` order."""

    def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
        out = function(*arrays)
        return [np.asarray(out[n]) for n in names]

    return run


def _last_line(exc: BaseException) -> str:
    """The complaint in a TF tracing error (which puts the user-code trace and args around it)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # Keras colours some messages
    lines = [line.strip() for line in plain.strip().splitlines() if line.strip()]
    keys = ("not allowed", "rror", "must", "expected", "incompatible", "not supported")
    useful = [
        line
        for line in lines
        if not line.startswith(("•", "File ", "in user code", "Arguments received"))
        and any(k in line for k in keys)
    ]
    text = useful[-1] if useful else (lines[-1] if lines else "")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
