"""`ConversionOptions`: every setting shared by the conversion entry points, in one frozen value."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sparkonnx.errors import check_int

DEFAULT_OPSET = 15
TF2ONNX_MAX_OPSET = 18  # tf2onnx 1.17 refuses 19+: we convert at 18, then upgrade with onnx
MIN_OPSET = 9

Shape = tuple[int | None, ...]


def max_opset() -> int:
    """The newest default-domain opset the installed onnx package knows."""
    import onnx

    return int(onnx.defs.onnx_opset_version())


def _names(value: Sequence[str] | str | None, what: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = (value,) if isinstance(value, str) else tuple(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"{what} must be a non-empty list of non-empty strings, got {value!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} must be unique, got {list(names)}")
    return names


def _shapes(value: Mapping[str, Sequence[int | None]] | None) -> Mapping[str, Shape] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(
            f"input_shapes must map input names to shapes, e.g. {{'x': (None, 224, 224, 3)}}; "
            f"got {type(value).__name__}"
        )
    shapes: dict[str, Shape] = {}
    for name, shape in value.items():
        dims = tuple(None if d is None or d == -1 else d for d in shape)
        if not all(d is None or (isinstance(d, int) and d > 0) for d in dims):
            raise ValueError(
                f"input_shapes[{name!r}] = {tuple(shape)!r}: each dim must be a positive int "
                "or None (-1) for a dynamic dim"
            )
        shapes[str(name)] = dims
    return MappingProxyType(shapes)


@dataclass(frozen=True)
class ConversionOptions:
    """Settings shared by `convert` and every `from_*` entry point (override with keywords)."""

    opset: int = DEFAULT_OPSET
    """Target ONNX opset; above 18 the model is converted at 18 then upgraded by onnx."""
    input_names: tuple[str, ...] | None = None
    """GraphDef / checkpoint: the TF input tensors. Other sources: new names for the inputs."""
    output_names: tuple[str, ...] | None = None
    """GraphDef / checkpoint: the TF output tensors. Other sources: new names for the outputs."""
    input_shapes: Mapping[str, Shape] | None = None
    """Override input shapes by input name (None for a dynamic dim)."""
    dynamic_batch: bool = True
    """Keep (or make) the first axis of every input and output a dynamic 'batch' dim."""
    signature: str = "serving_default"
    """SavedModel signature to convert."""
    tags: tuple[str, ...] = ("serve",)
    """SavedModel meta-graph tags."""
    fp16: bool = False
    """Store and compute in float16 (float32 inputs/outputs kept), if parity stays in tolerance."""
    tolerance: float = 1e-3
    """Parity: pass when |onnx - source| <= tolerance * (1 + |source|) for every element."""
    fp16_tolerance: float = 1e-2
    """The same bound for the float16 model."""
    check: bool = True
    """Run the numeric parity check against the source model."""
    large_model: bool | None = None
    """Convert with external tensor storage (models over 2 GB); None decides from the weights."""
    allow_unsafe: bool = False
    """Load Keras files with safe_mode=False (Lambda layers run code from the file)."""
    preprocessing: Mapping[str, Any] | None = None
    """Preprocessing spec stored in the ONNX metadata for the image API (JSON-serializable)."""
    labels: tuple[str, ...] | None = None
    """Class labels stored in the ONNX metadata."""
    sample_batch: int = 2
    """Batch size of the random parity sample when the batch dim is dynamic."""
    seed: int = 0
    """Seed of the random parity sample."""
    progress: bool | None = None
    """Show a progress bar; None shows one when stderr is a terminal."""
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Free-form metadata_props entries to add (string values)."""

    def __post_init__(self) -> None:
        top = max_opset()
        if not isinstance(self.opset, int) or not MIN_OPSET <= self.opset <= top:
            raise ValueError(
                f"opset={self.opset!r} is not supported: use an int from {MIN_OPSET} to {top} "
                f"(default {DEFAULT_OPSET})"
            )
        for name in ("tolerance", "fp16_tolerance"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        check_int("sample_batch", self.sample_batch, minimum=1)
        if not isinstance(self.signature, str) or not self.signature:
            raise ValueError(f"signature must be a non-empty string, got {self.signature!r}")
        object.__setattr__(self, "input_names", _names(self.input_names, "input_names"))
        object.__setattr__(self, "output_names", _names(self.output_names, "output_names"))
        object.__setattr__(self, "input_shapes", _shapes(self.input_shapes))
        object.__setattr__(self, "tags", tuple(self.tags))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        if self.preprocessing is not None:
            if not isinstance(self.preprocessing, Mapping):
                raise ValueError(
                    "preprocessing must be a dict such as {'size': [224, 224], 'mean': [...]}, "
                    f"got {type(self.preprocessing).__name__}"
                )
            try:
                json.dumps(dict(self.preprocessing))
            except TypeError as exc:
                raise ValueError(f"preprocessing must be JSON-serializable: {exc}") from exc
            object.__setattr__(self, "preprocessing", MappingProxyType(dict(self.preprocessing)))
        object.__setattr__(
            self, "extra", MappingProxyType({k: str(v) for k, v in self.extra.items()})
        )

    @property
    def tf2onnx_opset(self) -> int:
        """The opset asked of tf2onnx (at most 18)."""
        return min(self.opset, TF2ONNX_MAX_OPSET)

    def replace(self, **overrides: Any) -> ConversionOptions:
        """A copy with some fields changed; unknown names raise a TypeError listing the fields."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown conversion option(s) {unknown}; "
                f"the options are: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **overrides) if overrides else self


def resolve_options(
    options: ConversionOptions | None, overrides: Mapping[str, Any]
) -> ConversionOptions:
    """`options` (or the defaults) with keyword overrides applied."""
    if options is not None and not isinstance(options, ConversionOptions):
        raise TypeError(f"options must be a ConversionOptions, got {type(options).__name__}")
    return (options or ConversionOptions()).replace(**overrides)
