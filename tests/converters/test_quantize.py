"""int8 / fp16 quantization behind the accuracy gate: figures, refusals, calibration readers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from PIL import Image

from sparkonnx import testing
from sparkonnx.converters import metadata
from sparkonnx.converters.calibration import CalibrationError, CalibrationSet, load_calibration
from sparkonnx.converters.errors import ConversionError
from sparkonnx.converters.gate import (
    GateError,
    GateTolerance,
    choose_metric,
    judge,
    judge_output,
)
from sparkonnx.converters.quantize import normalize_mode, quantization_of, quantize
from sparkonnx.engine.model import OnnxModel
from sparkonnx.testing import as_nchw, small_classifier, smooth_images, write_images

SIZE = testing.CLASSIFIER_SIZE


def op_types(proto: onnx.ModelProto) -> set[str]:
    return {n.op_type for n in proto.graph.node}


def run(proto: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


# ------------------------------------------------------------------ static int8


def test_small_cnn_int8_from_image_folder_passes_gate_with_figures(tmp_path: Path) -> None:
    folder = write_images(tmp_path / "calib", smooth_images(64))
    source = small_classifier()
    result = quantize(source, folder, holdout=16, search=False, tolerance={"min_speedup": 0})

    gate = result.gate
    assert gate.passed and gate.rows == 16 and gate.calibration_rows == 48
    (out,) = gate.outputs
    assert out.metric == "top1"  # softmax rows: judged as a classifier
    assert out.value == out.top1_agreement and out.value >= 0.99
    assert out.mean_cosine is not None and out.mean_cosine > 0.99
    assert out.top1_margin_median is not None and out.top1_margin_median > 0.05  # not ties
    assert out.top1_classes is not None and out.top1_classes >= 2  # not one class for all
    print(f"\nsmall CNN: {gate.summary()}")

    proto = result.proto
    assert {"QuantizeLinear", "DequantizeLinear"} <= op_types(proto)
    int8_weights = [t for t in proto.graph.initializer if t.data_type == TensorProto.INT8]
    assert int8_weights, "weights must be stored as int8"
    per_channel = [
        t
        for t in proto.graph.initializer
        if "scale" in t.name and len(t.dims) == 1 and t.dims[0] > 1
    ]
    assert per_channel, "per-channel weight scales expected"
    # the I/O signature is unchanged: callers feed the same tensors
    assert OnnxModel.load(proto).describe() == OnnxModel.load(source).describe()

    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta[metadata.PRECISION] == "int8"
    record = quantization_of(proto)
    assert record is not None
    assert (
        record["gate"]["passed"] and record["gate"]["outputs"]["probabilities"]["metric"] == "top1"
    )
    assert record["source_sha256"] == OnnxModel.load(source).sha256 == result.source_sha256
    assert record["calibration"]["rows"] == 48 and record["per_channel"] is True
    assert record["calibration"]["identity"] == result.calibration_identity

    x = as_nchw(smooth_images(8, seed=5))
    np.testing.assert_allclose(run(proto, x), run(source, x), atol=0.05)
    assert result.model.sha256 != OnnxModel.load(source).sha256


def test_zero_calibration_is_refused_with_the_measured_agreement(tmp_path: Path) -> None:
    real = as_nchw(smooth_images(32, seed=1))
    with pytest.raises(GateError) as info:
        quantize(small_classifier(), np.zeros_like(real), validation=real)
    report = info.value.report
    assert not report.passed
    (out,) = report.outputs
    assert out.metric == "top1" and out.value < 0.99
    message = str(info.value)
    agree = round(out.value * report.rows)
    assert f"top-1 agreement {out.value:.4f} ({agree}/32 rows, " in message
    assert "< 0.99 required" in message
    assert "refused" in message and "representative" in message and "tolerance=" in message


def test_constant_calibration_without_gate_rows_is_an_error() -> None:
    with pytest.raises(CalibrationError, match="every value of the calibration data"):
        quantize(small_classifier(), np.zeros((20, 3, SIZE, SIZE), np.float32))


def test_static_int8_needs_calibration_data() -> None:
    with pytest.raises(ConversionError, match=r"static int8 needs calibration data.*--calibration"):
        quantize(small_classifier())


def test_tolerance_decides_the_verdict() -> None:
    x = as_nchw(smooth_images(24, seed=2))
    loose = {"top1": 0.5, "min_rows": 8, "min_speedup": 0}
    result = quantize(small_classifier(), x, holdout=8, search=False, tolerance=loose)
    assert result.gate.outputs[0].threshold == 0.5
    with pytest.raises(GateError, match=r"mean cosine similarity .* < 1 required"):
        quantize(
            small_classifier(),
            x,
            holdout=8,
            metric="cosine",
            tolerance={"top1": 1.0, "cosine": 1.0, "min_rows": 8},
        )


def test_already_quantized_model_is_not_quantized_again() -> None:
    x = as_nchw(smooth_images(16, seed=3))
    once = quantize(
        small_classifier(), x, holdout=4, search=False, tolerance={"min_rows": 4, "min_speedup": 0}
    )
    with pytest.raises(ConversionError, match="already a int8 model; quantize the fp32 model"):
        quantize(once.proto, x)


# ------------------------------------------------------------------ dynamic int8 and fp16


def test_dynamic_int8_mlp_passes_gate() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    result = quantize(testing.mlp(), x, mode="dynamic", search=False, tolerance={"min_speedup": 0})
    assert result.mode == "int8-dynamic"
    assert "DynamicQuantizeLinear" in op_types(result.proto) or "MatMulInteger" in op_types(
        result.proto
    )
    (out,) = result.gate.outputs
    assert out.metric == "cosine" and out.value >= 0.99 and result.gate.rows == 64
    assert result.gate.calibration_rows == 0  # nothing calibrated: every row gates
    assert quantization_of(result.proto)["mode"] == "int8-dynamic"  # type: ignore[index]


def test_fp16_keeps_io_types_and_passes_gate() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 256)).astype(np.float32)
    result = quantize(testing.mlp(), x, mode="fp16")
    assert any(t.data_type == TensorProto.FLOAT16 for t in result.proto.graph.initializer)
    model = result.model
    assert [s.dtype for s in model.inputs] == [np.float32]
    assert [s.dtype for s in model.outputs] == [np.float32]
    assert result.gate.passed and result.gate.outputs[0].max_rel_error < 1e-2
    assert model.metadata[metadata.PRECISION] == "fp16"


def test_fp16_without_data_gates_on_random_rows(caplog: pytest.LogCaptureFixture) -> None:
    result = quantize(testing.mlp(), mode="fp16")
    assert result.gate.sample == "random inputs" and result.gate.rows == 16
    assert "say little about real data" in caplog.text


def test_unknown_mode_lists_the_allowed_ones() -> None:
    allowed = r"mode must be one of 'int8', 'int8-static', 'int8-dynamic', 'fp16'.*got 'int4'"
    with pytest.raises(ValueError, match=allowed):
        quantize(testing.mlp(), mode="int4")
    assert normalize_mode("dynamic") == "int8-dynamic"
    assert normalize_mode("FP16") == "fp16"


# ------------------------------------------------------------------ the gate's maths


def test_metric_choice() -> None:
    probs = np.full((4, 5), 0.2, np.float32)
    features = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    assert choose_metric(probs, has_labels=False) == "top1"
    assert choose_metric(features, has_labels=False) == "cosine"
    assert choose_metric(features, has_labels=True) == "top1"  # logits of a labelled model
    assert choose_metric(np.zeros(4, np.float32), has_labels=False) == "max_rel"
    assert choose_metric(features, has_labels=False, asked="max_abs") == "max_rel"
    with pytest.raises(ValueError, match="metric 'top1' needs an output with classes"):
        choose_metric(np.zeros(4, np.float32), has_labels=False, asked="top1")


def test_labels_make_only_outputs_of_their_width_top1() -> None:
    """A zoo graph stores 1000 ImageNet labels; its 1024-wide features are still cosine."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 10)).astype(np.float32)
    features = rng.standard_normal((6, 12)).astype(np.float32)
    report = judge(
        "int8",
        ["logits", "features"],
        [logits, features],
        [logits, features],
        GateTolerance.of(None),
        has_labels=True,
        label_count=10,
    )
    assert [(o.name, o.metric) for o in report.outputs] == [
        ("logits", "top1"),
        ("features", "cosine"),
    ]


