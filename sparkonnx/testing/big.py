"""A model over protobuf's 2 GiB limit, written with external data (sparse: never in memory)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from sparkonnx.testing.models import OPSET


def save_with_external_data(
    proto: onnx.ModelProto, path: Path, location: str = "weights.bin"
) -> Path:
    """Write `proto` to `path` with every initializer in the external file `location` beside
    it (the layout of a model over 2 GiB); returns `path`."""
    onnx.save_model(
        proto, str(path), save_as_external_data=True, size_threshold=0, location=location
    )
    return path


#: The nonzero weights of `write_big_matmul`: (row, column, value).
BIG_MATMUL_NONZEROS = ((0, 0, 2.0), (1, 5, -1.5), (7, 3, 0.25))


def write_big_matmul(folder: Path, k: int = 23_200, n: int = 23_200) -> Path:
    """`x: float32[N, k] -> x @ w: float32[N, n]` with `w` (k * n * 4 bytes, just over 2 GiB
    by default) in the external file `w.bin`: zeros but `BIG_MATMUL_NONZEROS` and w[k-1, n-1]
    = 3. Written through a memory map of a sparse file: the weights are never in memory."""
    folder.mkdir(parents=True, exist_ok=True)
    nbytes = k * n * 4
    with open(folder / "w.bin", "wb") as handle:
        handle.truncate(nbytes)
    weights = np.memmap(folder / "w.bin", dtype=np.float32, mode="r+", shape=(k, n))
    for row, column, value in (*BIG_MATMUL_NONZEROS, (k - 1, n - 1, 3.0)):
        weights[row, column] = value
    weights.flush()
    del weights
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[k, n])
    w.data_location = TensorProto.EXTERNAL
    for key, text in (("location", "w.bin"), ("offset", "0"), ("length", str(nbytes))):
        entry = w.external_data.add()
        entry.key, entry.value = key, text
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul")],
        "big_matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 10)
    onnx.save_model(model, str(folder / "big.onnx"))
    return folder / "big.onnx"


def big_matmul_reference(x: np.ndarray, k: int = 23_200, n: int = 23_200) -> np.ndarray:
    """What `write_big_matmul`'s model returns for `x` (computed from its nonzeros alone)."""
    y = np.zeros((len(x), n), np.float32)
    for row, column, value in (*BIG_MATMUL_NONZEROS, (k - 1, n - 1, 3.0)):
        y[:, column] += x[:, row] * np.float32(value)
    return y
