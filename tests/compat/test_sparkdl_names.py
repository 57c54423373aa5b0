"""sparkdl's module paths and helpers: thin aliases, light imports, TF1 graph utilities, imageIO."""

from __future__ import annotations

import importlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

ALIASES = {
    "sparkonnx.image.imageIO": "sparkonnx.compat.image_io",
    "sparkonnx.graph.utils": "sparkonnx.compat.tf_graph",
    "sparkonnx.graph.input": "sparkonnx.spark_api.transformers.tf_input_graph",
    "sparkonnx.transformers.utils": "sparkonnx.compat.tf_graph",
    "sparkonnx.udf.keras_image_model": "sparkonnx.spark_api.sql",
    "sparkonnx.estimators.keras_image_file_estimator": (
        "sparkonnx.spark_api.training.keras_image_estimator"
    ),
}


def test_sparkdl_paths_import_without_tensorflow():
    code = (
        "import importlib, json, sys\n"
        f"for name in {sorted(ALIASES)!r}: importlib.import_module(name)\n"
        "print(json.dumps([m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_modules_hold_the_one_implementation(alias):
    module, home = importlib.import_module(alias), importlib.import_module(ALIASES[alias])
    assert module.__doc__ and "sparkdl" in module.__doc__
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is getattr(home, name), name


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_imageio_decoders_give_bgr_arrays():
    from sparkonnx.image import imageIO

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(imageIO.PIL_decode(_png(rgb)), rgb[..., ::-1])
    resized = imageIO.PIL_decode_and_resize((4, 3))(_png(rgb))  # Pillow's (width, height)
    assert resized.shape == (3, 4, 3)
    np.testing.assert_array_equal(imageIO.PIL_to_imageStruct(Image.fromarray(rgb)), rgb[..., ::-1])
    with pytest.raises(ValueError, match=r"\(width, height\) with positive values"):
        imageIO.PIL_decode_and_resize((0, 3))


def test_imageio_image_types():
    from sparkonnx.image import imageIO

    assert imageIO.imageTypeByOrdinal(16) == ("CV_8UC3", 16, 3, "uint8")
    assert imageIO.imageTypeByName("CV_32FC1") == ("CV_32FC1", 5, 1, "float32")
    assert imageIO.imageTypeByOrdinal(0).name == "CV_8UC1"
    with pytest.raises(KeyError, match=r"unsupported image mode 99; supported modes are \[0,"):
        imageIO.imageTypeByOrdinal(99)
    with pytest.raises(KeyError, match=r"unsupported image type 'CV_64F'.*CV_8UC3"):
        imageIO.imageTypeByName("CV_64F")


def test_imageio_names_sparkdl_had_say_what_replaced_them():
    from sparkonnx.image import imageIO

    with pytest.raises(AttributeError, match=r"createResizeImageUDF.*ImageTransformer"):
        imageIO.createResizeImageUDF((10, 10))
    with pytest.raises(AttributeError, match=r"filesToDF.*binaryFile"):
        _ = imageIO.filesToDF
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = imageIO.nothing


# --------------------------------------------------------------------------- TF1 graphs


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tensorflow")


def test_tensor_and_op_names_from_names_tensors_and_ops(tf):
    import sparkonnx.graph.utils as tfx

    assert tfx.tensor_name("x") == "x:0" and tfx.tensor_name("x:1") == "x:1"
    assert tfx.op_name("x:0") == "x" and tfx.op_name("x") == "x"
    assert tfx.add_scope_to_name("scope", "x") == "scope/x"
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 3], name="x")
        y = tf.identity(x * 2.0, name="y")
    assert tfx.tensor_name(y) == "y:0" and tfx.op_name(y) == "y"
    assert tfx.tensor_name(y.op) == "y:0" and tfx.op_name("y", graph) == "y"
    assert tfx.get_tensor("y", graph) is y and tfx.get_op(y, graph) is y.op
    assert tfx.get_shape(x, graph) == [-1, 3]
    assert tfx.validated_input(x, graph) == "x" and tfx.validated_output("y:0", graph) == "y"
    with pytest.raises(ValueError, match="'y' must be a Placeholder, but it is a Identity"):
        tfx.validated_input(y, graph)
    with pytest.raises(ValueError, match="the graph has no tensor 'z:0'"):
        tfx.tensor_name("z", graph)
    with pytest.raises(TypeError, match=r"expected a tf\.Graph, got GraphDef"):
        tfx.get_tensor("x", graph.as_graph_def())
    with pytest.raises(TypeError, match=r"a tf.Tensor, a tf.Operation or the name.*got int 3"):
        tfx.tensor_name(3)
    with pytest.raises(ValueError, match=r"belongs to another tf\.Graph"):
        tfx.get_tensor(y, tf.Graph())


def test_strip_and_freeze_until_keeps_variable_values_and_drops_the_rest(tf):
    import sparkonnx.graph.utils as tfx

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        x = tf.compat.v1.placeholder(tf.float32, [None, 2], name="x")
        w = tf.compat.v1.Variable([[2.0], [-1.0]], name="w")
        y = tf.matmul(x, w, name="y")
        tf.identity(x * 5.0, name="unused")
        sess.run(tf.compat.v1.global_variables_initializer())
        frozen_def = tfx.strip_and_freeze_until([y], graph, sess)
        frozen = tfx.strip_and_freeze_until(["y:0"], graph, sess, return_graph=True)
    ops = {n.op for n in frozen_def.node}
    assert "VariableV2" not in ops and "unused" not in {n.name for n in frozen_def.node}
    assert isinstance(frozen, tf.Graph)
    with tf.compat.v1.Session(graph=frozen) as run:
        got = run.run("y:0", {"x:0": [[1.0, 1.0], [3.0, 0.0]]})
    np.testing.assert_allclose(got, [[1.0], [6.0]])
    with pytest.raises(TypeError, match="fetches must be a list"):
        tfx.strip_and_freeze_until(y, graph, None)


def test_image_input_placeholder_is_sparkdls(tf):
    from sparkonnx.transformers import utils

    graph = tf.Graph()
    with graph.as_default():
        image = utils.imageInputPlaceholder()
        gray = utils.imageInputPlaceholder(nChannels=1)
    assert image.name == "sparkdl_image_input:0" and image.dtype == tf.float32
    assert image.shape.as_list() == [None, None, None, None]
    assert gray.shape.as_list() == [None, None, None, 1]