def test_judge_output_figures() -> None:
    e = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    a = np.array([[0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.3, 0.7]])  # row 2 flips
    out = judge_output("p", e, a, "top1", GateTolerance())
    assert out.top1_agreement == pytest.approx(0.75) and not out.passed
    assert out.max_abs_error == pytest.approx(0.2) and out.max_rel_error == pytest.approx(0.2 / 0.9)
    assert out.top1_margin_median == pytest.approx(np.median([0.8, 0.6, 0.2, 0.4]))
    err = judge_output("y", np.array([1.0, 2.0]), np.array([1.0, 2.05]), "max_rel", GateTolerance())
    assert err.value == pytest.approx(0.025) and err.passed
    nan = judge_output("y", e, np.full_like(e, np.nan), "cosine", GateTolerance(cosine=0.0))
    assert not nan.passed  # NaNs never pass


def test_tolerance_forms() -> None:
    assert GateTolerance.of(None) == GateTolerance()
    assert GateTolerance.of(0.95) == GateTolerance(top1=0.95, cosine=0.95)
    assert GateTolerance.of({"max_rel": 0.1}).max_rel == 0.1
    with pytest.raises(ValueError, match=r"unknown tolerance key\(s\) \['top5'\]"):
        GateTolerance.of({"top5": 0.9})
    with pytest.raises(ValueError, match="give a number from 0 to 1"):
        GateTolerance.of(1.5)


