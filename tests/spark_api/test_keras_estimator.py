"""KerasEstimator (tensor columns) and the shared training machinery: fit on the driver,
fitMultiple on executors with the data gathered once, ONNX parity of trained models, label and
size checks, persistence, and the errors when training cannot run."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.linalg import Vectors, VectorUDT
from pyspark.ml.tuning import ParamGridBuilder, TrainValidationSplit
from pyspark.sql import types as T

from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.shipping import ModelRef
from sparkonnx.spark_api.training import data as training_data
from sparkonnx.spark_api.training import job as training
from sparkonnx.spark_api.training.keras_estimator import KerasEstimator, KerasEstimatorModel

# Executors unpickle this module's loaders by reference, so it must not import TensorFlow itself.
pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("keras") is None, reason="training needs Keras (sparkonnx[convert])"
)

N_ROWS = 48
WIDTH = 4


@pytest.fixture(scope="module")
def start_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((WIDTH,)),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    path = tmp_path_factory.mktemp("keras") / "start.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def data(spark):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N_ROWS, WIDTH)).astype(np.float32)
    label = (x[:, 0] + x[:, 1] > 0).astype(int)
    rows = [
        (
            i,
            x[i].tolist(),
            np.eye(2)[label[i]].tolist(),
            float(label[i]),
            Vectors.dense(np.eye(2)[label[i]]),
        )
        for i in range(N_ROWS)
    ]
    ddl = "id long, features array<float>, one_hot array<double>, label double"
    df = spark.createDataFrame(rows, schema(ddl, one_hot_vec=VectorUDT()))
    return df, x


def schema(ddl: str, **extra: T.DataType) -> T.StructType:
    """A schema from DDL plus extra fields (DDL has no name for Spark ML vectors)."""
    fields = T._parse_datatype_string(ddl).fields
    return T.StructType(fields + [T.StructField(k, v) for k, v in extra.items()])


def estimator(start_model: Path, **kwargs) -> KerasEstimator:
    params = {
        "inputCol": "features",
        "outputCol": "pred",
        "labelCol": "one_hot",
        "modelFile": str(start_model),
        "kerasFitParams": {"epochs": 2, "batch_size": 8},
        **kwargs,
    }
    return KerasEstimator(**params)


def predictions(model, df) -> np.ndarray:
    rows = sorted(model.transform(df).select("id", "pred").collect(), key=lambda r: r.id)
    return np.array([r.pred for r in rows], dtype=np.float32)


@pytest.fixture(scope="module")
def fitted(data, start_model) -> KerasEstimatorModel:
    df, _ = data
    return estimator(start_model).fit(df)


def test_fit_trains_a_copy_and_onnx_output_equals_keras(fitted, data, start_model):
    df, x = data
    before = start_model.read_bytes()
    summary = fitted.trainingSummary
    assert summary.where == "driver"
    assert len(summary.history["loss"]) == 2  # kerasFitParams epochs reached Keras
    trained = summary.keras_model()
    start = training.load_keras_bytes(str(start_model), ".keras")
    assert not np.allclose(trained.predict(x, verbose=0), start.predict(x, verbose=0))
    assert start_model.read_bytes() == before  # the starting model is not modified
    expected = trained.predict(x, verbose=0)
    np.testing.assert_allclose(predictions(fitted, df), expected, rtol=1e-5, atol=1e-6)
    assert summary.parity.passed and summary.parity_max_abs_error < 1e-5


def test_training_is_seeded_and_vector_labels_work(fitted, data, start_model):
    df, _ = data
    again = estimator(start_model, labelCol="one_hot_vec").fit(df)
    assert again.trainingSummary.history == fitted.trainingSummary.history
    np.testing.assert_allclose(predictions(again, df), predictions(fitted, df), atol=1e-6)
    other_seed = estimator(start_model, seed=7, kerasFitParams={"epochs": 2, "shuffle": True})
    assert other_seed.fit(df).trainingSummary.history != fitted.trainingSummary.history


def test_fit_multiple_trains_each_map_on_executors_gathering_once(
    data, start_model, fitted, monkeypatch
):
    df, _ = data
    est = estimator(start_model)
    gathered = []
    original = KerasEstimator._gather

    def counting(self, *args):
        gathered.append(self.uid)
        return original(self, *args)

    monkeypatch.setattr(KerasEstimator, "_gather", counting)
    grid = [
        {est.kerasFitParams: {"epochs": 2, "batch_size": 8}},
        {est.kerasFitParams: {"epochs": 3, "batch_size": 16}, est.kerasOptimizer: "sgd"},
    ]
    models = dict(est.fitMultiple(df, grid))
    assert sorted(models) == [0, 1] and len(gathered) == 1
    first, second = models[0].trainingSummary, models[1].trainingSummary
    assert first.where == second.where == "executor"
    assert len(first.history["loss"]) == 2 and len(second.history["loss"]) == 3
    assert second.settings.optimizer == "sgd"
    # the same settings and seed train the same weights on an executor as on the driver
    np.testing.assert_allclose(
        first.history["loss"], fitted.trainingSummary.history["loss"], rtol=1e-5
    )
    np.testing.assert_allclose(predictions(models[0], df), predictions(fitted, df), atol=1e-5)
    for model in models.values():  # each ONNX model equals its own trained Keras model
        _, x = data
        expected = model.trainingSummary.keras_model().predict(x, verbose=0)
        np.testing.assert_allclose(predictions(model, df), expected, rtol=1e-5, atol=1e-6)


def test_train_validation_split_tunes_on_executors(data, start_model):
    df, _ = data
    est = estimator(start_model, outputFormat="vector")
    grid = (
        ParamGridBuilder()
        .addGrid(est.kerasFitParams, [{"epochs": 1}, {"epochs": 12, "batch_size": 4}])
        .build()
    )
    evaluator = BinaryClassificationEvaluator(rawPredictionCol="pred", labelCol="label")
    tvs = TrainValidationSplit(
        estimator=est,
        estimatorParamMaps=grid,
        evaluator=evaluator,
        trainRatio=0.75,
        seed=1,
        collectSubModels=True,
    )
    model = tvs.fit(df)
    assert {m.trainingSummary.where for m in model.subModels} == {"executor"}
    best = int(np.argmax(model.validationMetrics))
    assert model.validationMetrics[1] > model.validationMetrics[0]
    assert model.bestModel.trainingSummary.settings.fit_params == grid[best][est.kerasFitParams]
    assert model.bestModel.transform(df).select("pred").head().pred.size == 2


def test_fit_multiple_refuses_maps_that_change_the_data(data, start_model):
    df, _ = data
    est = estimator(start_model)
    with pytest.raises(ValueError, match=r"labelCol differs between the param maps"):
        est.fitMultiple(df, [{est.labelCol: "one_hot"}, {est.labelCol: "one_hot_vec"}])


@pytest.mark.parametrize(
    ("rows", "label_type", "message"),
    [
        (
            [([1.0] * WIDTH, [0.0, 1.0, 0.0])],
            "array<double>",
            r"'y' has labels of width 3.*width 2",
        ),
        ([([1.0] * WIDTH, None)], "array<double>", r"'y' is null in 1 of 1 rows"),
        ([([1.0] * WIDTH, [None, 1.0])], "array<double>", r"'y' has null values inside 1"),
        ([([1.0] * WIDTH, "a")], "string", r"labelCol 'y' has type string"),
        ([([1.0] * WIDTH, Vectors.dense([1.0]))], VectorUDT(), r"'y' has labels of width 1"),
    ],
)
def test_bad_labels_are_rejected_naming_the_column(spark, start_model, rows, label_type, message):
    if isinstance(label_type, str):
        df = spark.createDataFrame(rows, f"features array<float>, y {label_type}")
    else:
        df = spark.createDataFrame(rows, schema("features array<float>", y=label_type))
    with pytest.raises((ValueError, TypeError), match=message):
        estimator(start_model, labelCol="y").fit(df)


def test_missing_or_mismatched_feature_column(spark, data, start_model):
    df, _ = data
    with pytest.raises(ValueError, match=r"input column 'nope'.*not in the DataFrame"):
        estimator(start_model, inputCol="nope").fit(df)
    narrow = spark.createDataFrame(
        [([1.0, 2.0], [0.0, 1.0])], "features array<float>, y array<float>"
    )
    with pytest.raises(ValueError, match=r"column 'features'.*2 values per row"):
        estimator(start_model, labelCol="y").fit(narrow)


def test_too_much_data_fails_before_gathering(data, start_model, monkeypatch):
    df, _ = data
    monkeypatch.setattr(KerasEstimator, "_gather", lambda *a: pytest.fail("data was gathered"))
    with pytest.raises(
        training_data.TrainingDataTooLargeError,
        match=r"1\.1 KiB \(48 rows x 24 bytes.*over the limit of 100 B.*maxTrainingDataBytes",
    ):
        estimator(start_model, maxTrainingDataBytes=100).fit(df)


def test_memory_limit_from_spark_conf(spark):
    assert training_data.parse_memory("2g") == 2 * 2**30
    assert training_data.parse_memory("512m") == 512 * 2**20
    assert training_data.parse_memory("1024") == 2**30  # bare numbers are MiB, as in Spark
    with pytest.raises(ValueError, match="cannot read memory size 'lots'"):
        training_data.parse_memory("lots")
    limit, source = training_data.worker_memory_limit(spark)
    assert (limit, source) == (2**30, "0.5 x spark.driver.memory=2g")  # conftest: local, 2g


def test_keras_params_are_validated(start_model):
    # a dict of the right type with a key the estimator sets itself: a bad value, not a bad type
    with pytest.raises(InvalidParamError, match=r"kerasFitParams may not set \['x'\]"):
        estimator(start_model, kerasFitParams={"x": 1})
    with pytest.raises(InvalidParamError, match=r"maxTrainingDataBytes must be a non-negative"):
        estimator(start_model, maxTrainingDataBytes=-1)
    with pytest.raises(TypeError, match="JSON-serializable"):
        estimator(start_model, kerasFitParams={"epochs": object()})
    with pytest.raises(TypeError, match="expected a Keras name"):
        estimator(start_model, kerasOptimizer=3)
    config = {"class_name": "SGD", "config": {"learning_rate": 0.5}}
    assert estimator(start_model, kerasOptimizer=config).getKerasOptimizer() == config


def test_missing_model_file(data, workdir):
    df, _ = data
    with pytest.raises(FileNotFoundError, match=r"modelFile '.*missing.keras' does not exist"):
        KerasEstimator(
            inputCol="features", labelCol="one_hot", modelFile=str(workdir / "missing.keras")
        ).fit(df)


def test_save_and_reload_estimator_and_model_in_pipelines(fitted, data, start_model, workdir):
    df, _ = data
    est = estimator(start_model, kerasOptimizer={"class_name": "Adam", "config": {}})
    path = str(workdir / "pipeline")
    Pipeline(stages=[est]).save(path)
    (loaded_est,) = Pipeline.load(path).getStages()
    assert isinstance(loaded_est, KerasEstimator) and loaded_est.uid == est.uid
    assert loaded_est.getKerasFitParams() == {"epochs": 2, "batch_size": 8}
    assert loaded_est.getKerasOptimizer() == {"class_name": "Adam", "config": {}}
    model_path = str(workdir / "model")
    PipelineModel(stages=[fitted]).save(model_path)
    (loaded,) = PipelineModel.load(model_path).stages
    assert isinstance(loaded, KerasEstimatorModel) and loaded.trainingSummary is None
    np.testing.assert_allclose(predictions(loaded, df), predictions(fitted, df), atol=1e-7)


# -- the executor task, run in-process ------------------------------------------------------
def _job(start_model: Path, **settings) -> training.TrainingJob:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(8, WIDTH)).astype(np.float32)
    y = np.eye(2, dtype=np.float32)[rng.integers(0, 2, 8)]
    values = {"optimizer": "adam", "loss": "categorical_crossentropy", "fit_params": {}, "seed": 0}
    task = training.TrainingTask(
        0,
        ModelRef("start", inline=start_model.read_bytes()),
        ".keras",
        training.TrainingSettings(**{**values, **settings}),
    )
    return training.TrainingJob(ModelRef("data", inline=training.pack_arrays(x, y)), (task,))


def _run_task(job: training.TrainingJob) -> list[dict]:
    import pandas as pd

    frames = training.train_partition(job, iter([pd.DataFrame({"id": [0]})]))
    return pd.concat(list(frames)).to_dict("records")


def test_task_without_tensorflow_reports_a_clear_error(start_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    job = _job(start_model)
    rows = _run_task(job)
    assert rows[0]["error_kind"] == "dependency" and rows[0]["model"] is None
    with pytest.raises(
        training.TrainingDependencyError,
        match=r"needs TensorFlow.*on host .* in " + re.escape(sys.executable) + r" .*: run pip "
        r"install 'sparkonnx\[convert\]' with that Python on every worker.*estimator\.fit\(df, "
        r"paramMap\)",
    ):
        training.raise_task_errors(rows, job)


def test_task_training_error_names_the_param_map(start_model):
    job = _job(start_model, optimizer="no-such-optimizer")
    rows = _run_task(job)
    assert rows[0]["error_kind"] == "training"
    with pytest.raises(
        training.KerasTrainingError,
        match=r"failed for 1 of 1 param maps; param map 0 \(kerasOptimizer='no-such-optimizer'",
    ):
        training.raise_task_errors(rows, job)


def test_task_returns_a_trained_model(start_model):
    rows = _run_task(_job(start_model, fit_params={"epochs": 2}))
    assert rows[0]["error"] is None
    assert len(json.loads(rows[0]["history"])["loss"]) == 2
    model = training.load_keras_bytes(rows[0]["model"], ".keras")
    assert model.outputs[0].shape[-1] == 2
