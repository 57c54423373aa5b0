"""Decoding image files into image structs with Pillow (and a user's decoder). Spark-free.

Decoding (:func:`decode_image`) uses Pillow: the EXIF orientation is applied
(``ImageOps.exif_transpose``); gray and 1-bit images give 1 channel; anything with alpha (RGBA,
LA, PA, P with transparency) gives BGRA; CMYK, YCbCr, LAB, HSV and opaque palettes give BGR
(CMYK through Pillow's plain conversion, ICC profiles are not applied); 16-bit grayscale stays
16-bit. Pillow itself reduces 16-bit *colour* PNGs to 8 bits (their high byte), so those arrive
as CV_8UC3 / CV_8UC4. The struct layout and mode codes are described in
:mod:`sparkonnx.engine.images`.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps, UnidentifiedImageError

from sparkonnx.engine.image_pixels import swap_red_blue
from sparkonnx.engine.images import (
    IMAGE_ARROW_TYPE,
    ImageDecodeError,
    ImageFields,
    array_to_struct_fields,
    as_hwc,
    struct_fields_to_array,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DECODED_BATCH_SCHEMA",
    "DEFAULT_MAX_PIXELS",
    "array_to_pil",
    "check_pixels",
    "decode_file_batches",
    "decode_image",
    "decode_image_fields",
    "pil_to_array",
]


#: Default pixel limit (width x height) of ``read_images`` and the image stages: 50 M, well
#: below Pillow's own 178 M; an RGB image of this size is 150 MB decoded.
DEFAULT_MAX_PIXELS = 50_000_000


def check_pixels(width: int, height: int, max_pixels: int | None) -> None:
    """ImageDecodeError when ``width x height`` exceeds ``max_pixels`` (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise ImageDecodeError(
            f"image is {width}x{height} = {width * height / 1e6:.1f} M pixels, more than "
            f"maxPixels={max_pixels}: refused before decoding; raise maxPixels to read it"
        )


def _open(content: bytes, max_pixels: int | None = None) -> Image.Image:
    if not content:
        raise ImageDecodeError("empty file")
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:  # we refuse big images ourselves, with the file named
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(content))
            check_pixels(*img.size, max_pixels)  # the header only: nothing decoded yet
            img.load()
    except ImageDecodeError:
        raise
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


def decode_image_fields(content: bytes, max_pixels: int | None = None) -> ImageFields:
    """Decode an encoded image file (JPEG, PNG, GIF, BMP, TIFF, WebP, ...) to struct fields.

    Raises :class:`ImageDecodeError` with a short reason ("empty file", "cannot identify image
    file ...", "truncated image file ...", "image is ... more than maxPixels") when the bytes
    are not a readable image; ``max_pixels`` is checked from the header, before decoding.
    """
    img = _open(content, max_pixels)
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
    arr = as_hwc(arr)
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
        rgb = np.ascontiguousarray(swap_red_blue(arr))
        return Image.fromarray(rgb, mode="RGB" if c == 3 else "RGBA")
    raise ValueError(
        f"Pillow has no mode for {c}-channel {kind} images; only uint8 colour images and "
        "uint8 / uint16 / float32 grayscale convert to PIL. Use the numpy array instead "
        "(imageStructToArray), or convert it to uint8 first"
    )


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


def _custom_fields(
    decoder: Callable[[bytes], np.ndarray], content: bytes, max_pixels: int | None = None
) -> ImageFields:
    if not content:
        raise ImageDecodeError("empty file")
    try:
        arr = decoder(content)
    except Exception as exc:
        raise ImageDecodeError(f"decode_f raised {type(exc).__name__}: {exc}") from None
    if arr is None:
        raise ImageDecodeError("decode_f returned None")
    try:
        fields = array_to_struct_fields(arr)
    except (TypeError, ValueError) as exc:
        raise ImageDecodeError(f"decode_f returned an unusable array: {exc}") from None
    check_pixels(fields.width, fields.height, max_pixels)  # after: decode_f is opaque
    return fields


def _read_file(path: str) -> bytes:
    """The bytes of a local file named ``file:/abs/path`` (or a plain path)."""
    try:
        with open(path.removeprefix("file:"), "rb") as f:
            return f.read()
    except OSError as exc:
        raise ImageDecodeError(f"cannot read file ({exc.strerror or exc})") from None


def decode_file_batches(
    batches: Iterable[pa.RecordBatch],
    *,
    decoder: Callable[[bytes], np.ndarray] | None = None,
    strict: bool = False,
    path_column: str = "path",
    content_column: str | None = "content",
    error_column: str | None = None,
    max_pixels: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Decode batches of (path, content) rows into (image, path, error) batches.

    The ``mapInArrow`` function of ``read_images``. Every input row gives one output row: a
    decoded image with a null error, or a null image with the reason in ``error``. With
    ``strict=True`` the first bad file raises :class:`ImageDecodeError` naming its path.
    ``decoder`` replaces Pillow: a function of the file bytes returning a BGR(A) array.
    ``content_column=None``: each local file is read here from its path. A non-null value in
    ``error_column`` (a file the listing could not use) is kept as the row's error.
    ``max_pixels``: bigger images are rows with an error, refused before decoding.
    """
    acc = _Accumulator()
    for batch in batches:
        paths = batch.column(path_column).to_pylist()
        contents = batch.column(content_column) if content_column else None
        listed = batch.column(error_column).to_pylist() if error_column else None
        for i, path in enumerate(paths):
            try:
                if listed is not None and listed[i] is not None:
                    raise ImageDecodeError(listed[i])
                content = contents[i].as_py() if contents is not None else _read_file(path)
                if decoder is None:
                    fields = decode_image_fields(content or b"", max_pixels)
                else:
                    fields = _custom_fields(decoder, content or b"", max_pixels)
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
