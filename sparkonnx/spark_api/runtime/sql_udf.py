"""What a model's SQL function runs on executors: its arguments -> the model's feeds.

The function is an iterator Arrow UDF over `run_columns` (`run_pandas_columns` on pyspark 4.0,
which has no Arrow UDFs). Its `InferencePlan.prepare` hook is :func:`prepare_arguments`, which
turns each argument into the feed of one model input by what the argument holds:

- image structs: the image stages' own step (`prepare_images`: resize, channel order, layout,
  scale / mean / std as resolved on the driver), so a SQL function and ImageTransformer give
  the same tensor for the same model and images;
- with a ``preprocessor`` (file path -> image array), image structs or file-path strings: each
  row's image is what the preprocessor returns for a local file (see :func:`local_path`), made
  an image struct again and fed through the same step (so any size is resized to the model's);
- anything else: `column_to_tensor` (numbers, arrays, vectors).

A row whose result is null (null argument, undecodable image, a preprocessor that failed)
gets its reason in the ``error_field`` of the result when one is set, or, with
``strict`` (handleInvalid='error'), fails the task naming the argument, row and origin.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkonnx.engine.image_decode import array_to_pil
from sparkonnx.engine.image_pixels import swap_red_blue
from sparkonnx.engine.image_preprocess import ImagePreprocessing
from sparkonnx.engine.images import (
    IMAGE_ARROW_TYPE,
    IMAGE_FIELDS,
    array_to_struct_fields,
    struct_fields_to_array,
)
from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.tensors import TensorConversionError, column_to_tensor
from sparkonnx.spark_api.runtime.executor import (
    InferencePlan,
    PreparedBatch,
    RowPlace,
    run_columns,
)
from sparkonnx.spark_api.runtime.image_executor import (
    errors_column,
    fail_on_errors,
    prepare_images,
)

Preprocessor = Callable[[str], Any]

__all__ = [
    "SqlArguments",
    "local_path",
    "prepare_arguments",
    "preprocessed_structs",
    "run_pandas_columns",
]


@dataclass(frozen=True)
class SqlArguments:
    """How each argument of a SQL function feeds the model: plain values, shipped to tasks.

    ``images[i]`` is the resolved preprocessing of input ``i``, or the reason image arguments
    cannot feed it (raised only if one arrives).
    """

    labels: tuple[str, ...]
    specs: tuple[TensorSpec, ...]
    images: tuple[ImagePreprocessing | str, ...]
    preprocessor: Preprocessor | None = None
    strict: bool = False
    error_field: str | None = None


def is_image_struct(t: pa.DataType) -> bool:
    """True for an Arrow struct with the image struct's fields."""
    return pa.types.is_struct(t) and set(IMAGE_FIELDS) <= {f.name for f in t}


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def prepare_arguments(
    args: SqlArguments, batch: pa.RecordBatch, place: RowPlace | None = None
) -> PreparedBatch:
    """The `InferencePlan.prepare` hook: one feed per argument, rows valid in all of them
    (``place``: where the batch's rows are, for handleInvalid='error' messages)."""
    n = batch.num_rows
    extra: tuple[tuple[str, pa.Array], ...] = ()
    if n == 0:
        if args.error_field is not None:
            extra = ((args.error_field, pa.array([], pa.string())),)
        return PreparedBatch({}, np.zeros(0, bool), extra)
    rows = np.ones(n, bool)
    reasons: dict[int, str] = {}
    parts = []
    for i, label in enumerate(args.labels):
        tensor, valid, why, origins = _feed(args, i, batch.column(i))
        if args.strict:
            fail_on_errors(label, why, origins, place)
        for row, reason in why.items():
            reasons.setdefault(row, reason if len(args.labels) == 1 else f"{label}: {reason}")
        parts.append((args.specs[i].name, tensor, valid))
        rows &= valid
    feeds = {
        name: tensor if rows[valid].all() else tensor[rows[valid]] for name, tensor, valid in parts
    }
    if args.error_field is not None:
        extra = ((args.error_field, errors_column(n, reasons)),)
    return PreparedBatch(feeds, rows, extra)


def _feed(
    args: SqlArguments, i: int, column: pa.Array
) -> tuple[np.ndarray, np.ndarray, dict[int, str], list[Any] | None]:
    """(tensor of the valid rows, valid mask, reasons of the others, origins) of argument i."""
    label, spec = args.labels[i], args.specs[i]
    image, strings = is_image_struct(column.type), _is_string(column.type)
    if not (image or strings):
        if pa.types.is_struct(column.type):
            raise TensorConversionError(
                f"{label} is a struct with fields {[f.name for f in column.type]}, not an image "
                f"struct (fields {list(IMAGE_FIELDS)}); pass arrays of numbers or image structs"
            )
        valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), bool)
        rows = column if valid.all() else column.filter(pa.array(valid))
        tensor = column_to_tensor(rows, label, spec, allow_cast=True)
        return tensor, valid, dict.fromkeys(np.flatnonzero(~valid).tolist(), "null value"), None
    if strings and args.preprocessor is None:
        raise TensorConversionError(
            f"{label} is a string column; file paths need preprocessor=<path -> image array> "
            "(registerKerasImageUDF / register_udf), or read the files with read_images"
        )
    preprocessing = args.images[i]
    if isinstance(preprocessing, str):
        raise TensorConversionError(f"{label} holds images, but {preprocessing}")
    origins = origins_of(column) if args.strict else None  # only error messages use them
    loaded: dict[int, str] = {}
    if args.preprocessor is not None:
        column, loaded = preprocessed_structs(args.preprocessor, column)
    batch = pa.RecordBatch.from_arrays([column], names=[label])
    prepared = prepare_images(label, spec.name, preprocessing, False, "reason", batch)
    if prepared.groups:  # the model takes any size and the images have several
        raise TensorConversionError(
            f"{label}: images of {len(prepared.groups) + 1} different sizes in one batch and the "
            "model takes any size; a SQL function feeds each argument as one tensor, so set "
            "inputSize=[height, width] to resize them (or use ImageTransformer, which runs "
            "each size on its own)"
        )
    found = prepared.extra[0][1].to_pylist()
    why = {row: loaded.get(row, r) for row, r in enumerate(found) if r is not None}
    assert prepared.rows is not None
    return prepared.feeds[spec.name], prepared.rows, why, origins