# ------------------------------------------------------------------ calibration readers


@pytest.fixture()
def cnn() -> OnnxModel:
    return OnnxModel.load(small_classifier())


def test_npy_npz_and_parquet_readers(tmp_path: Path, cnn: OnnxModel) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = as_nchw(smooth_images(6))
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", image=x)
    flat = pa.array(list(x.reshape(6, -1)), type=pa.list_(pa.float32()))
    pq.write_table(pa.table({"pixels": flat}), tmp_path / "x.parquet")
    sets = [load_calibration(tmp_path / f"x.{ext}", cnn) for ext in ("npy", "npz", "parquet")]
    for s in sets:
        np.testing.assert_array_equal(s.arrays["image"], x)
    assert len({s.identity for s in sets}) == 1  # identity is the content, not the file
    assert load_calibration(x[:3], cnn).identity != sets[0].identity


def test_image_folder_layout_size_and_channel_order(tmp_path: Path) -> None:
    images = smooth_images(3, size=40)
    folder = write_images(tmp_path / "imgs", images)
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    nchw = load_calibration(folder, OnnxModel.load(small_classifier()))
    assert nchw.arrays["image"].shape == (3, 3, SIZE, SIZE)  # resized to the model's input
    nhwc_model = testing.tiny_cnn(channels=3, size=8)  # NCHW too; build an NHWC one by hand
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 40, 40, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 40, 40, 3])],
    )
    nhwc = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    nhwc.ir_version = 9
    metadata.write(nhwc, {metadata.PREPROCESSING: json.dumps({"channel_order": "BGR"})})
    loaded = load_calibration(folder, OnnxModel.load(nhwc)).arrays["x"]
    np.testing.assert_array_equal(loaded, images[..., ::-1].astype(np.float32))  # BGR, as is
    assert nhwc_model is not None


