"""The conversion core every entry point funnels into: convert, fix, check, compare, annotate."""

from __future__ import annotations

import logging
import resource
from typing import Any, NamedTuple

import numpy as np
import onnx

from sparkonnx.converters import metadata
from sparkonnx.converters.errors import ConversionError, ParityError
from sparkonnx.converters.fp16 import to_fp16
from sparkonnx.converters.onnx_edit import (
    check_model,
    name_batch_dims,
    order_outputs,
    rename_tensors,
    upgrade_opset,
)
from sparkonnx.converters.op_fixes import custom_handlers, raise_on_unsupported_ops
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.parity import (
    SampleInput,
    compare,
    make_session,
    random_sample,
    run_session,
    user_sample,
)
from sparkonnx.converters.progress import Stages
from sparkonnx.converters.result import ConversionResult, ModelSignature, ParityReport
from sparkonnx.converters.source import PreparedSource

logger = logging.getLogger(__name__)

AUTO_LARGE_BYTES = 1_800_000_000  # weights above this take tf2onnx's external-storage path


def _final_names(prepared: PreparedSource, given: tuple[str, ...] | None, kind: str) -> list[str]:
    tf_names = prepared.input_names() if kind == "input" else prepared.output_names
    if prepared.info.form in ("graph_def", "session", "checkpoint"):
        # graph sources were selected by TF tensor name: drop the ':0' port where unambiguous
        stripped = [n.removesuffix(":0") for n in tf_names]
        return stripped if len(set(stripped)) == len(stripped) else list(tf_names)
    if given is None:
        return list(tf_names)
    if len(given) != len(tf_names):
        raise ConversionError(
            f"{len(given)} {kind} name(s) {list(given)} given, but {prepared.info.name!r} has "
            f"{len(tf_names)} {kind}(s) {list(tf_names)}; give one name per {kind}, in that order"
        )
    return list(given)


def _tidy(proto: onnx.ModelProto, prepared: PreparedSource, options: ConversionOptions) -> None:
    inputs = _final_names(prepared, options.input_names, "input")
    outputs = _final_names(prepared, options.output_names, "output")
    mapping = dict(zip(prepared.input_names(), inputs)) | dict(zip(prepared.output_names, outputs))
    order_outputs(proto, prepared.output_names)
    rename_tensors(proto, mapping)
    if options.dynamic_batch:
        name_batch_dims(proto, inputs)
    raise_on_unsupported_ops(proto, prepared.info.name)
    check_model(proto, prepared.info.name)


class _Sample(NamedTuple):
    """Sample inputs, the source model's outputs on them, and whose they are."""

    inputs: list[np.ndarray]
    expected: list[Any]
    kind: str  # 'user' or 'random'


def _sample(
    proto: onnx.ModelProto,
    prepared: PreparedSource,
    options: ConversionOptions,
    sample_input: SampleInput | None,
) -> _Sample:
    """The user's sample input (checked against the model), or random rows; run by the source."""
    if sample_input is not None:
        inputs = user_sample(sample_input, prepared.inputs, _input_names(proto))
    else:
        inputs = random_sample(prepared.inputs, options.sample_batch, options.seed)
    return _Sample(inputs, prepared.run(inputs), "user" if sample_input is not None else "random")


def _parity(
    proto: onnx.ModelProto, precision: str, tolerance: float, sample: _Sample, name: str
) -> ParityReport:
    session = make_session(proto, name)
    in_names = [i.name for i in session.get_inputs()]
    out_names = [o.name for o in proto.graph.output]
    actual = run_session(session, out_names, sample.inputs, name)
    report = compare(
        sample.expected,
        actual,
        out_names,
        tolerance,
        precision,
        dict(zip(in_names, sample.inputs)),
        sample.kind,
    )
    logger.info("%s: %s", name, report.summary())
    return report


def _fail_parity(report: ParityReport, name: str, fp16: bool) -> ParityError:
    worst = max(report.outputs, key=lambda o: o.max_abs_error)
    fix = (
        "keep float32 (no fp16), or allow more with fp16_tolerance=... (--fp16-tolerance)"
        if fp16
        else "a TF op converts with different numerics (e.g. 'area' resize, bicubic "
        "down-scaling); change it in the model, or if the error is acceptable raise "
        "tolerance=... (--tolerance)"
    )
    return ParityError(
        f"{name}: {report.summary()}; worst output {worst.name!r}; {fix}",
        report,
    )


def run(
    prepared: PreparedSource, options: ConversionOptions, sample_input: SampleInput | None = None
) -> ConversionResult:
    """Convert a prepared source with `options`; raise a ConversionError subclass on failure."""
    name = prepared.info.name
    want_sample = options.check or options.fp16
    total = 4 + int(want_sample) + int(options.fp16)
    stages = Stages(name, options.progress, total=total, desc=f"converting {name}")
    try:
        with stages.stage("tf2onnx"):
            proto = _to_onnx(prepared, options)
        with stages.stage("check"):
            _tidy(proto, prepared, options)
        with stages.stage("opset"):
            proto = upgrade_opset(proto, options.opset)
            if options.opset > options.tf2onnx_opset:
                check_model(proto, name)
        parity = fp16_parity = sample = None
        if want_sample:
            with stages.stage("parity"):
                sample = _sample(proto, prepared, options, sample_input)
                parity = _parity(proto, "fp32", options.tolerance, sample, name)
                if not parity.passed and options.check:
                    raise _fail_parity(parity, name, fp16=False)
                if not options.check:
                    parity = None
        else:
            make_session(proto, name)  # still prove that ONNX Runtime loads it
        if options.fp16 and sample is not None:
            with stages.stage("fp16"):
                proto = to_fp16(proto)
                fp16_parity = _parity(proto, "fp16", options.fp16_tolerance, sample, name)
                if not fp16_parity.passed:
                    raise _fail_parity(fp16_parity, name, fp16=True)
        with stages.stage("metadata"):
            metadata.write(proto, metadata.build(prepared.info, options, parity, fp16_parity))
    finally:
        stages.close()
    return _result(proto, prepared, options, parity, fp16_parity, stages.timings)


def _to_onnx(prepared: PreparedSource, options: ConversionOptions) -> onnx.ModelProto:
    """tf2onnx's model; weights above AUTO_LARGE_BYTES (or large_model=True) stored externally."""
    large = (
        options.large_model
        if options.large_model is not None
        else prepared.weights_bytes > AUTO_LARGE_BYTES
    )
    if large:
        logger.info(
            "%s: %.2f GB of weights: external tensor storage",
            prepared.info.name,
            prepared.weights_bytes / 1e9,
        )
    proto: onnx.ModelProto = prepared.to_onnx(options.tf2onnx_opset, custom_handlers(), large)
    return proto


def _result(
    proto: onnx.ModelProto,
    prepared: PreparedSource,
    options: ConversionOptions,
    parity: ParityReport | None,
    fp16_parity: ParityReport | None,
    timings: dict[str, float],
) -> ConversionResult:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return ConversionResult(
        proto=proto,
        signature=ModelSignature.of(proto),
        source=prepared.info,
        options=options,
        parity=parity,
        fp16_parity=fp16_parity,
        timings=timings,
        peak_rss_bytes=int(peak),
    )


def _input_names(proto: onnx.ModelProto) -> list[str]:
    initializers = {t.name for t in proto.graph.initializer}
    return [i.name for i in proto.graph.input if i.name not in initializers]
