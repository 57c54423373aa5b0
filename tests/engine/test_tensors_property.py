"""Property tests of the Arrow -> tensor conversion (`column_to_tensor`) against plain numpy.

Random shapes, dtypes, list kinds (list / large_list / fixed_size_list, nested), packed binary
rows, Spark ML vectors, slices with offsets, chunked columns, and nulls or ragged rows that must
be reported at the right row.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.tensors import TensorConversionError, column_to_tensor

DTYPES = [np.float32, np.float64, np.int8, np.int32, np.int64, np.uint8, np.uint16, np.float16]
LIST_KINDS = ("list", "large_list", "fixed")
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def tensors(draw: st.DrawFn) -> np.ndarray:
    """(rows, *inner) arrays: 0-12 rows, 1-3 inner dims of 1-4, any of DTYPES."""
    dtype = draw(st.sampled_from(DTYPES))
    inner = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    rows = draw(st.integers(0, 12))
    elements = hnp.from_dtype(np.dtype(dtype), allow_nan=False, allow_infinity=False)
    return draw(hnp.arrays(dtype, (rows, *inner), elements=elements))


def _list_type(kind: str, value: pa.DataType, size: int) -> pa.DataType:
    if kind == "fixed":
        return pa.list_(value, size)
    return pa.large_list(value) if kind == "large_list" else pa.list_(value)


def _nested(x: np.ndarray, kinds: list[str]) -> pa.Array:
    """The rows of ``x`` as nested lists, one list kind per level (outermost first)."""
    arrow_type: pa.DataType = pa.from_numpy_dtype(x.dtype)
    for kind, size in zip(reversed(kinds), reversed(x.shape[1:]), strict=True):
        arrow_type = _list_type(kind, arrow_type, size)
    return pa.array(x.tolist(), type=arrow_type)


def _padded(column_rows: list, arrow_type: pa.DataType, before: int, after: int) -> pa.Array:
    """A column with extra rows around it, sliced back: the data starts at an offset."""
    filler = column_rows[:1] * before if column_rows else []
    tail = column_rows[-1:] * after if column_rows else []
    full = pa.array(filler + column_rows + tail, type=arrow_type)
    return full.slice(len(filler), len(column_rows))


def _spec(x: np.ndarray, dtype: Any = None) -> TensorSpec:
    return TensorSpec("x", np.dtype(dtype or x.dtype), ("N", *x.shape[1:]))


@SETTINGS
@given(
    x=tensors(),
    kinds=st.lists(st.sampled_from(LIST_KINDS), min_size=3, max_size=3),
    before=st.integers(0, 3),
    after=st.integers(0, 3),
    chunks=st.integers(1, 3),
)
def test_nested_lists_equal_numpy(x, kinds, before, after, chunks):
    kinds = kinds[: x.ndim - 1]
    arr = _nested(x, kinds)
    column = _padded(arr.to_pylist(), arr.type, before, after)
    if chunks > 1 and len(column) >= chunks:
        cuts = np.linspace(0, len(column), chunks + 1).astype(int)
        column = pa.chunked_array([column.slice(a, b - a) for a, b in itertools.pairwise(cuts)])
    got = column_to_tensor(column, "c", _spec(x))
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_array_equal(got, x)


@SETTINGS
@given(x=tensors(), kind=st.sampled_from(LIST_KINDS), before=st.integers(0, 3))
def test_flat_lists_fill_the_static_dims(x, kind, before):
    flat = x.reshape(len(x), int(np.prod(x.shape[1:])))
    arr = _nested(flat, [kind])
    column = _padded(arr.to_pylist(), arr.type, before, 1)
    got = column_to_tensor(column, "c", _spec(x))
    np.testing.assert_array_equal(got, x)


@SETTINGS
@given(
    x=tensors(),
    binary=st.sampled_from(["binary", "large_binary", "fixed"]),
    before=st.integers(0, 3),
)
def test_packed_binary_rows_equal_numpy(x, binary, before):
    little = x.astype(x.dtype.newbyteorder("<"))
    rows = [r.tobytes() for r in little]
    width = little[0].nbytes if len(x) else 1
    arrow_type = {"binary": pa.binary(), "large_binary": pa.large_binary()}.get(
        binary, pa.binary(width)
    )
    column = _padded(rows, arrow_type, before, 2)
    got = column_to_tensor(column, "c", _spec(x))
    np.testing.assert_array_equal(got, x)


@SETTINGS
@given(
    values=hnp.arrays(np.float64, st.tuples(st.integers(1, 10), st.integers(1, 6))),
    sparse=st.lists(st.booleans(), min_size=10, max_size=10),
    before=st.integers(0, 2),
)
def test_spark_vectors_dense_and_sparse_equal_numpy(values, sparse, before):
    values = np.nan_to_num(values)
    rows = []
    for row, is_sparse in zip(values, sparse, strict=False):
        if is_sparse:
            idx = np.flatnonzero(row)
            rows.append(
                {"type": 0, "size": len(row), "indices": idx.tolist(), "values": row[idx].tolist()}
            )
        else:
            rows.append({"type": 1, "size": None, "indices": None, "values": row.tolist()})
    vector = pa.struct(
        [
            ("type", pa.int8()),
            ("size", pa.int32()),
            ("indices", pa.list_(pa.int32())),
            ("values", pa.list_(pa.float64())),
        ]
    )
    column = _padded(rows, vector, before, 1)
    got = column_to_tensor(
        column, "v", TensorSpec("x", np.dtype(np.float64), ("N", values.shape[1]))
    )
    np.testing.assert_array_equal(got, values)


@SETTINGS
@given(
    x=tensors(),
    where=st.data(),
    element=st.booleans(),
    before=st.integers(0, 3),
    kinds=st.lists(st.sampled_from(LIST_KINDS), min_size=3, max_size=3),
)
def test_nulls_are_reported_at_their_row(x, where, element, before, kinds):
    if len(x) == 0:
        return
    kinds = kinds[: x.ndim - 1]
    bad = where.draw(st.integers(0, len(x) - 1))
    rows = _nested(x, kinds).to_pylist()
    if element:
        inner = rows[bad]
        while isinstance(inner[0], list):
            inner = inner[0]
        inner[0] = None
    else:
        rows[bad] = None
    column = _padded(rows, _nested(x[:1], kinds).type, before, 1)
    with pytest.raises(TensorConversionError, match=rf"row {bad} of the batch") as info:
        column_to_tensor(column, "c", _spec(x))
    assert info.value.row == bad


@SETTINGS
@given(x=tensors(), where=st.data())
def test_a_ragged_row_is_the_one_blamed(x, where):
    if len(x) < 3 or x.shape[1] < 2:
        return
    bad = where.draw(st.integers(0, len(x) - 1))
    rows = x.reshape(len(x), -1).tolist()
    rows[bad] = rows[bad][:-1]  # one row shorter than all the others
    column = pa.array(rows, pa.list_(pa.from_numpy_dtype(x.dtype)))
    with pytest.raises(TensorConversionError, match=rf"row {bad} of the batch has") as info:
        column_to_tensor(column, "c", _spec(x))
    assert info.value.row == bad


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@SETTINGS
@given(x=tensors(), target=st.sampled_from([np.float32, np.float64, np.int64]))
def test_casts_are_lossless_unless_allowed(x, target):
    arr = _nested(x, ["list"] * (x.ndim - 1))
    spec = _spec(x, target)
    if np.can_cast(x.dtype, target, casting="safe"):
        got = column_to_tensor(arr, "c", spec)
        np.testing.assert_array_equal(got, x.astype(target))
    elif len(x):
        with pytest.raises(TensorConversionError, match="can lose information"):
            column_to_tensor(arr, "c", spec)
        got = column_to_tensor(arr, "c", spec, allow_cast=True)
        np.testing.assert_array_equal(got, x.astype(target))
