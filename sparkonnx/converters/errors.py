"""Errors raised by the converters; each message names what was given, what is allowed, the fix."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparkonnx.errors import SparkOnnxError

if TYPE_CHECKING:  # pragma: no cover
    from sparkonnx.converters.result import ParityReport


class ConversionError(SparkOnnxError, RuntimeError):
    """A model could not be turned into a valid, numerically faithful ONNX model."""


class UnsupportedSourceError(ConversionError, TypeError):
    """The source is not a model form the converters know (type or path not recognized)."""


class UnsafeModelError(ConversionError):
    """A Keras file needs arbitrary code (a Lambda layer) and `allow_unsafe` was not given."""


class SignatureError(ConversionError, KeyError):
    """A SavedModel signature, input or output name that the source does not have."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0]) if self.args else ""


class UnsupportedOpsError(ConversionError):
    """The converted graph holds operators ONNX Runtime cannot load."""

    def __init__(self, message: str, ops: dict[str, int]) -> None:
        super().__init__(message)
        self.ops = dict(ops)


class ParityError(ConversionError):
    """ONNX Runtime's outputs differ from the source model's by more than the tolerance."""

    def __init__(self, message: str, report: ParityReport) -> None:
        super().__init__(message)
        self.report = report


class OnnxRuntimeLoadError(ConversionError):
    """ONNX Runtime refused to load or run the converted model."""
