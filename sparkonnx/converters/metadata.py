"""The sparkonnx entries of an ONNX file's metadata_props: provenance, parity, preprocessing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import onnx

from sparkonnx.converters import _deps
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.result import ParityReport, SourceInfo

PREFIX = "sparkonnx."
SOURCE_FRAMEWORK = "sparkonnx.source.framework"
SOURCE_FRAMEWORK_VERSION = "sparkonnx.source.framework_version"
SOURCE_FORM = "sparkonnx.source.form"
SOURCE_NAME = "sparkonnx.source.name"
CONVERTER = "sparkonnx.converter"  # JSON {"sparkonnx": v, "tf2onnx": v, "onnx": v}
OPSET = "sparkonnx.opset"
PRECISION = "sparkonnx.precision"  # "fp32" or "fp16"
PARITY = "sparkonnx.parity"  # JSON ParityReport.to_dict(), or absent when not checked
FP16_PARITY = "sparkonnx.parity.fp16"
PREPROCESSING = "sparkonnx.preprocessing"  # JSON dict, read by the image API
LABELS = "sparkonnx.labels"  # JSON list of class labels


def build(
    info: SourceInfo,
    options: ConversionOptions,
    parity: ParityReport | None,
    fp16_parity: ParityReport | None,
) -> dict[str, str]:
    """The metadata entries for a conversion."""
    import sparkonnx

    entries = {
        SOURCE_FRAMEWORK: info.framework,
        SOURCE_FRAMEWORK_VERSION: info.framework_version,
        SOURCE_FORM: info.form,
        SOURCE_NAME: info.name,
        CONVERTER: json.dumps(
            {
                "sparkonnx": sparkonnx.__version__,
                "tf2onnx": _deps.version("tf2onnx"),
                "onnx": onnx.__version__,
            }
        ),
        OPSET: str(options.opset),
        PRECISION: "fp16" if options.fp16 else "fp32",
    }
    if parity is not None:
        entries[PARITY] = json.dumps(parity.to_dict())
    if fp16_parity is not None:
        entries[FP16_PARITY] = json.dumps(fp16_parity.to_dict())
    if options.preprocessing is not None:
        entries[PREPROCESSING] = json.dumps(dict(options.preprocessing))
    if options.labels is not None:
        entries[LABELS] = json.dumps(list(options.labels))
    entries.update(options.extra)
    return entries


def write(proto: onnx.ModelProto, entries: Mapping[str, str]) -> None:
    """Set metadata_props entries on `proto`, replacing existing keys."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in entries]
    del proto.metadata_props[:]
    for key, value in [*kept, *entries.items()]:
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "sparkonnx"
    import sparkonnx

    proto.producer_version = sparkonnx.__version__


def _as_dict(model: Any) -> Mapping[str, str]:
    if isinstance(model, Mapping):
        return model
    if isinstance(model, onnx.ModelProto):
        return {p.key: p.value for p in model.metadata_props}
    metadata = getattr(model, "metadata", None)
    if isinstance(metadata, Mapping):
        return metadata
    raise TypeError(
        f"expected an OnnxModel, an onnx.ModelProto or a metadata dict, got {type(model).__name__}"
    )


def _json(model: Any, key: str) -> Any | None:
    raw = _as_dict(model).get(key)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"metadata entry {key!r} is not valid JSON: {raw[:80]!r}") from exc


def preprocessing_of(model: Any) -> dict[str, Any] | None:
    """The preprocessing spec stored at conversion, or None."""
    return _json(model, PREPROCESSING)


def labels_of(model: Any) -> list[str] | None:
    """The class labels stored at conversion, or None."""
    return _json(model, LABELS)


def parity_of(model: Any) -> dict[str, Any] | None:
    """The parity record stored at conversion (fp32), or None when it was not checked."""
    return _json(model, PARITY)
