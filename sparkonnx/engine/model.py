"""The ONNX model artifact: bytes, content hash, validated signature and metadata."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from sparkonnx.engine.model_files import ModelFiles, ModelFilesError, check_data_files
from sparkonnx.errors import SparkOnnxError

logger = logging.getLogger(__name__)

#: An ONNX file whose external data makes it bigger than this stays on disk (`OnnxModel.files`)
#: instead of being inlined into bytes; protobuf cannot hold a model over 2 GiB at all.
ON_DISK_BYTES = int(os.environ.get("SPARKONNX_ON_DISK_BYTES", str(2**30)))

Dim = int | str | None  # a static size, a symbolic name, or unknown


class InvalidModelError(SparkOnnxError, ValueError):
    """The bytes or file given are not a valid ONNX model."""


class ModelOnDiskError(SparkOnnxError, ValueError):
    """The operation needs the model as bytes, but it is kept on disk (over `ON_DISK_BYTES`)."""


class UnknownTensorError(SparkOnnxError, ValueError):
    """A tensor name that the model does not have; the message lists the ones it has."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape (ints, symbolic names or None) of a model input/output."""

    name: str
    dtype: np.dtype
    shape: tuple[Dim, ...] | None  # None: rank unknown

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    @property
    def static_inner_shape(self) -> tuple[int, ...] | None:
        """The shape after the batch axis when every dim is static, else None."""
        if self.shape is None or len(self.shape) == 0:
            return None
        inner = self.shape[1:]
        if all(isinstance(d, int) for d in inner):
            return tuple(int(d) for d in inner)  # type: ignore[arg-type]
        return None

    def describe(self) -> str:
        dims = (
            "?"
            if self.shape is None
            else ", ".join("?" if d is None else str(d) for d in self.shape)
        )
        return f"{self.name}: {self.dtype.name}[{dims}]"


def tensor_spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    """The TensorSpec of a graph input / output (InvalidModelError if it is not a tensor)."""
    tensor_type = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type"):
        raise InvalidModelError(
            f"model input/output {value_info.name!r} is not a tensor "
            f"({value_info.type.WhichOneof('value')}); only tensor inputs and outputs are supported"
        )
    dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    shape: tuple[Dim, ...] | None = None
    if tensor_type.HasField("shape"):
        dims: list[Dim] = []
        for d in tensor_type.shape.dim:
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            elif d.HasField("dim_param"):
                dims.append(d.dim_param)
            else:
                dims.append(None)
        shape = tuple(dims)
    return TensorSpec(value_info.name, dtype, shape)