# --------------------------------------------------------------------------- preprocessors


def origins_of(column: pa.Array) -> list[str | None]:
    """Each row's origin: the string itself, or an image struct's ``origin`` field."""
    if is_image_struct(column.type):
        return column.field("origin").to_pylist()
    return column.to_pylist()


def local_path(value: str | None) -> str | None:
    """The local file path a string names (a ``file:`` URI or a plain path), else None."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme == "file":
        return unquote(parts.path)
    if parts.scheme and len(parts.scheme) > 1:  # hdfs:, s3a:, mem:, ... (not a drive letter)
        return None
    return value


def _path_for(column: pa.Array, row: int, origin: str | None, folder: str) -> str:
    """The path the preprocessor reads for one row (``origin``: the string or the struct's
    origin); ValueError when there is none.

    Strings: the path itself. Image structs: the origin when it is a file on this machine,
    else the struct's pixels written to a PNG in ``folder`` (as sparkdl did).
    """
    if not is_image_struct(column.type):
        if origin is None:
            raise ValueError("null path")
        return local_path(origin) or origin
    if not column[row].is_valid:
        raise ValueError("null image")
    path = local_path(origin)
    if path is not None and os.path.isfile(path):
        return path
    value = column[row].as_py()
    fields = [value[name] for name in IMAGE_FIELDS[1:]]
    if fields[3] is None or fields[3] < 0 or fields[4] is None:
        where = f"origin {origin!r} is not a file on this machine" if origin else "no origin"
        raise ValueError(f"{where} and the image struct holds no decoded image (mode -1)")
    spilled = os.path.join(folder, f"{row}.png")
    array_to_pil(struct_fields_to_array(*fields)).save(spilled, format="PNG")
    return spilled


def _as_image(value: Any) -> np.ndarray:
    """A preprocessor's result, (h, w), (h, w, c) or (1, h, w, c) RGB(A), as a BGR(A) image."""
    arr = np.asarray(value)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        arr = arr[..., np.newaxis]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or arr.dtype.kind not in "biuf":
        raise ValueError(
            f"the preprocessor returned {type(value).__name__} of shape {arr.shape} and dtype "
            f"{arr.dtype}; expected an image array (height, width[, 1 | 3 | 4]) in RGB(A) "
            "order, optionally with a leading batch axis of 1"
        )
    if arr.dtype not in (np.uint8, np.uint16, np.float32):
        arr = arr.astype(np.float32)
    return swap_red_blue(arr) if arr.shape[-1] >= 3 else arr


def preprocessed_structs(
    preprocessor: Preprocessor, column: pa.Array
) -> tuple[pa.StructArray, dict[int, str]]:
    """Each row's image as ``preprocessor(path)`` returns it, as image structs (origins kept),
    and the reason for each row it could not give (null structs there)."""
    rows: list[dict[str, Any] | None] = []
    reasons: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="sparkonnx-udf-") as folder:
        for row, origin in enumerate(origins_of(column)):
            try:
                path = _path_for(column, row, origin, folder)
            except ValueError as exc:
                reasons[row] = str(exc)
                rows.append(None)
                continue
            try:
                fields = array_to_struct_fields(_as_image(preprocessor(path)))
            except Exception as exc:  # the user's function may raise anything: this row's error
                reasons[row] = f"preprocessor({path!r}) failed: {type(exc).__name__}: {exc}"
                rows.append(None)
                continue
            rows.append({"origin": origin, **fields._asdict()})
    return pa.array(rows, IMAGE_ARROW_TYPE), reasons


# --------------------------------------------------------------------------- pyspark 4.0


def _to_arrow(value: pd.Series | pd.DataFrame) -> pa.Array:
    if isinstance(value, pd.Series):
        return pa.array(value, from_pandas=True)
    struct = pa.RecordBatch.from_pandas(value, preserve_index=False).to_struct_array()
    if list(value.columns) == list(IMAGE_FIELDS):
        struct = struct.cast(IMAGE_ARROW_TYPE)
    null = pa.array(value.isna().all(axis=1).to_numpy(bool))  # pandas UDFs get null structs so
    return pa.StructArray.from_arrays(struct.flatten(), fields=list(struct.type), mask=null)


def _to_pandas(values: pa.Array) -> pd.Series | pd.DataFrame:
    if pa.types.is_struct(values.type):
        return pd.DataFrame({f.name: values.field(f.name).to_pandas() for f in values.type})
    return values.to_pandas()


def run_pandas_columns(
    plan: InferencePlan, batches: Iterator[Any]
) -> Iterator[pd.Series | pd.DataFrame]:
    """`run_columns` as an iterator pandas UDF body (pyspark 4.0 has no Arrow UDFs)."""
    arrays = (
        tuple(_to_arrow(v) for v in b) if isinstance(b, tuple) else _to_arrow(b) for b in batches
    )
    for values in run_columns(plan, arrays):
        yield _to_pandas(values)
