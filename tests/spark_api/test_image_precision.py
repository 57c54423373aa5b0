"""`precision` on ImageTransformer: int8 calibrated on preprocessed images sampled from the
DataFrame, gated, cached, and the Params through save / load."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from sparkonnx import ImageTransformer
from sparkonnx.converters.gate import GateError
from sparkonnx.converters.quantize import quantization_of
from sparkonnx.engine.image_batch import batch_to_image_structs
from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.precision import image_sampling, sample_dataframe
from sparkonnx.testing import as_nchw, small_classifier, smooth_images, write_images
from sparkonnx.testing.precision import GATE_ONLY, gate_only

ROWS = 64


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return smooth_images(ROWS, seed=0)


def photos_table(rgb: np.ndarray) -> pa.Table:
    """ROWS image structs (BGR, as Spark stores them) plus one undecodable row (id ROWS)."""
    valid = np.ones(ROWS + 1, bool)
    valid[ROWS] = False
    structs = batch_to_image_structs(
        rgb[..., ::-1], origins=[f"mem://{i}" for i in range(ROWS + 1)], valid=valid
    )
    return pa.table({"id": pa.array(np.arange(ROWS + 1)), "image": structs})


@pytest.fixture(scope="module")
def photos_df(spark, rgb):  # type: ignore[no-untyped-def]
    return spark.createDataFrame(photos_table(rgb)).repartition(2).cache()


def _stage(**params: object) -> ImageTransformer:
    return ImageTransformer(
        inputCol="image",
        outputCol="p",
        model=small_classifier(),
        errorCol="error",
        **gate_only(params),
    )


def _scores(df) -> tuple[np.ndarray, list]:  # type: ignore[no-untyped-def]
    rows = sorted(df.select("id", "p", "error").collect(), key=lambda r: r.id)
    good = np.array([r.p for r in rows if r.p is not None], np.float32)
    return good, rows


def test_calibration_sample_is_the_preprocessed_model_input(photos_df, rgb) -> None:
    pre = _stage().preprocessing()
    sample = sample_dataframe(photos_df, image_sampling("image", "image", pre), ROWS + 1, 0)
    x = sample.arrays["image"]
    assert x.dtype == np.float32 and x.shape == (ROWS, 3, 32, 32)  # the broken row left out
    assert "1 invalid rows left out" in sample.source
    expected = as_nchw(rgb)  # RGB, NCHW, scaled to [0, 1]: what the model takes
    order = lambda a: a[np.lexsort(a.reshape(len(a), -1)[:, :8].T)]  # noqa: E731
    np.testing.assert_allclose(order(x), order(expected), atol=1e-6)


def test_the_sample_is_seeded_and_preprocessed_on_the_executors(photos_df) -> None:
    """Only model-sized tensors reach the driver; a fraction of a big DataFrame is sampled."""
    pre = _stage().preprocessing()
    sampling = image_sampling("image", "image", pre)
    first = sample_dataframe(photos_df, sampling, 10, 3)
    again = sample_dataframe(photos_df, sampling, 10, 3)
    other = sample_dataframe(photos_df, sampling, 10, 4)
    assert first.rows == 10 and first.identity == again.identity != other.identity
    assert first.arrays["image"].shape == (10, 3, 32, 32)


def test_int8_image_transformer_on_spark_connect(connect_spark, rgb, int8_record) -> None:
    df = connect_spark.createDataFrame(photos_table(rgb)).repartition(2)
    # another session, another sample split: one near-tie row of this small CNN may flip
    stage = _stage(precision="int8", calibrationRows=ROWS + 1, precisionTolerance={"top1": 0.9})
    int8, rows = _scores(stage.transform(df))
    assert len(int8) == ROWS and rows[ROWS].p is None
    int8_record(calibration_rows=48, gate_rows=16)


def test_int8_image_transformer_gates_caches_and_keeps_invalid_rows(
    photos_df, int8_record, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sparkonnx")
    fp32, _ = _scores(_stage().transform(photos_df))
    int8, rows = _scores(_stage(precision="int8", calibrationRows=ROWS + 1).transform(photos_df))

    assert "int8 accuracy gate passed" in caplog.text and "top-1 agreement" in caplog.text
    assert (fp32.argmax(1) == int8.argmax(1)).mean() >= 0.95
    assert np.abs(fp32 - int8).max() > 0  # really another model
    assert rows[ROWS].p is None and rows[ROWS].error  # the broken row kept, with its reason
    record = int8_record(calibration_rows=48, gate_rows=16)
    assert "invalid rows left out" in record["calibration"]["source"]


def test_all_zero_calibration_images_are_refused(
    photos_df, precision_cache: Path, workdir: Path, rgb: np.ndarray
) -> None:
    from PIL import Image

    folder = workdir / "black"
    folder.mkdir()
    for i in range(8):
        Image.fromarray(np.zeros_like(rgb[0])).save(folder / f"{i}.png")
    stage = _stage(precision="int8", calibrationPath=str(folder), calibrationRows=ROWS + 1)
    with pytest.raises(GateError, match=r"top-1 agreement 0\.\d+ \(\d+/64 rows"):
        stage.transform(photos_df)
    assert not list(precision_cache.glob("*.onnx"))


def test_calibration_folder_is_preprocessed_as_the_stage_does(
    photos_df, precision_cache: Path, workdir: Path
) -> None:
    folder = write_images(workdir / "calib", smooth_images(40, seed=7, size=48))  # resized
    stage = _stage(
        precision="int8",
        calibrationPath=str(folder),
        calibrationRows=ROWS + 1,
        precisionTolerance={"top1": 0.95},
    )
    stage.transform(photos_df).count()
    record = quantization_of(OnnxModel.from_path(next(precision_cache.glob("*.onnx"))))
    assert record is not None and record["gate"]["passed"]
    assert record["calibration"]["source"] == str(folder) and record["calibration"]["rows"] == 40
    assert record["gate"]["rows"] == ROWS  # every valid sampled row checks it


def test_precision_params_round_trip_through_save_load(
    photos_df, precision_cache: Path, workdir: Path
) -> None:
    stage = _stage(
        precision="int8",
        calibrationRows=40,
        calibrationSeed=5,
        precisionTolerance={"top1": 0.9, "min_rows": 8},  # 40 rows hold out 10
    )
    before, _ = _scores(stage.transform(photos_df))
    stage.save(str(workdir / "stage"))
    loaded = ImageTransformer.load(str(workdir / "stage"))
    assert loaded.getPrecision() == "int8" and loaded.getPrecisionTolerance() == {
        **GATE_ONLY,
        "top1": 0.9,
        "min_rows": 8,
    }
    assert (loaded.getCalibrationRows(), loaded.getCalibrationSeed()) == (40, 5)
    after, _ = _scores(loaded.transform(photos_df))
    np.testing.assert_array_equal(after, before)  # same sample -> the cached int8 model


def test_unknown_precision_names_the_choices() -> None:
    with pytest.raises(InvalidParamError, match="int8"):
        _stage(precision="int4")
