import numpy as np
import pyarrow as pa
import pytest

from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.tensors import (
    TensorConversionError,
    arrow_type_for,
    column_to_tensor,
    tensor_to_arrow,
)

F32 = np.dtype("float32")


def spec(*shape, dtype=F32, name="x"):
    return TensorSpec(name, np.dtype(dtype), tuple(shape))


def test_flat_float_list_is_zero_copy_reshaped():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    col = pa.array(list(x), type=pa.list_(pa.float32()))
    out = column_to_tensor(col, "features", spec("N", 4))
    np.testing.assert_array_equal(out, x)
    assert out.dtype == F32


def test_flat_array_into_rank4_input():
    n, shape = 2, (3, 224, 224)
    x = np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)
    col = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * 150528), pa.array(x.reshape(-1))
    )
    out = column_to_tensor(col, "pixels", spec("N", *shape))
    assert out.shape == (n, *shape)
    np.testing.assert_array_equal(out, x)


def test_flat_array_fills_one_symbolic_dim():
    col = pa.array([[1, 2, 3, 4, 5, 6]], type=pa.list_(pa.float32()))
    assert column_to_tensor(col, "c", spec("N", "T", 3)).shape == (1, 2, 3)


def test_sliced_batches_respect_offsets():
    col = pa.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]], type=pa.list_(pa.float32())).slice(1, 2)
    np.testing.assert_array_equal(column_to_tensor(col, "c", spec("N", 2)), [[2, 3], [4, 5]])


def test_nested_arrays_keep_their_shape_rank3():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    col = pa.array([[list(r) for r in m] for m in x], type=pa.list_(pa.list_(pa.float32())))
    np.testing.assert_array_equal(column_to_tensor(col, "seq", spec("N", "T", 4)), x)


def test_fixed_size_list_and_large_list():
    values = pa.array(np.arange(6, dtype=np.float32))
    fixed = pa.FixedSizeListArray.from_arrays(values, 3)
    large = pa.LargeListArray.from_arrays(pa.array([0, 3, 6], pa.int64()), values)
    for col in (fixed, large):
        np.testing.assert_array_equal(
            column_to_tensor(col, "c", spec("N", 3)), [[0, 1, 2], [3, 4, 5]]
        )


def test_chunked_array():
    chunked = pa.chunked_array([pa.array([[1.0, 2.0]]), pa.array([[3.0, 4.0]])])
    np.testing.assert_array_equal(
        column_to_tensor(chunked, "c", spec("N", 2, dtype="float64")), [[1, 2], [3, 4]]
    )


def test_scalar_columns_into_rank1_and_rank2_inputs():
    col = pa.array([1.5, 2.5], pa.float64())
    np.testing.assert_array_equal(
        column_to_tensor(col, "v", spec("N", dtype="float64")), [1.5, 2.5]
    )
    assert column_to_tensor(col, "v", spec("N", 1, dtype="float64")).shape == (2, 1)


def test_lossless_casts_happen_lossy_ones_need_permission():
    ints = pa.array([[1, 2]], type=pa.list_(pa.int16()))
    assert column_to_tensor(ints, "c", spec("N", 2)).dtype == F32  # int16 -> float32 is exact
    doubles = pa.array([[0.1, 0.2]], type=pa.list_(pa.float64()))
    with pytest.raises(TensorConversionError, match=r"'c' holds float64.*float32.*allowCast=True"):
        column_to_tensor(doubles, "c", spec("N", 2))
    out = column_to_tensor(doubles, "c", spec("N", 2), allow_cast=True)
    assert out.dtype == F32


def test_dense_and_sparse_spark_vectors():
    vtype = pa.struct(
        [
            ("type", pa.int8()),
            ("size", pa.int32()),
            ("indices", pa.list_(pa.int32())),
            ("values", pa.list_(pa.float64())),
        ]
    )
    rows = [
        {"type": 1, "size": None, "indices": None, "values": [1.0, 2.0, 3.0]},
        {"type": 0, "size": 3, "indices": [0, 2], "values": [7.0, 9.0]},
        {"type": 1, "size": None, "indices": None, "values": [4.0, 5.0, 6.0]},
    ]
    out = column_to_tensor(pa.array(rows, vtype), "features", spec("N", 3, dtype="float64"))
    np.testing.assert_array_equal(out, [[1, 2, 3], [7, 0, 9], [4, 5, 6]])
    dense_only = pa.array([rows[0], rows[2]], vtype)
    np.testing.assert_array_equal(
        column_to_tensor(dense_only, "features", spec("N", 3, dtype="float64")),
        [[1, 2, 3], [4, 5, 6]],
    )


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (pa.array([[1.0, 2.0], None], pa.list_(pa.float32())), r"'feat' has a null array in row 1"),
        (
            pa.array([[1.0, 2.0], [1.0]], pa.list_(pa.float32())),
            r"'feat' has ragged arrays: row 1 of the batch has 1 elements where 1 of 2 have 2",
        ),
        (pa.array([[1.0, None]], pa.list_(pa.float32())), r"'feat' has a null element in row 0"),
        (
            pa.array([[1.0, 2.0, 3.0]], pa.list_(pa.float32())),
            r"'feat' has rows of shape float32\[N, 3\].*float32\[N, 2\] for model input 'x'",
        ),
        (pa.array(["a", "b"]), r"'feat' has type string"),
        (pa.array([1.0, None], pa.float32()), r"'feat' has a null in row 1"),
    ],
)
def test_errors_name_column_expected_and_found(column, message):
    with pytest.raises(TensorConversionError, match=message):
        column_to_tensor(column, "feat", spec("N", 2))


