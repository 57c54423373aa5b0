"""sparkdl's contract on the stages: output types (one outputMode / outputFormat rule),
TFImageTransformer on a TF graph, ImageSchema.readImages, sparkdl-only arguments."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image
from pyspark.ml.linalg import DenseVector

from sparkonnx import (
    DeepImageFeaturizer,
    ImageSchema,
    ImageTransformer,
    KerasImageFileTransformer,
    TFImageTransformer,
    TFTransformer,
    testing,
)
from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.images.structs import imageArrayToStruct, imageStructToArray


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three real photos of different sizes (one gray) and a broken file."""
    import skimage.data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(skimage.data.chelsea()[::4, ::4]).save(folder / "cat.png")
    Image.fromarray(skimage.data.coffee()[::5, ::5]).save(folder / "coffee.png")
    Image.fromarray(skimage.data.camera()[::6, ::6]).save(folder / "camera.png")
    (folder / "broken.png").write_bytes(b"\x89PNG no")
    return folder


def test_imageschema_read_images_gives_the_image_column(spark, photos):
    df = ImageSchema.readImages(str(photos))
    assert df.columns == ["image"]
    rows = df.collect()
    assert len(rows) == 4 and sum(r.image is None for r in rows) == 1
    kept = ImageSchema.readImages(str(photos), dropImageFailures=True).collect()
    assert sorted(r.image.origin.rsplit("/", 1)[1] for r in kept) == [
        "camera.png",
        "cat.png",
        "coffee.png",
    ]
    with pytest.raises(AttributeError, match=r"no attribute 'readImage'.*sparkonnx\.read_images"):
        ImageSchema.readImage(str(photos))


def _image_df(spark, sizes=((6, 8), (6, 8))):
    rng = np.random.default_rng(0)
    rows = [
        (i, imageArrayToStruct(rng.integers(0, 256, (*s, 3), dtype=np.uint8), f"m://{i}"))
        for i, s in enumerate(sizes)
    ]
    return spark.createDataFrame(rows, "id int, image " + ImageSchema.columnSchema.simpleString())


def _type(df, column):
    return df.schema[column].dataType.simpleString()


def test_output_mode_and_format_follow_one_rule(spark):
    df = _image_df(spark)
    model = testing.image_identity("NHWC", size=(6, 8))

    def out(stage_cls, **kwargs):
        stage = stage_cls(inputCol="image", outputCol="o", model=model, **kwargs)
        return _type(stage.transform(df), "o")

    assert out(ImageTransformer) == "array<float>"  # sparkonnx's default
    assert out(ImageTransformer, outputMode="vector") == "vector"  # sparkdl's meaning
    assert out(ImageTransformer, outputFormat="vector") == "vector"
    assert out(ImageTransformer, outputMode="array", outputFormat="array") == "array<float>"
    assert out(TFImageTransformer) == "vector"  # sparkdl's stages default to vectors
    assert out(ImageTransformer, outputMode="image").startswith("struct<origin")
    first = TFImageTransformer(inputCol="image", outputCol="o", model=model).transform(df).head()
    assert isinstance(first.o, DenseVector) and first.o.size == 6 * 8 * 3
    assert KerasImageFileTransformer().getOutputMode() == "vector"
    with pytest.raises(ValueError, match="outputMode='vector' and outputFormat='array' disagree"):
        ImageTransformer(outputMode="vector", outputFormat="array")
    stage = ImageTransformer(outputFormat="array")
    with pytest.raises(ValueError, match="outputMode='image' and outputFormat='array' disagree"):
        stage.setOutputMode("image")
    legacy = ImageTransformer()  # what stages saved before the rule hold: these two defaults
    legacy._setDefault(outputMode="vector", outputFormat="array")
    assert legacy.getOutputMode() == legacy.getOutputFormat() == "array"


