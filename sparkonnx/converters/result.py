"""Typed results of a conversion: the ONNX model, its signature, parity figures and timings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import onnx

from sparkonnx.converters.options import ConversionOptions
from sparkonnx.engine.model import OnnxModel, TensorSpec, tensor_spec

PROTOBUF_LIMIT = 2**31 - 1  # bytes: a ModelProto above this cannot be serialized in one piece


@dataclass(frozen=True)
class OutputParity:
    """Errors of one output: max |onnx - source| and max of that over |source|."""

    name: str
    max_abs_error: float
    max_rel_error: float
    passed: bool


@dataclass(frozen=True)
class ParityReport:
    """How far ONNX Runtime's outputs are from the source model's on a sample input."""

    precision: str  # "fp32" or "fp16"
    tolerance: float
    outputs: tuple[OutputParity, ...]
    sample_shapes: dict[str, tuple[int, ...]]
    sample_kind: str  # "random" or "user"

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    @property
    def max_abs_error(self) -> float:
        return max((o.max_abs_error for o in self.outputs), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((o.max_rel_error for o in self.outputs), default=0.0)

    def summary(self) -> str:
        """One line: verdict, worst errors and the tolerance."""
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"{self.precision} parity {verdict}: max abs error {self.max_abs_error:.3g}, "
            f"max rel error {self.max_rel_error:.3g} (tolerance {self.tolerance:g}, "
            f"{self.sample_kind} sample {self.sample_shapes})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "passed": self.passed,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "tolerance": self.tolerance,
            "sample": self.sample_kind,
            "sample_shapes": {k: list(v) for k, v in self.sample_shapes.items()},
            "outputs": {
                o.name: {"max_abs_error": o.max_abs_error, "max_rel_error": o.max_rel_error}
                for o in self.outputs
            },
        }


@dataclass(frozen=True)
class SourceInfo:
    """Where the model came from: framework and version, source form, a display name."""

    framework: str  # "keras" or "tensorflow"
    framework_version: str
    form: str  # "keras-model", "keras-file", "h5", "saved_model", "function", "graph_def", ...
    name: str


@dataclass(frozen=True)
class ModelSignature:
    """The converted model's inputs and outputs."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def of(cls, proto: onnx.ModelProto) -> ModelSignature:
        initializers = {t.name for t in proto.graph.initializer}
        return cls(
            tuple(tensor_spec(v) for v in proto.graph.input if v.name not in initializers),
            tuple(tensor_spec(v) for v in proto.graph.output),
        )

    def describe(self) -> str:
        ins = "; ".join(s.describe() for s in self.inputs)
        outs = "; ".join(s.describe() for s in self.outputs)
        return f"inputs [{ins}], outputs [{outs}]"


def weights_size(proto: onnx.ModelProto) -> int:
    """Bytes of initializer data (a lower bound of the serialized size, cheap for huge models)."""
    return sum(len(t.raw_data) or t.ByteSize() for t in proto.graph.initializer)


@dataclass(frozen=True)
class ConversionResult:
    """A converted model: the ONNX proto, its signature, parity reports, source and timings."""

    proto: onnx.ModelProto = field(repr=False)
    signature: ModelSignature
    source: SourceInfo
    options: ConversionOptions = field(repr=False)
    parity: ParityReport | None
    fp16_parity: ParityReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    peak_rss_bytes: int = 0  # peak RSS of this process when the conversion ended

    @property
    def is_large(self) -> bool:
        """True when the model is over protobuf's 2 GB limit (saved with external data)."""
        return weights_size(self.proto) > PROTOBUF_LIMIT - 64 * 2**20

    @cached_property
    def model(self) -> OnnxModel:
        """The model as an `OnnxModel` (bytes + sha256); not available over 2 GB (use `save`)."""
        if self.is_large:
            raise ValueError(
                f"the converted model has {weights_size(self.proto) / 2**30:.1f} GB of weights, "
                "over protobuf's 2 GB limit, so it cannot be held as bytes; "
                "use result.save('model.onnx') (weights go to an external data file) and ship "
                "the file"
            )
        return OnnxModel.from_bytes(
            self.proto.SerializeToString(), f"<converted {self.source.name}>"
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the model to `path` (external data beside it when over 2 GB); return the path."""
        from sparkonnx.converters.saving import save_model

        return save_model(self.proto, path)

    def __repr__(self) -> str:
        parity = self.parity.summary() if self.parity else "parity not checked"
        return (
            f"ConversionResult({self.source.form} {self.source.name!r} -> opset "
            f"{self.options.opset}, {self.signature.describe()}, {parity})"
        )
