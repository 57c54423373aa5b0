"""Driver-only conversion of Keras / TensorFlow models to validated ONNX models.

TensorFlow, Keras and tf2onnx are imported lazily, inside functions: importing this package
needs only onnx and numpy. Entry points: `convert` (any source) and `from_keras`,
`from_saved_model`, `from_function`, `from_graph_def`, `from_checkpoint`; all take a
`ConversionOptions` and/or its fields as keywords and return a `ConversionResult`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparkonnx._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "convert": "sparkonnx.converters.api",
    "from_keras": "sparkonnx.converters.api",
    "from_saved_model": "sparkonnx.converters.api",
    "from_function": "sparkonnx.converters.api",
    "from_graph_def": "sparkonnx.converters.api",
    "from_checkpoint": "sparkonnx.converters.api",
    "ConversionOptions": "sparkonnx.converters.options",
    "ConversionResult": "sparkonnx.converters.result",
    "ModelSignature": "sparkonnx.converters.result",
    "ParityReport": "sparkonnx.converters.result",
    "OutputParity": "sparkonnx.converters.result",
    "SourceInfo": "sparkonnx.converters.result",
    "ConversionError": "sparkonnx.converters.errors",
    "UnsupportedSourceError": "sparkonnx.converters.errors",
    "UnsafeModelError": "sparkonnx.converters.errors",
    "SignatureError": "sparkonnx.converters.errors",
    "UnsupportedOpsError": "sparkonnx.converters.errors",
    "ParityError": "sparkonnx.converters.errors",
    "OnnxRuntimeLoadError": "sparkonnx.converters.errors",
    "inspect_model": "sparkonnx.converters.inspect",
    "ModelReport": "sparkonnx.converters.inspect",
    "preprocessing_of": "sparkonnx.converters.metadata",
    "labels_of": "sparkonnx.converters.metadata",
    "parity_of": "sparkonnx.converters.metadata",
    "quantize": "sparkonnx.converters.quantize",
    "quantization_of": "sparkonnx.converters.quantize",
    "QuantizationResult": "sparkonnx.converters.quantize",
    "GateError": "sparkonnx.converters.gate",
    "GateReport": "sparkonnx.converters.gate",
    "GateTolerance": "sparkonnx.converters.gate",
    "Int8SpeedError": "sparkonnx.converters.int8_search",
    "CalibrationSet": "sparkonnx.converters.calibration",
    "CalibrationError": "sparkonnx.converters.calibration",
    "load_calibration": "sparkonnx.converters.calibration",
}

__all__ = [
    "CalibrationError",
    "CalibrationSet",
    "ConversionError",
    "ConversionOptions",
    "ConversionResult",
    "GateError",
    "GateReport",
    "GateTolerance",
    "Int8SpeedError",
    "ModelReport",
    "ModelSignature",
    "OnnxRuntimeLoadError",
    "OutputParity",
    "ParityError",
    "ParityReport",
    "QuantizationResult",
    "SignatureError",
    "SourceInfo",
    "UnsafeModelError",
    "UnsupportedOpsError",
    "UnsupportedSourceError",
    "convert",
    "from_checkpoint",
    "from_function",
    "from_graph_def",
    "from_keras",
    "from_saved_model",
    "inspect_model",
    "labels_of",
    "load_calibration",
    "parity_of",
    "preprocessing_of",
    "quantization_of",
    "quantize",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover
    from sparkonnx.converters.api import (
        convert,
        from_checkpoint,
        from_function,
        from_graph_def,
        from_keras,
        from_saved_model,
    )
    from sparkonnx.converters.calibration import (
        CalibrationError,
        CalibrationSet,
        load_calibration,
    )
    from sparkonnx.converters.errors import (
        ConversionError,
        OnnxRuntimeLoadError,
        ParityError,
        SignatureError,
        UnsafeModelError,
        UnsupportedOpsError,
        UnsupportedSourceError,
    )
    from sparkonnx.converters.gate import GateError, GateReport, GateTolerance
    from sparkonnx.converters.inspect import ModelReport, inspect_model
    from sparkonnx.converters.int8_search import Int8SpeedError
    from sparkonnx.converters.metadata import labels_of, parity_of, preprocessing_of
    from sparkonnx.converters.options import ConversionOptions
    from sparkonnx.converters.quantize import QuantizationResult, quantization_of, quantize
    from sparkonnx.converters.result import (
        ConversionResult,
        ModelSignature,
        OutputParity,
        ParityReport,
        SourceInfo,
    )