def test_tf_image_transformer_runs_a_frozen_graph_with_variables(spark):
    tf = pytest.importorskip("tensorflow")
    import sparkonnx.graph.utils as tfx
    from sparkonnx.transformers import utils

    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as sess:
        image = utils.imageInputPlaceholder(nChannels=3)
        gain = tf.compat.v1.Variable([0.5, 1.0, 2.0], name="gain")
        scaled = tf.reduce_mean(image * gain, axis=[1, 2], name="scaled")
        sess.run(tf.compat.v1.global_variables_initializer())
        frozen = tfx.strip_and_freeze_until([scaled], graph, sess, return_graph=True)
    df = _image_df(spark, sizes=((6, 8), (9, 5), (6, 8)))  # any size: each at its own
    stage = TFImageTransformer(inputCol="image", outputCol="o", graph=frozen, outputTensor=scaled)
    assert stage.getInputTensor() == "sparkdl_image_input:0"  # sparkdl's default input
    rows = sorted(stage.transform(df).collect(), key=lambda r: r.id)
    for row in rows:
        rgb = imageStructToArray(row.image)[..., ::-1].astype(np.float32)
        expected = (rgb * [0.5, 1.0, 2.0]).mean(axis=(0, 1))
        np.testing.assert_allclose(row.o.toArray(), expected, rtol=1e-5)
    assert stage.getModel() is stage.getModel()  # converted once
    with pytest.raises(ValueError, match="needs outputTensor"):
        TFImageTransformer(graph=frozen).getModel()
    with pytest.raises(TypeError, match=r"graph must be a tf\.Graph"):
        TFImageTransformer(graph="graph.pb")


def test_tf_transformer_accepts_tfhparms_with_a_deprecation_warning():
    message = r"TFTransformer\(tfHParms=\.\.\.\) is accepted .* ignored.*TFInputGraph"
    with pytest.warns(DeprecationWarning, match=message):
        stage = TFTransformer(tfHParms={"learning_rate": 0.1})
    assert not stage.hasParam("tfHParms")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        TFTransformer()  # nothing given, nothing said


def test_scale_hint_maps_sparkdls_values_to_a_resize_filter(monkeypatch):
    tiny = OnnxModel.load(testing.tiny_cnn_nhwc())
    monkeypatch.setattr(DeepImageFeaturizer, "getModel", lambda self: tiny)

    def inner_resample(**kwargs):
        stage = DeepImageFeaturizer(inputCol="image", outputCol="f", modelName="ResNet50", **kwargs)
        inner = stage._image_transformer("f", "vector")
        return inner.getResample() if inner.isSet(inner.resample) else None

    assert inner_resample() is None  # unset: the model's own bilinear
    assert inner_resample(scaleHint="SCALE_AREA_AVERAGING") == "box"
    assert inner_resample(scaleHint="scale_smooth") == "box"
    assert inner_resample(scaleHint="SCALE_FAST") == "nearest"
    with pytest.raises(InvalidParamError, match="scaleHint must be one of SCALE_AREA_AVERAGING"):
        DeepImageFeaturizer(scaleHint="SCALE_BEST")


def test_keras_transformer_reads_every_path_model_save_accepts(spark, workdir):
    keras = pytest.importorskip("keras")
    from sparkonnx import KerasTransformer

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    expected = model.predict(x, verbose=0)
    model.save(workdir / "m.keras")
    model.save(workdir / "m.h5")
    model.save(workdir / "unzipped", zipped=False)  # a directory holding config.json
    (workdir / "m.h5").rename(workdir / "legacy-name")  # Keras 2 wrote HDF5 under any name
    df = spark.createDataFrame([(row.tolist(),) for row in x], "features array<float>")
    for path in ("m.keras", "unzipped", "legacy-name"):
        stage = KerasTransformer(inputCol="features", outputCol="p", modelFile=str(workdir / path))
        got = np.array([r.p for r in stage.transform(df).collect()])
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, err_msg=path)
    (workdir / "notes.txt").write_text("not a model")
    with pytest.raises(ValueError, match=r"is not a Keras model file; KerasTransformer takes"):
        KerasTransformer(modelFile=str(workdir / "notes.txt")).getModel()
    with pytest.raises(FileNotFoundError, match="Keras model file not found"):
        KerasTransformer(modelFile=str(workdir / "missing.keras")).getModel()
