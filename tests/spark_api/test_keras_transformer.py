"""KerasTransformer: the seed README's Keras example on Keras 3, .keras and .h5 files, rank 3,
persistence without the Keras file. Parity: ONNX Runtime in Spark vs `model.predict`,
|diff| <= 1e-5 (float32 MLPs; seen: below 1e-7)."""

from __future__ import annotations

import numpy as np
import pytest
from pyspark.ml import Pipeline, PipelineModel

from sparkonnx import KerasTransformer

keras = pytest.importorskip("keras")

ATOL = 1e-5


def seed_model(num_features: int = 10):
    """The README's single-hidden-layer binary classifier (untrained, as in the README)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential()
    model.add(keras.Input(shape=(num_features,)))
    model.add(keras.layers.Dense(units=20, activation="relu"))
    model.add(keras.layers.Dense(units=1, activation="sigmoid"))
    return model


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("keras")
    model = seed_model()
    paths = {"keras": root / "simple-binary-classification.keras", "h5": root / "legacy.h5"}
    model.save(paths["keras"])
    model.save(paths["h5"])
    return model, paths


def seed_data(spark, num_examples: int = 100, num_features: int = 10, seed: int = 0):
    """The README's input: a 'features' column of Python floats (array<double>)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((num_examples, num_features))
    input_data = [{"id": i, "features": x[i].tolist()} for i in range(num_examples)]
    return spark.createDataFrame(input_data), x


def predictions(df, column="predictions"):
    rows = sorted(df.collect(), key=lambda r: r.id)
    return np.array([r[column] for r in rows], dtype=np.float32)


def test_readme_example(any_spark, seed_files):
    model, paths = seed_files
    input_df, x = seed_data(any_spark)
    transformer = KerasTransformer(
        inputCol="features", outputCol="predictions", modelFile=str(paths["keras"])
    )
    final_df = transformer.transform(input_df)
    assert final_df.schema["predictions"].dataType.simpleString() == "array<float>"
    expected = model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(predictions(final_df), expected, atol=ATOL, rtol=0)


def test_h5_file_and_batch_size(spark, seed_files):
    model, paths = seed_files
    input_df, x = seed_data(spark, num_examples=30, seed=1)
    transformer = KerasTransformer(
        inputCol="features", outputCol="predictions", modelFile=str(paths["h5"]), batchSize=4
    )
    expected = model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(predictions(transformer.transform(input_df)), expected, atol=ATOL)
    assert transformer.getModel().metadata["sparkonnx.source.form"] == "h5"


def test_double_column_refused_when_allow_cast_is_off(spark, seed_files):
    _, paths = seed_files
    input_df, _ = seed_data(spark, num_examples=5)
    transformer = KerasTransformer(
        inputCol="features", outputCol="p", modelFile=str(paths["keras"]), allowCast=False
    )
    with pytest.raises(ValueError, match=r"array<double>.*allowCast=True"):
        transformer.transform(input_df)


def test_rank3_input_flat_or_nested(spark, workdir):
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(4, 3, 2))
    hidden = keras.layers.Dense(5, activation="tanh")(inputs)  # along the last axis: rank kept
    outputs = keras.layers.Dense(2)(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    path = workdir / "rank3.keras"
    model.save(path)
    x = np.random.default_rng(2).standard_normal((25, 4, 3, 2)).astype(np.float32)
    df = spark.createDataFrame(
        [(i, x[i].reshape(-1).tolist(), x[i].tolist()) for i in range(len(x))],
        "id int, flat array<float>, nested array<array<array<float>>>",
    )
    expected = model.predict(x, verbose=0)
    for column in ("flat", "nested"):
        out = KerasTransformer(inputCol=column, outputCol="y", modelFile=str(path)).transform(df)
        np.testing.assert_allclose(predictions(out, "y"), expected, atol=ATOL, rtol=0)


def test_pipeline_save_load_needs_no_keras_file(spark, workdir):
    model = seed_model()
    path = workdir / "model.keras"
    model.save(path)
    input_df, x = seed_data(spark, num_examples=20, seed=3)
    stage = KerasTransformer(inputCol="features", outputCol="predictions", modelFile=str(path))
    saved = str(workdir / "pipeline")
    Pipeline(stages=[stage]).fit(input_df).save(saved)
    path.unlink()  # the ONNX model travels with the pipeline
    loaded = PipelineModel.load(saved)
    (reloaded,) = loaded.stages
    assert isinstance(reloaded, KerasTransformer)
    assert reloaded.getModelFile() == str(path)
    assert reloaded.getModel().sha256 == stage.getModel().sha256
    expected = model.predict(x.astype(np.float32), verbose=0)
    np.testing.assert_allclose(predictions(loaded.transform(input_df)), expected, atol=ATOL)


def test_model_file_errors(workdir):
    with pytest.raises(ValueError, match=r"not a Keras model file.*\.keras, \.h5"):
        KerasTransformer(inputCol="a", outputCol="b", modelFile=str(workdir / "m.onnx")).getModel()
    with pytest.raises(FileNotFoundError, match="Keras model file not found"):
        KerasTransformer(inputCol="a", outputCol="b", modelFile=str(workdir / "m.keras")).getModel()
    with pytest.raises(ValueError, match="has no model: pass modelFile="):
        KerasTransformer(inputCol="a", outputCol="b").getModel()
    stage = KerasTransformer(modelFile="x.keras")
    assert "Keras (.keras, legacy .h5) for KerasTransformer" in stage.explainParam("modelFile")
    assert stage.getAllowCast() is True
