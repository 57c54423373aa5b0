"""Lower precision behind an accuracy gate: static int8, dynamic int8 and float16.

`quantize` takes an fp32 ONNX model and sample inputs. mode='int8' picks static int8 for
convolutional graphs and dynamic int8 (weights only) for MatMul / Gemm graphs without a
convolution (`int8_configs.choose_int8_mode`); 'int8-static' / 'int8-dynamic' force one. Static
int8 runs ONNX Runtime's pre-processing (`quant_pre_process`), calibrates activation ranges on
most of the sample and writes a model with per-channel int8 weights; fp16 keeps float32 inputs
and outputs. Each candidate is compared with fp32 on held-out rows (see `gate.py`); for int8 a
small ordered search of configurations (`int8_search.py`) keeps the fastest that passes, and
refuses int8 when it is not `min_speedup` times as fast as fp32 where it was timed. ONNX
Runtime's int8 tools are driven from `int8.py`, the fp16 rewrite is `fp16.py`. The figures go
into the model's metadata (`sparkonnx.quantization`), next to `sparkonnx.precision`.

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
from sparkonnx.converters.calibration import CalibrationLike, CalibrationSet
from sparkonnx.converters.errors import ConversionError
from sparkonnx.converters.gate import GateReport, GateTolerance, refusal, require_gate_rows
from sparkonnx.converters.int8 import Int8Options, pre_process, to_int8
from sparkonnx.converters.int8_configs import candidates, choose_int8_mode, end_layers
from sparkonnx.converters.int8_search import (
    DEFAULT_SEARCH_SECONDS,
    TIMING_ROWS,
    SearchReport,
    Timer,
    local_timer,
    run_search,
)
from sparkonnx.converters.precisions import validate_precision
from sparkonnx.converters.progress import Stages
from sparkonnx.converters.quantize_rows import Gate, batch_for, samples
from sparkonnx.engine.cpu_features import cpu_features
from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import check_int

logger = logging.getLogger(__name__)

QUANTIZATION = "sparkonnx.quantization"  # metadata key: JSON of the settings and gate figures

ModelInput = OnnxModel | bytes | str | Path | onnx.ModelProto | Any  # Any: ConversionResult


def normalize_mode(mode: str) -> str:
    """The canonical mode name ('int8', 'int8-static', 'int8-dynamic' or 'fp16') for `mode`."""
    return validate_precision(mode, name="mode", lower_only=True)


def resolve_mode(mode: str, model: OnnxModel) -> tuple[str, str]:
    """(the mode built: 'int8', 'int8-dynamic' or 'fp16'; why) for a requested `mode`."""
    canonical = normalize_mode(mode)
    if canonical == "int8":
        return choose_int8_mode(model.proto)
    if canonical == "int8-static":
        return "int8", "static: asked for"
    return canonical, "asked for"


@dataclass(frozen=True)
class QuantizationResult:
    """A lower-precision model that passed the gate, with the gate's figures and timings."""

    proto: onnx.ModelProto = field(repr=False)
    mode: str
    gate: GateReport
    source_sha256: str
    calibration_identity: str | None
    timings: dict[str, float] = field(default_factory=dict)
    search: SearchReport | None = None  # int8: every configuration tried, and the timing

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
    reduce_range: bool = False,
    nodes_to_exclude: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool | None = None,
    search: bool = True,
    search_seconds: float = DEFAULT_SEARCH_SECONDS,
    timer: Timer | None = None,
) -> QuantizationResult:
    """A gated int8 / fp16 copy of an fp32 ONNX model.

    `mode`: 'int8' (static for convolutional graphs, dynamic for MatMul graphs), 'int8-static',
    'int8-dynamic' or 'fp16'. `calibration`: sample inputs (image folder, .npy / .npz /
    .parquet, arrays); static int8 calibrates on all but `holdout` rows (a count or a fraction),
    which the gate judges on, unless `validation` gives the gate its own rows. `tolerance`: a
    number (min top-1 and cosine) or {'top1', 'cosine', 'max_rel', 'min_rows', 'min_speedup'};
    `metric`: 'auto', 'top1', 'cosine', 'max_rel' or {output: metric}. int8 `search`es for at
    most `search_seconds` (0: like search=False) and keeps the fastest that passes, timed by `timer`
    (default: this process). Raises `GateError` with the figures, `Int8SpeedError` under
    `min_speedup`, `CalibrationError` for fewer than `min_rows` gate rows or NaN / inf inputs.
    `reduce_range`: 7-bit weights in every try; the search tries them first anyway on x86 CPUs
    without VNNI / AMX, where 8-bit weights overflow (`CpuFeatures.int8_overflow_risk`).
    """
    source = _load_model(model)
    _check_fp32(source)
    mode, reason = resolve_mode(mode, source)
    limits = GateTolerance.of(tolerance)
    options = _options(source, mode, batch_size, per_channel, reduce_range, nodes_to_exclude)
    stages = Stages(f"{mode} {source.source}", progress)
    with stages.stage("calibration data"):
        calib, gate_rows = samples(source, calibration, validation, mode, holdout, max_rows, seed)
    where = "the validation set" if validation is not None else f"holdout={holdout!r}"
    require_gate_rows(source.source, gate_rows, limits, where)
    gate = Gate(source, gate_rows, mode, limits, metric, calib.rows if calib else 0, batch_size)
    found: SearchReport | None = None
    try:
        if mode == "fp16":
            proto, report = _fp16(source, gate, stages)
        else:
            searching = search and search_seconds > 0  # a budget of 0: the single try
            risky = cpu_features().int8_overflow_risk  # 7-bit weights first there
            plan = _SearchPlan(searching, search_seconds, timer or local_timer, reason, risky)
            proto, report, found, options = _int8(source, mode, options, calib, gate, stages, plan)
    finally:
        stages.close()
    logger.info("%s: %s", source.source, report.summary())
    return _finish(source, mode, proto, report, options, calib, limits, stages.timings, found)


