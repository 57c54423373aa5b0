"""TF-free pieces: parity maths, fp16, graph edits, opset upgrade, op scan, saving, metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from sparkonnx.converters import metadata
from sparkonnx.converters.errors import (
    ConversionError,
    OnnxRuntimeLoadError,
    UnsupportedOpsError,
)
from sparkonnx.converters.fp16 import to_fp16
from sparkonnx.converters.onnx_edit import (
    name_batch_dims,
    order_outputs,
    rename_tensors,
    upgrade_opset,
)
from sparkonnx.converters.op_fixes import raise_on_unsupported_ops, unsupported_ops
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.parity import compare, make_session, random_sample, user_sample
from sparkonnx.converters.result import SourceInfo
from sparkonnx.converters.saving import save_model
from sparkonnx.converters.source import InputInfo, sanitize_tf_name
from sparkonnx.engine.model import OnnxModel
from sparkonnx.testing import linear_model, linear_reference


def _run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


# ------------------------------------------------------------------ parity maths


def test_compare_reports_max_abs_and_relative_error() -> None:
    expected = [np.array([[1.0, -2.0], [4.0, 0.0]], np.float32)]
    actual = [np.array([[1.0, -2.0], [4.002, 0.0]], np.float32)]
    report = compare(expected, actual, ["y"], 1e-4, "fp32", {"x": np.zeros((2, 2))}, "random")
    assert not report.passed
    assert report.max_abs_error == pytest.approx(0.002, rel=1e-3)
    assert report.max_rel_error == pytest.approx(0.002 / 4, rel=1e-3)
    assert "FAILED" in report.summary() and "tolerance 0.0001" in report.summary()
    loose = compare(expected, actual, ["y"], 1e-3, "fp32", {"x": np.zeros((2, 2))}, "random")
    assert loose.passed  # 0.002 <= 1e-3 * (1 + 4)


def test_compare_fails_on_shape_mismatch_and_nan() -> None:
    report = compare([np.zeros((2, 3))], [np.zeros((3, 2))], ["y"], 1.0, "fp32", {}, "user")
    assert not report.passed and report.max_abs_error == float("inf")
    nan = compare([np.ones(2)], [np.array([1.0, np.nan])], ["y"], 1.0, "fp32", {}, "user")
    assert not nan.passed
    both = compare([np.array([np.nan])], [np.array([np.nan])], ["y"], 1e-6, "fp32", {}, "user")
    assert both.passed


def test_random_sample_dtypes_ranges_and_dynamic_dims() -> None:
    specs = [
        InputInfo("img", np.dtype("float32"), (None, None, None, 3)),
        InputInfo("ids", np.dtype("int64"), (None, 5)),
        InputInfo("raw", np.dtype("uint8"), (7, 2)),
        InputInfo("mask", np.dtype("bool"), (None,)),
    ]
    img, ids, raw, mask = random_sample(specs, batch=3, seed=1)
    assert img.shape == (3, 32, 32, 3) and img.dtype == np.float32
    assert img.min() >= -1 and img.max() <= 1 and img.std() > 0.3
    assert ids.shape == (3, 5) and ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 8
    assert raw.shape == (7, 2) and raw.dtype == np.uint8
    assert mask.shape == (3,) and mask.dtype == bool
    again = random_sample(specs, batch=3, seed=1)
    np.testing.assert_array_equal(again[0], img)


def test_random_sample_refuses_unknown_rank_and_strings() -> None:
    with pytest.raises(ConversionError, match=r"'x' has an unknown rank.*sample_input"):
        random_sample([InputInfo("x", np.dtype("float32"), None)], 2, 0)
    with pytest.raises(ConversionError, match=r"'s' has dtype <U1.*sample_input"):
        random_sample([InputInfo("s", np.dtype("U1"), (2,))], 2, 0)


def test_user_sample_by_name_or_position() -> None:
    specs = [
        InputInfo("a", np.dtype("float32"), (None, 2)),
        InputInfo("b", np.dtype("int32"), (None,)),
    ]
    by_name = user_sample({"b": [1, 2], "a": np.ones((2, 2))}, specs, ["a", "b"])
    assert [x.dtype for x in by_name] == [np.float32, np.int32]
    with pytest.raises(ConversionError, match=r"sample_input has keys \['a'\].*\['a', 'b'\]"):
        user_sample({"a": np.ones((2, 2))}, specs, ["a", "b"])
    with pytest.raises(ConversionError, match="sample_input has 1 arrays, but the model has 2"):
        user_sample([np.ones((2, 2))], specs, ["a", "b"])


def test_make_session_error_names_the_model() -> None:
    model = linear_model()
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(OnnxRuntimeLoadError, match="my_model: ONNX Runtime cannot load"):
        make_session(model, "my_model")


# ------------------------------------------------------------------ fp16


def test_fp16_keeps_float32_io_and_halves_weights() -> None:
    model = linear_model(hidden=300)
    half = to_fp16(model)
    assert {t.data_type for t in half.graph.initializer} == {TensorProto.FLOAT16}
    assert half.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert half.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    (y,) = _run(half, x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, linear_reference(model, x), rtol=1e-2, atol=1e-2)
    assert half.ByteSize() < 0.6 * model.ByteSize()
    assert model.graph.initializer[0].data_type == TensorProto.FLOAT  # source not modified


def test_fp16_casts_float_only_inputs_back_to_float32() -> None:
    model = linear_model(opset=15, scale_to=(1, 2))  # Resize `scales` must stay tensor(float)
    half = to_fp16(model)
    scales = next(t for t in half.graph.initializer if t.name == "scales")
    resize = next(n for n in half.graph.node if n.op_type == "Resize")
    producer = {o: n for n in half.graph.node for o in n.output}[resize.input[2]]
    assert producer.op_type == "Cast" and producer.input[0] == scales.name
    x = np.ones((2, 4), np.float32)
    _, big = _run(half, x)
    assert big.shape == (2, 6) and big.dtype == np.float32


def test_fp16_clips_weights_beyond_half_range(caplog: pytest.LogCaptureFixture) -> None:
    model = linear_model()
    big = onnx.numpy_helper.from_array(np.full((3,), 1e6, np.float32), "b")
    model.graph.initializer[1].CopyFrom(big)
    half = to_fp16(model)
    values = onnx.numpy_helper.to_array(half.graph.initializer[1])
    assert np.isfinite(values).all() and values.max() == np.float16(65504)
    assert "3 weight values were beyond float16's range" in caplog.text


# ------------------------------------------------------------------ graph edits


def test_rename_order_and_batch_names() -> None:
    model = linear_model(scale_to=(1, 2))
    model.graph.input[0].type.tensor_type.shape.dim[0].ClearField("dim_param")
    rename_tensors(model, {"x": "features", "y": "scores"})
    order_outputs(model, ["big", "scores"])
    name_batch_dims(model, ["features"])
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["big", "scores"]
    assert model.graph.input[0].name == "features"
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    big, scores = session.run(None, {"features": np.ones((2, 4), np.float32)})
    assert big.shape == (2, 6) and scores.shape == (2, 3)


def test_rename_clash_and_missing_output_are_errors() -> None:
    model = linear_model()
    with pytest.raises(ConversionError, match=r"cannot rename to \['z'\]"):
        rename_tensors(model, {"y": "z"})
    with pytest.raises(ConversionError, match=r"has no output\(s\) \['nope'\]; it has \['y'\]"):
        order_outputs(model, ["nope"])


@pytest.mark.parametrize("target", [17, 21])
def test_upgrade_opset_keeps_numbers(target: int) -> None:
    model = linear_model(opset=15)
    upgraded = upgrade_opset(model, target)
    assert next(i.version for i in upgraded.opset_import if i.domain == "") == target
    assert upgraded.ir_version >= onnx.helper.find_min_ir_version_for(list(upgraded.opset_import))
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(_run(upgraded, x)[0], linear_reference(model, x), rtol=1e-6)


def test_unsupported_ops_are_named() -> None:
    model = linear_model()
    erfc = helper.make_node("Erfc", ["y"], ["y2"])
    other = helper.make_node(
        "ScaleAndTranslate", ["y"], ["y3"], domain="ai.onnx.converters.tensorflow"
    )
    model.graph.node.extend([erfc, other])
    assert unsupported_ops(model) == {
        "Erfc": 1,
        "ScaleAndTranslate (domain ai.onnx.converters.tensorflow)": 1,
    }
    with pytest.raises(UnsupportedOpsError, match=r"m: tf2onnx could not convert.*Erfc x1") as info:
        raise_on_unsupported_ops(model, "m")
    assert info.value.ops["Erfc"] == 1
    assert unsupported_ops(linear_model()) == {}


# ------------------------------------------------------------------ saving and metadata


def test_save_with_external_data_round_trips(tmp_path: Path) -> None:
    model = linear_model(hidden=300)  # 4.8 kB of weights: over the 1 kB inline threshold
    path = save_model(model, tmp_path / "m.onnx", external=True)
    assert (tmp_path / "m.onnx.data").is_file()
    loaded = OnnxModel.from_path(path)
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(_run(loaded.proto, x)[0], linear_reference(model, x), rtol=1e-6)
    assert model.graph.initializer[0].raw_data  # the in-memory model still holds its weights
    plain = save_model(model, tmp_path / "p.onnx")
    assert not (tmp_path / "p.onnx.data").exists() and OnnxModel.from_path(plain).opset == 15


def test_metadata_written_and_read_back() -> None:
    model = linear_model()
    options = ConversionOptions(
        preprocessing={"size": [224, 224], "channel_order": "RGB"},
        labels=["cat", "dog"],
        extra={"team": "vision"},
    )
    info = SourceInfo("keras", "3.15.1", "keras-file", "m.keras")
    metadata.write(model, metadata.build(info, options, None, None))
    loaded = OnnxModel.from_bytes(model.SerializeToString())
    assert loaded.metadata[metadata.SOURCE_FRAMEWORK] == "keras"
    assert loaded.metadata[metadata.OPSET] == "15"
    assert json.loads(loaded.metadata[metadata.CONVERTER])["tf2onnx"] not in ("", None)
    assert loaded.metadata["team"] == "vision"
    assert metadata.preprocessing_of(loaded) == {"size": [224, 224], "channel_order": "RGB"}
    assert metadata.labels_of(loaded) == ["cat", "dog"]
    assert metadata.parity_of(loaded) is None
    metadata.write(model, {metadata.OPSET: "17"})  # replaces, does not duplicate
    assert [p.key for p in model.metadata_props].count(metadata.OPSET) == 1
    with pytest.raises(TypeError, match="expected an OnnxModel"):
        metadata.labels_of(42)


def test_sanitize_tf_name() -> None:
    assert sanitize_tf_name("input layer:0", []) == "input_layer"
    assert sanitize_tf_name("x", ["x", "x_1"]) == "x_2"
    assert sanitize_tf_name("_hidden", []) == "input__hidden"
