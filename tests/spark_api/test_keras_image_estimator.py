"""KerasImageFileEstimator: CrossValidator over a kerasFitParams grid on generated images, ONNX
parity of the trained model, save / reload, label checks, the size limit, loader errors."""

from __future__ import annotations

import importlib.util
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.linalg import DenseVector, Vectors, VectorUDT
from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder
from pyspark.sql import types as T

from sparkonnx.spark_api.training.data import TrainingDataTooLargeError
from sparkonnx.spark_api.training.keras_image_estimator import (
    ImageLoadingError,
    KerasImageFileEstimator,
    KerasImageFileModel,
)
from sparkonnx.spark_api.transformers.keras_image_transformer import KerasImageFileTransformer

# Executors unpickle this module's loaders by reference, so it must not import TensorFlow itself.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="training needs Keras (sparkonnx[convert])"
)

SIZE = 12
N_IMAGES = 16
GRID = [{"epochs": 1, "batch_size": 8}, {"epochs": 8, "batch_size": 4}]


def load_image(uri: str) -> np.ndarray:
    """The test's imageLoader: RGB in [0, 1] with a leading batch axis."""
    return np.asarray(Image.open(uri).convert("RGB"), np.float32)[np.newaxis] / 255.0


def counting_loader(marker_dir: str, uri: str) -> np.ndarray:
    """load_image, leaving one file per call in `marker_dir` (calls happen on executors)."""
    import tempfile

    tempfile.NamedTemporaryFile(dir=marker_dir, delete=False).close()
    return load_image(uri)


def failing_loader(bad: str, uri: str) -> np.ndarray:
    if uri == bad:
        raise OSError("cannot identify image file")
    return load_image(uri)


