"""A column of image structs as one numpy batch (n, height, width, channels), and back. Spark-free.

The struct layout and mode codes are described in :mod:`sparkonnx.engine.images`. Uniform
images are read straight from the Arrow ``data`` buffer (no per-row Python work); others are
converted and resized one by one (:mod:`sparkonnx.engine.image_pixels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sparkonnx.engine.image_pixels import (
    RESAMPLE,
    SAMPLE_DTYPES,
    convert_channels,
    convert_dtype,
    resize,
)
from sparkonnx.engine.images import (
    IMAGE_ARROW_TYPE,
    IMAGE_FIELDS,
    SUPPORTED_CHANNELS,
    UNDEFINED_MODE,
    mode_to_dtype_channels,
    ocv_mode,
)

__all__ = ["ImageBatch", "as_image_batch", "batch_to_image_structs", "image_structs_to_batch"]

_Shape = tuple[int, int, int]


@dataclass(frozen=True)
class ImageBatch:
    """Images of a struct column as one array, and which rows they came from.

    ``array`` holds the valid rows only, in order: shape (valid.sum(), height, width, channels),
    BGR(A). ``errors`` maps each invalid row (null struct, mode -1, null data) to its reason.
    ``array`` may be a read-only view of the Arrow buffers (``.copy()`` to modify it).
    """

    array: np.ndarray
    valid: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def rows(self) -> np.ndarray:
        """Indices (into the input) of the rows in ``array``."""
        return np.flatnonzero(self.valid)


class _Rows(NamedTuple):
    """An image struct column's fields as numpy arrays, one entry per row."""

    heights: np.ndarray
    widths: np.ndarray
    chans: np.ndarray
    modes: np.ndarray
    offsets: np.ndarray  # n + 1 offsets into `values`
    values: np.ndarray  # the bytes of the `data` child
    valid: np.ndarray  # not a null struct, not mode -1, data not null


def _column(flat: Sequence[pa.Array], struct_type: pa.StructType, name: str) -> pa.Array:
    idx = struct_type.get_field_index(name)
    if idx < 0:
        raise ValueError(
            f"not an image struct: field {name!r} missing; expected fields {list(IMAGE_FIELDS)}, "
            f"found {[f.name for f in struct_type]}"
        )
    return flat[idx]


def _ints(arr: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(arr.cast(pa.int64()), -1).to_numpy(zero_copy_only=False))