def test_image_folder_feeds_a_fused_uint8_zoo_style_input(tmp_path: Path) -> None:
    """uint8 BGR [N, H, W, 3] of any size (the zoo's fused graphs): resized to the stored
    input_size, kept uint8, as ImageTransformer feeds it."""
    images = smooth_images(3, size=40)
    folder = write_images(tmp_path / "imgs", images)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["y"])],
        "fused",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, ["N", "H", "W", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    spec = {"fused": True, "layout": "NHWC", "channel_order": "BGR", "dtype": "uint8"}
    metadata.write(model, {metadata.PREPROCESSING: json.dumps({**spec, "input_size": [16, 16]})})
    x = load_calibration(folder, OnnxModel.load(model)).arrays["image"]
    assert x.dtype == np.uint8 and x.shape == (3, 16, 16, 3)
    expected = [
        np.asarray(Image.fromarray(img).resize((16, 16), Image.Resampling.BILINEAR))[..., ::-1]
        for img in images
    ]
    np.testing.assert_allclose(x, np.stack(expected), atol=1)


def test_calibration_errors_say_what_to_give(tmp_path: Path, cnn: OnnxModel) -> None:
    with pytest.raises(CalibrationError, match=r"has shape \[4, 3, 8, 8\].*image: float32"):
        load_calibration(np.zeros((4, 3, 8, 8), np.float32), cnn)
    with pytest.raises(CalibrationError, match=r"has arrays \['x'\].*inputs are \['image'\]"):
        load_calibration({"x": np.zeros((4, 3, SIZE, SIZE))}, cnn)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CalibrationError, match="no images"):
        load_calibration(tmp_path / "empty", cnn)
    with pytest.raises(FileNotFoundError, match="calibration data not found"):
        load_calibration(tmp_path / "missing.npy", cnn)
    with pytest.raises(CalibrationError, match="not supported; give a folder of images"):
        load_calibration(42, cnn)  # type: ignore[arg-type]


def test_split_is_seeded_and_disjoint() -> None:
    x = np.arange(20, dtype=np.float32).reshape(20, 1)
    s = CalibrationSet({"x": x})
    calib, held = s.split(0.25, seed=3)
    assert (calib.rows, held.rows) == (15, 5)
    assert not set(calib.arrays["x"].ravel()) & set(held.arrays["x"].ravel())
    assert held.identity == s.split(0.25, seed=3)[1].identity
    assert held.identity != s.split(0.25, seed=4)[1].identity
    with pytest.raises(CalibrationError, match="at least 2 rows"):
        CalibrationSet({"x": x[:1]}).split(0.25)
    limited = load_calibration(CalibrationSet({"x": x}), OnnxModel.load(_identity_1d()), limit=7)
    assert limited.rows == 7


def _identity_1d() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "id",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


# ------------------------------------------------------------------ zoo size (slow)


@pytest.mark.slow
def test_zoo_resnet50_weights_none_int8_passes_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The zoo's fused ResNet50 graph (weights=None, seed 0) on real photo crops: features and
    probabilities gated against fp32, figures stored."""
    from sparkonnx.model_zoo.build import build_model

    monkeypatch.setenv("SPARKONNX_CACHE", str(tmp_path))
    x = testing.photo_crops(64, seed=0)  # uint8 BGR: what the fused graph takes
    result = quantize(build_model("ResNet50", None, progress=False), x, holdout=16)
    by_name = {o.name: o for o in result.gate.outputs}
    assert result.gate.passed
    assert by_name["features"].metric == "cosine" and by_name["features"].value >= 0.99
    assert by_name["probabilities"].metric == "top1" and by_name["probabilities"].value >= 0.99
    print(f"\nzoo ResNet50(weights=None, seed 0): {result.gate.summary()}")
    probs = by_name["probabilities"]
    # random weights: fp32 puts (nearly) every image in one confident class, so top-1 agreement
    # proves little; the gate reports that count, and the features' cosine is the real check
    assert probs.top1_classes is not None and probs.top1_margin_median is not None
    print(
        f"fp32: {probs.top1_classes} class(es), top-1 margin median {probs.top1_margin_median:.3f}"
    )
    assert quantization_of(result.proto)["gate"]["passed"]  # type: ignore[index]


def test_seven_bit_weights_come_first_only_on_x86_cpus_without_vnni() -> None:
    from sparkonnx.engine.cpu_features import parse_cpuinfo

    assert parse_cpuinfo("processor : 0\nflags : fpu sse2 avx2 fma\n", "x86_64").int8_overflow_risk
    assert not parse_cpuinfo("flags : avx2 avx512f avx512_vnni\n", "x86_64").int8_overflow_risk
    assert not parse_cpuinfo("flags : avx2 avx_vnni\n", "x86_64").int8_overflow_risk
    assert not parse_cpuinfo("flags : fp asimd\n", "aarch64").int8_overflow_risk
