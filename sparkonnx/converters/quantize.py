"""Lower precision behind an accuracy gate: static int8, dynamic int8 and float16.

`quantize` takes an fp32 ONNX model and sample inputs. Static int8 runs ONNX Runtime's
pre-processing (`quant_pre_process`), calibrates activation ranges on most of the sample
(MinMax) and writes a QDQ model with per-channel int8 weights; dynamic int8 quantizes weights
only (activations at run time: MLPs, transformers); fp16 keeps float32 inputs and outputs.
The result is then compared with fp32 on held-out rows (see `gate.py`) and refused, with the
measured figures, when it falls below the thresholds. ONNX Runtime's int8 tools are driven from
`int8.py`, the fp16 rewrite is `fp16.py`. The figures go into the model's
metadata (`sparkonnx.quantization`), next to `sparkonnx.precision`.

On CPUs, int8 is where the speed is (VNNI / AMX kernels); fp16 brings none there, because ONNX
Runtime's CPU provider casts most float16 operators back to float32: use fp16 on GPUs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from sparkonnx.converters import metadata
from sparkonnx.converters.calibration import (
    CalibrationError,
    CalibrationLike,
    CalibrationSet,
    load_calibration,
)
from sparkonnx.converters.errors import ConversionError
from sparkonnx.converters.gate import (
    GateReport,
    GateTolerance,
    judge,
    refusal,
    require_gate_rows,
)
from sparkonnx.converters.int8 import Int8Options, pre_process, reduced_range_default, to_int8
from sparkonnx.converters.parity import make_session, random_sample
from sparkonnx.converters.precisions import validate_precision
from sparkonnx.converters.progress import Stages
from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import check_int

logger = logging.getLogger(__name__)

QUANTIZATION = "sparkonnx.quantization"  # metadata key: JSON of the settings and gate figures
GATE_ROWS_WITHOUT_DATA = 16  # random rows when dynamic / fp16 get no sample inputs

ModelInput = OnnxModel | bytes | str | Path | onnx.ModelProto | Any  # Any: ConversionResult


def normalize_mode(mode: str) -> str:
    """The canonical mode name ('int8', 'int8-dynamic' or 'fp16') for `mode` or an alias."""
    return validate_precision(mode, name="mode", lower_only=True)


@dataclass(frozen=True)
class QuantizationResult:
    """A lower-precision model that passed the gate, with the gate's figures and timings."""

    proto: onnx.ModelProto = field(repr=False)
    mode: str
    gate: GateReport
    source_sha256: str
    calibration_identity: str | None
    timings: dict[str, float] = field(default_factory=dict)

    @cached_property
    def model(self) -> OnnxModel:
        """The model as an `OnnxModel` (bytes + sha256)."""
        return OnnxModel.from_bytes(self.proto.SerializeToString(), f"<{self.mode} model>")

    def save(self, path: str | Path) -> Path:
        """Write the model to `path`; return the path."""
        from sparkonnx.converters.saving import save_model

        return save_model(self.proto, path)

    def __repr__(self) -> str:
        return f"QuantizationResult({self.gate.summary()})"


def quantization_of(model: Any) -> dict[str, Any] | None:
    """The quantization record stored in a model's metadata (settings and gate figures), or None."""
    raw = metadata._as_dict(model).get(QUANTIZATION)
    return None if raw is None else json.loads(raw)


