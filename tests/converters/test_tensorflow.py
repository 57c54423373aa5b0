"""TensorFlow sources: SavedModel, tf.function, ConcreteFunction, GraphDef, Session, checkpoint;
and the traps tf2onnx leaves open (area / bicubic / antialias resize)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from sparkonnx.converters import (  # noqa: E402
    ConversionError,
    OnnxRuntimeLoadError,
    ParityError,
    SignatureError,
    UnsupportedOpsError,
    UnsupportedSourceError,
    convert,
    from_checkpoint,
    from_function,
    from_graph_def,
    from_saved_model,
)


def _run(result, feeds):  # type: ignore[no-untyped-def]
    session = ort.InferenceSession(result.model.model_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


class _Scorer(tf.Module):
    """Two tensor inputs, a dict of two outputs, variables."""

    def __init__(self) -> None:
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = tf.Variable(rng.normal(size=(3, 2)).astype("f4"))
        self.b = tf.Variable(rng.normal(size=(2,)).astype("f4"))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 3], tf.float32, name="features"),
            tf.TensorSpec([None], tf.float32, name="weight"),
        ]
    )
    def score(self, features, weight):  # type: ignore[no-untyped-def]
        logits = tf.matmul(features, self.w) + self.b
        return {"logits": logits, "weighted": tf.reduce_sum(logits, 1) * weight}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sm") / "scorer"
    module = _Scorer()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.score, "alt": module.score}
    )
    return path


def test_saved_model_with_dict_signature(saved_model: Path) -> None:
    result = from_saved_model(saved_model)
    assert result.parity is not None and result.parity.passed
    assert [s.name for s in result.signature.inputs] == ["features", "weight"]
    assert [s.name for s in result.signature.outputs] == ["logits", "weighted"]
    assert result.source.form == "saved_model" and result.source.name == "scorer[serving_default]"
    x = np.ones((2, 3), np.float32)
    w = np.array([1.0, 2.0], np.float32)
    logits, weighted = _run(result, {"features": x, "weight": w})
    want = tf.saved_model.load(str(saved_model)).signatures["serving_default"](features=x, weight=w)
    np.testing.assert_allclose(logits, want["logits"].numpy(), atol=1e-6)
    np.testing.assert_allclose(weighted, want["weighted"].numpy(), atol=1e-6)


def test_saved_model_signature_choice_and_errors(saved_model: Path) -> None:
    assert convert(saved_model, signature="alt").source.name == "scorer[alt]"
    assert convert(saved_model / "saved_model.pb").source.form == "saved_model"
    with pytest.raises(
        SignatureError, match=r"no signature 'nope'.*\['alt', 'serving_default'\].*--signature"
    ):
        convert(saved_model, signature="nope")


def test_keras_export_saved_model(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5,), name="x"), keras.layers.Dense(2, name="y")])
    model.export(str(tmp_path / "exported"), verbose=False)
    result = convert(tmp_path / "exported")
    assert result.parity is not None and result.parity.passed
    x = np.ones((3, 5), np.float32)
    (y,) = _run(result, {result.signature.inputs[0].name: x})
    np.testing.assert_allclose(y, model(x).numpy(), atol=1e-6)


def test_tf_function_with_dynamic_height_width() -> None:
    kernel = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 4)).astype("f4"))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="image")])
    def features(image):  # type: ignore[no-untyped-def]
        conv = tf.nn.relu(tf.nn.conv2d(image, kernel, strides=1, padding="SAME"))
        return {"pooled": tf.reduce_mean(conv, axis=[1, 2]), "map": conv}

    result = from_function(features)
    assert result.parity is not None and result.parity.passed
    assert result.parity.sample_shapes == {"image": (2, 32, 32, 3)}
    image_spec = result.signature.inputs[0]
    assert image_spec.shape[0] == "batch" and not isinstance(image_spec.shape[1], int)
    for h, w in [(20, 12), (7, 41)]:  # sizes the parity sample never saw
        x = np.random.default_rng(h).normal(size=(1, h, w, 3)).astype(np.float32)
        feature_map, pooled = _run(result, {"image": x})
        want = features(x)
        np.testing.assert_allclose(pooled, want["pooled"].numpy(), atol=1e-5)
        assert feature_map.shape == (1, h, w, 4)


def test_concrete_function_and_unsigned_function() -> None:
    @tf.function
    def double(x):  # type: ignore[no-untyped-def]
        return x * 2.0 + 1.0

    with pytest.raises(ConversionError, match=r"'double' has no input_signature.*input_shapes="):
        from_function(double)
    concrete = double.get_concrete_function(tf.TensorSpec([None, 3], tf.float32, name="v"))
    result = convert(concrete)
    assert [s.name for s in result.signature.outputs] == ["output"]
    assert result.signature.inputs[0].name == "v"
    (y,) = _run(result, {"v": np.ones((2, 3), np.float32)})
    np.testing.assert_allclose(y, np.full((2, 3), 3.0))
    shaped = from_function(double, input_shapes={"x": (None, 2)})
    assert shaped.parity is not None and shaped.parity.passed


def _frozen_graph_def():  # type: ignore[no-untyped-def]
    graph = tf.Graph()
    rng = np.random.default_rng(1)
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.constant(rng.normal(size=(4, 3)).astype("f4"))
        tf.nn.softmax(tf.matmul(x, w), name="probs")
    return graph.as_graph_def()


def test_frozen_graph_def_object_and_pb_file(tmp_path: Path) -> None:
    graph_def = _frozen_graph_def()
    result = from_graph_def(graph_def, output_names=["probs"])
    assert result.parity is not None and result.parity.passed
    assert [s.name for s in result.signature.inputs] == ["x"]  # ':0' dropped
    assert [s.name for s in result.signature.outputs] == ["probs"]
    (tmp_path / "frozen.pb").write_bytes(graph_def.SerializeToString())
    from_file = convert(tmp_path / "frozen.pb", input_names=["x:0"], output_names=["probs:0"])
    assert from_file.parity is not None and from_file.parity.passed
    assert from_file.source.name == "frozen.pb"
    (probs,) = _run(from_file, {"x": np.ones((2, 4), np.float32)})
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_graph_def_errors() -> None:
    graph_def = _frozen_graph_def()
    with pytest.raises(SignatureError, match=r"no declared outputs.*output_names.*\['probs:0'\]"):
        from_graph_def(graph_def)
    with pytest.raises(SignatureError, match=r"no tensor\(s\) \['nope:0'\]"):
        from_graph_def(graph_def, output_names=["nope"])


def _variable_graph():  # type: ignore[no-untyped-def]
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        v = tf.compat.v1.get_variable(
            "v", initializer=np.array([[1.0, 2.0], [3.0, 4.0]], np.float32), use_resource=False
        )
        tf.identity(tf.matmul(x, v) + 1.0, name="y")
        init = tf.compat.v1.global_variables_initializer()
    return graph, init


def test_unfrozen_graph_def_is_refused_and_session_is_frozen_first() -> None:
    graph, init = _variable_graph()
    with pytest.raises(ConversionError, match=r"not frozen \(it has variables \['v'\]\).*Session"):
        from_graph_def(graph.as_graph_def(), output_names=["y"])
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(init)
        result = convert(session, output_names=["y"])
    assert result.source.form == "session"
    (y,) = _run(result, {"x": np.array([[1.0, 1.0]], np.float32)})
    np.testing.assert_allclose(y, [[5.0, 7.0]])


def test_checkpoint_with_meta_graph(tmp_path: Path) -> None:
    graph, init = _variable_graph()
    with graph.as_default(), tf.compat.v1.Session(graph=graph) as session:
        session.run(init)
        tf.compat.v1.train.Saver().save(session, str(tmp_path / "model.ckpt"))
    for source in (tmp_path / "model.ckpt", tmp_path / "model.ckpt.meta", tmp_path):
        result = convert(source, output_names=["y"])
        assert result.source.form == "checkpoint"
        assert result.parity is not None and result.parity.passed
        (y,) = _run(result, {"x": np.array([[1.0, 0.0]], np.float32)})
        np.testing.assert_allclose(y, [[2.0, 3.0]])
    with pytest.raises(FileNotFoundError, match=r"model\.ckpt\.meta is missing"):
        (tmp_path / "model.ckpt.meta").unlink()
        from_checkpoint(tmp_path / "model.ckpt", output_names=["y"])


def _resize_function(method: str, size: tuple[int, int], antialias: bool = False):  # type: ignore[no-untyped-def]
    @tf.function(input_signature=[tf.TensorSpec([None, 16, 16, 3], tf.float32, name="image")])
    def resize(image):  # type: ignore[no-untyped-def]
        return tf.image.resize(image, size, method=method, antialias=antialias)

    return resize


def test_area_resize_is_caught_by_parity() -> None:
    with pytest.raises(
        ParityError, match=r"fp32 parity FAILED: max abs error .*'area' resize"
    ) as info:
        from_function(_resize_function("area", (6, 6)))
    assert info.value.report.max_abs_error > 1e-2


def test_bicubic_downscale_fails_at_run_time() -> None:
    with pytest.raises(OnnxRuntimeLoadError, match=r"ONNX Runtime.*'Cubic' mode only supports"):
        from_function(_resize_function("bicubic", (6, 6)))


def test_antialias_resize_names_the_unconverted_op() -> None:
    with pytest.raises(
        UnsupportedOpsError, match=r"could not convert these TensorFlow ops.*ScaleAndTranslate x1"
    ) as info:
        from_function(_resize_function("bilinear", (6, 6), antialias=True))
    assert "ScaleAndTranslate" in info.value.ops


def test_bilinear_upscale_converts() -> None:
    result = from_function(_resize_function("bilinear", (24, 24)))
    assert result.parity is not None and result.parity.passed


def test_convert_dispatch_errors(tmp_path: Path) -> None:
    with pytest.raises(
        UnsupportedSourceError, match=r"cannot convert a builtins\.int.*Keras model object"
    ):
        convert(42)
    (tmp_path / "m.onnx").write_bytes(b"")
    with pytest.raises(UnsupportedSourceError, match=r"already an ONNX model.*sparkonnx inspect"):
        convert(tmp_path / "m.onnx")
    with pytest.raises(FileNotFoundError, match="model source not found"):
        convert(tmp_path / "missing_dir")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UnsupportedSourceError, match=r"notes\.txt: not a model source"):
        convert(tmp_path / "notes.txt")
    with pytest.raises(UnsupportedSourceError, match=r"from_function expects a tf\.function"):
        from_function(lambda x: x)


def test_saved_model_without_signatures(tmp_path: Path) -> None:
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "bare"))
    with pytest.raises(SignatureError, match=r"no signatures to convert.*model\.export"):
        convert(tmp_path / "bare")
