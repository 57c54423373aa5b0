"""Image struct helpers (Row <-> numpy <-> PIL) and the JVM-free ImageSchema."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pyspark.sql import Row

import sparkonnx
from sparkonnx.spark_api.images.reading import IMAGE_STRUCT_TYPE, ImageSchema, is_image_struct_type
from sparkonnx.spark_api.images.structs import (
    imageArrayToStruct,
    imageStructToArray,
    imageStructToPIL,
)

RNG = np.random.default_rng(5)


def test_public_names() -> None:
    assert sparkonnx.read_images.__module__ == "sparkonnx.spark_api.images.reading"
    assert sparkonnx.imageStructToArray is imageStructToArray
    assert sparkonnx.ImageSchema is ImageSchema
    assert issubclass(sparkonnx.ImageDecodeError, ValueError)


def test_array_to_struct_row_has_schema_order() -> None:
    bgr = RNG.integers(0, 256, (2, 3, 3), dtype=np.uint8)
    row = imageArrayToStruct(bgr, origin="mem://x")
    assert row.__fields__ == ["origin", "height", "width", "nChannels", "mode", "data"]
    assert (row.origin, row.height, row.width, row.nChannels, row.mode) == ("mem://x", 2, 3, 3, 16)
    assert bytes(row.data) == bgr.tobytes()
    np.testing.assert_array_equal(imageStructToArray(row), bgr)


@pytest.mark.parametrize(
    ("dtype", "channels", "mode"),
    [
        (np.uint8, 1, 0),
        (np.uint8, 4, 24),
        (np.uint16, 1, 2),
        (np.uint16, 4, 26),
        (np.float32, 3, 21),
    ],
)
def test_roundtrip_every_depth(dtype: type, channels: int, mode: int) -> None:
    arr = (RNG.random((4, 2, channels)) * 250).astype(dtype)
    row = imageArrayToStruct(arr)
    assert row.mode == mode and row.origin == ""
    back = imageStructToArray(row)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, arr)


def test_struct_as_dict_is_accepted() -> None:
    arr = RNG.integers(0, 256, (2, 2), dtype=np.uint8)
    as_dict = imageArrayToStruct(arr).asDict()
    np.testing.assert_array_equal(imageStructToArray(as_dict)[:, :, 0], arr)


def test_helper_errors() -> None:
    with pytest.raises(ValueError, match="image is None: the file was not decoded"):
        imageStructToArray(None)
    with pytest.raises(TypeError, match=r"expected an image struct .*got Row"):
        imageStructToArray(Row(path="a"))
    with pytest.raises(ValueError, match="uint8, uint16 or float32, got int64"):
        imageArrayToStruct(np.zeros((2, 2, 3), np.int64))
    undefined = Row(origin="x", height=-1, width=-1, nChannels=-1, mode=-1, data=bytearray())
    with pytest.raises(ValueError, match="undefined image"):
        imageStructToArray(undefined)


def test_struct_to_pil_swaps_to_rgb() -> None:
    bgr = np.zeros((1, 2, 3), np.uint8)
    bgr[0, 0] = (1, 2, 3)
    img = imageStructToPIL(imageArrayToStruct(bgr))
    assert img.mode == "RGB" and img.size == (2, 1)
    assert img.getpixel((0, 0)) == (3, 2, 1)
    bgra = np.array([[[10, 20, 30, 40]]], np.uint8)
    assert imageStructToPIL(imageArrayToStruct(bgra)).getpixel((0, 0)) == (30, 20, 10, 40)
    gray = imageStructToPIL(imageArrayToStruct(np.array([[7, 9]], np.uint8)))
    assert gray.mode == "L" and gray.getpixel((1, 0)) == 9
    gray16 = imageStructToPIL(imageArrayToStruct(np.array([[60000]], np.uint16)))
    assert gray16.mode == "I;16" and gray16.getpixel((0, 0)) == 60000
    with pytest.raises(ValueError, match="imageStructToArray"):
        imageStructToPIL(imageArrayToStruct(np.zeros((1, 1, 3), np.float32)))


def test_image_schema_stand_in() -> None:
    assert ImageSchema.columnSchema == IMAGE_STRUCT_TYPE
    assert ImageSchema.imageSchema.names == ["image"]
    assert ImageSchema.imageFields == ["origin", "height", "width", "nChannels", "mode", "data"]
    assert ImageSchema.undefinedImageType == "Undefined"
    ocv = ImageSchema.ocvTypes
    assert {k: ocv[k] for k in ("CV_8UC1", "CV_8UC3", "CV_8UC4", "CV_16UC1")} == {
        "CV_8UC1": 0,
        "CV_8UC3": 16,
        "CV_8UC4": 24,
        "CV_16UC1": 2,
    }
    arr = RNG.integers(0, 256, (3, 3, 3), dtype=np.uint8)
    np.testing.assert_array_equal(ImageSchema.toNDArray(ImageSchema.toImage(arr, "o")), arr)


def test_matches_pysparks_jvm_image_schema(spark: Any) -> None:
    from pyspark.ml.image import ImageSchema as JvmImageSchema

    assert is_image_struct_type(JvmImageSchema.columnSchema)
    for name, code in JvmImageSchema.ocvTypes.items():
        assert ImageSchema.ocvTypes[name] == code
    arr = RNG.integers(0, 256, (2, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(JvmImageSchema.toNDArray(imageArrayToStruct(arr)), arr)
    np.testing.assert_array_equal(imageStructToArray(JvmImageSchema.toImage(arr)), arr)


def test_structs_roundtrip_through_a_dataframe(any_spark: Any) -> None:
    arrays = [
        RNG.integers(0, 256, (2, 3, 3), dtype=np.uint8),
        RNG.integers(0, 65536, (2, 2, 1), dtype=np.uint16),
    ]
    rows = [Row(image=imageArrayToStruct(a, origin=f"mem://{i}")) for i, a in enumerate(arrays)]
    df = any_spark.createDataFrame(rows, ImageSchema.imageSchema)
    back = sorted(df.collect(), key=lambda r: r.image.origin)
    for got, arr in zip(back, arrays):
        np.testing.assert_array_equal(imageStructToArray(got.image), arr)
