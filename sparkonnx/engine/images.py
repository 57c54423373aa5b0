"""Images on the executor side: decoding, and image structs <-> numpy. Spark-free.

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

Decoding (:func:`decode_image`) uses Pillow: the EXIF orientation is applied
(``ImageOps.exif_transpose``); gray and 1-bit images give 1 channel; anything with alpha (RGBA,
LA, PA, P with transparency) gives BGRA; CMYK, YCbCr, LAB, HSV and opaque palettes give BGR
(CMYK through Pillow's plain conversion, ICC profiles are not applied); 16-bit grayscale stays
16-bit. Pillow itself reduces 16-bit *colour* PNGs to 8 bits (their high byte), so those arrive
as CV_8UC3 / CV_8UC4.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, ImageOps, UnidentifiedImageError

logger = logging.getLogger(__name__)

__all__ = [
    "DECODED_BATCH_SCHEMA",
    "IMAGE_ARROW_TYPE",
    "IMAGE_FIELDS",
    "OCV_TYPES",
    "UNDEFINED_MODE",
    "ImageBatch",
    "ImageDecodeError",
    "ImageFields",
    "array_to_pil",
    "array_to_struct_fields",
    "batch_to_image_structs",
    "decode_file_batches",
    "decode_image",
    "decode_image_fields",
    "image_structs_to_batch",
    "mode_to_dtype_channels",
    "ocv_mode",
    "pil_to_array",
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


class ImageDecodeError(ValueError):
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


# --------------------------------------------------------------------------- Pillow <-> numpy


def _open(content: bytes) -> Image.Image:
    if not content:
        raise ImageDecodeError("empty file")
    try:
        img = Image.open(io.BytesIO(content))
        img.load()
    except UnidentifiedImageError:
        raise ImageDecodeError(
            "cannot identify image file (not an image, or a format Pillow cannot read)"
        ) from None
    except Exception as exc:  # Pillow plugins raise many types on bad data
        msg = str(exc)
        if "truncat" in msg.lower():
            raise ImageDecodeError(f"truncated image file ({msg})") from None
        raise ImageDecodeError(f"cannot decode image ({type(exc).__name__}: {msg})") from None
    try:
        rotated = ImageOps.exif_transpose(img)
    except Exception as exc:  # a broken EXIF block must not lose a readable image
        logger.debug("ignoring unreadable EXIF orientation: %s", exc)
        return img
    return rotated if rotated is not None else img


def _pil_to_fields(img: Image.Image) -> ImageFields:
    """Pixels of a Pillow image as struct fields (BGR(A) order), converting its mode."""
    mode = img.mode
    if mode == "1":
        img, mode = img.convert("L"), "L"
    elif mode in ("P", "PA"):
        alpha = mode == "PA" or "transparency" in img.info
        mode = "RGBA" if alpha else "RGB"
        img = img.convert(mode)
    elif mode in ("LA", "La", "RGBa"):
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        try:
            img, mode = img.convert("RGB"), "RGB"
        except ValueError as exc:
            raise ImageDecodeError(
                f"cannot convert pixel mode {img.mode!r} to RGB ({exc})"
            ) from None
    w, h = img.size
    if mode == "RGB":
        return ImageFields(h, w, 3, 16, img.tobytes("raw", "BGR"))
    if mode == "RGBA":
        return ImageFields(h, w, 4, 24, img.tobytes("raw", "BGRA"))
    if mode == "L":
        return ImageFields(h, w, 1, 0, img.tobytes())
    if mode.startswith("I;16"):
        arr16 = np.asarray(img).astype("<u2", copy=False)
        return ImageFields(h, w, 1, 2, arr16.tobytes())
    if mode == "I":
        arr32 = np.asarray(img)
        if arr32.size and (arr32.min() < 0 or arr32.max() > 0xFFFF):
            raise ImageDecodeError(
                "unsupported pixel values: 32-bit integer image with values outside 0..65535"
            )
        return ImageFields(h, w, 1, 2, arr32.astype("<u2").tobytes())
    if mode == "F":
        return ImageFields(h, w, 1, 5, np.asarray(img).astype("<f4", copy=False).tobytes())
    raise ImageDecodeError(f"unsupported pixel mode {img.mode!r}")


def decode_image_fields(content: bytes) -> ImageFields:
    """Decode an encoded image file (JPEG, PNG, GIF, BMP, TIFF, WebP, ...) to struct fields.

    Raises :class:`ImageDecodeError` with a short reason ("empty file", "cannot identify image
    file ...", "truncated image file ...") when the bytes are not a readable image.
    """
    img = _open(content)
    try:
        return _pil_to_fields(img)
    finally:
        img.close()


def decode_image(content: bytes) -> np.ndarray:
    """Decode an encoded image file to a (height, width, channels) array in BGR(A) order.

    dtype is uint8, uint16 (16-bit grayscale) or float32 (Pillow "F"); the array is a read-only
    view of the decoded bytes (``.copy()`` to modify it). Raises :class:`ImageDecodeError`.
    """
    fields = decode_image_fields(content)
    return struct_fields_to_array(*fields)


def pil_to_array(img: Image.Image) -> np.ndarray:
    """A Pillow image as a (height, width, channels) array in BGR(A) order (see module doc)."""
    return struct_fields_to_array(*_pil_to_fields(img))


def array_to_pil(arr: np.ndarray) -> Image.Image:
    """A (height, width[, channels]) BGR(A) array as a Pillow image (RGB / RGBA / L / I;16 / F).

    Colour images must be uint8: Pillow has no 16-bit or float colour modes.
    """
    arr = _as_hwc(arr)
    h, w, c = arr.shape
    kind = arr.dtype
    if c == 1:
        plane = arr[:, :, 0]
        if kind == np.uint8:
            return Image.fromarray(np.ascontiguousarray(plane), mode="L")
        if kind == np.uint16:
            return Image.frombytes("I;16", (w, h), plane.astype("<u2").tobytes())
        if kind == np.float32:
            return Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    elif kind == np.uint8:
        order = [2, 1, 0] if c == 3 else [2, 1, 0, 3]
        rgb = np.ascontiguousarray(arr[:, :, order])
        return Image.fromarray(rgb, mode="RGB" if c == 3 else "RGBA")
    raise ValueError(
        f"Pillow has no mode for {c}-channel {kind} images; only uint8 colour images and "
        "uint8 / uint16 / float32 grayscale convert to PIL. Use the numpy array instead "
        "(imageStructToArray), or convert it to uint8 first"
    )


# --------------------------------------------------------------------------- struct <-> numpy


def _as_hwc(arr: np.ndarray) -> np.ndarray:
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
    arr = _as_hwc(arr)
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


# --------------------------------------------------------------------------- files -> structs

#: mapInArrow output of :func:`decode_file_batches`: image struct, path, error.
DECODED_BATCH_SCHEMA = pa.schema(
    [
        pa.field("image", IMAGE_ARROW_TYPE),
        pa.field("path", pa.string()),
        pa.field("error", pa.string()),
    ]
)

_FLUSH_BYTES = 64 << 20
_FLUSH_ROWS = 1024


class _Accumulator:
    """Collects decoded rows and turns them into a record batch."""

    def __init__(self) -> None:
        self.paths: list[str | None] = []
        self.errors: list[str | None] = []
        self.fields: list[ImageFields | None] = []
        self.nbytes = 0

    def add(self, path: str | None, fields: ImageFields | None, error: str | None) -> None:
        self.paths.append(path)
        self.fields.append(fields)
        self.errors.append(error)
        if fields is not None:
            self.nbytes += len(fields.data)

    def full(self) -> bool:
        return self.nbytes >= _FLUSH_BYTES or len(self.paths) >= _FLUSH_ROWS

    def __len__(self) -> int:
        return len(self.paths)

    def to_batch(self) -> pa.RecordBatch:
        empty = ImageFields(0, 0, 0, 0, b"")
        rows = [f if f is not None else empty for f in self.fields]
        mask = pa.array([f is None for f in self.fields], pa.bool_())
        children = [
            pa.array(self.paths, pa.string()),
            pa.array([r.height for r in rows], pa.int32()),
            pa.array([r.width for r in rows], pa.int32()),
            pa.array([r.nChannels for r in rows], pa.int32()),
            pa.array([r.mode for r in rows], pa.int32()),
            pa.array([r.data for r in rows], pa.binary()),
        ]
        image = pa.StructArray.from_arrays(children, fields=list(IMAGE_ARROW_TYPE), mask=mask)
        batch = pa.RecordBatch.from_arrays(
            [image, pa.array(self.paths, pa.string()), pa.array(self.errors, pa.string())],
            schema=DECODED_BATCH_SCHEMA,
        )
        self.__init__()  # type: ignore[misc]
        return batch


def _custom_fields(decoder: Callable[[bytes], np.ndarray], content: bytes) -> ImageFields:
    if not content:
        raise ImageDecodeError("empty file")
    try:
        arr = decoder(content)
    except Exception as exc:
        raise ImageDecodeError(f"decode_f raised {type(exc).__name__}: {exc}") from None
    if arr is None:
        raise ImageDecodeError("decode_f returned None")
    try:
        return array_to_struct_fields(arr)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError(f"decode_f returned an unusable array: {exc}") from None


def decode_file_batches(
    batches: Iterable[pa.RecordBatch],
    *,
    decoder: Callable[[bytes], np.ndarray] | None = None,
    strict: bool = False,
    path_column: str = "path",
    content_column: str = "content",
) -> Iterator[pa.RecordBatch]:
    """Decode batches of (path, content) rows into (image, path, error) batches.

    The ``mapInArrow`` function of ``read_images``. Every input row gives one output row: a
    decoded image with a null error, or a null image with the reason in ``error``. With
    ``strict=True`` the first bad file raises :class:`ImageDecodeError` naming its path.
    ``decoder`` replaces Pillow: a function of the file bytes returning a BGR(A) array.
    """
    acc = _Accumulator()
    for batch in batches:
        paths = batch.column(path_column).to_pylist()
        contents = batch.column(content_column)
        for i, path in enumerate(paths):
            content = contents[i].as_py()
            try:
                if decoder is None:
                    fields = decode_image_fields(content or b"")
                else:
                    fields = _custom_fields(decoder, content or b"")
            except Exception as exc:  # one bad file must not end the task unless strict
                reason = (
                    str(exc)
                    if isinstance(exc, ImageDecodeError)
                    else f"cannot decode image ({type(exc).__name__}: {exc})"
                )
                if strict:
                    raise ImageDecodeError(
                        f"cannot read image {path}: {reason} (strict=True; with strict=False "
                        "the row is kept with a null image and this reason in its `error` column)"
                    ) from exc
                acc.add(path, None, reason)
            else:
                acc.add(path, fields, None)
            if acc.full():
                yield acc.to_batch()
    if len(acc):
        yield acc.to_batch()


# --------------------------------------------------------------------------- structs -> batch

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_DTYPES: dict[str, np.dtype] = {
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "float32": np.dtype(np.float32),
}


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


def _convert_channels(arr: np.ndarray, channels: int) -> np.ndarray:
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


def _convert_dtype(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
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


def _resize(arr: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
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
    if not pa.types.is_struct(structs.type):
        raise ValueError(f"expected an image struct array, got Arrow type {structs.type}")
    if resample not in _RESAMPLE:
        raise ValueError(f"resample={resample!r} is not one of {sorted(_RESAMPLE)}")
    if channels is not None and channels not in SUPPORTED_CHANNELS:
        raise ValueError(f"channels={channels!r}: images have 1, 3 or 4 channels")
    if dtype is not None and dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not one of {sorted(_DTYPES)}")
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if size[0] <= 0 or size[1] <= 0:
            raise ValueError(f"size must be (height, width) with positive values, got {size}")

    n = len(structs)
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

    rows = np.flatnonzero(valid)
    lengths = offsets[1:] - offsets[:-1]
    depth_dtypes: list[np.dtype] = []
    itemsizes = np.zeros(n, np.int64)
    row_dtypes: dict[int, np.dtype] = {}
    for mode in np.unique(modes[rows]):  # one check per distinct mode, not per row
        mdt, mch = mode_to_dtype_channels(int(mode))
        sel = rows[modes[rows] == mode]
        bad = sel[chans[sel] != mch]
        if bad.size:
            raise ValueError(f"row {bad[0]}: nChannels={chans[bad[0]]} but mode {mode} has {mch}")
        itemsizes[sel] = mdt.itemsize
        row_dtypes[int(mode)] = mdt
        depth_dtypes.append(mdt)
    expected = heights * widths * chans * itemsizes
    wrong = rows[lengths[rows] != expected[rows]]
    if wrong.size:
        r = int(wrong[0])
        raise ValueError(
            f"row {r}: image data has {lengths[r]} bytes, expected {expected[r]} for "
            f"{heights[r]}x{widths[r]}x{chans[r]} (mode {modes[r]})"
        )

    distinct_dtypes = {d.str for d in depth_dtypes}
    out_dtype: np.dtype
    if dtype is not None:
        out_dtype = _DTYPES[dtype]
    elif len(distinct_dtypes) > 1:
        names = sorted(str(np.dtype(d)) for d in distinct_dtypes)
        raise ValueError(
            f"images with different sample types {names} in one batch; "
            "pass dtype='uint8', 'uint16' or 'float32' to convert them"
        )
    else:
        out_dtype = np.dtype(depth_dtypes[0]) if depth_dtypes else np.dtype(np.uint8)

    if rows.size == 0:
        h, w = size if size is not None else (0, 0)
        c = channels or 3
        return ImageBatch(np.empty((0, h, w, c), out_dtype.newbyteorder("=")), valid, errors)

    shapes = {(int(heights[i]), int(widths[i]), int(chans[i])) for i in rows}
    h0, w0, c0 = next(iter(shapes))
    if len(shapes) == 1 and size in (None, (h0, w0)) and len(distinct_dtypes) == 1:
        arr = _stack_uniform(values, offsets[rows], int(expected[rows[0]]), depth_dtypes[0])
        arr = arr.reshape(rows.size, h0, w0, c0)
        arr = _convert_dtype(_convert_channels(arr, channels or c0), out_dtype)
        return ImageBatch(arr, valid, errors)

    sizes = {(h, w) for h, w, _ in shapes}
    if size is None and len(sizes) == 1:
        size = (h0, w0)
    if size is None:
        found = sorted(f"{h}x{w}" for h, w in sizes)
        raise ValueError(
            f"images of different sizes in one batch ({', '.join(found[:5])}); pass "
            "size=(height, width) to resize them"
        )
    if channels is None and len({c for _, _, c in shapes}) > 1:
        raise ValueError(
            f"images with different channel counts {sorted({c for _, _, c in shapes})} in one "
            "batch; pass channels=1, 3 or 4 to convert them"
        )
    out_c = channels or c0
    out = np.empty((rows.size, size[0], size[1], out_c), out_dtype)
    method = _RESAMPLE[resample]
    for j, i in enumerate(rows):
        start, stop = int(offsets[i]), int(offsets[i + 1])
        img = values[start:stop].view(row_dtypes[int(modes[i])])
        img = img.reshape(int(heights[i]), int(widths[i]), int(chans[i]))
        img = _convert_dtype(_convert_channels(img, out_c), out_dtype)
        out[j] = _resize(img, size, method)
    return ImageBatch(out, valid, errors)


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
    arr = np.asarray(array)
    if arr.ndim == 3:
        arr = arr[..., np.newaxis]
    if arr.ndim != 4:
        raise ValueError(
            f"expected a batch of shape (n, height, width[, channels]), got shape {arr.shape}"
        )
    if arr.dtype.kind == "f" and arr.dtype != np.float32:
        arr = arr.astype(np.float32)
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
