"""What the image stages run on executors: image structs -> the model input, outputs -> vector
or image columns, per-row errors, and the executor step of the image calibration sample."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from sparkonnx.engine.image_batch import ImageBatch, batch_to_image_structs
from sparkonnx.engine.image_decode import check_pixels
from sparkonnx.engine.image_preprocess import ImagePreprocessing, images_from_tensor
from sparkonnx.engine.images import IMAGE_ARROW_TYPE, ImageDecodeError
from sparkonnx.spark_api.runtime.executor import FeedGroup, OutputColumn, PreparedBatch, RowPlace


@dataclasses.dataclass(frozen=True)
class VectorOutput(OutputColumn):
    """An output flattened to one array per row ([N, ...] -> [N, k])."""

    def to_arrow(
        self, tensor: np.ndarray, batch: pa.RecordBatch, rows: np.ndarray | None
    ) -> pa.Array:
        flat = tensor.reshape(tensor.shape[0], -1) if tensor.ndim != 2 else tensor
        return super().to_arrow(flat, batch, rows)


@dataclasses.dataclass(frozen=True)
class ImageOutput(OutputColumn):
    """An output turned back into image structs (BGR(A)), origins taken from `origin_column`
    (an image struct column or a string column)."""

    layout: str = "NHWC"
    channel_order: str = "RGB"
    origin_column: str | None = None

    @property
    def arrow_type(self) -> pa.DataType:
        return IMAGE_ARROW_TYPE

    def to_arrow(
        self, tensor: np.ndarray, batch: pa.RecordBatch, rows: np.ndarray | None
    ) -> pa.Array:
        images = images_from_tensor(tensor, self.layout, self.channel_order)
        origins = None
        if self.origin_column is not None:
            source = batch.column(self.origin_column)
            if pa.types.is_struct(source.type):
                source = source.field("origin")
            if rows is not None:
                source = source.filter(pa.array(rows))
            origins = source.cast(pa.string()).to_pylist()
        return batch_to_image_structs(images, origins=origins)


def errors_column(n: int, errors: dict[int, str]) -> pa.Array:
    """A string column of ``n`` rows: the reason for the rows in ``errors``, null elsewhere."""
    return pa.array([errors.get(i) for i in range(n)], pa.string())


def fail_on_errors(
    column: str,
    errors: dict[int, str],
    origins: list[Any] | None,
    place: RowPlace | None = None,
) -> None:
    """handleInvalid='error': raise for the first bad row, naming the column, the row (its
    partition and position, and rowIdCol value, from ``place``) and its origin / path."""
    if not errors:
        return
    row = min(errors)
    origin = origins[row] if origins is not None else None
    where = f" ({origin})" if origin else ""
    label = place.label(row) if place is not None else f"row {row} of the batch"
    raise ImageDecodeError(
        f"column {column!r}, {label}{where}: {errors[row]}; "
        f"{len(errors)} invalid row(s) in this batch. With handleInvalid='keep' (the default) "
        "such rows get a null output instead"
    )


def _size_groups(structs: pa.Array | pa.ChunkedArray) -> list[np.ndarray]:
    """Row indices of the images of each (height, width), when a batch holds several sizes
    (else an empty list). Null and undecodable rows are in none of them."""
    if isinstance(structs, pa.ChunkedArray):
        structs = structs.combine_chunks()
    if not pa.types.is_struct(structs.type) or structs.type.get_field_index("height") < 0:
        return []  # structs_to_tensor reports the wrong type
    valid = np.asarray(structs.is_valid().to_numpy(zero_copy_only=False), bool)
    h, w = (
        np.asarray(structs.field(f).fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        for f in ("height", "width")
    )
    key = np.where(valid & (h > 0) & (w > 0), h * (1 << 31) + w, -1)
    sizes = np.unique(key[key >= 0])
    if sizes.size < 2:
        return []
    return [np.flatnonzero(key == k) for k in sizes]


def _tensor(
    column: str, preprocessing: ImagePreprocessing, structs: pa.Array
) -> tuple[np.ndarray, ImageBatch]:
    try:
        return preprocessing.structs_to_tensor(structs)
    except ValueError as exc:
        raise ValueError(f"image column {column!r}: {exc}") from exc


def _by_size(
    column: str, preprocessing: ImagePreprocessing, structs: pa.Array, groups: list[np.ndarray]
) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[int, str]]:
    """For a model that takes any size: one (tensor, rows mask) per image size, and the
    reasons of the rows left out (null or undecodable images)."""
    n = len(structs)
    runs: list[tuple[np.ndarray, np.ndarray]] = []
    for index in groups:
        tensor, images = _tensor(column, preprocessing, structs.take(pa.array(index)))
        rows = np.zeros(n, bool)
        rows[index[images.valid]] = True
        runs.append((tensor, rows))
    grouped = np.zeros(n, bool)
    grouped[np.concatenate(groups)] = True
    rest = np.flatnonzero(~grouped)
    _, leftover = _tensor(column, preprocessing, structs.take(pa.array(rest, pa.int64())))
    return runs, {int(rest[i]): why for i, why in leftover.errors.items()}


def too_big(structs: pa.Array, max_pixels: int | None) -> tuple[pa.Array, dict[int, str]]:
    """``structs`` with images over ``max_pixels`` nulled, and the reason for those rows."""
    if max_pixels is None or not pa.types.is_struct(structs.type) or len(structs) == 0:
        return structs, {}
    flat = dict(zip([f.name for f in structs.type], structs.flatten(), strict=True))
    if "height" not in flat or "width" not in flat:
        return structs, {}
    h = np.asarray(flat["height"].fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    w = np.asarray(flat["width"].fill_null(0).to_numpy(zero_copy_only=False), np.int64)
    null = np.asarray(structs.is_null().to_numpy(zero_copy_only=False), bool)
    big = (h * w > max_pixels) & ~null
    if not big.any():
        return structs, {}
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(big):
        try:
            check_pixels(int(w[i]), int(h[i]), max_pixels)
        except ImageDecodeError as exc:
            reasons[int(i)] = str(exc).replace("before decoding", "before resizing")
    mask = pa.array(big | null)
    nulled = pa.StructArray.from_arrays(list(flat.values()), fields=list(structs.type), mask=mask)
    return nulled, reasons


def prepare_images(
    column: str,
    input_name: str,
    preprocessing: ImagePreprocessing,
    strict: bool,
    error_column: str | None,
    batch: pa.RecordBatch,
    max_pixels: int | None = None,
    place: RowPlace | None = None,
) -> PreparedBatch:
    """The `InferencePlan.prepare` hook: an image struct column -> the model's input tensor.

    A model that takes any size gets each image at its own size: a batch of several sizes runs
    as one group per size. Images over ``max_pixels`` are invalid rows, never resized.
    """
    structs = batch.column(column)
    if isinstance(structs, pa.ChunkedArray):
        structs = structs.combine_chunks()
    structs, oversized = too_big(structs, max_pixels)
    groups = _size_groups(structs) if preprocessing.size is None else []
    if groups:
        runs, errors = _by_size(column, preprocessing, structs, groups)
    else:
        tensor, images = _tensor(column, preprocessing, structs)
        runs, errors = [(tensor, images.valid)], images.errors
    errors = {**errors, **oversized}
    if strict and errors:
        origins = None
        if pa.types.is_struct(structs.type):
            origins = structs.field("origin").to_pylist()
        fail_on_errors(column, errors, origins, place)
    extra: tuple[tuple[str, pa.Array], ...] = ()
    if error_column is not None:
        extra = ((error_column, errors_column(batch.num_rows, errors)),)
    (tensor, rows), *more = runs
    others = tuple(FeedGroup({input_name: t}, r) for t, r in more)
    return PreparedBatch({input_name: tensor}, rows, extra, others)


#: What `preprocess_sample` yields: each row's model input bytes (null: invalid image) + shape.
SAMPLE_SCHEMA = "tensor binary, shape array<int>"


def preprocess_sample(
    column: str, preprocessing: ImagePreprocessing, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """A `mapInArrow` function: sampled image structs -> their preprocessed model input, one
    row each (the tensor's bytes and shape; null bytes for invalid images)."""
    for batch in batches:
        if batch.num_rows == 0:
            continue
        tensor, images = preprocessing.structs_to_tensor(batch.column(column))
        flat = iter(tensor.reshape(len(tensor), -1))
        shape = list(tensor.shape[1:])
        data = [next(flat).tobytes() if ok else None for ok in images.valid]
        yield pa.RecordBatch.from_arrays(
            [pa.array(data, pa.binary()), pa.array([shape] * len(data), pa.list_(pa.int32()))],
            names=["tensor", "shape"],
        )