def flat_loader(uri: str) -> np.ndarray:
    return load_image(uri).reshape(-1)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int]]:
    """Red-ish (class 0) and blue-ish (class 1) PNGs with noise."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    out = []
    for i in range(N_IMAGES):
        cls = i % 2
        base = np.array([190, 50, 60] if cls == 0 else [60, 50, 190])
        pixels = np.clip(base + rng.integers(-40, 40, (SIZE, SIZE, 3)), 0, 255).astype(np.uint8)
        path = folder / f"img{i:02d}.png"
        Image.fromarray(pixels).save(path)
        out.append((str(path), cls))
    return out


@pytest.fixture(scope="module")
def df(spark, images):
    rows = [(uri, float(c), [1.0 - c, float(c)]) for uri, c in images]
    return spark.createDataFrame(rows, "uri string, label double, one_hot array<float>")


@pytest.fixture(scope="module")
def start_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("start") / "start.keras"
    model.save(path)
    return path


def estimator(start_model: Path, **kwargs) -> KerasImageFileEstimator:
    params = {
        "inputCol": "uri",
        "outputCol": "prediction",
        "labelCol": "one_hot",
        "imageLoader": load_image,
        "modelFile": str(start_model),
        "kerasOptimizer": "adam",
        "kerasLoss": "categorical_crossentropy",
        "kerasFitParams": {"epochs": 1, "batch_size": 8},
        "outputFormat": "vector",
        **kwargs,
    }
    return KerasImageFileEstimator(**params)


@pytest.fixture(scope="module")
def cv_model(df, start_model) -> tuple[CrossValidatorModel, KerasImageFileEstimator]:
    est = estimator(start_model)
    grid = ParamGridBuilder().addGrid(est.kerasFitParams, GRID).build()
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="prediction", labelCol="label")
    cv = CrossValidator(
        estimator=est, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2, seed=3
    )
    return cv.fit(df), est


def predictions(model, df) -> dict[str, np.ndarray]:
    rows = model.transform(df).select("uri", "prediction").collect()
    return {r.uri: np.asarray(r.prediction.toArray(), np.float32) for r in rows}


def test_cross_validator_picks_the_better_grid_point(cv_model):
    cvm, _ = cv_model
    metrics = cvm.avgMetrics
    assert len(metrics) == 2 and metrics[1] > metrics[0]  # 8 epochs beat 1 on this data
    best = cvm.bestModel
    assert isinstance(best, KerasImageFileModel) and isinstance(best, KerasImageFileTransformer)
    summary = best.trainingSummary
    assert summary.settings.fit_params == GRID[int(np.argmax(metrics))] == GRID[1]
    assert summary.where == "driver"  # CrossValidator refits the best map with fit()
    assert len(summary.history["loss"]) == 8


def test_best_model_transforms_uris(cv_model, df, images):
    cvm, _ = cv_model
    out = predictions(cvm.bestModel, df)
    assert sorted(out) == sorted(uri for uri, _ in images)  # one prediction per URI
    assert all(p.shape == (2,) and abs(p.sum() - 1) < 1e-5 for p in out.values())
    correct = [int(np.argmax(out[uri])) == cls for uri, cls in images]
    assert np.mean(correct) >= 0.9


def test_trained_onnx_output_equals_trained_keras(cv_model, df, images):
    cvm, _ = cv_model
    summary = cvm.bestModel.trainingSummary
    batch = np.concatenate([load_image(uri) for uri, _ in images])
    expected = summary.keras_model().predict(batch, verbose=0)
    out = predictions(cvm.bestModel, df)
    got = np.stack([out[uri] for uri, _ in images])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert summary.parity.passed and summary.parity.sample_kind == "user"


def test_cross_validator_model_saves_and_reloads(cv_model, df, workdir):
    cvm, est = cv_model
    path = str(workdir / "cv")
    cvm.save(path)
    loaded = CrossValidatorModel.load(path)
    assert isinstance(loaded.bestModel, KerasImageFileModel)
    assert loaded.bestModel.getImageLoader() == f"{__name__}:load_image"
    before, after = predictions(cvm.bestModel, df), predictions(loaded.bestModel, df)
    for uri, value in before.items():
        np.testing.assert_allclose(after[uri], value, atol=1e-7)
    reloaded_est = loaded.getEstimator()
    assert isinstance(reloaded_est, KerasImageFileEstimator) and reloaded_est.uid == est.uid
    grid = [m[reloaded_est.kerasFitParams] for m in loaded.getEstimatorParamMaps()]
    assert grid == GRID and loaded.avgMetrics == cvm.avgMetrics


def test_reloaded_model_with_a_loader_from_the_driver_script(cv_model, df, workdir, monkeypatch):
    """A loader defined in the driver's __main__ is saved as '__main__:name'; executors cannot
    import that, so the reloaded model resolves it on the driver and ships the function."""

    def script_loader(uri: str) -> np.ndarray:
        return np.asarray(Image.open(uri).convert("RGB"), np.float32)[np.newaxis] / 255.0

    script_loader.__module__ = "__main__"
    script_loader.__qualname__ = script_loader.__name__ = "sparkonnx_test_script_loader"
    monkeypatch.setattr(
        sys.modules["__main__"], script_loader.__name__, script_loader, raising=False
    )
    cvm, _ = cv_model
    model = cvm.bestModel.copy({cvm.bestModel.imageLoader: script_loader})
    model.save(str(workdir / "model"))
    loaded = KerasImageFileModel.load(str(workdir / "model"))
    assert loaded.getImageLoader() == "__main__:sparkonnx_test_script_loader"
    after, before = predictions(loaded, df), predictions(cvm.bestModel, df)
    for uri, value in before.items():
        np.testing.assert_allclose(after[uri], value, atol=1e-7)


def test_unsaveable_loader_is_named(start_model, workdir):
    est = estimator(start_model, imageLoader=lambda uri: load_image(uri))
    with pytest.raises(ValueError, match="cannot save imageLoader"):
        est.save(str(workdir / "est"))


@pytest.mark.parametrize(
    ("labels", "label_type", "message"),
    [
        (
            [[1.0, 0.0, 0.0]],
            T.ArrayType(T.FloatType()),
            r"'one_hot' has labels of widths 2 to 3; expected one-hot labels of width 2",
        ),
        ([None], T.ArrayType(T.FloatType()), r"'one_hot' is null in 1 of \d+ rows"),
        ([[None, 1.0]], T.ArrayType(T.FloatType()), r"'one_hot' has null values inside 1"),
        (
            [Vectors.dense([0.0, 1.0, 0.0])],
            VectorUDT(),
            r"'one_hot' has labels of widths 2 to 3; expected one-hot labels of width 2",
        ),
    ],
)
def test_bad_labels_are_rejected_naming_the_column(
    spark, images, start_model, labels, label_type, message
):
    good = [1.0, 0.0] if not isinstance(label_type, VectorUDT) else Vectors.dense([1.0, 0.0])
    rows = [(images[0][0], labels[0])] + [(uri, good) for uri, _ in images[1:4]]
    schema = T.StructType(
        [T.StructField("uri", T.StringType()), T.StructField("one_hot", label_type)]
    )
    with pytest.raises(ValueError, match=message):
        estimator(start_model).fit(spark.createDataFrame(rows, schema))


def test_too_much_data_fails_before_loading_the_images(df, start_model, workdir):
    markers = workdir / "calls"
    markers.mkdir()
    est = estimator(
        start_model,
        imageLoader=partial(counting_loader, str(markers)),
        maxTrainingDataBytes=10_000,
    )
    per_row = (SIZE * SIZE * 3 + 2) * 4
    with pytest.raises(
        TrainingDataTooLargeError,
        match=rf"column 'uri' would take .* \({N_IMAGES} rows x {per_row} bytes.*over the limit "
        r"of 9\.8 KiB",
    ):
        est.fit(df)
    assert len(list(markers.iterdir())) == 1  # only the probe of one image's shape


def test_output_settings_fail_before_any_image_is_loaded(df, start_model, workdir):
    markers = workdir / "calls"
    markers.mkdir()
    loader = partial(counting_loader, str(markers))
    image_mode = estimator(start_model, outputFormat=None, outputMode="image", imageLoader=loader)
    with pytest.raises(ValueError, match=r"outputMode='image' needs .* outputs \[N, 2\]"):
        image_mode.fit(df)
    with pytest.raises(ValueError, match="outputCol 'label' is already a column"):
        estimator(start_model, outputCol="label", imageLoader=loader).fit(df)
    tuned = estimator(start_model, outputFormat=None, imageLoader=loader)
    grid = ParamGridBuilder().addGrid(tuned.outputMode, ["vector", "image"]).build()
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="prediction", labelCol="label")
    cv = CrossValidator(estimator=tuned, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2)
    with pytest.raises(ValueError, match="outputMode='image' needs"):
        cv.fit(df)
    assert list(markers.iterdir()) == []  # not one image loaded, nothing trained


def test_fitted_model_gives_spark_ml_vectors_by_default(df, start_model):
    est = estimator(start_model, outputFormat=None)
    assert est.getOutputMode() == est.getOutputFormat() == "vector"
    first = est.fit(df).transform(df).head().prediction
    assert isinstance(first, DenseVector) and first.size == 2


def test_loader_failure_names_the_column_and_uri(df, images, start_model):
    bad = images[5][0]
    est = estimator(start_model, imageLoader=partial(failing_loader, bad))
    with pytest.raises(Exception, match=rf"imageLoader failed on '{bad}' from column 'uri'"):
        est.fit(df)


def test_loader_shape_must_fit_the_model(df, start_model):
    with pytest.raises(ImageLoadingError, match=r"returned an array of shape \(432,\)"):
        estimator(start_model, imageLoader=flat_loader).fit(df)


@pytest.mark.connect
def test_fit_multiple_on_spark_connect(connect_spark, images, start_model):
    rows = [(uri, [1.0 - c, float(c)]) for uri, c in images]
    cdf = connect_spark.createDataFrame(rows, "uri string, one_hot array<float>")

    def local_loader(uri: str) -> np.ndarray:  # pickled by value: the server cannot import tests
        return np.asarray(Image.open(uri).convert("RGB"), np.float32)[np.newaxis] / 255.0

    est = estimator(start_model, outputFormat="array", imageLoader=local_loader)
    grid = ParamGridBuilder().addGrid(est.kerasFitParams, GRID).build()
    models = dict(est.fitMultiple(cdf, grid))
    assert [len(models[i].trainingSummary.history["loss"]) for i in (0, 1)] == [1, 8]
    assert {m.trainingSummary.where for m in models.values()} == {"executor"}
    out = models[1].transform(cdf).collect()
    assert len(out) == N_IMAGES and all(len(r.prediction) == 2 for r in out)
