"""The rows a quantization works on: calibration rows and the gate's held-out rows, and the
fp32 / lower-precision outputs the gate compares on them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
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
from sparkonnx.converters.gate import GateReport, GateTolerance, judge
from sparkonnx.converters.parity import make_session, random_sample
from sparkonnx.engine.model import OnnxModel

logger = logging.getLogger(__name__)

GATE_ROWS_WITHOUT_DATA = 16  # random rows when dynamic / fp16 get no sample inputs


def samples(
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
    fixed = batch_for(model, GATE_ROWS_WITHOUT_DATA)  # a static batch dim: several batches
    parts = [
        random_sample(infos, GATE_ROWS_WITHOUT_DATA, seed + i)
        for i in range(-(-GATE_ROWS_WITHOUT_DATA // fixed))
    ]
    arrays = [np.concatenate(column) for column in zip(*parts, strict=True)]
    return CalibrationSet(dict(zip([s.name for s in model.inputs], arrays)), "random inputs")


def batch_for(model: OnnxModel, wanted: int) -> int:
    """`wanted`, or the model's fixed batch size when its inputs have one."""
    fixed = {s.shape[0] for s in model.inputs if s.shape and isinstance(s.shape[0], int)}
    return fixed.pop() if len(fixed) == 1 else wanted


def run_outputs(session: Any, data: CalibrationSet, batch: int) -> list[np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    parts: list[list[np.ndarray]] = [[] for _ in names]
    for feed in data.batches(batch):
        for i, out in enumerate(session.run(names, feed)):
            parts[i].append(np.asarray(out))
    return [np.concatenate(p) for p in parts]


class Gate:
    """Judges lower-precision forms of `source` on the gate's `rows` against fp32 (whose
    outputs are computed once, however many candidates are judged)."""

    def __init__(
        self,
        source: OnnxModel,
        rows: CalibrationSet,
        mode: str,
        limits: GateTolerance,
        metric: str | Mapping[str, str],
        calibration_rows: int,
        batch_size: int,
    ) -> None:
        self.source, self.rows, self.mode, self.limits = source, rows, mode, limits
        self.metric, self.calibration_rows = metric, calibration_rows
        self.batch = batch_for(source, batch_size)
        self._expected: list[np.ndarray] | None = None

    def __call__(self, proto: onnx.ModelProto) -> GateReport:
        """The gate's report on `proto`."""
        source = self.source
        if self._expected is None:
            fp32 = make_session(source.proto, source.source)
            self._expected = run_outputs(fp32, self.rows, self.batch)
        labels = metadata.labels_of(source)
        candidate = make_session(proto, f"{self.mode} {source.source}")
        return judge(
            self.mode,
            [o.name for o in source.outputs],
            self._expected,
            run_outputs(candidate, self.rows, self.batch),
            self.limits,
            metric=self.metric,
            has_labels=labels is not None,
            label_count=None if labels is None else len(labels),
            sample=self.rows.source,
            calibration_rows=self.calibration_rows,
        )