@dataclass(frozen=True, eq=False)
class OnnxModel:
    """A validated ONNX model, identified by a sha256: held as bytes, or kept on disk as its
    graph file plus external data files (`files`; models over protobuf's 2 GiB limit).

    Build it with :meth:`from_path`, :meth:`from_bytes` or :meth:`load` (either).
    """

    data: bytes = field(repr=False)  # the serialized model; b"" when it is kept on disk
    source: str = "<bytes>"
    files: ModelFiles | None = None

    def __post_init__(self) -> None:
        self._proto  # noqa: B018 - parse and validate eagerly so errors surface at construction

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> OnnxModel:
        """Build from serialized ONNX bytes."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"expected ONNX model bytes, got {type(data).__name__}")
        return cls(bytes(data), source)

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], keep_on_disk: bool | None = None) -> OnnxModel:
        """Read an ONNX file. External data is inlined, unless the files total more than
        `ON_DISK_BYTES` or `keep_on_disk` is True: then the model stays on disk (`files`)."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"ONNX model file not found: {p}")
        try:
            proto = onnx.load_model(str(p), load_external_data=False)
        except Exception:  # let __post_init__ report it with the file name
            return cls(p.read_bytes(), str(p))
        if not external_tensors(proto):
            return cls(p.read_bytes(), str(p))
        try:
            sizes = check_data_files(p, external_extents(proto))
        except ModelFilesError as exc:
            raise InvalidModelError(str(exc)) from None
        if keep_on_disk is None:
            keep_on_disk = p.stat().st_size + sum(sizes.values()) > ON_DISK_BYTES
        if keep_on_disk:
            files = ModelFiles.of(p, sizes)
            logger.info("%s: kept on disk (%d bytes with its external data)", p, files.size)
            return cls(b"", str(p), files)
        try:
            proto = onnx.load_model(str(p), load_external_data=True)
        except Exception as exc:  # onnx's own checks of the locations, as a second guard
            raise InvalidModelError(
                f"{p}: its external data cannot be loaded: {_first_line(exc)}. External "
                f"data must be regular files inside the model's folder {p.parent} "
                "(relative locations, no '..', no links); nothing outside it is read"
            ) from None
        return cls(proto.SerializeToString(), str(p))

    @classmethod
    def load(cls, model: OnnxModel | bytes | str | os.PathLike[str]) -> OnnxModel:
        """Accept an OnnxModel, ONNX bytes, an `onnx.ModelProto` or a path to a file."""
        if isinstance(model, OnnxModel):
            return model
        if isinstance(model, bytes | bytearray | memoryview):
            return cls.from_bytes(bytes(model))
        if isinstance(model, onnx.ModelProto):
            return cls.from_bytes(model.SerializeToString(), "<ModelProto>")
        if isinstance(model, str | os.PathLike):
            return cls.from_path(model)
        raise TypeError(
            "model must be an ONNX file path, ONNX bytes, an onnx.ModelProto or an OnnxModel; "
            f"got {type(model).__name__}"
        )

    @cached_property
    def _proto(self) -> onnx.ModelProto:
        if self.files is not None:
            return self._proto_on_disk(self.files)
        if len(self.data) == 0:
            raise InvalidModelError(f"{self.source}: empty file, not an ONNX model")
        try:
            proto = onnx.load_model_from_string(self.data)
        except Exception as exc:
            raise InvalidModelError(
                f"{self.source}: not a readable ONNX model ({len(self.data)} bytes; "
                f"truncated or not ONNX): {exc}"
            ) from exc
        _check_has_graph(proto, self.source)
        external = external_tensors(proto)
        if external:
            name, location = external[0]
            raise InvalidModelError(
                f"{self.source}: tensor {name!r} keeps its data in an external file "
                f"{location!r} ({len(external)} such tensors); model bytes must be "
                "self-contained, or ONNX Runtime would read that file relative to the current "
                "folder of every process running it. Load it with OnnxModel.from_path(path to "
                "the .onnx file beside its data), which inlines the data or keeps the model on "
                "disk"
            )
        if len(self.data) < 2**31 - 1:
            _check(proto, self.source)
        return proto

    def _proto_on_disk(self, files: ModelFiles) -> onnx.ModelProto:
        """The graph without its weights; checked from the path (weights never in memory)."""
        proto = onnx.load_model(str(files.graph), load_external_data=False)
        _check_has_graph(proto, self.source)
        _check(str(files.graph), self.source)
        return proto

    @cached_property
    def sha256(self) -> str:
        """Hex sha256 of the model bytes (on disk: of its files, see `model_files`): the
        model's identity in every cache."""
        if self.files is not None:
            return self.files.sha256
        return hashlib.sha256(self.data).hexdigest()

    @property
    def model_bytes(self) -> bytes:
        """The serialized model; ModelOnDiskError for a model kept on disk (use `ort_model`)."""
        if self.files is not None:
            raise ModelOnDiskError(
                f"{self.source} is kept on disk ({self.files.size / 2**30:.2f} GiB with "
                f"{len(self.files.data)} external data file(s)) and is not held as bytes; "
                "use its path (model.files.graph) or model.ort_model(), or load a model under "
                f"{ON_DISK_BYTES} bytes"
            )
        return self.data

    def ort_model(self) -> bytes | str:
        """What `onnxruntime.InferenceSession` takes: the bytes, or the path of a model on
        disk (ONNX Runtime reads its external data beside it)."""
        return self.model_bytes if self.files is None else str(self.files.graph)

    @property
    def on_disk(self) -> bool:
        """True when the model is kept as its files (graph + external data), not as bytes."""
        return self.files is not None

    @cached_property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """Graph inputs that must be fed (initializers excluded)."""
        initializers = {t.name for t in self._proto.graph.initializer}
        return tuple(tensor_spec(v) for v in self._proto.graph.input if v.name not in initializers)

    @cached_property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return tuple(tensor_spec(v) for v in self._proto.graph.output)

    @cached_property
    def metadata(self) -> dict[str, str]:
        """The model's metadata_props as a dict."""
        return {p.key: p.value for p in self._proto.metadata_props}

    @cached_property
    def opset(self) -> int:
        """The default-domain opset version."""
        for imp in self._proto.opset_import:
            if imp.domain in ("", "ai.onnx"):
                return int(imp.version)
        return 0

    @property
    def size_bytes(self) -> int:
        return len(self.data) if self.files is None else self.files.size

    @property
    def proto(self) -> onnx.ModelProto:
        """The parsed model (shared; copy before modifying)."""
        return self._proto

    def input(self, name: str) -> TensorSpec:
        """The input spec named `name` (':0' suffix tolerated)."""
        return _find(self.inputs, name, "input", self)

    def output(self, name: str) -> TensorSpec:
        """The output spec named `name` (':0' suffix tolerated)."""
        return _find(self.outputs, name, "output", self)

    def describe(self) -> str:
        ins = "; ".join(s.describe() for s in self.inputs)
        outs = "; ".join(s.describe() for s in self.outputs)
        return f"inputs [{ins}], outputs [{outs}]"

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the model bytes to `path` (ModelOnDiskError for a model kept on disk)."""
        Path(path).write_bytes(self.model_bytes)

    def __repr__(self) -> str:
        return f"OnnxModel(source={self.source!r}, sha256={self.sha256[:12]}, {self.describe()})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_has_graph(proto: onnx.ModelProto, source: str) -> None:
    if len(proto.graph.node) == 0 and len(proto.graph.output) == 0:
        raise InvalidModelError(f"{source}: not an ONNX model (no graph outputs)")


def _check(model: onnx.ModelProto | str, source: str) -> None:
    """onnx.checker on a proto or on a path (a path's external data is not loaded)."""
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise InvalidModelError(f"{source}: invalid ONNX model: {_first_line(exc)}") from exc


def _external_protos(proto: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Every tensor stored outside the model bytes: initializers, sparse initializers and
    Constant-like attributes, in subgraphs and functions too."""
    found: list[onnx.TensorProto] = []

    def tensor(t: onnx.TensorProto) -> None:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            found.append(t)

    def nodes(items: Any) -> None:
        for node in items:
            for a in node.attribute:
                if a.HasField("t"):
                    tensor(a.t)
                for t in a.tensors:
                    tensor(t)
                if a.HasField("sparse_tensor"):
                    tensor(a.sparse_tensor.values)
                if a.HasField("g"):
                    graph(a.g)
                for g in a.graphs:
                    graph(g)

    def graph(g: onnx.GraphProto) -> None:
        for t in g.initializer:
            tensor(t)
        for sparse in g.sparse_initializer:
            tensor(sparse.values)
        nodes(g.node)

    graph(proto.graph)
    for function in proto.functions:
        nodes(function.node)
    return found


def _entry(t: onnx.TensorProto, key: str, default: str) -> str:
    return next((e.value for e in t.external_data if e.key == key), default)


def external_tensors(proto: onnx.ModelProto) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor stored outside the model bytes."""
    return [(t.name, _entry(t, "location", "?")) for t in _external_protos(proto)]


def external_extents(proto: onnx.ModelProto) -> list[tuple[str, str, int, int]]:
    """(tensor name, location, offset, length) of every external tensor; InvalidModelError for
    an offset or length that is not a non-negative integer."""
    extents = []
    for t in _external_protos(proto):
        try:
            offset = int(_entry(t, "offset", "0"))
            length = int(_entry(t, "length", "0"))
        except ValueError:
            offset = length = -1
        if offset < 0 or length < 0:
            raise InvalidModelError(
                f"tensor {t.name!r}: external data offset / length must be non-negative "
                f"integers; found {_entry(t, 'offset', '')!r} / {_entry(t, 'length', '')!r}"
            )
        extents.append((t.name, _entry(t, "location", ""), offset, length))
    return extents


def _find(specs: tuple[TensorSpec, ...], name: str, kind: str, model: OnnxModel) -> TensorSpec:
    for candidate in (name, name.removesuffix(":0"), f"{name}:0"):
        for spec in specs:
            if spec.name == candidate:
                return spec
    names = ", ".join(repr(s.name) for s in specs)
    raise UnknownTensorError(
        f"the model has no {kind} named {name!r}; its {kind}s are: {names} ({model.describe()})"
    )
