"""int8 models with ONNX Runtime's quantization tools: pre-processing, then static or dynamic.

Static int8 calibrates activation ranges (MinMax, Percentile or Entropy) on sample rows and
writes a QDQ (or QOperator) model with int8 weights; dynamic int8 quantizes weights only
(activations at run time). The tools work on
files, so each step reads and writes in a folder the caller provides. The accuracy gate that
decides whether such a model may be used is in :mod:`sparkonnx.converters.quantize`; the
configurations tried behind it are in :mod:`sparkonnx.converters.int8_search`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from sparkonnx.converters.calibration import CalibrationSet
from sparkonnx.converters.errors import ConversionError
from sparkonnx.converters.progress import Stages
from sparkonnx.engine.model import OnnxModel

logger = logging.getLogger(__name__)

__all__ = ["Int8Options", "pre_process", "to_int8"]


@dataclass(frozen=True)
class Int8Options:
    """How ONNX Runtime quantizes a model to int8."""

    dynamic: bool = False  # weights only; else static: calibrated QDQ
    per_channel: bool = True
    reduce_range: bool = False
    nodes_to_exclude: tuple[str, ...] = ()
    batch: int = 8  # calibration rows per ONNX Runtime run
    calibration: str = "MinMax"  # ONNX Runtime CalibrationMethod: MinMax, Percentile, Entropy
    quant_format: str = "QDQ"  # static only: "QDQ" or "QOperator"

    @property
    def mode(self) -> str:
        """'int8' (static) or 'int8-dynamic'."""
        return "int8-dynamic" if self.dynamic else "int8"


def pre_process(model: OnnxModel, tmp: Path) -> Path:
    """ONNX Runtime's quantization pre-processing (optimization + shape inference)."""
    from onnxruntime.quantization import quant_pre_process

    source = tmp / "fp32.onnx"
    target = tmp / "pre.onnx"
    model.save(source)
    symbolic = importlib.util.find_spec("sympy") is not None
    if not symbolic:
        logger.info("sympy is not installed: pre-processing with ONNX shape inference only")
    try:  # in `tmp`: ONNX Runtime leaves sym_shape_infer_temp.onnx in the current folder
        with contextlib.chdir(tmp):
            quant_pre_process(str(source), str(target), skip_symbolic_shape=not symbolic)
    except Exception as exc:  # the optimizer or shape inference gave up: quantize as is
        logger.warning(
            "%s: ONNX Runtime's quantization pre-processing failed (%s); quantizing the model "
            "without it",
            model.source,
            _first_line(exc),
        )
        target = source
    _name_nodes(target)
    return target


def _name_nodes(path: Path) -> None:
    """Give unnamed nodes names (`nodes_to_exclude` can only name named nodes)."""
    proto = onnx.load_model(str(path), load_external_data=False)
    unnamed = [n for n in proto.graph.node if not n.name]
    if not unnamed:
        return
    taken = {n.name for n in proto.graph.node}
    for i, node in enumerate(proto.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    onnx.save_model(proto, str(path))


def to_int8(
    prepared: Path,
    tmp: Path,
    options: Int8Options,
    calib: CalibrationSet | None,
    stages: Stages,
) -> onnx.ModelProto:
    """The int8 model of the (pre-processed) model file ``prepared``; static int8 calibrates on
    ``calib``, counting its rows on ``stages``. ConversionError when ONNX Runtime fails."""
    target = tmp / "int8.onnx"
    printed = io.StringIO()  # ONNX Runtime's calibrators print their progress
    try:
        with contextlib.redirect_stdout(printed):
            if options.dynamic:
                _dynamic(prepared, target, options)
            else:
                assert calib is not None
                stages.expect(calib.rows, "calibrating")
                _static(prepared, target, options, _reader(calib, options.batch, stages))
        logger.debug("ONNX Runtime's quantization printed: %s", printed.getvalue())
    except Exception as exc:
        raise ConversionError(
            f"ONNX Runtime could not quantize the model ({options.mode}): {_first_line(exc)}"
        ) from exc
    return onnx.load_model(str(target))


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _dynamic(prepared: Path, target: Path, options: Int8Options) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(prepared),
        str(target),
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=list(options.nodes_to_exclude) or None,
    )


def _static(prepared: Path, target: Path, options: Int8Options, reader: object) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(prepared),
        str(target),
        reader,
        quant_format=QuantFormat[options.quant_format],
        per_channel=options.per_channel,
        reduce_range=options.reduce_range,
        activation_type=QuantType.QUInt8,  # ORT's advice for x86 CPUs
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod[options.calibration],
        nodes_to_exclude=list(options.nodes_to_exclude) or None,
        # no CalibMaxIntermediateOutputs: ORT 1.31 drops each full chunk uncomputed;
        # MinMax keeps only per-batch ReduceMin/ReduceMax scalars anyway
    )


class _Reader:
    """A CalibrationDataReader over a CalibrationSet, in batches, counting rows on a bar."""

    def __init__(self, data: CalibrationSet, batch: int, stages: Stages) -> None:
        self.data = data
        self.batch = batch
        self.stages = stages
        self.rewind()

    def rewind(self) -> None:
        self.feeds = self.data.batches(self.batch)

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self.feeds, None)
        if feed is not None:
            self.stages.advance(len(next(iter(feed.values()))))
        return feed

    def __len__(self) -> int:
        return -(-self.data.rows // self.batch)


def _reader(calib: CalibrationSet, batch: int, stages: Stages) -> object:
    """A `_Reader` that is also ONNX Runtime's CalibrationDataReader (imported lazily)."""
    from onnxruntime.quantization import CalibrationDataReader

    return type("Reader", (_Reader, CalibrationDataReader), {})(calib, batch, stages)
