"""Keras 3 sources: objects, .keras, .h5 (Keras 3 and Keras-2 layouts), safe_mode, options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from sparkonnx.converters import (  # noqa: E402
    ConversionError,
    ConversionOptions,
    UnsafeModelError,
    convert,
    from_keras,
    parity_of,
    preprocessing_of,
)


def _session(result) -> ort.InferenceSession:  # type: ignore[no-untyped-def]
    return ort.InferenceSession(result.model.model_bytes, providers=["CPUExecutionProvider"])


def _dense() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((4,), name="features"),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(3, activation="softmax", name="probs"),
        ]
    )


def _cnn() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((16, 16, 3), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(4, 3, strides=2)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(5, name="logits")(x))
    # non-trivial moving statistics, so inference-mode BatchNorm is really exercised
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(np.linspace(-0.5, 0.5, n).astype("float32"))
            layer.moving_variance.assign(np.linspace(0.5, 2.0, n).astype("float32"))
    return model


def test_dense_sequential_parity_and_signature() -> None:
    model = _dense()
    result = convert(model)
    assert result.parity is not None and result.parity.passed
    assert result.parity.max_abs_error < 1e-6
    assert [s.name for s in result.signature.inputs] == ["features"]
    assert [s.name for s in result.signature.outputs] == ["probs"]
    assert result.signature.inputs[0].shape == ("batch", 4)
    assert result.source.form == "keras-model" and result.source.framework == "keras"
    x = np.random.default_rng(5).normal(size=(7, 4)).astype(np.float32)
    (y,) = _session(result).run(None, {"features": x})
    np.testing.assert_allclose(y, model(x).numpy(), atol=1e-6)
    meta = result.model.metadata
    assert meta["sparkonnx.source.framework_version"] == keras.__version__
    assert parity_of(result.model)["passed"] is True


def test_cnn_with_batchnorm_parity() -> None:
    model = _cnn()
    result = from_keras(model)
    assert result.parity is not None and result.parity.passed
    assert result.parity.sample_shapes == {"image": (2, 16, 16, 3)}
    assert result.parity.max_abs_error < 1e-5
    x = np.random.default_rng(9).uniform(0, 1, (3, 16, 16, 3)).astype(np.float32)
    (y,) = _session(result).run(None, {"image": x})
    np.testing.assert_allclose(y, model(x, training=False).numpy(), atol=1e-5)
    assert set(result.timings) >= {"tf2onnx", "check", "parity", "metadata"}


def test_multi_input_multi_output_dict_model() -> None:
    keras.utils.set_random_seed(2)
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    model = keras.Model(
        {"b": b, "a": a},
        {"score": keras.layers.Dense(1, name="s")(joined), "embed": keras.layers.Dense(4)(a)},
    )
    result = convert(model)
    assert result.parity is not None and result.parity.passed
    assert sorted(s.name for s in result.signature.inputs) == ["a", "b"]
    assert [s.name for s in result.signature.outputs] == ["embed", "score"]
    xa = np.ones((3, 3), np.float32)
    xb = np.full((3, 2), 0.5, np.float32)
    embed, score = _session(result).run(None, {"a": xa, "b": xb})
    want = model({"a": xa, "b": xb})
    np.testing.assert_allclose(score, want["score"].numpy(), atol=1e-6)
    np.testing.assert_allclose(embed, want["embed"].numpy(), atol=1e-6)


def test_multi_output_list_model_keeps_keras_order_and_renames() -> None:
    keras.utils.set_random_seed(3)
    x = keras.Input((4,), name="x")
    h = keras.layers.Dense(6, activation="tanh")(x)
    model = keras.Model(
        x, [keras.layers.Dense(2, name="zeta")(h), keras.layers.Dense(1, name="alpha")(h)]
    )
    result = convert(model)
    assert [s.name for s in result.signature.outputs] == ["zeta", "alpha"]
    renamed = convert(model, input_names=["inp"], output_names=["first", "second"])
    assert [s.name for s in renamed.signature.inputs] == ["inp"]
    assert [s.name for s in renamed.signature.outputs] == ["first", "second"]
    first, second = _session(renamed).run(None, {"inp": np.ones((1, 4), np.float32)})
    assert first.shape == (1, 2) and second.shape == (1, 1)
    with pytest.raises(ConversionError, match=r"1 output name\(s\) \['only'\] given.*has 2 output"):
        convert(model, output_names=["only"])


def test_gelu_converts_through_our_erfc_handler() -> None:
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, activation="gelu"), keras.layers.Dense(2)]
    )
    result = convert(model)
    ops = {n.op_type for n in result.proto.graph.node}
    assert "Erfc" not in ops and "Erf" in ops
    assert result.parity is not None and result.parity.passed
    assert result.parity.max_abs_error < 1e-5


def test_subclassed_model_needs_shapes_then_converts() -> None:
    class Net(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.hidden = keras.layers.Dense(4, activation="relu")
            self.out = keras.layers.Dense(2)

        def call(self, x):  # type: ignore[no-untyped-def]
            return self.out(self.hidden(x))

    keras.utils.set_random_seed(5)
    model = Net()
    model(np.zeros((1, 3), np.float32))
    with pytest.raises(
        ConversionError, match=r"'net' \(Net\) has no defined inputs.*input_shapes="
    ):
        convert(model)
    result = convert(model, input_shapes={"x": (None, 3)})
    assert result.parity is not None and result.parity.passed
    assert result.signature.inputs[0].name == "x"
    sample = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    by_sample = convert(model, sample_input=sample)
    assert by_sample.parity is not None and by_sample.parity.sample_kind == "user"
    assert by_sample.parity.sample_shapes == {"x": (4, 3)}


def test_keras_and_h5_files(tmp_path: Path) -> None:
    model = _dense()
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    for name, form in [("m.keras", "keras-file"), ("m.h5", "h5")]:
        result = convert(tmp_path / name)
        assert result.source.form == form and result.source.name == name
        assert result.parity is not None and result.parity.passed
        (y,) = _session(result).run(None, {result.signature.inputs[0].name: x})
        np.testing.assert_allclose(y, model(x).numpy(), atol=1e-6)


def _write_keras2_h5(path: Path, k1, b1, k2, b2) -> None:  # type: ignore[no-untyped-def]
    """An .h5 in the layout Keras 2 / tf_keras writes (config keys, ':0' weight names)."""
    import h5py

    def dense(name: str, units: int, activation: str) -> dict:
        return {
            "class_name": "Dense",
            "config": {
                "name": name, "trainable": True, "dtype": "float32", "units": units,
                "activation": activation, "use_bias": True,
                "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                "bias_initializer": {"class_name": "Zeros", "config": {}},
                "kernel_regularizer": None, "bias_regularizer": None,
                "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None,
            },
        }  # fmt: skip

    config = {
        "class_name": "Sequential",
        "config": {
            "name": "sequential",
            "layers": [
                {
                    "class_name": "InputLayer",
                    "config": {"batch_input_shape": [None, 4], "dtype": "float32",
                               "sparse": False, "ragged": False, "name": "dense_input"},
                },
                dense("dense", 3, "relu"),
                dense("dense_1", 2, "softmax"),
            ],
        },
    }  # fmt: skip
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.15.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        weights = f.create_group("model_weights")
        weights.attrs["layer_names"] = [b"dense", b"dense_1"]
        weights.attrs["backend"] = b"tensorflow"
        weights.attrs["keras_version"] = b"2.15.0"
        for name, (kernel, bias) in {"dense": (k1, b1), "dense_1": (k2, b2)}.items():
            group = weights.create_group(name)
            group.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            group.create_dataset(f"{name}/kernel:0", data=kernel)
            group.create_dataset(f"{name}/bias:0", data=bias)


def test_h5_written_in_keras2_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    k1, b1 = rng.normal(size=(4, 3)).astype("f4"), rng.normal(size=3).astype("f4")
    k2, b2 = rng.normal(size=(3, 2)).astype("f4"), rng.normal(size=2).astype("f4")
    _write_keras2_h5(tmp_path / "k2.h5", k1, b1, k2, b2)
    result = convert(tmp_path / "k2.h5")
    assert result.parity is not None and result.parity.passed
    x = rng.normal(size=(5, 4)).astype(np.float32)
    logits = np.maximum(x @ k1 + b1, 0) @ k2 + b2
    want = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    (y,) = _session(result).run(None, {result.signature.inputs[0].name: x})
    np.testing.assert_allclose(y, want, atol=1e-5)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_refused_unless_allowed(tmp_path: Path, suffix: str) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t * 2.0 + 1.0)])
    path = tmp_path / f"lam{suffix}"
    model.save(path)
    with pytest.raises(UnsafeModelError, match=r"Lambda layer.*allow_unsafe=True.*--allow-unsafe"):
        convert(path)
    result = convert(path, allow_unsafe=True)
    (y,) = _session(result).run(None, {result.signature.inputs[0].name: np.ones((1, 3), "f4")})
    np.testing.assert_allclose(y, np.full((1, 3), 3.0))


def test_missing_and_broken_keras_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"Keras model file not found: .*nope\.keras"):
        convert(tmp_path / "nope.keras")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(ConversionError, match=r"bad\.keras: Keras could not load the model"):
        convert(tmp_path / "bad.keras")


def test_fp16_keeps_io_types_and_reports_parity() -> None:
    result = convert(_cnn(), fp16=True)
    assert result.fp16_parity is not None and result.fp16_parity.passed
    assert result.fp16_parity.precision == "fp16"
    assert 0 < result.fp16_parity.max_abs_error < 1e-2  # really computed in half precision
    assert result.parity is not None and result.parity.max_abs_error < 1e-5
    assert result.signature.inputs[0].dtype == np.float32
    assert result.signature.outputs[0].dtype == np.float32
    floats = {t.data_type for t in result.proto.graph.initializer if t.data_type in (1, 10)}
    assert floats == {onnx.TensorProto.FLOAT16}
    assert result.model.metadata["sparkonnx.precision"] == "fp16"


def test_fp16_refused_when_out_of_tolerance() -> None:
    from sparkonnx.converters import ParityError

    with pytest.raises(ParityError, match=r"fp16 parity FAILED.*keep float32") as info:
        convert(_cnn(), fp16=True, fp16_tolerance=1e-7)
    assert info.value.report.precision == "fp16"


def test_opset_above_18_is_upgraded() -> None:
    result = convert(_dense(), opset=21)
    assert result.model.opset == 21
    assert result.parity is not None and result.parity.passed
    assert result.model.metadata["sparkonnx.opset"] == "21"


def test_large_model_path_works_with_numpy2() -> None:
    result = convert(_cnn(), large_model=True)
    assert result.parity is not None and result.parity.passed
    assert not hasattr(np, "product")  # our alias is removed again afterwards


def test_dynamic_batch_and_input_shape_override() -> None:
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((4,), batch_size=1), keras.layers.Dense(2)])
    dynamic = convert(model)
    assert dynamic.signature.inputs[0].shape[0] == "batch"
    fixed = convert(model, dynamic_batch=False)
    assert fixed.signature.inputs[0].shape == (1, 4)
    assert fixed.parity is not None and fixed.parity.sample_shapes[
        fixed.signature.inputs[0].name
    ] == (1, 4)
    with pytest.raises(ConversionError, match=r"input_shapes names \['nope'\].*not inputs"):
        convert(model, input_shapes={"nope": (None, 4)})


def test_metadata_preprocessing_and_labels() -> None:
    spec = {"size": [4], "mean": [0.0], "std": [1.0]}
    result = convert(_dense(), preprocessing=spec, labels=["a", "b", "c"])
    assert preprocessing_of(result.model) == spec
    assert json.loads(result.model.metadata["sparkonnx.labels"]) == ["a", "b", "c"]


def test_options_object_and_overrides_combine() -> None:
    options = ConversionOptions(opset=17, tolerance=5e-4)
    result = from_keras(_dense(), options, labels=["x", "y", "z"])
    assert result.options.opset == 17 and result.options.tolerance == 5e-4
    assert result.model.opset == 17
    assert result.parity is not None and result.parity.tolerance == 5e-4


def test_no_check_skips_parity_but_still_loads() -> None:
    result = convert(_dense(), check=False)
    assert result.parity is None
    assert "sparkonnx.parity" not in result.model.metadata


def test_source_model_is_not_modified() -> None:
    model = _cnn()
    before = [w.numpy().copy() for w in model.weights]
    convert(model, fp16=True)
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_save_round_trip(tmp_path: Path) -> None:
    result = convert(_dense())
    path = result.save(tmp_path / "dense.onnx")
    assert path.read_bytes() == result.model.model_bytes
    assert not result.is_large


def test_progress_bar_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    convert(_dense(), progress=True)
    assert "converting sequential" in capsys.readouterr().err
    convert(_dense(), progress=False)
    assert "converting" not in capsys.readouterr().err


def test_models_over_2gb_are_saved_with_external_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sparkonnx.converters import result as result_module
    from sparkonnx.converters import saving

    converted = convert(_cnn())
    monkeypatch.setattr(result_module, "weights_size", lambda proto: 3 * 2**30)
    monkeypatch.setattr(saving, "_data_size", lambda proto: 3 * 2**30)
    assert converted.is_large
    with pytest.raises(ValueError, match=r"3\.0 GB of weights, over protobuf's 2 GB limit.*save"):
        converted.model  # noqa: B018
    path = converted.save(tmp_path / "big.onnx")
    assert (tmp_path / "big.onnx.data").stat().st_size > 1000
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"image": np.zeros((1, 16, 16, 3), np.float32)})
    assert y.shape == (1, 5)


def test_python_control_flow_on_tensors_is_explained() -> None:
    class Gate(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):  # type: ignore[no-untyped-def]
            y = self.dense(x)
            if keras.ops.sum(x) > 0:  # Python `if` on a tensor: not traceable in Keras 3
                y = y * 2.0
            return y

    model = Gate()
    model(np.ones((1, 3), np.float32))
    with pytest.raises(ConversionError, match=r"tracing the model.*bool.*keras\.ops\.cond") as info:
        convert(model, input_shapes={"x": (None, 3)})
    assert "\x1b[" not in str(info.value)
