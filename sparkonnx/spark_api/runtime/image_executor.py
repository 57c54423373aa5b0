"""What the image stages run on executors: image structs -> the model input, outputs -> vector
or image columns, per-row errors, and the executor step of the image calibration sample."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from sparkonnx.engine.image_batch import batch_to_image_structs
from sparkonnx.engine.image_preprocess import ImagePreprocessing, images_from_tensor
from sparkonnx.engine.images import IMAGE_ARROW_TYPE, ImageDecodeError
from sparkonnx.spark_api.runtime.executor import OutputColumn, PreparedBatch


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


def fail_on_errors(column: str, errors: dict[int, str], origins: list[Any] | None) -> None:
    """handleInvalid='error': raise for the first bad row, naming the column, row and origin."""
    if not errors:
        return
    row = min(errors)
    origin = origins[row] if origins is not None else None
    where = f" ({origin})" if origin else ""
    raise ImageDecodeError(
        f"column {column!r}, row {row} of the batch{where}: {errors[row]}; "
        f"{len(errors)} invalid row(s) in this batch. With handleInvalid='keep' (the default) "
        "such rows get a null output instead"
    )


def prepare_images(
    column: str,
    input_name: str,
    preprocessing: ImagePreprocessing,
    strict: bool,
    error_column: str | None,
    batch: pa.RecordBatch,
) -> PreparedBatch:
    """The `InferencePlan.prepare` hook: an image struct column -> the model's input tensor."""
    structs = batch.column(column)
    try:
        tensor, images = preprocessing.structs_to_tensor(structs)
    except ValueError as exc:
        message = str(exc)
        if "different sizes" in message:  # the model takes any size: the user must pick one
            message = message.split(";")[0] + (
                " and the model takes any size; set inputSize=[height, width] to resize them"
            )
        raise ValueError(f"image column {column!r}: {message}") from exc
    if strict and images.errors:
        origins = None
        if pa.types.is_struct(structs.type):
            origins = structs.field("origin").to_pylist()
        fail_on_errors(column, images.errors, origins)
    extra: tuple[tuple[str, pa.Array], ...] = ()
    if error_column is not None:
        extra = ((error_column, errors_column(batch.num_rows, images.errors)),)
    return PreparedBatch({input_name: tensor}, images.valid, extra)


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