def quantize(
    model: ModelInput,
    calibration: CalibrationLike | None = None,
    *,
    mode: str = "int8",
    validation: CalibrationLike | None = None,
    per_channel: bool = True,
    tolerance: GateTolerance | Mapping[str, float] | float | None = None,
    metric: str | Mapping[str, str] = "auto",
    holdout: int | float = 0.25,
    max_rows: int = 512,
    batch_size: int = 8,
    reduce_range: bool | None = None,
    nodes_to_exclude: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> QuantizationResult:
    """A gated int8 / fp16 copy of an fp32 ONNX model.

    `calibration`: sample inputs (a folder of images, .npy / .npz / .parquet, arrays or a
    CalibrationSet); required for 'int8', where `holdout` rows (a count, or a fraction below 1)
    are kept out of calibration for the gate, unless `validation` gives the gate its own rows.
    `tolerance`: a number (minimum top-1 agreement and
    mean cosine) or {'top1', 'cosine', 'max_rel', 'min_rows'}; `metric`: 'auto', 'top1',
    'cosine', 'max_rel', or {output: metric}. Raises `GateError` with the measured figures on
    refusal, and `CalibrationError` when the gate would judge on fewer than `min_rows` (16)
    held-out rows or the sample holds NaN / inf. `reduce_range` (7-bit weights): None picks it
    on x86 CPUs without VNNI / AMX, where 8-bit weights overflow (`reduced_range_default`).
    """
    mode = normalize_mode(mode)
    if reduce_range is None:
        reduce_range = reduced_range_default()
    source = _load_model(model)
    _check_fp32(source)
    limits = GateTolerance.of(tolerance)
    check_int("batch_size", batch_size, minimum=1)
    options = Int8Options(
        dynamic=mode == "int8-dynamic",
        per_channel=per_channel,
        reduce_range=reduce_range,
        nodes_to_exclude=tuple(nodes_to_exclude or ()),
        batch=_batch_for(source, batch_size),
    )
    stages = Stages(f"{mode} {source.source}", progress)
    with stages.stage("calibration data"):
        calib, gate_rows = _samples(source, calibration, validation, mode, holdout, max_rows, seed)
    where = "the validation set" if validation is not None else f"holdout={holdout!r}"
    require_gate_rows(source.source, gate_rows, limits, where)
    proto = _lower(source, mode, options, calib, stages)
    with stages.stage("gate"):
        report = _gate(source, proto, gate_rows, mode, limits, metric, calib, batch_size)
    stages.close()
    logger.info("%s: %s", source.source, report.summary())
    if not report.passed:
        raise refusal(report, source.source)
    record = _record(source, mode, options, calib, report, limits, stages.timings)
    metadata.write(proto, {metadata.PRECISION: mode, QUANTIZATION: json.dumps(record)})
    return QuantizationResult(
        proto=proto,
        mode=mode,
        gate=report,
        source_sha256=source.sha256,
        calibration_identity=None if calib is None else calib.identity,
        timings=stages.timings,
    )


def _lower(
    source: OnnxModel,
    mode: str,
    options: Int8Options,
    calib: CalibrationSet | None,
    stages: Stages,
) -> onnx.ModelProto:
    """The fp16 or int8 model (ONNX Runtime's int8 tools work on files: in a temporary folder)."""
    if mode == "fp16":
        from sparkonnx.converters.fp16 import to_fp16

        with stages.stage("fp16"):
            return to_fp16(source.proto)
    with tempfile.TemporaryDirectory(prefix="sparkonnx-quantize-") as tmp:
        with stages.stage("pre-process"):
            prepared = pre_process(source, Path(tmp))
        with stages.stage("quantize"):
            return to_int8(prepared, Path(tmp), options, calib, stages)


def _record(
    source: OnnxModel,
    mode: str,
    options: Int8Options,
    calib: CalibrationSet | None,
    report: GateReport,
    limits: GateTolerance,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The settings and gate figures stored in the model's metadata (`quantization_of`)."""
    return {
        "mode": mode,
        "per_channel": options.per_channel if mode != "fp16" else None,
        "reduce_range": options.reduce_range if mode != "fp16" else None,
        "source_sha256": source.sha256,
        "calibration": None
        if calib is None
        else {"source": calib.source, "rows": calib.rows, "identity": calib.identity},
        "gate": report.to_dict(),
        "tolerance": dataclasses.asdict(limits),
        "onnxruntime": _ort_version(),
        "timings": timings,
    }


# ---------------------------------------------------------------- steps


def _load_model(model: ModelInput) -> OnnxModel:
    from sparkonnx.converters.result import ConversionResult

    if isinstance(model, ConversionResult):
        return model.model
    return OnnxModel.load(model)


def _check_fp32(model: OnnxModel) -> None:
    precision = model.metadata.get(metadata.PRECISION, "fp32")
    if precision != "fp32":
        raise ConversionError(
            f"{model.source} is already a {precision} model; quantize the fp32 model it came "
            "from (the gate compares against fp32)"
        )
    if not any(s.dtype == np.float32 for s in [*model.inputs, *model.outputs]) and not any(
        t.data_type == onnx.TensorProto.FLOAT for t in model.proto.graph.initializer
    ):
        raise ConversionError(
            f"{model.source} has no float32 weights or tensors; there is nothing to quantize"
        )


def _samples(
    model: OnnxModel,
    calibration: CalibrationLike | None,
    validation: CalibrationLike | None,
    mode: str,
    holdout: int | float,
    max_rows: int,
    seed: int,
) -> tuple[CalibrationSet | None, CalibrationSet]:
    """(calibration rows, or None when nothing is calibrated; gate rows)."""
    if calibration is None and mode == "int8":
        raise ConversionError(
            f"{model.source}: static int8 needs calibration data: give calibration= "
            "(CLI: --calibration PATH) a folder of images or a .npy / .npz / .parquet of "
            "real input tensors (a few hundred rows is plenty), or use mode='int8-dynamic'"
        )
    sample = None
    if calibration is not None:
        sample = load_calibration(calibration, model, limit=max_rows, seed=seed)
        sample.require_finite(model.source)
        if _constant(sample):
            if validation is None:
                raise CalibrationError(
                    f"{model.source}: every value of the calibration data {sample.source} is the "
                    "same, so int8 ranges calibrated on it cannot represent real inputs and a "
                    "gate on its held-out rows would prove nothing; give real inputs"
                )
            logger.warning("%s: calibration data %s is constant", model.source, sample.source)
    if validation is not None:
        gate_rows = load_calibration(validation, model, limit=max_rows, seed=seed)
        gate_rows.require_finite(model.source)
        return (sample if mode == "int8" else None), gate_rows
    if sample is None:
        logger.warning(
            "%s: no sample inputs given, so the %s gate runs on %d random rows, which say "
            "little about real data; pass calibration=... for a meaningful check",
            model.source,
            mode,
            GATE_ROWS_WITHOUT_DATA,
        )
        return None, _random_rows(model, seed)
    if mode != "int8":  # nothing is calibrated: every row is a gate row
        return None, sample
    return sample.split(holdout, seed)


def _constant(sample: CalibrationSet) -> bool:
    return all(a.size and np.ptp(a) == 0 for a in sample.arrays.values())


def _random_rows(model: OnnxModel, seed: int) -> CalibrationSet:
    from sparkonnx.converters.source import InputInfo

    infos = [
        InputInfo(
            s.name,
            s.dtype,
            None if s.shape is None else tuple(d if isinstance(d, int) else None for d in s.shape),
        )
        for s in model.inputs
    ]
    fixed = _batch_for(model, GATE_ROWS_WITHOUT_DATA)  # a static batch dim: several batches
    parts = [
        random_sample(infos, GATE_ROWS_WITHOUT_DATA, seed + i)
        for i in range(-(-GATE_ROWS_WITHOUT_DATA // fixed))
    ]
    arrays = [np.concatenate(column) for column in zip(*parts, strict=True)]
    return CalibrationSet(dict(zip([s.name for s in model.inputs], arrays)), "random inputs")


def _batch_for(model: OnnxModel, wanted: int) -> int:
    """`wanted`, or the model's fixed batch size when its inputs have one."""
    fixed = {s.shape[0] for s in model.inputs if s.shape and isinstance(s.shape[0], int)}
    return fixed.pop() if len(fixed) == 1 else wanted


def _run(session: Any, data: CalibrationSet, batch: int) -> list[np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for feed in data.batches(batch):
        for i, out in enumerate(session.run(names, feed)):
            parts[i].append(np.asarray(out))
    return [np.concatenate(p) for p in parts]


def _gate(
    source: OnnxModel,
    proto: onnx.ModelProto,
    rows: CalibrationSet,
    mode: str,
    limits: GateTolerance,
    metric: str | Mapping[str, str],
    calib: CalibrationSet | None,
    batch_size: int,
) -> GateReport:
    batch = _batch_for(source, batch_size)
    names = [o.name for o in source.outputs]
    labels = metadata.labels_of(source)
    expected = _run(make_session(source.proto, source.source), rows, batch)
    actual = _run(make_session(proto, f"{mode} {source.source}"), rows, batch)
    return judge(
        mode,
        names,
        expected,
        actual,
        limits,
        metric=metric,
        has_labels=labels is not None,
        label_count=None if labels is None else len(labels),
        sample=rows.source,
        calibration_rows=calib.rows if calib is not None else 0,
    )


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