def _binary_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets for len(arr)+1 rows, values) of a (large_)binary array, honouring its offset."""
    off_dtype: np.dtype
    if pa.types.is_large_binary(arr.type):
        off_dtype = np.dtype(np.int64)
    elif pa.types.is_binary(arr.type):
        off_dtype = np.dtype(np.int32)
    else:
        raise ValueError(f"image struct field 'data' must be binary, found {arr.type}")
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=off_dtype)[arr.offset : arr.offset + len(arr) + 1]
    values = (
        np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    )
    return offsets.astype(np.int64), values


def image_structs_to_batch(
    structs: pa.StructArray | pa.ChunkedArray,
    *,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    dtype: str | None = None,
    resample: str = "bilinear",
) -> ImageBatch:
    """Image structs as one (n, height, width, channels) numpy array, BGR(A) order.

    When every valid image has the same height, width, channels and depth (and ``size`` is
    None or equal), the array is built from the ``data`` buffer with ``np.frombuffer``: no
    per-row Python work. Otherwise images are converted and resized one by one with Pillow to
    ``size`` = (height, width), which is then required. ``channels`` (1, 3 or 4) converts
    gray / BGR / BGRA; ``dtype`` ('uint8', 'uint16', 'float32') converts sample types (uint16 to
    uint8 divides by 257; to float32 keeps values). Null structs, mode -1 rows (undecodable
    files from Spark's image source) and null data are reported in ``errors`` and left out.
    """
    if isinstance(structs, pa.ChunkedArray):
        structs = structs.combine_chunks()
    size = _check_options(structs, size, channels, dtype, resample)
    rows, errors = _read_rows(structs)
    valid_rows = np.flatnonzero(rows.valid)
    mode_dtypes = _check_rows(rows, valid_rows)
    out_dtype = _output_dtype(mode_dtypes, dtype)
    if valid_rows.size == 0:
        h, w = size if size is not None else (0, 0)
        empty = np.empty((0, h, w, channels or 3), out_dtype.newbyteorder("="))
        return ImageBatch(empty, rows.valid, errors)
    shapes = {(int(rows.heights[i]), int(rows.widths[i]), int(rows.chans[i])) for i in valid_rows}
    depths = {d.str for d in mode_dtypes.values()}
    (h0, w0, c0), depth = next(iter(shapes)), next(iter(mode_dtypes.values()))
    if len(shapes) == 1 and size in (None, (h0, w0)) and len(depths) == 1:
        length = h0 * w0 * c0 * depth.itemsize
        arr = _stack_uniform(rows.values, rows.offsets[valid_rows], length, depth)
        arr = arr.reshape(valid_rows.size, h0, w0, c0)
        arr = convert_dtype(convert_channels(arr, channels or c0), out_dtype)
        return ImageBatch(arr, rows.valid, errors)
    size, out_c = _common_size_channels(shapes, size, channels)
    method = RESAMPLE[resample]
    out = np.empty((valid_rows.size, size[0], size[1], out_c), out_dtype)
    for j, i in enumerate(valid_rows):
        img = _row_image(rows, int(i), mode_dtypes[int(rows.modes[i])])
        out[j] = resize(convert_dtype(convert_channels(img, out_c), out_dtype), size, method)
    return ImageBatch(out, rows.valid, errors)


def _check_options(
    structs: pa.Array, size: Any, channels: int | None, dtype: str | None, resample: str
) -> tuple[int, int] | None:
    """Refuse a non-struct array and bad options; return ``size`` as (height, width) ints."""
    if not pa.types.is_struct(structs.type):
        raise ValueError(f"expected an image struct array, got Arrow type {structs.type}")
    if resample not in RESAMPLE:
        raise ValueError(f"resample={resample!r} is not one of {sorted(RESAMPLE)}")
    if channels is not None and channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels={channels!r}: images have 1, 3 or 4 channels")
    if dtype is not None and dtype not in SAMPLE_DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {sorted(SAMPLE_DTYPES)}")
    if size is None:
        return None
    size = (int(size[0]), int(size[1]))
    if size[0] <= 0 or size[1] <= 0:
        raise ValueError(f"size must be (height, width) with positive values, got {size}")
    return size


def _read_rows(structs: pa.StructArray) -> tuple[_Rows, dict[int, str]]:
    """The struct column's fields, and the reason each invalid row is left out."""
    flat = structs.flatten()
    st = structs.type
    heights, widths, chans, modes = (
        _ints(_column(flat, st, name)) for name in ("height", "width", "nChannels", "mode")
    )
    data = _column(flat, st, "data")
    offsets, values = _binary_buffers(data)
    struct_null = np.asarray(structs.is_null().to_numpy(zero_copy_only=False), bool)
    data_null = np.asarray(data.is_null().to_numpy(zero_copy_only=False), bool)
    undefined = (modes == UNDEFINED_MODE) | (heights < 0) | (widths < 0)
    valid = ~(struct_null | data_null | undefined)
    errors: dict[int, str] = {}
    for i in np.flatnonzero(~valid):
        if struct_null[i]:
            errors[int(i)] = "null image"
        elif undefined[i]:
            errors[int(i)] = "undefined image (mode -1): the source could not decode this file"
        else:
            errors[int(i)] = "image struct has null data"
    return _Rows(heights, widths, chans, modes, offsets, values, valid), errors


def _check_rows(rows: _Rows, valid_rows: np.ndarray) -> dict[int, np.dtype]:
    """{mode: sample dtype} of the valid rows, after checking their channels and data lengths."""
    itemsizes = np.zeros(len(rows.modes), np.int64)
    mode_dtypes: dict[int, np.dtype] = {}
    for mode in np.unique(rows.modes[valid_rows]):  # one check per distinct mode, not per row
        mdt, mch = mode_to_dtype_channels(int(mode))
        sel = valid_rows[rows.modes[valid_rows] == mode]
        bad = sel[rows.chans[sel] != mch]
        if bad.size:
            raise ValueError(
                f"row {bad[0]}: nChannels={rows.chans[bad[0]]} but mode {mode} has {mch}"
            )
        itemsizes[sel] = mdt.itemsize
        mode_dtypes[int(mode)] = mdt
    expected = rows.heights * rows.widths * rows.chans * itemsizes
    lengths = rows.offsets[1:] - rows.offsets[:-1]
    wrong = valid_rows[lengths[valid_rows] != expected[valid_rows]]
    if wrong.size:
        r = int(wrong[0])
        raise ValueError(
            f"row {r}: image data has {lengths[r]} bytes, expected {expected[r]} for "
            f"{rows.heights[r]}x{rows.widths[r]}x{rows.chans[r]} (mode {rows.modes[r]})"
        )
    return mode_dtypes


def _output_dtype(mode_dtypes: dict[int, np.dtype], dtype: str | None) -> np.dtype:
    """The batch's sample type: ``dtype`` when given, else the one type all images share."""
    if dtype is not None:
        return SAMPLE_DTYPES[dtype]
    distinct = {d.str for d in mode_dtypes.values()}
    if len(distinct) > 1:
        names = sorted(str(np.dtype(d)) for d in distinct)
        raise ValueError(
            f"images with different sample types {names} in one batch; "
            "pass dtype='uint8', 'uint16' or 'float32' to convert them"
        )
    return next(iter(mode_dtypes.values()), np.dtype(np.uint8))


def _common_size_channels(
    shapes: set[_Shape], size: tuple[int, int] | None, channels: int | None
) -> tuple[tuple[int, int], int]:
    """The (height, width) and channel count images of these shapes are converted to."""
    sizes = {(h, w) for h, w, _ in shapes}
    if size is None and len(sizes) == 1:
        size = next(iter(sizes))
    if size is None:
        found = sorted(f"{h}x{w}" for h, w in sizes)
        raise ValueError(
            f"images of different sizes in one batch ({', '.join(found[:5])}); pass "
            "size=(height, width) to resize them"
        )
    counts = sorted({c for _, _, c in shapes})
    if channels is None and len(counts) > 1:
        raise ValueError(
            f"images with different channel counts {counts} in one "
            "batch; pass channels=1, 3 or 4 to convert them"
        )
    return size, channels or counts[0]


def _row_image(rows: _Rows, i: int, dtype: np.dtype) -> np.ndarray:
    """Row ``i``'s image as a (height, width, channels) view of the data buffer."""
    start, stop = int(rows.offsets[i]), int(rows.offsets[i + 1])
    img = rows.values[start:stop].view(dtype)
    return img.reshape(int(rows.heights[i]), int(rows.widths[i]), int(rows.chans[i]))


def _stack_uniform(
    values: np.ndarray, starts: np.ndarray, length: int, dtype: np.dtype
) -> np.ndarray:
    """k equally long rows of ``values`` at ``starts`` as a (k, length / itemsize) array."""
    first = int(starts[0])
    k = starts.size
    if np.array_equal(starts, first + length * np.arange(k)):  # contiguous: a view
        flat = values[first : first + k * length]
        flat.flags.writeable = False  # a view of the Arrow buffer: never modify it in place
    else:  # placeholder bytes between rows: gather row slices
        flat = np.concatenate([values[int(s) : int(s) + length] for s in starts])
    return flat.view(dtype).astype(dtype.newbyteorder("="), copy=False).reshape(k, -1)


# --------------------------------------------------------------------------- batch -> structs


def as_image_batch(array: Any, expected: str) -> np.ndarray:
    """``array`` as (n, height, width, channels): rank 3 gains a channel axis, floats other than
    float32 become float32; other ranks raise ValueError(``expected``, and the shape found)."""
    arr = np.asarray(array)
    if arr.ndim == 3:
        arr = arr[..., np.newaxis]
    if arr.ndim != 4:
        raise ValueError(f"{expected}, got shape {arr.shape}")
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    return arr


def batch_to_image_structs(
    array: np.ndarray,
    *,
    origins: Sequence[str | None] | None = None,
    valid: np.ndarray | None = None,
) -> pa.StructArray:
    """A (n, height, width[, channels]) BGR(A) array as an image StructArray.

    dtype uint8, uint16 or float32 (other floats are cast to float32). With ``valid`` (a bool
    mask of the output length with ``valid.sum() == n``) the images fill the True rows and the
    other rows are null structs. ``origins`` gives one origin per output row (default "").
    """
    arr = as_image_batch(array, "expected a batch of shape (n, height, width[, channels])")
    k, h, w, c = arr.shape
    mode = ocv_mode(arr.dtype, c)
    dtype, _ = mode_to_dtype_channels(mode)
    if valid is None:
        mask = np.ones(k, bool)
    else:
        mask = np.asarray(valid, bool)
        if int(mask.sum()) != k:
            raise ValueError(f"valid marks {int(mask.sum())} rows but the batch has {k} images")
    n = mask.size
    length = h * w * c * dtype.itemsize
    if length * k > np.iinfo(np.int32).max:
        raise ValueError(
            f"{k} images of {length} bytes exceed the 2 GiB an Arrow binary column holds; "
            "use smaller batches"
        )
    payload = np.ascontiguousarray(arr, dtype=dtype)
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(np.where(mask, length, 0), out=offsets[1:])
    data = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(payload)]
    )
    if origins is None:
        origin = pa.array([""] * n, pa.string())
    else:
        if len(origins) != n:
            raise ValueError(f"origins has {len(origins)} entries, expected {n}")
        origin = pa.array(list(origins), pa.string())
    full = [pa.array(np.full(n, v, np.int32)) for v in (h, w, c, mode)]
    return pa.StructArray.from_arrays(
        [origin, *full, data], fields=list(IMAGE_ARROW_TYPE), mask=pa.array(~mask)
    )
