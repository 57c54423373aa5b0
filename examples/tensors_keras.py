"""The seed README's Keras example on Keras 3: a saved model applied to a DataFrame of features.

10 features -> Dense(20, relu) -> Dense(1, sigmoid), saved to a `.keras` file (Keras 3 needs the
suffix), converted once to ONNX on the driver by KerasTransformer and run on the executors with
ONNX Runtime; the result is compared with Keras' own predictions.

    .venv/bin/python examples/tensors_keras.py
"""

from __future__ import annotations

import os
import sys
import tempfile

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from pyspark.sql import SparkSession


def main() -> None:
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sparkonnx-tensors-keras")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    from keras.layers import Dense, Input
    from keras.models import Sequential

    from sparkonnx import KerasTransformer

    # Generate random input data
    num_features = 10
    num_examples = 100
    input_data = [
        {"id": i, "features": np.random.randn(num_features).tolist()} for i in range(num_examples)
    ]
    input_df = spark.createDataFrame(input_data)

    # Create and save a single-hidden-layer Keras model for binary classification
    # NOTE: In a typical workflow, we'd train the model before exporting it to disk,
    # but we skip that step here for brevity
    model = Sequential()
    model.add(Input(shape=(num_features,)))
    model.add(Dense(units=20, activation="relu"))
    model.add(Dense(units=1, activation="sigmoid"))
    model_path = os.path.join(tempfile.mkdtemp(), "simple-binary-classification.keras")
    model.save(model_path)

    # Create transformer and apply it to our input data
    transformer = KerasTransformer(
        inputCol="features", outputCol="predictions", modelFile=model_path
    )
    final_df = transformer.transform(input_df)
    final_df.select("id", "predictions").show(5, truncate=False)

    rows = sorted(final_df.collect(), key=lambda r: r.id)
    got = np.array([r.predictions for r in rows], dtype=np.float32)
    x = np.array([r["features"] for r in input_data], dtype=np.float32)
    expected = model.predict(x, verbose=0)
    diff = float(np.abs(got - expected).max())
    print(f"KerasTransformer vs Keras on {len(got)} rows: max |diff| = {diff:.2e}")
    assert diff <= 1e-5, diff
    spark.stop()


if __name__ == "__main__":
    main()
