"""Models as SQL functions: register_udf / registerKerasImageUDF from `spark.sql`, on classic Spark
and Spark Connect. Parity: ONNX Runtime in the UDF vs onnxruntime / Keras, |diff| <= 1e-5; on
image structs the SQL function equals ImageTransformer (one image path), |diff| <= 1e-6."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow as pa
import pytest
from PIL import Image
from pyspark.sql.types import IntegerType, StructField, StructType
from pyspark.util import PythonEvalType

from sparkonnx import (
    ImageSchema,
    ImageTransformer,
    OnnxModel,
    register_udf,
    registerKerasImageUDF,
    testing,
)
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api import session
from sparkonnx.spark_api import sql as sql_module
from sparkonnx.spark_api.images.reading import IMAGE_STRUCT_TYPE
from sparkonnx.spark_api.runtime.executor import session_stats
from sparkonnx.spark_api.runtime.sql_udf import SqlArguments, local_path, prepare_arguments

ATOL = 1e-5


def ort_run(proto, feeds):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def by_id(df, column):
    return [r[column] for r in sorted(df.collect(), key=lambda r: r.id)]


def test_onnx_model_as_sql_function(any_spark):
    proto = testing.mlp((8, 16, 3), seed=5)
    x = np.random.default_rng(0).standard_normal((120, 8)).astype(np.float32)
    any_spark.createDataFrame(
        [(i, x[i].tolist()) for i in range(len(x))], "id int, features array<float>"
    ).repartition(3).createOrReplaceTempView("points")
    udf = register_udf(any_spark, "mlp_udf", proto.SerializeToString(), batchSize=16)
    assert session.is_connect(udf) == session.is_connect(any_spark)  # built for this session
    df = any_spark.sql("SELECT id, mlp_udf(features) AS scores FROM points")
    assert df.schema["scores"].dataType.simpleString() == "array<float>"
    np.testing.assert_allclose(by_id(df, "scores"), ort_run(proto, {"x": x})[0], atol=ATOL)


def test_sessions_are_shared_with_the_engine_cache(spark):
    """The UDF's sessions live in the same per-worker SESSION_CACHE as the transformers'."""
    proto = testing.mlp((4, 2), seed=11)
    sha = OnnxModel.load(proto).sha256
    x = np.ones((40, 4), np.float32)
    df = spark.createDataFrame([(i, x[i].tolist()) for i in range(40)], "id int, f array<float>")
    df.repartition(4).createOrReplaceTempView("ones")
    register_udf(spark, "cached_udf", proto)
    assert len(spark.sql("SELECT cached_udf(f) AS y FROM ones").collect()) == 40
    stats = (
        spark.range(4)
        .repartition(2)
        .mapInArrow(session_stats, "pid long, model_sha256 string, sessions_built long")
    )
    built = [r for r in stats.collect() if r.model_sha256 == sha]
    assert built and all(r.sessions_built == 1 for r in built)


def test_keras_model_object_and_null_rows(any_spark):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(shape=(10,)),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    x = np.random.default_rng(1).standard_normal((30, 10))
    rows = [(i, x[i].tolist()) for i in range(30)] + [(30, None)]
    any_spark.createDataFrame(rows, "id int, features array<double>").createOrReplaceTempView(
        "keras_input"
    )
    register_udf(any_spark, "keras_udf", model)
    got = by_id(any_spark.sql("SELECT id, keras_udf(features) AS p FROM keras_input"), "p")
    assert got[-1] is None  # a null argument gives a null result
    expected = model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(np.array(got[:-1], np.float32), expected, atol=ATOL, rtol=0)


def test_tf_input_graph_rank3_and_input_shape(spark):
    tf = pytest.importorskip("tensorflow")
    from sparkonnx import TFInputGraph

    @tf.function(input_signature=[tf.TensorSpec([None, 2, 3, 2], tf.float32, name="t")])
    def double(t):
        return {"y": t * 2.0}

    x = np.arange(60 * 12, dtype=np.float32).reshape(60, 2, 3, 2)
    df = spark.createDataFrame(
        [(i, x[i].reshape(-1).tolist(), x[i].tolist()) for i in range(60)],
        "id int, flat array<float>, nested array<array<array<float>>>",
    )
    df.createOrReplaceTempView("cubes")
    register_udf(spark, "double_udf", TFInputGraph.fromFunction(double))
    out = spark.sql("SELECT id, double_udf(flat) AS a, double_udf(nested) AS b FROM cubes")
    assert out.schema["a"].dataType.simpleString() == "array<array<array<float>>>"
    np.testing.assert_allclose(by_id(out, "a"), x * 2)
    np.testing.assert_allclose(by_id(out, "b"), x * 2)
    # a model with dynamic inner dims: inputShape says how to fold the flat rows
    register_udf(spark, "identity_udf", testing.image_identity(size=None), inputShape=(2, 2, 3))
    ident = spark.sql("SELECT id, identity_udf(flat) AS c FROM cubes")
    np.testing.assert_allclose(by_id(ident, "c"), x.reshape(60, 2, 2, 3))


def test_multi_input_multi_output_gives_a_struct(any_spark):
    proto = testing.two_in_two_out(3)
    a = np.arange(30, dtype=np.float32).reshape(10, 3)
    b = a[::-1].copy()
    any_spark.createDataFrame(
        [(i, a[i].tolist(), b[i].tolist()) for i in range(10)],
        "id int, a array<float>, b array<float>",
    ).createOrReplaceTempView("pairs")
    register_udf(any_spark, "pair_udf", OnnxModel.load(proto))
    out = any_spark.sql("SELECT id, pair_udf(a, b) AS r FROM pairs")
    assert out.schema["r"].dataType.simpleString() == "struct<sum:array<float>,prod:array<float>>"
    rows = by_id(out, "r")
    np.testing.assert_allclose([r["sum"] for r in rows], a + b)
    np.testing.assert_allclose([r["prod"] for r in rows], a * b)


def test_registration_errors(spark):
    proto = testing.mlp((4, 2))
    with pytest.raises(ValueError, match="identifier"):
        register_udf(spark, "my udf", proto)
    with pytest.raises(InvalidParamError, match="channelOrder must be one of"):
        register_udf(spark, "u", proto, channelOrder="GBR")
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['inputsize'\]"):
        register_udf(spark, "u", proto, inputsize=[4, 4])
    with pytest.raises(InvalidParamError, match="handleInvalid must be one of 'keep', 'error'"):
        register_udf(spark, "u", proto, handleInvalid="skip")
    with pytest.raises(ValueError, match=r"register_udf 'u': size \[4, 4\] was asked but model"):
        register_udf(spark, "u", testing.tiny_cnn(size=8), inputSize=[4, 4])
    with pytest.raises(ValueError, match="errorField 'scores' is also the name of a model output"):
        register_udf(spark, "u", testing.tiny_cnn(), errorField="scores")
    with pytest.raises(ValueError, match=r"inputShape \(5,\) does not fit model input x"):
        register_udf(spark, "u", proto, inputShape=(5,))
    with pytest.raises(ValueError, match=r"has 2 inputs \['a', 'b'\]; give inputShape as a dict"):
        register_udf(spark, "u", testing.two_in_two_out(), inputShape=(4,))
    with pytest.raises(TypeError, match="register_udf cannot use a int"):
        register_udf(spark, "u", 42)


# -- image structs: one image path with ImageTransformer -------------------------------------------
#: stored preprocessing that differs from every default: BGR, scaled, per-channel mean / std
METADATA = {
    "channel_order": "BGR",
    "scale": 1 / 255,
    "mean": [0.406, 0.456, 0.485],
    "std": [0.225, 0.224, 0.229],
}


@pytest.fixture(scope="module")
def photos():
    """Six real RGB photos (scikit-image, scikit-learn) shrunk by 3..8: mixed sizes, small."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    rgb = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    rgb += list(load_sample_images().images)
    out = []
    for k, img in enumerate(rgb):
        h, w, _ = img.shape
        out.append(np.asarray(Image.fromarray(img).resize((w // (3 + k), h // (3 + k)))))
    assert len({p.shape for p in out}) >= 5
    return out


def with_metadata(proto, spec):
    onnx.helper.set_model_props(proto, {"sparkonnx.preprocessing": json.dumps(spec)})
    return proto


def photo_frame(spark, photos):
    """Photos as image structs (BGR), then a null image and an undecodable one (mode -1)."""
    rows = [
        (i, ImageSchema.toImage(np.ascontiguousarray(p[..., ::-1]), origin=f"mem://photo{i}"))
        for i, p in enumerate(photos)
    ]
    undefined = ImageSchema.toImage(photos[0][:2, :2]).asDict()
    undefined |= {"origin": "file:/nowhere/broken.jpg", "mode": -1, "data": b""}
    rows += [(len(rows), None), (len(rows) + 1, undefined)]
    schema = StructType([StructField("id", IntegerType()), StructField("image", IMAGE_STRUCT_TYPE)])
    return spark.createDataFrame(rows, schema)


def assert_same_as_image_transformer(got, df, model):
    stage = ImageTransformer(inputCol="image", outputCol="v", model=model, errorCol="why")
    want = sorted(stage.transform(df).collect(), key=lambda r: r.id)
    assert [g.why for g in got] == [w.why for w in want]
    for g, w in zip(got, want, strict=True):
        if w.v is None:
            assert g.scores is None
        else:
            np.testing.assert_allclose(g.scores, w.v, atol=1e-6, rtol=0)


def test_image_structs_are_prepared_exactly_as_image_transformer_does(any_spark, photos):
    model = with_metadata(testing.tiny_cnn(size=16), METADATA)
    df = photo_frame(any_spark, photos)
    df.createOrReplaceTempView("photos")
    register_udf(any_spark, "photo_cnn", model, errorField="why")
    out = any_spark.sql("SELECT id, photo_cnn(image) AS r FROM photos")
    assert out.schema["r"].dataType.simpleString() == "struct<scores:array<float>,why:string>"
    got = by_id(out, "r")
    assert_same_as_image_transformer(got, df, model)
    assert got[-2].why == "null image" and "mode -1" in got[-1].why
    # the stored preprocessing is what both applied: the first photo by hand
    rgb = np.asarray(Image.fromarray(photos[0]).resize((16, 16), Image.BILINEAR), np.float32)
    x = (rgb[..., ::-1] / 255 - METADATA["mean"]) / METADATA["std"]
    reference = ort_run(model, {"image": x.transpose(2, 0, 1)[None].astype(np.float32)})[0]
    np.testing.assert_allclose(got[0].scores, reference[0], atol=1e-4)


def test_pyspark_without_arrow_udfs_gives_the_same_through_pandas(spark, photos, monkeypatch):
    monkeypatch.setattr(sql_module, "arrow_udf_supported", lambda: False)  # as on pyspark 4.0
    model = with_metadata(testing.tiny_cnn(size=16), METADATA)
    df = photo_frame(spark, photos)
    df.createOrReplaceTempView("photos_pandas")
    udf = register_udf(spark, "photo_cnn_pandas", model, errorField="why")
    assert udf.evalType == PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF
    got = by_id(spark.sql("SELECT id, photo_cnn_pandas(image) AS r FROM photos_pandas"), "r")
    assert_same_as_image_transformer(got, df, model)
    proto = testing.mlp((4, 2), seed=3)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    rows = [(i, x[i].tolist()) for i in range(3)] + [(3, None)]
    spark.createDataFrame(rows, "id int, f array<float>").createOrReplaceTempView("few")
    register_udf(spark, "mlp_pandas", proto)
    scores = by_id(spark.sql("SELECT id, mlp_pandas(f) AS s FROM few"), "s")
    assert scores[-1] is None
    np.testing.assert_allclose(scores[:-1], ort_run(proto, {"x": x})[0], atol=ATOL)


def test_dynamic_size_models_resize_mixed_photos_to_input_size(spark, photos):
    dynamic = testing.image_identity("NHWC", size=None)
    df = photo_frame(spark, photos[:3]).where("id < 3").coalesce(1)
    df.createOrReplaceTempView("three_photos")
    register_udf(spark, "ident", dynamic)
    with pytest.raises(Exception, match=r"different sizes.*set inputSize=\[height, width\]"):
        spark.sql("SELECT ident(image) FROM three_photos").collect()
    register_udf(spark, "ident", dynamic, inputSize=[6, 4], channelOrder="bgr", flatten=True)
    got = by_id(spark.sql("SELECT id, ident(image) AS scores FROM three_photos"), "scores")
    stage = ImageTransformer(
        inputCol="image", outputCol="v", model=dynamic, inputSize=[6, 4], channelOrder="BGR"
    )
    want = [r.v for r in sorted(stage.transform(df).collect(), key=lambda r: r.id)]
    np.testing.assert_array_equal(np.array(got), np.array(want))
    assert np.array(got).shape == (3, 6 * 4 * 3)


# -- sparkdl's registerKerasImageUDF, as its guide calls it ----------------------------------------
def tiny_keras_cnn(keras, size=32):
    keras.utils.set_random_seed(2)
    return keras.Sequential(
        [
            keras.Input(shape=(size, size, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


def test_sparkdl_guide_block_on_photos_of_different_sizes(any_spark, photos, workdir):
    keras = pytest.importorskip("keras")

    def keras_load_img(fpath):  # local: pickled by value (Connect's workers cannot import tests)
        """The guide's preprocessor, with the stand-in model's size."""
        from keras.preprocessing.image import img_to_array, load_img

        img = load_img(fpath, target_size=(32, 32))
        return img_to_array(img).astype(np.uint8)

    sample_img_dir = workdir / "sample_images"
    sample_img_dir.mkdir()
    for i, photo in enumerate(photos):
        Image.fromarray(photo).save(sample_img_dir / f"photo{i}.png")
    files = [sample_img_dir / f"photo{i}.png" for i in range(len(photos))]
    # the guide passes no session; a process holding both kinds must say which one
    which = {"spark": any_spark} if session.is_connect(any_spark) else {}
    model = tiny_keras_cnn(keras)
    registerKerasImageUDF("my_keras_udf", model, **which)
    model.save(workdir / "model-full-tmp.h5")
    registerKerasImageUDF(
        "my_keras_udf_with_preprocessing",
        str(workdir / "model-full-tmp.h5"),
        keras_load_img,
        **which,
    )
    image_df = any_spark.read.format("image").load(str(sample_img_dir))
    image_df.createOrReplaceTempView("sample_images")
    rows = any_spark.sql(
        "SELECT image.origin AS origin, my_keras_udf(image) AS predictions, "
        "my_keras_udf_with_preprocessing(image) AS preprocessed FROM sample_images"
    ).collect()
    rows = sorted(rows, key=lambda r: int(r.origin.rsplit("photo", 1)[1].split(".")[0]))
    assert len(rows) == len(photos)
    resized = [np.asarray(Image.fromarray(p).resize((32, 32), Image.BILINEAR)) for p in photos]
    expected = model.predict(np.stack(resized).astype(np.float32), verbose=0)
    np.testing.assert_allclose([r.predictions for r in rows], expected, atol=ATOL, rtol=0)
    loaded = np.stack([keras_load_img(str(f)) for f in files]).astype(np.float32)
    expected = model.predict(loaded, verbose=0)
    np.testing.assert_allclose([r.preprocessed for r in rows], expected, atol=ATOL, rtol=0)


def pil_load(fpath):
    """A preprocessor returning each file at its own size (the UDF resizes it)."""
    with Image.open(fpath) as img:
        return np.asarray(img.convert("RGB"))


def test_unreadable_rows_keep_a_null_and_their_reason(spark, photos, workdir):
    Image.fromarray(photos[3]).save(workdir / "good.png")
    (workdir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not a png")
    model = testing.tiny_cnn_nhwc(size=16)
    register_udf(spark, "pre_cnn", model, preprocessor=pil_load, errorField="why")
    files = spark.read.format("image").load(str(workdir)).selectExpr("image", "1 AS kind")
    memory = photo_frame(spark, photos[3:4]).selectExpr("image", "2 AS kind")  # + null, mode -1
    files.unionByName(memory).coalesce(1).createOrReplaceTempView("mixed")
    got = {
        (r.kind, r.image.origin.rsplit("/", 1)[-1] if r.image else None): r.p
        for r in spark.sql("SELECT kind, image, pre_cnn(image) AS p FROM mixed").collect()
    }
    rgb = np.asarray(Image.fromarray(photos[3]).resize((16, 16), Image.BILINEAR), np.float32)
    reference = ort_run(model, {"pixels": rgb[None]})[0][0]
    good = got[1, "good.png"]
    memory_row = got[2, "photo0"]  # no file behind its origin: given as a temporary PNG
    for row in (good, memory_row):
        assert row.why is None
        np.testing.assert_allclose(row.scores, reference, atol=1e-4)
    broken = got[1, "broken.png"]  # Spark could not decode it, nor can Pillow
    assert broken.scores is None
    assert "preprocessor(" in broken.why and "broken.png" in broken.why
    assert "UnidentifiedImageError" in broken.why
    assert got[2, None].why == "null image"
    assert "origin 'file:/nowhere/broken.jpg' is not a file on this machine" in (
        got[2, "broken.jpg"].why
    )
    paths = [(0, f"file:{workdir}/good.png"), (1, str(workdir / "missing.png")), (2, None)]
    spark.createDataFrame(paths, "id int, path string").coalesce(1).createOrReplaceTempView("paths")
    by_path = by_id(spark.sql("SELECT id, pre_cnn(path) AS p FROM paths"), "p")
    np.testing.assert_allclose(by_path[0].scores, reference, atol=1e-4)
    assert "FileNotFoundError" in by_path[1].why and by_path[2].why == "null path"
    register_udf(spark, "pre_strict", model, preprocessor=pil_load, handleInvalid="error")
    with pytest.raises(
        Exception, match=r"row \d+ of partition \d+ \(.*missing\.png\).*FileNotFound"
    ):
        spark.sql("SELECT pre_strict(path) FROM paths").collect()


# -- the executor half without Spark ---------------------------------------------------------------
def test_arguments_that_cannot_feed_the_model_say_what_to_do():
    model = OnnxModel.load(testing.mlp((4, 2)))
    images = sql_module._image_preprocessing("f", model, model.inputs, {})
    args = SqlArguments(("f argument 1",), model.inputs, images)

    def prepare(values):
        return prepare_arguments(args, pa.RecordBatch.from_arrays([values], ["f argument 1"]))

    with pytest.raises(ValueError, match=r"f argument 1 is a string column; file paths need pre"):
        prepare(pa.array(["a.png"]))
    with pytest.raises(ValueError, match=r"is a struct with fields \['a'\], not an image struct"):
        prepare(pa.array([{"a": 1}]))
    image = pa.array([ImageSchema.toImage(np.zeros((2, 2, 3), np.uint8)).asDict()])
    with pytest.raises(ValueError, match=r"f argument 1 holds images, but model input x.*not an"):
        prepare(image)


def test_preprocessor_results_that_are_not_images_are_the_row_error():
    model = OnnxModel.load(testing.tiny_cnn_nhwc(size=4))
    images = sql_module._image_preprocessing("f", model, model.inputs, {})
    args = SqlArguments(
        ("f argument 1",), model.inputs, images, lambda p: np.zeros((3, 5, 5)), False, "why"
    )
    prepared = prepare_arguments(args, pa.RecordBatch.from_arrays([pa.array(["x"])], ["a"]))
    assert not prepared.rows.any()
    (why,) = prepared.extra[0][1].to_pylist()
    assert "preprocessor('x') failed" in why and "shape (3, 5, 5)" in why and "RGB(A)" in why


def test_local_paths_of_origins():
    assert local_path("file:/tmp/a%20b.png") == "/tmp/a b.png"
    assert local_path("file:///tmp/x.png") == "/tmp/x.png"
    assert local_path("/tmp/x.png") == "/tmp/x.png"
    assert local_path("hdfs://namenode/x.png") is None
    assert local_path("mem://0") is None and local_path("") is None and local_path(None) is None