def _finish(
    source: OnnxModel,
    mode: str,
    proto: onnx.ModelProto,
    report: GateReport,
    options: Int8Options,
    calib: CalibrationSet | None,
    limits: GateTolerance,
    timings: dict[str, float],
    found: SearchReport | None,
) -> QuantizationResult:
    """The result, with its record written into the model's metadata."""
    record = _record(source, mode, options, calib, report, limits, timings, found)
    metadata.write(proto, {metadata.PRECISION: mode, QUANTIZATION: json.dumps(record)})
    return QuantizationResult(
        proto=proto,
        mode=mode,
        gate=report,
        source_sha256=source.sha256,
        calibration_identity=None if calib is None else calib.identity,
        timings=timings,
        search=found,
    )


def _options(
    source: OnnxModel,
    mode: str,
    batch_size: int,
    per_channel: bool,
    reduce_range: bool,
    nodes_to_exclude: Sequence[str] | None,
) -> Int8Options:
    check_int("batch_size", batch_size, minimum=1)
    return Int8Options(
        dynamic=mode == "int8-dynamic",
        per_channel=per_channel,
        reduce_range=reduce_range,
        nodes_to_exclude=tuple(nodes_to_exclude or ()),
        batch=batch_for(source, batch_size),
    )


@dataclass(frozen=True)
class _SearchPlan:
    search: bool
    seconds: float
    timer: Timer
    reason: str
    seven_bit_first: bool = False  # x86 without VNNI / AMX: 8-bit weights overflow there


def _fp16(source: OnnxModel, gate: Gate, stages: Stages) -> tuple[onnx.ModelProto, GateReport]:
    from sparkonnx.converters.fp16 import to_fp16

    with stages.stage("fp16"):
        proto = to_fp16(source.proto)
    with stages.stage("gate"):
        report = gate(proto)
    if not report.passed:
        raise refusal(report, source.source)
    return proto, report


def _int8(
    source: OnnxModel,
    mode: str,
    options: Int8Options,
    calib: CalibrationSet | None,
    gate: Gate,
    stages: Stages,
    plan: _SearchPlan,
) -> tuple[onnx.ModelProto, GateReport, SearchReport, Int8Options]:
    """The search behind the gate, and the options it kept (ONNX Runtime's int8 tools work on
    files: in a temporary folder)."""
    timing = None
    if plan.search or gate.limits.min_speedup > 0:
        rows = (calib or gate.rows).take(slice(0, TIMING_ROWS), "timing rows")
        timing = (plan.timer, rows, options.batch, source.proto)
    with tempfile.TemporaryDirectory(prefix="sparkonnx-quantize-") as tmp:
        with stages.stage("pre-process"):
            prepared = pre_process(source, Path(tmp))
        graph = onnx.load_model(str(prepared), load_external_data=False)
        configs = candidates(mode, options, end_layers(graph), plan.search, plan.seven_bit_first)

        def build(o: Int8Options) -> onnx.ModelProto:
            with stages.stage("quantize"):
                return to_int8(prepared, Path(tmp), o, calib, stages)

        with stages.stage("search"):
            proto, report, found = run_search(
                source.source,
                configs,
                build,
                gate,
                mode=(mode, plan.reason),
                timing=timing,
                min_speedup=gate.limits.min_speedup,
                budget_seconds=plan.seconds,
            )
    chosen = next(c.options for c in configs if c.name == found.chosen)
    return proto, report, found, chosen


def _record(
    source: OnnxModel,
    mode: str,
    options: Int8Options,
    calib: CalibrationSet | None,
    report: GateReport,
    limits: GateTolerance,
    timings: dict[str, float],
    found: SearchReport | None,
) -> dict[str, Any]:
    """The settings and gate figures stored in the model's metadata (`quantization_of`)."""
    int8 = mode != "fp16"
    return {
        "mode": mode,
        "per_channel": options.per_channel if int8 else None,
        "reduce_range": options.reduce_range if int8 else None,
        "calibration_method": options.calibration if mode == "int8" else None,
        "quant_format": options.quant_format if mode == "int8" else None,
        "source_sha256": source.sha256,
        "calibration": None
        if calib is None
        else {"source": calib.source, "rows": calib.rows, "identity": calib.identity},
        "gate": report.to_dict(),
        "tolerance": dataclasses.asdict(limits),
        "search": None if found is None else found.to_dict(),
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


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)
