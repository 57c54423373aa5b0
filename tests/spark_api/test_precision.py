"""`precision` on ONNXTransformer: DataFrame calibration, the gate, the disk cache, persistence."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkonnx.converters.gate import GateError
from sparkonnx.converters.quantize import quantization_of, quantize
from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api import precision
from sparkonnx.spark_api.transformers.onnx_transformer import ONNXTransformer
from sparkonnx.testing import as_nchw, small_classifier, smooth_images
from sparkonnx.testing.precision import GATE_ONLY, gate_only

ROWS = 64


@pytest.fixture(scope="module")
def images_df(spark):  # type: ignore[no-untyped-def]
    x = as_nchw(smooth_images(ROWS, seed=0)).reshape(ROWS, -1)
    offsets = pa.array(np.arange(ROWS + 1) * x.shape[1], pa.int32())
    table = pa.table(
        {"id": pa.array(np.arange(ROWS)), "image": pa.ListArray.from_arrays(offsets, x.ravel())}
    )
    return spark.createDataFrame(table).repartition(2).cache()


def _probabilities(df) -> np.ndarray:  # type: ignore[no-untyped-def]
    rows = df.orderBy("id").toArrow()
    return rows.column("p").combine_chunks().flatten().to_numpy().reshape(rows.num_rows, -1)


def _stage(**params: object) -> ONNXTransformer:
    return ONNXTransformer(
        model=small_classifier(), inputCol="image", outputCol="p", **gate_only(params)
    )


def test_int8_calibrates_on_a_dataframe_sample_gates_and_caches(
    images_df,
    precision_cache: Path,
    int8_record,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="sparkonnx")
    fp32 = _probabilities(_stage().transform(images_df))
    stage = _stage(precision="int8", calibrationRows=ROWS)
    int8 = _probabilities(stage.transform(images_df))

    assert "int8 accuracy gate passed" in caplog.text and "top-1 agreement" in caplog.text
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.95
    assert np.abs(fp32 - int8).max() > 0  # really another model
    record = int8_record(calibration_rows=48, gate_rows=16)
    assert record["source_sha256"] == OnnxModel.load(small_classifier()).sha256
    assert "sample (seed 0) of the DataFrame" in record["calibration"]["source"]

    def no_sampling(*args: object, **kwargs: object) -> None:
        raise AssertionError("the stage calibrated again")

    monkeypatch.setattr(precision, "sample_dataframe", no_sampling)
    np.testing.assert_array_equal(_probabilities(stage.transform(images_df)), int8)
    monkeypatch.undo()
    monkeypatch.setenv("SPARKONNX_CACHE", str(precision_cache.parent))

    caplog.clear()
    again = _probabilities(_stage(precision="int8", calibrationRows=ROWS).transform(images_df))
    np.testing.assert_array_equal(again, int8)  # same sample -> the cached model
    assert "int8 model from the cache" in caplog.text and "top1" in caplog.text
    assert len(list(precision_cache.glob("*.onnx"))) == 1


def test_zero_calibration_path_is_refused_at_transform(
    images_df, precision_cache: Path, workdir: Path
) -> None:
    zeros = workdir / "zeros.npy"
    np.save(zeros, np.zeros((32, 3, 32, 32), np.float32))
    stage = _stage(precision="int8", calibrationPath=str(zeros), calibrationRows=ROWS)
    with pytest.raises(GateError, match=r"top-1 agreement 0\.\d+ \(\d+/64 rows") as info:
        stage.transform(images_df)
    assert not info.value.report.passed and "refused" in str(info.value)
    assert not list(precision_cache.glob("*.onnx"))  # nothing refused is cached


def test_user_calibration_path_calibrates_and_dataframe_rows_gate(
    images_df, precision_cache: Path, workdir: Path
) -> None:
    good = workdir / "calib.npy"
    np.save(good, as_nchw(smooth_images(40, seed=7)))
    stage = _stage(
        precision="int8",
        calibrationPath=str(good),
        calibrationRows=ROWS,
        precisionTolerance={"top1": 0.95},  # 63/64: one near-tie row flips with this set
    )
    stage.transform(images_df).count()
    record = quantization_of(OnnxModel.from_path(next(precision_cache.glob("*.onnx"))))
    assert record is not None
    assert record["calibration"]["source"] == str(good) and record["calibration"]["rows"] == 40
    assert record["gate"]["rows"] == ROWS  # the whole DataFrame sample checks it


def test_fp16_warns_on_cpu_and_stays_close(
    images_df, precision_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fp32 = _probabilities(_stage().transform(images_df))
    fp16 = _probabilities(_stage(precision="fp16", device="cpu").transform(images_df))
    assert "no speed-up" in caplog.text
    np.testing.assert_allclose(fp16, fp32, atol=1e-2)


def test_precision_params_round_trip_through_save_load(
    spark, images_df, precision_cache: Path, workdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calib = workdir / "calib.npy"
    np.save(calib, as_nchw(smooth_images(40, seed=7)))
    stage = _stage(
        precision="int8",
        calibrationPath=str(calib),
        calibrationRows=50,
        calibrationSeed=3,
        precisionTolerance={"top1": 0.9},
    )
    before = _probabilities(stage.transform(images_df))
    stage.save(str(workdir / "stage"))
    loaded = ONNXTransformer.load(str(workdir / "stage"))
    assert loaded.getPrecision() == "int8"
    assert loaded.getCalibrationPath() == str(calib)
    assert (loaded.getCalibrationRows(), loaded.getCalibrationSeed()) == (50, 3)
    assert loaded.getPrecisionTolerance() == {**GATE_ONLY, "top1": 0.9}
    # the saved model is the fp32 source; int8 is rebuilt from the same inputs (a cache hit)
    assert loaded.getModel().sha256 == OnnxModel.load(small_classifier()).sha256
    caplog.set_level(logging.INFO, logger="sparkonnx")
    np.testing.assert_array_equal(_probabilities(loaded.transform(images_df)), before)
    assert "int8 model from the cache" in caplog.text
    assert ONNXTransformer.load(str(workdir / "stage")).copy().getPrecision() == "int8"


def test_offline_int8_model_runs_as_is(images_df, monkeypatch: pytest.MonkeyPatch) -> None:
    offline = quantize(
        small_classifier(),
        as_nchw(smooth_images(40, seed=7)),
        holdout=8,
        search=False,
        tolerance={"min_rows": 8, "min_speedup": 0},
    )

    def no_sampling(*args: object, **kwargs: object) -> None:
        raise AssertionError("an already-int8 model must not be calibrated again")

    monkeypatch.setattr(precision, "sample_dataframe", no_sampling)
    stage = ONNXTransformer(model=offline.model, inputCol="image", outputCol="p", precision="int8")
    assert _probabilities(stage.transform(images_df)).shape == (ROWS, 10)
    with pytest.raises(ValueError, match=r"already int8; precision='fp16' needs its fp32 source"):
        stage.setPrecision("fp16").transform(images_df)


def test_bad_values_and_tiny_dataframes(spark, precision_cache: Path) -> None:
    bad = InvalidParamError
    with pytest.raises(bad, match=r"precision must be one of 'fp32', 'int8'.*got 'int4'"):
        ONNXTransformer(precision="int4")
    with pytest.raises(bad, match="calibrationRows must be an integer >= 2"):
        ONNXTransformer(calibrationRows=1)
    with pytest.raises(bad, match=r"precisionTolerance must be a dict with keys among"):
        ONNXTransformer(precisionTolerance={"top5": 0.9})
    assert ONNXTransformer(precision="dynamic").getPrecision() == "int8-dynamic"
    x = as_nchw(smooth_images(1)).reshape(1, -1)
    one = spark.createDataFrame([(x[0].tolist(),)], "image array<float>")
    with pytest.raises(ValueError, match=r"has 1 row\(s\): too few .* set calibrationPath"):
        _stage(precision="int8").transform(one)


def test_int8_speed_is_timed_in_an_executor_task_and_refused_below_the_bar(
    images_df, precision_cache: Path
) -> None:
    from sparkonnx.converters.int8_search import Int8SpeedError

    stage = _stage(
        precision="int8",
        calibrationRows=ROWS,
        precisionTolerance={"min_speedup": 1000.0},  # no int8 is 1000x fp32: always refused
    )
    with pytest.raises(Int8SpeedError) as info:
        stage.transform(images_df).count()
    message = str(info.value)
    assert "(at least 1000x required), timed on 8 rows in one executor task on " in message
    timing = info.value.report.timing
    assert timing is not None and timing.where == "one executor task"
    assert timing.cpu["threads"] == 1 and timing.cpu["summary"] in message  # the executor's CPU
    assert len(timing.seconds) == 1 + sum(t.status == "passed" for t in info.value.report.trials)
    assert not list(precision_cache.glob("*.onnx"))  # nothing refused is cached
