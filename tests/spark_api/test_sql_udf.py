"""Models as SQL functions: register_udf / registerKerasImageUDF from `spark.sql`, on classic Spark
and Spark Connect. Parity: ONNX Runtime in the UDF vs onnxruntime / Keras, |diff| <= 1e-5."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image
from pyspark.sql.types import IntegerType, StructField, StructType

from sparkonnx import ImageSchema, OnnxModel, register_udf, registerKerasImageUDF, testing
from sparkonnx.spark_api import sql as sql_module
from sparkonnx.spark_api.images.reading import IMAGE_STRUCT_TYPE
from sparkonnx.spark_api.runtime.executor import session_stats

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
    register_udf(any_spark, "mlp_udf", proto.SerializeToString(), batchSize=16)
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
    with pytest.raises(ValueError, match="channelOrder must be one of"):
        register_udf(spark, "u", proto, channelOrder="GBR")
    with pytest.raises(ValueError, match=r"inputShape \(5,\) does not fit model input x"):
        register_udf(spark, "u", proto, inputShape=(5,))
    with pytest.raises(ValueError, match=r"has 2 inputs \['a', 'b'\]; give inputShape as a dict"):
        register_udf(spark, "u", testing.two_in_two_out(), inputShape=(4,))
    with pytest.raises(TypeError, match="register_udf cannot use a int"):
        register_udf(spark, "u", 42)


# -- image models (sparkdl's registerKerasImageUDF) ------------------------------------------------
def tiny_keras_cnn(keras, size=8):
    keras.utils.set_random_seed(2)
    return keras.Sequential(
        [
            keras.Input(shape=(size, size, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )


@pytest.fixture(scope="module")
def rgb_images():
    return np.random.default_rng(3).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)


def test_keras_image_udf_on_image_structs(any_spark, rgb_images):
    keras = pytest.importorskip("keras")
    model = tiny_keras_cnn(keras)
    rows = [
        (i, ImageSchema.toImage(img[..., ::-1], origin=f"img{i}"))
        for i, img in enumerate(rgb_images)
    ]
    any_spark.createDataFrame(rows, ["id", "image"]).createOrReplaceTempView("sample_images")
    registerKerasImageUDF("tiny_cnn_udf", model, spark=any_spark)
    df = any_spark.sql("SELECT id, tiny_cnn_udf(image) AS predictions FROM sample_images")
    assert df.schema["predictions"].dataType.simpleString() == "array<float>"
    expected = model.predict(rgb_images.astype(np.float32), verbose=0)  # Keras sees RGB
    np.testing.assert_allclose(by_id(df, "predictions"), expected, atol=ATOL, rtol=0)


def test_keras_image_udf_with_preprocessor_on_paths_and_images(spark, rgb_images, workdir):
    keras = pytest.importorskip("keras")
    model = tiny_keras_cnn(keras, size=4)
    path = workdir / "cnn.h5"
    model.save(path)
    files = []
    for i, img in enumerate(rgb_images):
        files.append(workdir / f"{i}.png")
        Image.fromarray(img).save(files[-1])

    def keras_load_img(fpath):
        img = keras.utils.load_img(fpath, target_size=(4, 4))
        return keras.utils.img_to_array(img).astype(np.uint8)

    registerKerasImageUDF("cnn_pre_udf", str(path), keras_load_img, spark=spark)
    expected = model.predict(
        np.stack([keras_load_img(f) for f in files]).astype(np.float32), verbose=0
    )
    rows = [
        (i, f"file:{f}", ImageSchema.toImage(rgb_images[i][..., ::-1])) for i, f in enumerate(files)
    ]
    spark.createDataFrame(rows, ["id", "path", "image"]).createOrReplaceTempView("files")
    out = spark.sql("SELECT id, cnn_pre_udf(path) AS p, cnn_pre_udf(image) AS q FROM files")
    np.testing.assert_allclose(by_id(out, "p"), expected, atol=ATOL, rtol=0)
    np.testing.assert_allclose(by_id(out, "q"), expected, atol=ATOL, rtol=0)


def test_image_struct_resized_and_undefined_rows_are_null(spark):
    register_udf(spark, "nchw_udf", testing.tiny_cnn(size=8))
    big = np.random.default_rng(4).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    undefined = ImageSchema.toImage(big).asDict() | {"mode": -1, "data": b""}
    spark.createDataFrame(
        [(0, ImageSchema.toImage(big)), (1, undefined)],
        StructType([StructField("id", IntegerType()), StructField("image", IMAGE_STRUCT_TYPE)]),
    ).createOrReplaceTempView("mixed_images")
    result = by_id(spark.sql("SELECT id, nchw_udf(image) AS s FROM mixed_images"), "s")
    assert result[1] is None
    resized = np.asarray(Image.fromarray(big[..., ::-1]).resize((8, 8), Image.BILINEAR))
    expected = ort_run(
        testing.tiny_cnn(size=8), {"image": resized.astype(np.float32).transpose(2, 0, 1)[None]}
    )[0]
    np.testing.assert_allclose(result[0], expected[0], atol=1e-3)


def test_strings_without_preprocessor_say_what_to_do():
    spec = sql_module.UdfSpec(plan=None)  # type: ignore[arg-type]
    import pandas as pd

    with pytest.raises(ValueError, match=r"file paths need preprocessor="):
        sql_module._to_tensor(
            spec, "argument 1", OnnxModel.load(testing.mlp((4, 2))).inputs[0], pd.Series(["a.png"])
        )
