"""sparkdl's ``imageIO``: custom decoders and image-type lookups over sparkonnx's image code.

Decoders return (height, width, channels) arrays in BGR(A) order, the image struct's order, and
run on the executors (they are module-level functions, pickled by reference). Reading files with
them is :func:`sparkonnx.readImagesWithCustomFn`; the struct helpers are sparkonnx's own.
"""

from __future__ import annotations

import io
from functools import partial
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from sparkonnx.engine.image_decode import decode_image, pil_to_array
from sparkonnx.engine.images import OCV_TYPES, mode_to_dtype_channels
from sparkonnx.spark_api.images.reading import readImagesWithCustomFn
from sparkonnx.spark_api.images.structs import (
    imageArrayToStruct,
    imageStructToArray,
    imageStructToPIL,
)

__all__ = [
    "OcvType",
    "PIL_decode",
    "PIL_decode_and_resize",
    "PIL_to_imageStruct",
    "imageArrayToStruct",
    "imageStructToArray",
    "imageStructToPIL",
    "imageTypeByName",
    "imageTypeByOrdinal",
    "readImagesWithCustomFn",
]

#: Decode encoded image bytes with Pillow to a BGR(A) / gray array (EXIF rotation applied).
PIL_decode = decode_image
#: A Pillow image as a BGR(A) / gray array, the image struct's channel order.
PIL_to_imageStruct = pil_to_array


class OcvType(NamedTuple):
    """An OpenCV image type as sparkdl described it: name, mode ordinal, channels, dtype."""

    name: str
    ord: int
    nChannels: int
    dtype: str


def _ocv_type(name: str, mode: int) -> OcvType:
    dtype, channels = mode_to_dtype_channels(mode)
    return OcvType(name, mode, channels, np.dtype(dtype).name)


def imageTypeByOrdinal(ord: int) -> OcvType:
    """The image type of a struct's ``mode`` (e.g. 16 -> CV_8UC3); KeyError if unsupported."""
    for name, mode in OCV_TYPES.items():
        if mode == ord and "C" in name.removeprefix("CV_"):
            return _ocv_type(name, mode)
    supported = sorted(m for m in OCV_TYPES.values() if m >= 0)
    raise KeyError(f"unsupported image mode {ord!r}; supported modes are {supported}")


def imageTypeByName(name: str) -> OcvType:
    """The image type called `name` (e.g. 'CV_8UC3'); KeyError if unsupported."""
    mode = OCV_TYPES.get(name)
    if mode is None or mode < 0:
        supported = [n for n, m in OCV_TYPES.items() if m >= 0 and "C" in n.removeprefix("CV_")]
        raise KeyError(f"unsupported image type {name!r}; supported types are {supported}")
    return _ocv_type(name, mode)


def _decode_and_resize(size: tuple[int, int], raw_bytes: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(raw_bytes)) as img:
        return pil_to_array(img.resize(size))


def PIL_decode_and_resize(size: tuple[int, int]) -> Any:
    """A decoder (bytes -> BGR(A) array) that also resizes to `size`, Pillow's (width, height)."""
    width, height = (int(v) for v in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"size must be (width, height) with positive values, got {size!r}")
    return partial(_decode_and_resize, (width, height))


#: sparkdl names with no counterpart here, and what to use instead.
_REPLACED = {
    "createResizeImageUDF": "ImageTransformer(inputSize=[height, width], resample=...) resizes "
    "on the executors; or decode with PIL_decode_and_resize(size)",
    "filesToDF": "spark.read.format('binaryFile').load(path) (columns path, content)",
    "fixColorChannelOrdering": "image structs are BGR(A); the image stages take channelOrder=",
}


def __getattr__(name: str) -> Any:
    if name in _REPLACED:
        raise AttributeError(
            f"sparkonnx.image.imageIO has no {name!r} (sparkdl's RDD / UDF helper); use "
            f"{_REPLACED[name]}"
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
