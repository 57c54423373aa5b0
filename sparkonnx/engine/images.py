"""The image struct: Spark's image schema, OpenCV mode codes, struct fields <-> arrays. Spark-free.

An *image struct* is Spark's image schema, ``struct<origin: string, height: int, width: int,
nChannels: int, mode: int, data: binary>``, with ``data`` the pixels row by row, channels
interleaved, colour channels in **BGR(A)** order, as Spark's own ``image`` data source writes.

``mode`` is an OpenCV type code, ``depth + 8 * (channels - 1)``:

=========  ======  =======================================================
depth      codes   notes
=========  ======  =======================================================
uint8      0/16/24 CV_8UC1 (gray), CV_8UC3 (BGR), CV_8UC4 (BGRA): the only
                   codes Spark's own ImageSchema knows
uint16     2/18/26 CV_16UC1/3/4, little-endian; 16-bit grayscale files decode to
                   CV_16UC1 (Spark's source truncates them to their low byte)
float32    5/21/29 CV_32FC1/3/4, little-endian (as sparkdl); Pillow "F" images and
                   model outputs
=========  ======  =======================================================

Mode -1 ("Undefined") is what Spark's image source writes for a file it could not decode;
such rows are treated as invalid, like a null struct.

Files are decoded into structs by :mod:`sparkonnx.engine.image_decode`; a column of structs
becomes one numpy batch (and back) in :mod:`sparkonnx.engine.image_batch`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from sparkonnx.errors import SparkOnnxError

__all__ = [
    "IMAGE_ARROW_TYPE",
    "IMAGE_FIELDS",
    "OCV_TYPES",
    "SUPPORTED_CHANNELS",
    "UNDEFINED_MODE",
    "ImageDecodeError",
    "ImageFields",
    "array_to_struct_fields",
    "as_hwc",
    "mode_to_dtype_channels",
    "ocv_mode",
    "struct_fields_to_array",
]

UNDEFINED_MODE = -1
_DEPTHS: dict[int, np.dtype] = {
    0: np.dtype(np.uint8),
    2: np.dtype("<u2"),
    5: np.dtype("<f4"),
}
_DEPTH_NAMES = {0: "8U", 2: "16U", 5: "32F"}
SUPPORTED_CHANNELS = (1, 3, 4)

#: OpenCV type name -> mode code, for every mode this package reads and writes.
OCV_TYPES: dict[str, int] = {
    "Undefined": UNDEFINED_MODE,
    **{f"CV_{name}": depth for depth, name in _DEPTH_NAMES.items()},
    **{
        f"CV_{name}C{c}": depth + 8 * (c - 1)
        for depth, name in _DEPTH_NAMES.items()
        for c in SUPPORTED_CHANNELS
    },
}

IMAGE_FIELDS: tuple[str, ...] = ("origin", "height", "width", "nChannels", "mode", "data")

#: The Arrow type of an image struct (all children nullable, as Spark's image source reports).
IMAGE_ARROW_TYPE = pa.struct(
    [
        pa.field("origin", pa.string()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("nChannels", pa.int32()),
        pa.field("mode", pa.int32()),
        pa.field("data", pa.binary()),
    ]
)


class ImageDecodeError(SparkOnnxError, ValueError):
    """A file or struct could not be turned into an image; the message is a short reason."""


class ImageFields(NamedTuple):
    """The pixel fields of an image struct (everything but ``origin``)."""

    height: int
    width: int
    nChannels: int
    mode: int
    data: bytes


# --------------------------------------------------------------------------- modes


def ocv_mode(dtype: np.dtype | type, channels: int) -> int:
    """The OpenCV mode code for ``channels`` samples of ``dtype`` (uint8, uint16 or float32)."""
    dt = np.dtype(dtype)
    depth = next(
        (d for d, t in _DEPTHS.items() if t.kind == dt.kind and t.itemsize == dt.itemsize), None
    )
    if depth is None:
        raise ValueError(
            f"image arrays must be uint8, uint16 or float32, got {dt}; "
            "convert first, e.g. arr.astype(np.uint8)"
        )
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(
            f"images have 1, 3 or 4 channels (gray, BGR, BGRA), got {channels}; "
            "pass an array of shape (height, width) or (height, width, 1 | 3 | 4)"
        )
    return depth + 8 * (channels - 1)


def mode_to_dtype_channels(mode: int) -> tuple[np.dtype, int]:
    """The numpy dtype and channel count of an OpenCV mode code; ValueError if unsupported."""
    depth, rest = mode % 8, mode // 8
    channels = rest + 1
    if mode < 0 or depth not in _DEPTHS or channels not in SUPPORTED_CHANNELS:
        known = ", ".join(f"{k}={v}" for k, v in OCV_TYPES.items() if v >= 0 and "C" in k[3:])
        raise ValueError(f"unsupported image mode {mode}; supported modes are {known}")
    return _DEPTHS[depth], channels


# --------------------------------------------------------------------------- struct <-> numpy


def as_hwc(arr: np.ndarray) -> np.ndarray:
    """`arr` as (height, width, channels): a (height, width) array gets a channel axis."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected a numpy.ndarray, got {type(arr).__name__}")
    if arr.ndim == 2:
        return arr[:, :, np.newaxis]
    if arr.ndim != 3:
        raise ValueError(
            f"an image array has shape (height, width) or (height, width, channels), "
            f"got shape {arr.shape}"
        )
    return arr


def array_to_struct_fields(arr: np.ndarray) -> ImageFields:
    """An image array (height, width[, channels]), BGR(A) order, as image struct fields."""
    arr = as_hwc(arr)
    h, w, c = arr.shape
    mode = ocv_mode(arr.dtype, c)
    dtype, _ = mode_to_dtype_channels(mode)
    data = np.ascontiguousarray(arr, dtype=dtype).tobytes()
    return ImageFields(int(h), int(w), int(c), mode, data)


def struct_fields_to_array(
    height: int, width: int, nChannels: int, mode: int, data: bytes | bytearray | memoryview
) -> np.ndarray:
    """The (height, width, nChannels) array of an image struct's fields (a view on ``data``)."""
    if mode == UNDEFINED_MODE or height < 0 or width < 0:
        raise ImageDecodeError(
            f"undefined image (mode {mode}, {height}x{width}): the source could not decode it"
        )
    dtype, channels = mode_to_dtype_channels(mode)
    if channels != nChannels:
        raise ValueError(f"image struct says nChannels={nChannels} but mode {mode} has {channels}")
    expected = height * width * nChannels * dtype.itemsize
    if len(data) != expected:
        raise ValueError(
            f"image struct data has {len(data)} bytes, expected {expected} for "
            f"{height}x{width}x{nChannels} {dtype} (mode {mode})"
        )
    return np.frombuffer(data, dtype=dtype).reshape(height, width, nChannels)
