"""The stored JSON form of an image preprocessing spec: its keys, presets and aliases. Spark-free.

The converters store a model's preprocessing as JSON in the ONNX metadata entry
``sparkonnx.preprocessing``, with these keys, all optional::

    {"size": [224, 224], "channel_order": "RGB", "layout": "NHWC", "dtype": "float32",
     "scale": 0.00392156862745098, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
     "resample": "bilinear", "preset": "torch"}

``preset`` names Keras' ``preprocess_input`` modes: 'tf' (x / 127.5 - 1), 'torch' (x / 255 then
ImageNet mean / std, RGB) and 'caffe' (BGR, ImageNet mean subtracted, no scaling); explicit keys
override a preset's values. The model zoo's spellings are read too: ``input_size`` (size),
``resize`` (resample), ``normalisation`` (preset; ignored when ``"fused": true``, where the graph
normalises itself). Unknown keys are ignored (logged), so newer writers stay readable. What the
keys mean: :class:`sparkonnx.engine.image_preprocess.ImagePreprocessing`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["PRESETS", "SPEC_KEYS", "check_choice", "floats", "image_size", "spec_from_metadata"]

#: Keras ``preprocess_input`` modes as spec values.
PRESETS: dict[str, dict[str, Any]] = {
    "tf": {"channel_order": "RGB", "scale": 1 / 127.5, "mean": [1.0], "std": [1.0]},
    "torch": {
        "channel_order": "RGB",
        "scale": 1 / 255.0,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    },
    "caffe": {"channel_order": "BGR", "scale": 1.0, "mean": [103.939, 116.779, 123.68]},
}
SPEC_KEYS = (
    "size",
    "channel_order",
    "layout",
    "dtype",
    "scale",
    "mean",
    "std",
    "resample",
    "preset",
)


def check_choice(name: str, value: Any, allowed: Sequence[str] | Mapping[str, Any]) -> None:
    """ValueError naming `name`, `value` and the allowed values unless `value` is one of them."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(map(repr, allowed))}")


def image_size(value: Any, name: str) -> tuple[int, int]:
    """`value` as (height, width) positive ints; ValueError naming `name` otherwise."""
    try:
        h, w = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be [height, width], got {value!r}") from None
    if h <= 0 or w <= 0 or [h, w] != [float(v) for v in value]:
        raise ValueError(f"{name} must be two positive integers [height, width], got {value!r}")
    return h, w


def floats(value: Any, name: str) -> tuple[float, ...]:
    """A number or a list of numbers as a tuple of finite floats; ValueError naming `name`."""
    if isinstance(value, int | float):
        value = [value]
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a list of numbers, got {value!r}") from None
    if not numbers or not all(np.isfinite(numbers)):
        raise ValueError(f"{name} must be finite numbers, got {value!r}")
    return numbers


#: other spellings of keys (the model zoo's fused specs): alias -> key
_ALIASES = {"input_size": "size", "resize": "resample", "normalisation": "preset"}


def _with_aliases(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` with alias keys renamed; a 'fused' spec's normalisation is inside the graph."""
    out = {k: v for k, v in raw.items() if k not in _ALIASES and k != "fused"}
    for alias, key in _ALIASES.items():
        if alias in raw and key not in out:
            out[key] = raw[alias]
    if raw.get("fused") or out.get("preset") == "builtin":
        out.pop("preset", None)
    return out


def spec_from_metadata(raw: Mapping[str, Any] | None, source: str = "metadata") -> dict[str, Any]:
    """The preprocessing keys of a stored JSON spec, validated, with a ``preset`` expanded.

    ``source`` names where the spec came from in error messages.
    """
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: preprocessing spec must be a JSON object, got {raw!r}")
    raw = _with_aliases(raw)
    unknown = sorted(set(raw) - set(SPEC_KEYS))
    if unknown:
        logger.info("%s: ignoring unknown preprocessing keys %s", source, unknown)
    spec: dict[str, Any] = {}
    preset = raw.get("preset")
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(
                f"{source}: preprocessing preset {preset!r} is not one of {sorted(PRESETS)}"
            )
        spec.update(PRESETS[preset])
    for key in SPEC_KEYS:
        if key == "preset" or raw.get(key) is None:
            continue
        value = raw[key]
        if key == "size":
            value = image_size(value, f"{source} size")
        elif key in ("mean", "std"):
            value = floats(value, f"{source} {key}")
        elif key == "scale":
            value = floats(value, f"{source} scale")[0]
        elif key in ("channel_order", "layout"):
            value = str(value).upper()
        spec[key] = value
    return spec
