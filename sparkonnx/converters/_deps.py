"""Lazy imports of the optional conversion stack (TensorFlow, Keras, tf2onnx)."""

from __future__ import annotations

import sys
from types import ModuleType

from sparkonnx.converters.quiet import import_quietly

INSTALL_HINT = "pip install 'sparkonnx[convert]'"


def _import(name: str, purpose: str) -> ModuleType:
    try:
        return import_quietly(name)
    except ImportError as exc:
        raise ImportError(
            f"{purpose} needs the '{name}' package, which is not installed ({exc}); "
            f"install the conversion extra: {INSTALL_HINT}"
        ) from exc


def tensorflow() -> ModuleType:
    """The `tensorflow` module, imported on first use without its start-up banners."""
    return _import("tensorflow", "converting TensorFlow / Keras models")


def keras() -> ModuleType:
    """The `keras` module (Keras 3)."""
    tensorflow()
    return _import("keras", "loading Keras models")


def tf2onnx() -> ModuleType:
    """The `tf2onnx` module (with `tf2onnx.convert`); the environment variables it sets on
    import are put back as they were."""
    tensorflow()
    module = _import("tf2onnx", "converting TensorFlow graphs to ONNX")
    _import("tf2onnx.convert", "converting TensorFlow graphs to ONNX")
    return module


def loaded(name: str) -> ModuleType | None:
    """The module if something already imported it, else None (never imports)."""
    return sys.modules.get(name)


def version(name: str) -> str:
    """The installed version of a distribution, or 'unknown'."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    for dist in (name, f"{name}-cpu"):
        try:
            return dist_version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"
