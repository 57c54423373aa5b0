"""The Spark side of `precision`: turn a stage's fp32 model into its gated int8 / fp16 form.

Runs on the driver, once per stage and model: the first transform draws a seeded sample of the
model's input columns from the DataFrame being transformed (`calibrationRows` rows, one Spark
job), calibrates on three quarters of it (or on `calibrationPath` when set, keeping the whole
sample for the gate), gates the result against fp32, logs the gate's figures and keeps the
model on disk under `$SPARKONNX_CACHE/precision` (default `~/.cache/sparkonnx/precision`),
keyed by the source model's sha256, the mode, the calibration and gate data's sha256, the
thresholds and the ONNX Runtime version. Later transforms of the same stage reuse it. For
int8, the configurations that pass the gate are timed against fp32 inside one executor task
(`executor_timer`), and int8 is refused (`Int8SpeedError`) when the fastest
is under `min_speedup` (precisionTolerance, default 1.2) times as fast.

Saving a stage stores the fp32 model and these Params, not the int8 bytes: on load the int8
model is rebuilt from the same inputs (a cache hit when they are the same), so a saved stage
stays exact to its fp32 source and small. To pin an int8 model across machines and data,
quantize it with `sparkonnx.quantize` (or `sparkonnx convert --quantize int8`) and give the
stage that model, with precision left at 'fp32'.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow as pa

from sparkonnx.converters import metadata
from sparkonnx.converters.calibration import CalibrationSet, load_calibration
from sparkonnx.converters.gate import GateTolerance
from sparkonnx.converters.int8_search import DEFAULT_SEARCH_SECONDS, Timer, Timing
from sparkonnx.engine.cache_dir import cache_root
from sparkonnx.engine.image_preprocess import ImagePreprocessing
from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.engine.tensors import column_to_tensor
from sparkonnx.spark_api.params import HasPrecision
from sparkonnx.spark_api.runtime.image_executor import SAMPLE_SCHEMA, preprocess_sample
from sparkonnx.spark_api.runtime.speed_probe import PROBE_SCHEMA, time_in_task
from sparkonnx.spark_api.session import sql_functions
from sparkonnx.spark_api.shipping import driver_check, ship_bytes

logger = logging.getLogger(__name__)

_CACHE_FORMAT = "4"  # bump when the quantization recipe changes, so stale files are not reused


def cache_dir() -> Path:
    """`$SPARKONNX_CACHE/precision`, default `~/.cache/sparkonnx/precision`."""
    return cache_root() / "precision"


def cache_key(
    source_sha256: str,
    mode: str,
    calibration_identity: str | None,
    gate_identity: str,
    tolerance: GateTolerance,
    search_seconds: float | None = None,
) -> str:
    """The cache identity of a lower-precision build (hex sha256)."""
    import onnxruntime

    import sparkonnx

    text = json.dumps(
        {
            "format": _CACHE_FORMAT,
            "source": source_sha256,
            "mode": mode,
            "calibration": calibration_identity,
            "gate": gate_identity,
            "tolerance": [tolerance.top1, tolerance.cosine, tolerance.max_rel],
            "min_speedup": tolerance.min_speedup,
            "search_seconds": search_seconds,
            "onnxruntime": onnxruntime.__version__,
            "sparkonnx": sparkonnx.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


#: A sampled Arrow table of the stage's input columns -> model feeds (one array per input).
FeedMaker = Callable[[pa.Table], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Sampling:
    """How a stage's input columns become calibration feeds.

    ``on_executors`` (optional) shrinks sampled rows before they reach the driver (images ->
    preprocessed tensors); ``image_preprocessing`` is what a ``calibrationPath`` image folder
    gets (image stages only).
    """

    columns: tuple[str, ...]
    to_feeds: FeedMaker
    on_executors: Callable[[Any], Any] | None = None
    image_preprocessing: ImagePreprocessing | None = None


def tensor_sampling(columns: Mapping[str, TensorSpec], allow_cast: bool = False) -> Sampling:
    """The Sampling of tensor columns: each converted as ONNXTransformer converts it."""

    def feeds(table: pa.Table) -> dict[str, np.ndarray]:
        return {
            spec.name: column_to_tensor(table.column(col), col, spec, allow_cast)
            for col, spec in columns.items()
        }

    return Sampling(tuple(columns), feeds)


def image_sampling(column: str, input_name: str, preprocessing: ImagePreprocessing) -> Sampling:
    """Calibration sampling of an image column: images are resized and preprocessed on the
    executors (`preprocess_sample`); only the model-sized tensors reach the driver."""

    def on_executors(df: Any) -> Any:
        return df.mapInArrow(partial(preprocess_sample, column, preprocessing), SAMPLE_SCHEMA)

    def feeds(table: pa.Table) -> dict[str, np.ndarray]:
        data, shapes = table.column("tensor").to_pylist(), table.column("shape").to_pylist()
        valid = [(d, tuple(s)) for d, s in zip(data, shapes) if d is not None]
        if len({s for _, s in valid}) > 1:
            raise ValueError(
                f"image column {column!r}: the sampled images have different sizes "
                f"{sorted({s for _, s in valid})} and the model takes any size; set "
                "inputSize=[height, width] to resize them"
            )
        dtype = np.dtype(preprocessing.dtype)
        arrays = [np.frombuffer(d, dtype).reshape(s) for d, s in valid]
        return {input_name: np.stack(arrays) if arrays else np.empty((0,), dtype)}

    return Sampling((column,), feeds, on_executors, preprocessing)


def sample_dataframe(dataset: Any, sampling: Sampling, rows: int, seed: int) -> CalibrationSet:
    """A seeded random sample of `rows` rows of the sampling's columns, as model feeds.

    Without `sampling.on_executors`: one Spark job, a top-`rows` by a seeded random key (it
    keeps `rows` rows per partition and never shuffles the whole DataFrame). With it (a step
    that shrinks rows, e.g. images -> preprocessed tensors): a count, then a seeded Bernoulli
    sample of about twice `rows` rows goes through the step on the executors, so only shrunk
    rows are sorted and reach the driver.
    """
    F = sql_functions(dataset)
    picked = dataset.select(*sampling.columns)
    if sampling.on_executors is not None:
        total = dataset.count()
        fraction = min(1.0, 2.0 * rows / max(total, 1))
        picked = sampling.on_executors(picked if fraction >= 1.0 else picked.sample(fraction, seed))
    sample = picked.orderBy(F.rand(seed)).limit(rows).toArrow()
    feeds = sampling.to_feeds(sample) if sample.num_rows else {}
    usable = min((len(a) for a in feeds.values()), default=0)
    if usable < 2:
        unusable = sample.num_rows - usable
        skipped = f", {unusable} of them invalid" if unusable else ""
        raise ValueError(
            f"the DataFrame sample has {sample.num_rows} row(s){skipped}: too few to calibrate "
            "and check a lower-precision model (2 or more needed, 100+ recommended); set "
            "calibrationPath to a calibration set, or keep precision='fp32'"
        )
    source = f"a {sample.num_rows}-row sample (seed {seed}) of the DataFrame"
    if usable < sample.num_rows:
        source += f" ({sample.num_rows - usable} invalid rows left out)"
    return CalibrationSet(feeds, source)


def resolve_precision(
    stage: HasPrecision,
    model: OnnxModel,
    dataset: Any,
    sampling: Sampling,
    *,
    device: str = "auto",
) -> OnnxModel:
    """The model the stage should run: `model` itself for 'fp32', else its gated lower-precision
    form (cached on disk), calibrated on a sample of `dataset` made into feeds as `sampling`
    says. Stages call it through `transformers.stage_cache.precision_model`, which keeps the
    result per stage lineage and `precision_settings`.

    Raises `GateError` (with the measured figures) when the gate refuses the model.
    """
    precision = stage.getPrecision()
    if precision == "fp32":
        return model
    current = model.metadata.get(metadata.PRECISION, "fp32")
    offline = current == precision or (precision == "int8" and current.startswith("int8"))
    if offline or (precision == "int8-static" and current == "int8"):
        return model  # already quantized offline
    if current != "fp32":
        raise ValueError(
            f"the model is already {current}; precision={precision!r} needs its fp32 source. "
            f"Set precision={current!r} (or 'fp32') to run it as it is"
        )
    if precision == "fp16" and device != "cuda":
        logger.warning(
            "precision='fp16' on device=%r: on CPUs ONNX Runtime casts float16 back to float32, "
            "so it brings no speed-up there; use it on GPUs, and 'int8' for CPUs",
            device,
        )
    _refuse_stream(dataset, precision)
    settings = dict(stage.getPrecisionTolerance() or {})
    budget = settings.pop("search_seconds", DEFAULT_SEARCH_SECONDS)
    tolerance = GateTolerance.of(settings or None)
    driver_check(dataset.sparkSession, model)  # before the calibration sample's jobs
    return _build(stage, model, dataset, sampling, tolerance, budget)


def _refuse_stream(dataset: Any, precision: str) -> None:
    """A streaming DataFrame cannot give the calibration and gate sample: say what works."""
    if getattr(dataset, "isStreaming", False):
        raise ValueError(
            f"precision={precision!r} draws its calibration and gate rows from the DataFrame "
            "being transformed, and a streaming DataFrame cannot be sampled before the query "
            "runs. Transform a batch DataFrame of the same columns with this stage first (e.g. "
            "spark.read.parquet(folder).limit(1000)): the stage keeps the gated model and then "
            "runs it on the stream; or quantize offline with sparkonnx.quantize and give that "
            "model with precision='fp32'"
        )


def precision_settings(stage: HasPrecision) -> tuple[Any, ...]:
    """The Params a lower-precision build depends on (with the model and the first sample)."""
    return (
        stage.getPrecision(),
        stage.getCalibrationPath(),
        stage.getCalibrationRows(),
        stage.getCalibrationSeed(),
        tuple(sorted(stage.getPrecisionTolerance().items())),
    )


def _build(
    stage: HasPrecision,
    model: OnnxModel,
    dataset: Any,
    sampling: Sampling,
    tolerance: GateTolerance,
    budget: float,
) -> OnnxModel:
    from sparkonnx.converters.quantize import quantize, resolve_mode

    precision = stage.getPrecision()
    built_mode, _ = resolve_mode(precision, model)
    rows, seed, path = (
        stage.getCalibrationRows(),
        stage.getCalibrationSeed(),
        stage.getCalibrationPath(),
    )
    sample = sample_dataframe(dataset, sampling, rows, seed)
    if path is not None:  # the user's set calibrates; the DataFrame's rows are the gate's
        calibration: CalibrationSet | None = load_calibration(
            path, model, limit=rows, seed=seed, image_preprocessing=sampling.image_preprocessing
        )
        validation: CalibrationSet | None = sample
    elif built_mode == "int8":  # static: calibrated on 3/4 of the sample
        calibration, validation = sample.split(0.25, seed)
    else:  # nothing to calibrate: every sampled row is a gate row
        calibration, validation = None, sample
    key = cache_key(
        model.sha256,
        precision,
        None if calibration is None else calibration.identity,
        validation.identity if validation is not None else "",
        tolerance,
        budget,
    )
    target = cache_dir() / f"{model.sha256[:16]}-{precision}-{key[:16]}.onnx"
    if target.is_file():
        cached = OnnxModel.from_path(target)
        logger.info("%s model from the cache %s: %s", precision, target, _figures(cached))
        return cached
    result = quantize(
        model,
        calibration,
        mode=precision,
        validation=validation,
        tolerance=tolerance,
        seed=seed,
        max_rows=max(rows, 2),
        search_seconds=budget,
        timer=executor_timer(dataset.sparkSession),
    )
    built = result.model  # quantize() has logged the gate's figures
    _save_atomically(built.model_bytes, target)
    logger.info("cached the %s model of %s at %s", precision, model.sha256[:12], target)
    return built


def _figures(model: OnnxModel) -> str:
    from sparkonnx.converters.quantize import quantization_of

    record = quantization_of(model) or {}
    gate = record.get("gate") or {}
    outputs = gate.get("outputs") or {}
    parts = [
        f"{name} {fig.get('metric')} {fig.get('value', float('nan')):.4f}"
        for name, fig in outputs.items()
    ]
    return f"gate passed on {gate.get('rows', '?')} rows: " + ", ".join(parts)


def _save_atomically(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


# ------------------------------------------------------- the int8 speed check, for stages
# `executor_timer(spark)` is the `Timer` a stage hands to `quantize`: the fp32 model, the int8
# candidates that passed the gate and a few calibration rows are shipped by reference (small
# ones inline, larger ones as Spark files), and a one-row DataFrame runs
# `runtime.speed_probe.time_in_task` on an executor, which reports the seconds and its CPU.


def executor_timer(spark: Any) -> Timer:
    """A `Timer` that measures inside one task of `spark`'s executors."""

    def timer(
        fp32: onnx.ModelProto,
        models: Sequence[onnx.ModelProto],
        rows: CalibrationSet,
        batch: int,
    ) -> Timing:
        refs = [ship_bytes(spark, m.SerializeToString(), ".onnx") for m in (fp32, *models)]
        buffer = io.BytesIO()
        arrays: dict[str, Any] = {k: np.ascontiguousarray(v) for k, v in rows.arrays.items()}
        np.savez(buffer, **arrays)
        rows_ref = ship_bytes(spark, buffer.getvalue(), ".npz")
        probe = partial(time_in_task, refs, rows_ref, batch)
        (row,) = spark.range(0, 1, 1, 1).mapInArrow(probe, PROBE_SCHEMA).collect()
        cpu = json.loads(row["cpu"])
        return Timing(tuple(float(s) for s in row["seconds"]), rows.rows, "one executor task", cpu)

    return timer