def test_ragged_blames_the_odd_row_even_when_it_is_row_0():
    col = pa.array([[1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]], pa.list_(pa.float32()))
    with pytest.raises(
        TensorConversionError,
        match=r"row 0 of the batch has 1 elements where "
        r"3 of 4 have 2",
    ) as info:
        column_to_tensor(col, "feat", spec("N", 2))
    assert info.value.row == 0
    named = lambda i: f"row {i + 2500} of partition 3"  # noqa: E731 - the executor's label
    with pytest.raises(TensorConversionError, match=r"row 2500 of partition 3 has 1 elements"):
        column_to_tensor(col, "feat", spec("N", 2), label=named)


def test_ragged_inner_level_reports_the_row():
    col = pa.array([[[1.0], [2.0]], [[3.0], [4.0, 5.0]]], pa.list_(pa.list_(pa.float32())))
    with pytest.raises(TensorConversionError, match=r"ragged arrays at nesting level 1: row 1"):
        column_to_tensor(col, "seq", spec("N", 2, 1))


@pytest.mark.parametrize("shape", [(5,), (5, 3), (2, 3, 4), (2, 1, 2, 3)])
def test_tensor_to_arrow_round_trip(shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    arr = tensor_to_arrow(x)
    assert arr.type == arrow_type_for(x.dtype, x.ndim)
    assert not pa.types.is_fixed_size_list(arr.type)
    np.testing.assert_array_equal(np.array(arr.to_pylist(), dtype=np.float32), x)
    back = column_to_tensor(arr, "y", spec(*(["N", *list(shape[1:])])))
    np.testing.assert_array_equal(back, x)


def test_empty_batch():
    empty = pa.array([], pa.list_(pa.float32()))
    assert column_to_tensor(empty, "c", spec("N", 4)).shape == (0, 4)
    assert len(tensor_to_arrow(np.zeros((0, 4), np.float32))) == 0


@pytest.mark.parametrize("arrow_type", [pa.binary(), pa.large_binary(), pa.binary(4 * 3 * 4 * 4)])
def test_packed_binary_rows_into_rank4_input(arrow_type):
    x = np.random.default_rng(1).standard_normal((5, 3, 4, 4)).astype(np.float32)
    col = pa.array([row.tobytes() for row in x], type=arrow_type)
    np.testing.assert_array_equal(column_to_tensor(col, "t", spec("N", 3, 4, 4)), x)
    sliced = column_to_tensor(col.slice(2, 2), "t", spec("N", 3, 4, 4))  # offsets respected
    np.testing.assert_array_equal(sliced, x[2:4])


def test_packed_binary_uses_the_input_dtype_and_copies_unaligned_rows():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    out = column_to_tensor(pa.array([r.tobytes() for r in x]), "t", spec("N", 3, dtype="int64"))
    assert out.dtype == np.int64
    np.testing.assert_array_equal(out, x)
    y = np.arange(8, dtype=np.float32).reshape(2, 4)
    col = pa.array([b"x" + y[0].tobytes(), y[0].tobytes(), y[1].tobytes()]).slice(1)
    unaligned = column_to_tensor(col, "t", spec("N", 4))  # data starts at byte 17
    assert unaligned.flags.aligned
    np.testing.assert_array_equal(unaligned, y)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([b"\0" * 16, None], "has a null in row 1"),
        ([b"\0" * 16, b"\0" * 12], "row 1 of the batch has 12 bytes where 1 of 2 have 16"),
        ([b"\0" * 15], "not a whole number of float32 values"),
        ([b"\0" * 12], r"3 values per row\), which does not fit float32\[N, 4\]"),
    ],
)
def test_packed_binary_errors(rows, message):
    with pytest.raises(TensorConversionError, match=message):
        column_to_tensor(pa.array(rows, pa.binary()), "t", spec("N", 4))
