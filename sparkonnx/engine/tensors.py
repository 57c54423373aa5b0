"""Arrow columns <-> numpy tensors without per-row Python loops.

Inputs: numeric scalars, (nested) list / large_list / fixed_size_list columns of any numeric type,
Spark ML vectors (struct<type, size, indices, values>), and binary columns holding each row's
tensor as packed little-endian values of the model input's dtype (``ndarray.tobytes()``).
Outputs: primitive arrays for rank-1 tensors, (nested) ListArrays otherwise (Spark's
`mapInArrow` cannot take FixedSizeList).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa

from sparkonnx.engine.model import Dim, TensorSpec
from sparkonnx.errors import SparkOnnxError


class TensorConversionError(SparkOnnxError, ValueError):
    """A column cannot become the model's input tensor; the message names column, row and
    shapes (``row``: the row's index in the batch given, when one row is to blame)."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


#: Describes a row of the batch by its index, e.g. "row 2500 of partition 3 (id='a17')".
RowLabel = Callable[[int], str]


def batch_row(i: int) -> str:
    """The default `RowLabel`: the row's index in the Arrow batch."""
    return f"row {i} of the batch"


def odd_one_out(lengths: np.ndarray) -> tuple[int, int, int]:
    """(first row whose length differs from the most common one, that common length, how many
    rows have it): the row to blame in a ragged column, even when it is row 0."""
    values, counts = np.unique(lengths, return_counts=True)
    tied = values[counts == counts.max()]
    common = int(lengths[0]) if lengths[0] in tied else int(tied[0])  # ties: row 0's length
    return _first_true(lengths != common), common, int(counts.max())


def _shape_str(shape: Sequence[Dim] | None) -> str:
    if shape is None:
        return "[?]"
    return (
        "["
        + ", ".join(
            "N" if i == 0 else ("?" if d is None or isinstance(d, str) else str(d))
            for i, d in enumerate(shape)
        )
        + "]"
    )


def is_vector_type(t: pa.DataType) -> bool:
    """True for the Arrow form of a Spark ML vector: struct<type, size, indices, values>."""
    return pa.types.is_struct(t) and {t.field(i).name for i in range(t.num_fields)} == {
        "type",
        "size",
        "indices",
        "values",
    }


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def arrow_value_dtype(t: pa.DataType) -> tuple[np.dtype, int] | None:
    """(element dtype, list nesting depth) of a numeric column type, or None if not numeric."""
    depth = 0
    while _is_list(t):
        t = t.value_type
        depth += 1
    if is_vector_type(t):
        return (np.dtype(np.float64), depth + 1)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return (np.dtype(t.to_pandas_dtype()), depth)
    return None


def _first_true(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _list_lengths(arr: pa.Array) -> np.ndarray:
    if pa.types.is_fixed_size_list(arr.type):
        return np.full(len(arr), arr.type.list_size, dtype=np.int64)
    offsets = arr.offsets.to_numpy()
    return np.diff(offsets)


def _flatten_lists(
    arr: pa.Array, column: str, expected: str, label: RowLabel = batch_row
) -> tuple[pa.Array, list[int]]:
    """Flatten nested lists level by level, checking that each level is rectangular."""
    dims: list[int] = []
    while _is_list(arr.type):
        items_per_row = math.prod(dims)  # items at this level that belong to one top-level row
        where = f" at nesting level {len(dims)}" if dims else ""
        if arr.null_count:
            row = _first_true(arr.is_null().to_numpy(zero_copy_only=False)) // items_per_row
            raise TensorConversionError(
                f"column {column!r} has a null array{where} in {label(row)}; expected "
                f"{expected}. Filter or fill nulls before the transform.",
                row,
            )
        lengths = _list_lengths(arr)
        if len(lengths) and lengths.min() != lengths.max():
            bad, common, count = odd_one_out(lengths)
            row = bad // items_per_row
            raise TensorConversionError(
                f"column {column!r} has ragged arrays{where}: {label(row)} has "
                f"{int(lengths[bad])} elements where {count} of {len(lengths)} have {common}; "
                f"expected {expected}",
                row,
            )
        dims.append(int(lengths[0]) if len(lengths) else 0)
        arr = arr.flatten()
    if arr.null_count:
        row = _first_true(arr.is_null().to_numpy(zero_copy_only=False)) // max(math.prod(dims), 1)
        raise TensorConversionError(
            f"column {column!r} has a null element in {label(row)}; expected {expected} with "
            "no nulls. Fill nulls before the transform.",
            row,
        )
    return arr, dims


def _vectors_to_numpy(
    arr: pa.StructArray, column: str, expected: str, label: RowLabel = batch_row
) -> np.ndarray:
    """Spark ML vectors (dense or sparse) -> float64 (n, size)."""
    if arr.null_count:
        row = _first_true(arr.is_null().to_numpy(zero_copy_only=False))
        raise TensorConversionError(
            f"column {column!r} has a null vector in {label(row)}; expected {expected}", row
        )
    n = len(arr)
    kinds = arr.field("type").to_numpy(zero_copy_only=False)
    values = arr.field("values")
    if n and np.all(kinds == 1):  # all dense
        flat, dims = _flatten_lists(values, column, expected, label)
        return flat.to_numpy(zero_copy_only=False).reshape(n, *dims)
    sizes = arr.field("size").to_numpy(zero_copy_only=False)
    dense_lengths = _list_lengths(values)
    widths = np.where(kinds == 1, dense_lengths, np.nan_to_num(sizes.astype(float))).astype(
        np.int64
    )
    if n and widths.min() != widths.max():
        bad, common, count = odd_one_out(widths)
        raise TensorConversionError(
            f"column {column!r} has vectors of different sizes: {label(bad)} has "
            f"{int(widths[bad])} where {count} of {n} have {common}; expected {expected}",
            bad,
        )
    width = int(widths[0]) if n else 0
    out = np.zeros((n, width), dtype=np.float64)
    flat_values = values.flatten().to_numpy(zero_copy_only=False)
    row_of_value = np.repeat(np.arange(n), dense_lengths)
    dense_rows = kinds[row_of_value] == 1
    # dense rows: position within the row; sparse rows: the given index
    starts = np.repeat(values.offsets.to_numpy()[:-1] - values.offsets.to_numpy()[0], dense_lengths)
    position = np.arange(len(flat_values)) - starts
    indices = arr.field("indices")
    if indices.null_count < n:  # some sparse rows
        idx_lengths = np.diff(indices.offsets.to_numpy())
        flat_idx = indices.flatten().to_numpy(zero_copy_only=False)
        idx_rows = np.repeat(np.arange(n), idx_lengths)
        sparse_mask = kinds[idx_rows] == 0
        out[idx_rows[sparse_mask], flat_idx[sparse_mask]] = flat_values[~dense_rows]
    out[row_of_value[dense_rows], position[dense_rows]] = flat_values[dense_rows]
    return out


def is_binary_type(t: pa.DataType) -> bool:
    """True for binary / large_binary / fixed_size_binary columns (packed tensors)."""
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def _binary_to_numpy(
    arr: pa.Array, column: str, dtype: np.dtype, expected: str, label: RowLabel = batch_row
) -> tuple[np.ndarray, list[int]]:
    """Rows of packed little-endian `dtype` values -> (flat values, [values per row]).

    Zero-copy when the values are aligned; every row must hold the same number of bytes.
    """
    if arr.null_count:
        row = _first_true(arr.is_null().to_numpy(zero_copy_only=False))
        raise TensorConversionError(
            f"column {column!r} has a null in {label(row)}; expected {expected} as packed bytes",
            row,
        )
    n = len(arr)
    if pa.types.is_fixed_size_binary(arr.type):
        width = arr.type.byte_width
        start = arr.offset * width
        lengths = np.full(n, width, dtype=np.int64)
    else:
        offset_type = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
        offsets = np.frombuffer(arr.buffers()[1], dtype=offset_type)[
            arr.offset : arr.offset + n + 1
        ]
        start = int(offsets[0])
        lengths = np.diff(offsets)
    row_bytes = int(lengths[0])
    if lengths.min() != lengths.max():
        bad, common, count = odd_one_out(lengths)
        raise TensorConversionError(
            f"column {column!r} has rows of different sizes: {label(bad)} has "
            f"{int(lengths[bad])} bytes where {count} of {n} have {common}; expected "
            f"{expected} as packed bytes",
            bad,
        )
    if row_bytes % dtype.itemsize:
        raise TensorConversionError(
            f"column {column!r} has {row_bytes} bytes per row, not a whole number of "
            f"{dtype.name} values ({dtype.itemsize} bytes each); expected {expected} as packed "
            "bytes (numpy: array.astype(dtype).tobytes())"
        )
    per_row = row_bytes // dtype.itemsize
    little = dtype.newbyteorder("<")
    data = np.frombuffer(arr.buffers()[-1], dtype=little, count=n * per_row, offset=start)
    if start % dtype.itemsize:  # unaligned: copy into an aligned buffer
        data = data.copy()
    return data.astype(dtype, copy=False), [per_row]


def column_to_tensor(
    column: pa.Array | pa.ChunkedArray,
    column_name: str,
    spec: TensorSpec,
    allow_cast: bool = False,
    label: RowLabel = batch_row,
) -> np.ndarray:
    """Turn an Arrow column into the contiguous numpy tensor `spec` expects (batch axis first).

    Flat arrays and packed binary rows are reshaped to the input's static dims (e.g. 150528
    floats -> [3, 224, 224]); nested arrays keep their shape. Casts are done only where lossless
    unless `allow_cast`. ``label`` names a row in errors (the executor gives its partition and
    position there, and the ``rowIdCol`` value).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    expected = f"{spec.dtype.name}{_shape_str(spec.shape)} for model input {spec.name!r}"
    n = len(column)
    t = column.type
    if n == 0:  # an empty Arrow batch: nothing to check, an empty tensor of the right rank
        inner = [d if isinstance(d, int) else 0 for d in (spec.shape or ("N",))[1:]]
        return np.zeros((0, *inner), dtype=spec.dtype)
    if is_vector_type(t):
        data = _vectors_to_numpy(column, column_name, expected, label)
        dims = list(data.shape[1:])
    elif is_binary_type(t):
        data, dims = _binary_to_numpy(column, column_name, spec.dtype, expected, label)
    elif _is_list(t):
        flat, dims = _flatten_lists(column, column_name, expected, label)
        if arrow_value_dtype(flat.type) is None:
            raise TensorConversionError(
                f"column {column_name!r} holds arrays of {flat.type}, not numbers; expected "
                f"{expected}"
            )
        data = flat.to_numpy(zero_copy_only=False)
    elif arrow_value_dtype(t) is not None:
        if column.null_count:
            row = _first_true(column.is_null().to_numpy(zero_copy_only=False))
            raise TensorConversionError(
                f"column {column_name!r} has a null in {label(row)}; expected {expected}", row
            )
        data = column.to_numpy(zero_copy_only=False)
        dims = []
    else:
        raise TensorConversionError(
            f"column {column_name!r} has type {t}, which cannot feed {expected}; use a numeric "
            "column, an array (of arrays) of numbers, a Spark ML vector, or binary (packed "
            "values)"
        )
    data = _cast(data, spec.dtype, column_name, expected, allow_cast)
    return _reshape(data, n, dims, spec, column_name, expected)


def _cast(
    data: np.ndarray, dtype: np.dtype, column: str, expected: str, allow_cast: bool
) -> np.ndarray:
    if data.dtype == dtype:
        return data
    if allow_cast or np.can_cast(data.dtype, dtype, casting="safe"):
        return data.astype(dtype, copy=False)
    raise TensorConversionError(
        f"column {column!r} holds {data.dtype.name} values but the model wants {expected}; "
        f"{data.dtype.name} -> {dtype.name} can lose information. Cast the column first "
        f"(e.g. col.cast('array<float>')) or set allowCast=True"
    )


def _reshape(
    data: np.ndarray, n: int, dims: list[int], spec: TensorSpec, column: str, expected: str
) -> np.ndarray:
    if spec.shape is None:  # rank unknown: keep what the column has
        return data.reshape(n, *dims)
    inner: list[Dim] = list(spec.shape[1:])
    if len(spec.shape) == 0:
        raise TensorConversionError(
            f"model input {spec.name!r} is a scalar (rank 0); it cannot take a batch from column "
            f"{column!r}"
        )
    per_row = math.prod(dims) if dims else 1
    if len(dims) == len(inner) and all(
        not isinstance(want, int) or want == got for want, got in zip(inner, dims, strict=True)
    ):
        return data.reshape(n, *dims)
    if not inner and dims == [1]:
        return data.reshape(n)
    if len(dims) <= 1:  # a flat array or a scalar: fill the input's static dims
        static = [d for d in inner if isinstance(d, int)]
        unknown = len(inner) - len(static)
        known = math.prod(static) if static else 1
        if unknown == 0 and known == per_row:
            return data.reshape(n, *static)
        if unknown == 1 and known and per_row % known == 0:
            return data.reshape(n, *[d if isinstance(d, int) else per_row // known for d in inner])
    found = (
        f"{data.dtype.name}[N, {', '.join(map(str, dims))}]" if dims else f"{data.dtype.name}[N]"
    )
    raise TensorConversionError(
        f"column {column!r} has rows of shape {found} ({per_row} values per row), which does not "
        f"fit {expected}"
    )


def tensor_to_arrow(tensor: np.ndarray) -> pa.Array:
    """A batch tensor (n, ...) as an Arrow column: primitive for rank 1, nested lists above."""
    if tensor.ndim == 0:
        raise ValueError("a model output must have a batch axis; got a scalar")
    shape = tensor.shape
    if math.prod(shape) >= 2**31:
        raise ValueError(
            f"output batch too large for one Arrow list array ({math.prod(shape)} values); "
            "lower batchSize or spark.sql.execution.arrow.maxRecordsPerBatch"
        )
    arr: pa.Array = pa.array(np.ascontiguousarray(tensor).reshape(-1))
    for level in range(len(shape) - 1, 0, -1):
        offsets = np.arange(math.prod(shape[:level]) + 1, dtype=np.int32) * np.int32(shape[level])
        arr = pa.ListArray.from_arrays(pa.array(offsets), arr)
    return arr


def arrow_type_for(dtype: np.dtype, rank: int) -> pa.DataType:
    """The Arrow type `tensor_to_arrow` produces for a tensor of this dtype and rank."""
    t: pa.DataType = pa.from_numpy_dtype(dtype)
    for _ in range(rank - 1):
        t = pa.list_(t)
    return t
