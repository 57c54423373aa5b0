"""Pixel conversions of (height, width, channels) BGR(A) images: channels, sample types, size.

Used on executors (image structs -> model tensors) and by the image decoders. Spark-free.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = [
    "RESAMPLE",
    "SAMPLE_DTYPES",
    "convert_channels",
    "convert_dtype",
    "resize",
    "swap_red_blue",
]

#: resize filter name -> Pillow's resampling filter
RESAMPLE: dict[str, Image.Resampling] = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
#: sample type name -> numpy dtype, for the sample types image structs hold
SAMPLE_DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "float32": np.dtype(np.float32),
}


def swap_red_blue(arr: np.ndarray) -> np.ndarray:
    """BGR(A) <-> RGB(A) on the last axis (3 or 4 channels; alpha stays last)."""
    return arr[..., [2, 1, 0]] if arr.shape[-1] == 3 else arr[..., [2, 1, 0, 3]]


def convert_channels(arr: np.ndarray, channels: int) -> np.ndarray:
    """Convert the last axis between gray / BGR / BGRA (luma as ITU-R 601, like Pillow's L)."""
    c = arr.shape[-1]
    if c == channels:
        return arr
    if channels == 1:
        weights = np.array([0.114, 0.587, 0.299], np.float32)
        gray = arr[..., :3].astype(np.float32) @ weights
        if arr.dtype.kind != "f":
            gray = np.rint(gray)
        return gray.astype(arr.dtype)[..., np.newaxis]
    color = np.repeat(arr, 3, axis=-1) if c == 1 else arr[..., :3]
    if channels == 3:
        return color
    opaque = 1.0 if arr.dtype.kind == "f" else np.iinfo(arr.dtype).max
    alpha = np.full((*arr.shape[:-1], 1), opaque, arr.dtype)
    return np.concatenate([color, alpha], axis=-1)


def convert_dtype(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """`arr` as `dtype`: uint8 <-> uint16 rescaled by 257 (rounded); to float32 values are kept."""
    if arr.dtype == dtype:
        return arr
    if dtype.kind == "f":
        return arr.astype(dtype)
    if arr.dtype.kind == "f":
        raise ValueError(
            f"cannot convert float32 images to {dtype} without knowing their scale; "
            "pass dtype='float32'"
        )
    if dtype == np.uint8:  # uint16 -> uint8, rounded
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return arr.astype(np.uint16) * np.uint16(257)  # uint8 -> uint16, 255 -> 65535


def resize(arr: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """Resize one (h, w, c) image to size=(height, width) with Pillow."""
    h, w, c = arr.shape
    if (h, w) == size:
        return arr
    wh = (size[1], size[0])
    if arr.dtype == np.uint8:
        pil_mode = {1: "L", 3: "RGB", 4: "RGBA"}[c]
        img = Image.fromarray(np.ascontiguousarray(arr if c > 1 else arr[:, :, 0]), mode=pil_mode)
        out = np.asarray(img.resize(wh, resample))
        return out.reshape(size[0], size[1], c)
    planes = []
    for k in range(c):  # uint16 / float32: channel by channel in Pillow's float mode
        plane = Image.fromarray(np.ascontiguousarray(arr[:, :, k], dtype=np.float32), mode="F")
        planes.append(np.asarray(plane.resize(wh, resample)))
    stacked = np.stack(planes, axis=-1)
    if arr.dtype.kind == "f":
        return stacked.astype(arr.dtype)
    info = np.iinfo(arr.dtype)
    return np.clip(np.rint(stacked), info.min, info.max).astype(arr.dtype)
