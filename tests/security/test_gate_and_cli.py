"""Issue 14.10 and 14.11: the int8 gate never judges on a handful of rows, NaN is named, and
quantize / the CLI leave no temporary file behind and exit with the code of the failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from sparkonnx import cli, quantize
from sparkonnx.cli import exit_codes
from sparkonnx.converters.calibration import CalibrationError
from sparkonnx.converters.errors import ConversionError
from sparkonnx.model_zoo.build import ZooWeightsError
from sparkonnx.testing import as_nchw, small_classifier, smooth_images


def _run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    code = "import sys; from sparkonnx import cli; sys.exit(cli.main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


# ------------------------------------------------------------------ 14.10 the gate


def test_a_three_row_calibration_set_is_not_judged_on_one_row():
    x = as_nchw(smooth_images(3, seed=2))
    with pytest.raises(
        CalibrationError,
        match=r"would judge the model on 1 row\(s\) \(holdout=0\.25\) of <array> \(held-out.*"
        r"fewer than the 16 it needs.*tolerance=\{'min_rows': 1\} \(CLI: --min-gate-rows\)",
    ):
        quantize(small_classifier(), x)
    lowered = quantize(
        small_classifier(), x, tolerance={"min_rows": 1, "top1": 0.0, "min_speedup": 0}
    )
    assert lowered.gate.rows == 1 and "on 1 held-out rows" in lowered.gate.summary()


def test_every_report_says_how_many_rows_it_used():
    x = as_nchw(smooth_images(64, seed=3))
    result = quantize(small_classifier(), x, search=False, tolerance={"min_speedup": 0})
    summary = result.gate.summary()
    assert "vs fp32 on 16 held-out rows" in summary and "calibrated on 48 rows" in summary
    assert result.gate.to_dict()["rows"] == 16 and result.gate.to_dict()["calibration_rows"] == 48


def test_nan_in_calibration_data_is_named_as_the_cause():
    x = as_nchw(smooth_images(64, seed=4))
    x[[5, 9], 0, 0, 0] = np.nan
    with pytest.raises(
        CalibrationError,
        match=r"hold NaN or infinite values in input '.*' on 2 of 64 rows \(rows 5, 9\)",
    ):
        quantize(small_classifier(), x)


def test_cli_gate_rows_flag_and_exit_code(tmp_path):
    model = tmp_path / "cnn.onnx"
    onnx.save(small_classifier(), model)
    np.save(tmp_path / "three.npy", as_nchw(smooth_images(3, seed=2)))
    args = ["convert", str(model), "-o", str(tmp_path / "q.onnx"), "--quantize", "int8"]
    args += ["--calibration", str(tmp_path / "three.npy"), "--no-progress"]
    assert cli.main(args) == exit_codes.EXIT_USAGE
    lowered = [*args, "--min-gate-rows", "1", "--min-top1", "0", "--min-speedup", "0"]
    assert cli.main(lowered) == exit_codes.EXIT_OK


# ------------------------------------------------------------------ 14.11 quantize and the CLI


def _cdist_model() -> onnx.ModelProto:
    """MatMul -> com.microsoft CDist -> MatMul: ONNX Runtime's symbolic shape inference cannot
    finish on it, and used to leave sym_shape_infer_temp.onnx in the current folder."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("CDist", ["h", "h"], ["d"], domain="com.microsoft", metric="euclidean"),
        helper.make_node("MatMul", ["d", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "cdist",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 3])],
        [w, w2],
    )
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def test_quantize_leaves_no_temporary_file_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tolerance = {"cosine": 0.9, "min_speedup": 0}  # the search's every try, in a temp folder
    result = quantize(_cdist_model(), mode="int8-dynamic", tolerance=tolerance)
    assert result.gate.rows == 16  # a static batch of 4: four random batches
    assert sorted(os.listdir(tmp_path)) == []


def test_absurd_static_dims_are_refused_without_allocating(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["x"], ["y"], keepdims=0)],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 100000, 100000, 100000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 8
    with pytest.raises(
        ConversionError,
        match=r"input 'x' of shape \[None, 100000, 100000, 100000\]: a random sample of it "
        r"\[16, 100000, 100000, 100000\] would take 59604644\.8 GiB, more than the 2 GiB",
    ):
        quantize(model, mode="int8-dynamic")
    onnx.save(model, tmp_path / "huge.onnx")
    done = _run_cli(
        "convert", str(tmp_path / "huge.onnx"), "-o", str(tmp_path / "q.onnx"),
        "--quantize", "int8-dynamic",
    )  # fmt: skip
    assert done.returncode == exit_codes.EXIT_CONVERSION, done.stderr
    assert "MemoryError" not in done.stderr and "Traceback" not in done.stderr


def test_zoo_weights_and_missing_keras_get_their_exit_codes(tmp_path):
    assert exit_codes.exit_code_for(ZooWeightsError("offline")) == exit_codes.EXIT_SOURCE
    missing = _run_cli("zoo", "build", "MobileNetV2", "--weights", str(tmp_path / "none.h5"))
    assert missing.returncode == exit_codes.EXIT_SOURCE, missing.stderr
    assert "weights file" in missing.stderr and "not found" in missing.stderr
    code = (
        "import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None\n"
        "from sparkonnx import cli; sys.exit(cli.main(sys.argv[1:]))"
    )
    no_keras = subprocess.run(
        [sys.executable, "-c", code, "zoo", "build", "MobileNetV2", "--weights", "none"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SPARKONNX_CACHE": str(tmp_path / "cache")},
    )
    assert no_keras.returncode == exit_codes.EXIT_DEPENDENCY, no_keras.stderr
    assert "pip install 'sparkonnx[convert]'" in no_keras.stderr
