"""`inspect_model`: what an ONNX file holds and which ONNX Runtime providers can run it (no TF)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkonnx.converters import metadata
from sparkonnx.converters.quiet import silenced
from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.engine.runnable import explain_session_error


@dataclass(frozen=True)
class ModelReport:
    """Inputs, outputs, opset, size, metadata, parity record and usable providers of a model."""

    path: str
    size_bytes: int
    sha256: str
    opset: int
    ir_version: int
    producer: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str]
    parity: dict[str, Any] | None
    providers: dict[str, bool] = field(default_factory=dict)  # provider -> runs this model
    provider_errors: dict[str, str] = field(default_factory=dict)  # provider -> why it cannot

    def to_dict(self) -> dict[str, Any]:
        def spec(s: TensorSpec) -> dict[str, Any]:
            return {"name": s.name, "dtype": s.dtype.name, "shape": list(s.shape or [])}

        return {
            "path": self.path,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "opset": self.opset,
            "ir_version": self.ir_version,
            "producer": self.producer,
            "inputs": [spec(s) for s in self.inputs],
            "outputs": [spec(s) for s in self.outputs],
            "metadata": self.metadata,
            "parity": self.parity,
            "providers": self.providers,
            "provider_errors": self.provider_errors,
        }

    def render(self) -> str:
        """A human-readable multi-line summary."""
        lines = [
            f"model     {self.path}",
            f"size      {self.size_bytes / 1e6:.2f} MB, sha256 {self.sha256[:16]}",
            f"opset     {self.opset} (IR {self.ir_version}), producer {self.producer}",
            "inputs",
            *(f"  {s.describe()}" for s in self.inputs),
            "outputs",
            *(f"  {s.describe()}" for s in self.outputs),
        ]
        if self.parity:
            lines.append(
                f"parity    {'passed' if self.parity.get('passed') else 'FAILED'}: max abs "
                f"{self.parity.get('max_abs_error'):.3g}, max rel "
                f"{self.parity.get('max_rel_error'):.3g} (tolerance {self.parity.get('tolerance')})"
            )
        else:
            lines.append("parity    no record (not converted by sparkonnx, or --no-check)")
        other = {k: v for k, v in self.metadata.items() if k != metadata.PARITY}
        if other:
            lines.append("metadata")
            lines.extend(f"  {k} = {_short(v)}" for k, v in sorted(other.items()))
        if self.providers:
            usable = ", ".join(p for p, ok in self.providers.items() if ok) or "none"
            unusable = ", ".join(p for p, ok in self.providers.items() if not ok)
            lines.append(
                f"providers {usable}"
                + (f" (installed, cannot run: {unusable})" if unusable else "")
            )
            lines.extend(f"  {p}: {why}" for p, why in self.provider_errors.items())
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _short(value: str, limit: int = 100) -> str:
    return value if len(value) <= limit else value[: limit - 3] + "..."


def usable_providers(model: OnnxModel) -> dict[str, bool]:
    """For each provider the installed onnxruntime has, whether it can create a session."""
    return provider_report(model)[0]


def provider_report(model: OnnxModel) -> tuple[dict[str, bool], dict[str, str]]:
    """({provider: can run the model}, {provider: why not}) for every installed provider."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.add_session_config_entry("session.disable_prepacking", "1")  # no 2nd weight copy
    usable: dict[str, bool] = {}
    errors: dict[str, str] = {}
    for provider in ort.get_available_providers():
        short = provider.removesuffix("ExecutionProvider")
        try:
            with silenced():
                session = ort.InferenceSession(model.ort_model(), options, providers=[provider])
        except Exception as exc:
            usable[provider] = False
            errors[provider] = explain_session_error(model, exc, short)
            continue
        usable[provider] = session.get_providers()[:1] == [provider]
        if not usable[provider]:
            errors[provider] = (
                f"the session fell back to {session.get_providers()[0]} (the {short} provider's "
                "libraries or device are missing on this machine)"
            )
    return usable, errors


def inspect_model(path: str | os.PathLike[str], check_providers: bool = True) -> ModelReport:
    """Read an ONNX file and report on it; `check_providers` tries a session per provider."""
    p = Path(path)
    model = OnnxModel.from_path(p)
    size = p.stat().st_size
    data_files = {
        e.value
        for t in model.proto.graph.initializer
        for e in t.external_data
        if e.key == "location"
    }
    size += sum((p.parent / f).stat().st_size for f in data_files if (p.parent / f).is_file())
    proto = model.proto
    providers, errors = provider_report(model) if check_providers else ({}, {})
    return ModelReport(
        path=str(p),
        size_bytes=max(size, model.size_bytes),
        sha256=model.sha256,
        opset=model.opset,
        ir_version=int(proto.ir_version),
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        inputs=model.inputs,
        outputs=model.outputs,
        metadata=dict(model.metadata),
        parity=metadata.parity_of(model),
        providers=providers,
        provider_errors=errors,
    )
