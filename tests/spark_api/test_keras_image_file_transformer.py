"""KerasImageFileTransformer: a Keras file on image URIs with a user imageLoader."""

import sys

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel

from sparkonnx import KerasImageFileTransformer
from sparkonnx.spark_api.images.structs import imageStructToArray

SIZE = (8, 8)


def load_rgb(uri):
    """Keras-style loader: RGB floats in [0, 1], with a leading batch axis."""
    img = Image.open(uri).convert("RGB").resize((SIZE[1], SIZE[0]))
    return np.asarray(img, np.float64)[np.newaxis] / 255.0


def nested_loader(batch_axis):
    """A self-contained loader: pickled by value, so it also runs on a Spark Connect server,
    whose workers cannot import this test module."""

    def load(uri):
        import numpy as np
        from PIL import Image

        img = Image.open(uri).convert("RGB").resize((8, 8))
        arr = np.asarray(img, np.float64) / 255.0
        return arr[np.newaxis] if batch_axis else arr

    return load


def load_wrong_shape(uri):
    return np.zeros((5, 5, 3)) if uri.endswith("img1.png") else load_rgb(uri)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Five PNG photos of different sizes; returns (dir, uris, the Keras model and its file).

    keras is imported here, not at module level: executors import this module for the loaders
    and must stay free of TensorFlow.
    """
    keras = pytest.importorskip("keras")
    d = tmp_path_factory.mktemp("keras-images")
    rng = np.random.default_rng(11)
    uris = []
    for i, (h, w) in enumerate([(10, 12), (8, 8), (20, 9), (7, 7), (16, 16)]):
        path = d / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        uris.append(str(path))
    keras.utils.set_random_seed(0)
    inp = keras.Input((*SIZE, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(3)(x))
    model.save(d / "model.keras")
    scale = keras.Model(inp, keras.layers.Rescaling(255.0)(inp))  # image out: RGB * 255
    scale.save(d / "scale.keras")
    return d, uris, model


def uri_df(spark, uris, partitions=2):
    rows = [(i, u) for i, u in enumerate(uris)]
    return spark.createDataFrame(rows, "id int, uri string").repartition(partitions)


def by_id(df):
    return sorted(df.collect(), key=lambda r: r.id)


@pytest.mark.parametrize("batch_axis", [True, False])
def test_predictions_equal_keras_on_the_loaded_images(any_spark, files, batch_axis):
    loader = nested_loader(batch_axis)
    d, uris, model = files
    t = KerasImageFileTransformer(
        inputCol="uri", outputCol="preds", modelFile=str(d / "model.keras"), imageLoader=loader
    )
    rows = by_id(t.transform(uri_df(any_spark, uris)))
    expected = model.predict(np.concatenate([load_rgb(u) for u in uris]), verbose=0)
    np.testing.assert_allclose(np.array([r.preds for r in rows]), expected, rtol=1e-4, atol=1e-5)


def test_bad_uris_get_null_outputs_with_the_reason(spark, files):
    d, uris, _ = files
    df = uri_df(spark, [*uris[:3], str(d / "missing.png"), None], partitions=1)
    t = KerasImageFileTransformer(
        inputCol="uri",
        outputCol="preds",
        modelFile=str(d / "model.keras"),
        imageLoader=load_wrong_shape,
        errorCol="why",
    )
    rows = by_id(t.transform(df))
    assert [r.preds is None for r in rows] == [False, True, False, True, True]
    assert "shape (5, 5, 3)" in rows[1].why and "(8, 8, 3) per image" in rows[1].why
    assert "FileNotFoundError" in rows[3].why and rows[4].why == "null URI"
    assert rows[0].why is None and len(rows[0].preds) == 3
    with pytest.raises(Exception, match=r"column 'uri', row \d+ of partition \d+ \(.*img1.png\)"):
        t.setHandleInvalid("error").transform(df).collect()


def test_image_output_mode_and_executors_without_tensorflow(spark, files):
    d, uris, _ = files
    t = KerasImageFileTransformer(
        inputCol="uri",
        outputCol="img",
        modelFile=str(d / "scale.keras"),
        imageLoader=load_rgb,
        outputMode="image",
    )
    rows = by_id(t.transform(uri_df(spark, uris)))
    for row, uri in zip(rows, uris):
        assert row.img.origin == uri and row.img.mode == 21  # CV_32FC3, BGR
        expected = (load_rgb(uri)[0] * 255.0)[:, :, ::-1].astype(np.float32)
        np.testing.assert_allclose(imageStructToArray(row.img), expected, rtol=1e-5)

    def tf_loaded(batches):
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict({"tf": ["tensorflow" in sys.modules]})

    assert {
        r.tf for r in spark.range(8, numPartitions=4).mapInArrow(tf_loaded, "tf boolean").collect()
    } == {False}


def test_save_load_keeps_the_converted_model_and_loader(spark, files, workdir):
    d, uris, _ = files
    t = KerasImageFileTransformer(
        inputCol="uri", outputCol="preds", modelFile=str(d / "model.keras"), imageLoader=load_rgb
    )
    df = uri_df(spark, uris)
    expected = by_id(t.transform(df))
    Pipeline(stages=[t]).fit(df).write().overwrite().save(str(workdir / "p"))
    stage = PipelineModel.load(str(workdir / "p")).stages[0]
    assert isinstance(stage, KerasImageFileTransformer)
    assert stage.getImageLoader() == f"{__name__}:load_rgb"
    assert stage.getModel().sha256 == t.getModel().sha256  # no re-conversion on load
    assert by_id(stage.transform(df)) == expected
    t.setImageLoader(lambda uri: load_rgb(uri))
    with pytest.raises(ValueError, match="only functions importable by name"):
        t.write().save(str(workdir / "lambda"))


def test_driver_side_errors(spark, files):
    d, _, _ = files
    df = spark.createDataFrame([(1, "a.png")], "id int, uri string")
    t = KerasImageFileTransformer(inputCol="id", outputCol="p", modelFile=str(d / "model.keras"))
    with pytest.raises(ValueError, match="column 'id' must hold image URIs"):
        t.transform(df)
    with pytest.raises(ValueError, match="needs imageLoader"):
        t.setInputCol("uri").transform(df)
    with pytest.raises(TypeError, match="imageLoader must be a function"):
        KerasImageFileTransformer(imageLoader=42)
