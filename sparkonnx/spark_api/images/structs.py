"""Image struct helpers for the driver: pyspark Rows <-> numpy arrays <-> Pillow images.

Thin over :mod:`sparkonnx.engine.images`. Arrays are (height, width, channels) in the struct's
own channel order, BGR(A) (as OpenCV and Spark's image source); :func:`imageStructToPIL` is the
one place channels are swapped to Pillow's RGB(A).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image
from pyspark.sql import Row

from sparkonnx.engine.image_decode import array_to_pil
from sparkonnx.engine.images import IMAGE_FIELDS, array_to_struct_fields, struct_fields_to_array

__all__ = ["imageArrayToStruct", "imageStructToArray", "imageStructToPIL"]


def _fields(imageRow: Any) -> tuple[int, int, int, int, bytes]:
    """height, width, nChannels, mode, data of a Row, a dict or any object with those names."""
    if imageRow is None:
        raise ValueError(
            "image is None: the file was not decoded (see the `error` column of read_images)"
        )
    is_mapping = isinstance(imageRow, Mapping)
    try:
        h, w, c, mode, data = (
            imageRow[name] if is_mapping else getattr(imageRow, name) for name in IMAGE_FIELDS[1:]
        )
    except (AttributeError, KeyError):
        raise TypeError(
            f"expected an image struct (a Row with fields {list(IMAGE_FIELDS)}), "
            f"got {type(imageRow).__name__}: {str(imageRow)[:200]}"
        ) from None
    if data is None:
        raise ValueError("image struct has null data")
    return h, w, c, mode, data


def imageStructToArray(imageRow: Any) -> np.ndarray:
    """The (height, width, nChannels) numpy array of an image struct, BGR(A) order.

    dtype follows the mode: uint8 (0/16/24), uint16 (2/18/26) or float32 (5/21/29). The array is
    a view of the Row's bytes (read-only when they are ``bytes``); ``.copy()`` to modify it.
    """
    return struct_fields_to_array(*_fields(imageRow))


def imageArrayToStruct(imgArray: np.ndarray, origin: str = "") -> Row:
    """An image struct Row from a (height, width[, channels]) array in BGR(A) order.

    dtype uint8, uint16 or float32; 1, 3 or 4 channels. The Row has the image schema's field
    order, so it can go straight into ``spark.createDataFrame(rows, ImageSchema.imageSchema)``.
    """
    h, w, c, mode, data = array_to_struct_fields(imgArray)
    return Row(origin=origin, height=h, width=w, nChannels=c, mode=mode, data=bytearray(data))


def imageStructToPIL(imageRow: Any) -> Image.Image:
    """A Pillow image of an image struct: RGB / RGBA for colour (channels swapped from BGR),
    L, I;16 or F for one channel. 16-bit and float colour images have no Pillow mode: use
    :func:`imageStructToArray` for those."""
    return array_to_pil(imageStructToArray(imageRow))
