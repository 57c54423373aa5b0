"""The numeric parity check: run the source and ONNX Runtime on one sample and compare."""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sparkonnx.converters.errors import ConversionError, OnnxRuntimeLoadError
from sparkonnx.converters.result import OutputParity, ParityReport
from sparkonnx.converters.saving import needs_external_data, save_model
from sparkonnx.converters.source import InputInfo

logger = logging.getLogger(__name__)

UNKNOWN_DIM_SAMPLE = 32  # size used for a dynamic non-batch dim (height, width, length)
MAX_RANDOM_SAMPLE_BYTES = 2 * 2**30  # per input: a random sample bigger than this is refused

SampleInput = Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray


def random_sample(inputs: Sequence[InputInfo], batch: int, seed: int) -> list[np.ndarray]:
    """Random arrays in each input's dtype and a plausible range, dynamic dims filled in."""
    rng = np.random.default_rng(seed)
    arrays = []
    for spec in inputs:
        if spec.shape is None:
            raise ConversionError(
                f"input {spec.name!r} has an unknown rank, so no random sample can be made; "
                "pass sample_input=... or input_shapes={...} for it"
            )
        shape = tuple(
            (batch if i == 0 else UNKNOWN_DIM_SAMPLE) if d is None else d
            for i, d in enumerate(spec.shape)
        )
        dtype = np.dtype(spec.dtype)
        size = math.prod(shape) * dtype.itemsize
        if size > MAX_RANDOM_SAMPLE_BYTES:
            raise ConversionError(
                f"input {spec.name!r} of shape {list(spec.shape)}: a random sample of it "
                f"{list(shape)} would take {size / 2**30:.1f} GiB, more than the "
                f"{MAX_RANDOM_SAMPLE_BYTES / 2**30:.0f} GiB allowed; give real sample inputs "
                "(quantize: calibration= / validation=; convert: sample_input=), or fix the "
                "model's input shape"
            )
        if dtype.kind == "f":
            arrays.append(rng.uniform(-1.0, 1.0, shape).astype(dtype))
        elif dtype == np.uint8:
            arrays.append(rng.integers(0, 256, shape, dtype=np.uint8))
        elif dtype.kind in "iu":
            arrays.append(rng.integers(0, 8, shape).astype(dtype))  # small: ids, indices
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, shape).astype(bool))
        else:
            raise ConversionError(
                f"input {spec.name!r} has dtype {dtype}, for which no random sample is made; "
                "pass sample_input=... or check=False"
            )
    return arrays


def user_sample(
    sample: SampleInput, inputs: Sequence[InputInfo], names: Sequence[str]
) -> list[np.ndarray]:
    """The user's sample as arrays in input order; `names` are the final input names."""
    if isinstance(sample, np.ndarray):
        sample = [sample]
    if isinstance(sample, Mapping):
        missing = [n for n in names if n not in sample]
        extra = [k for k in sample if k not in names]
        if missing or extra:
            raise ConversionError(
                f"sample_input has keys {list(sample)}, but the model's inputs are {list(names)}; "
                "give one array per input, keyed by input name"
            )
        values = [sample[n] for n in names]
    else:
        values = list(sample)
        if len(values) != len(names):
            raise ConversionError(
                f"sample_input has {len(values)} arrays, but the model has {len(names)} inputs "
                f"{list(names)}"
            )
    return [np.asarray(v, dtype=spec.dtype) for v, spec in zip(values, inputs)]


def make_session(proto: onnx.ModelProto, source_name: str) -> Any:
    """An ONNX Runtime CPU session for `proto` (through a temp file when over 2 GB)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # errors reach us as exceptions; keep ORT's own log quiet
    try:
        if not needs_external_data(proto):
            return ort.InferenceSession(
                proto.SerializeToString(), so, providers=["CPUExecutionProvider"]
            )
        with tempfile.TemporaryDirectory(prefix="sparkonnx-parity-") as tmp:
            path = save_model(proto, Path(tmp) / "model.onnx", external=True)
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise OnnxRuntimeLoadError(
            f"{source_name}: ONNX Runtime cannot load the converted model: {_first_line(exc)}"
        ) from exc


def run_session(
    session: Any, names: Sequence[str], arrays: Sequence[np.ndarray], source_name: str
) -> list[np.ndarray]:
    """Run the ONNX model; a runtime failure becomes a ConversionError naming the model."""
    feeds = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
    try:
        return [np.asarray(x) for x in session.run(list(names), feeds)]
    except Exception as exc:
        raise OnnxRuntimeLoadError(
            f"{source_name}: the converted model fails in ONNX Runtime on the parity sample "
            f"{ {k: v.shape for k, v in feeds.items()} }: {_first_line(exc)}"
        ) from exc


def compare(
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    names: Sequence[str],
    tolerance: float,
    precision: str,
    sample: Mapping[str, np.ndarray],
    sample_kind: str,
) -> ParityReport:
    """Per-output errors; an output passes when |a - e| <= tolerance * (1 + |e|) everywhere."""
    results = []
    for name, e, a in zip(names, expected, actual):
        e = np.asarray(e)
        a = np.asarray(a)
        if e.shape != a.shape:
            results.append(OutputParity(name, float("inf"), float("inf"), False))
            logger.error("output %r: source shape %s, ONNX shape %s", name, e.shape, a.shape)
            continue
        if e.size == 0:
            results.append(OutputParity(name, 0.0, 0.0, True))
            continue
        e64 = e.astype(np.float64)
        a64 = a.astype(np.float64)
        both_nan = np.isnan(e64) & np.isnan(a64)
        diff = np.where(both_nan, 0.0, np.abs(a64 - e64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        max_abs = float(diff.max())
        scale = float(np.nanmax(np.abs(e64))) if not np.isnan(e64).all() else 0.0
        max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
        bound = tolerance * (1.0 + np.nan_to_num(np.abs(e64)))
        results.append(OutputParity(name, max_abs, max_rel, bool((diff <= bound).all())))
    return ParityReport(
        precision=precision,
        tolerance=float(tolerance),
        outputs=tuple(results),
        sample_shapes={k: tuple(int(d) for d in v.shape) for k, v in sample.items()},
        sample_kind=sample_kind,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
