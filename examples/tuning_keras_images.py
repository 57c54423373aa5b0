"""The seed README's "Distributed hyperparameter tuning" example, runnable on local[2].

A KerasImageFileEstimator trains a saved Keras model on image URIs with the user's imageLoader,
and MLlib's CrossValidator tunes `kerasFitParams` over a ParamGridBuilder grid: each fold trains
both grid points in parallel, one Spark task each, and the best one is refit on all the data.
The fitted model runs the trained network with ONNX Runtime and is saved and reloaded.

Differences from the seed, all to run offline in about a minute: the images are generated
(red-ish vs blue-ish, 32x32 PNGs), the model is a small CNN instead of InceptionV3 with ImageNet
weights (no downloads), and the estimator's `outputFormat="vector"` makes the prediction a Spark
ML vector, which `BinaryClassificationEvaluator` needs as rawPredictionCol.

    .venv/bin/python examples/tuning_keras_images.py
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import PIL.Image
from pyspark.sql import SparkSession

logger = logging.getLogger("tuning_keras_images")
IMAGE_SIZE = 32


def load_image_from_uri(local_uri: str) -> np.ndarray:
    """The seed's loader: RGB, resized, scaled to [-1, 1] as Keras' 'tf' preprocess_input does."""
    img = (
        PIL.Image.open(local_uri).convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), PIL.Image.LANCZOS)
    )
    img_arr = np.array(img).astype(np.float32)
    return (img_arr[np.newaxis, :] / 127.5) - 1.0


def make_images(folder: Path, count: int = 40) -> list[tuple[str, float, list[float]]]:
    """Two classes of noisy PNGs: (uri, label, one-hot label)."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(count):
        label = i % 2
        base = np.array([135, 110, 115] if label == 0 else [115, 110, 135])
        noise = rng.integers(-70, 70, (48, 48, 3))
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = folder / f"image_{i:03d}.png"
        PIL.Image.fromarray(pixels).save(path)
        rows.append((str(path), float(label), [1.0 - label, float(label)]))
    return rows


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("py4j", "tensorflow", "absl", "tf2onnx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sparkonnx-tuning-keras-images")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    import keras
    from pyspark.ml.evaluation import BinaryClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder

    from sparkonnx import KerasImageFileEstimator

    work = Path(tempfile.mkdtemp(prefix="sparkonnx-tuning-"))
    (work / "images").mkdir()
    train_df = spark.createDataFrame(
        make_images(work / "images"), "uri string, label double, one_hot_label array<float>"
    )

    # The model to start from, saved as a file (the seed used InceptionV3(weights="imagenet")).
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model_file = str(work / "model-full-tmp.keras")
    model.save(model_file)

    estimator = KerasImageFileEstimator(
        inputCol="uri",
        outputCol="prediction",
        labelCol="one_hot_label",
        imageLoader=load_image_from_uri,
        kerasOptimizer="adam",
        kerasLoss="categorical_crossentropy",
        modelFile=model_file,  # local file path for model
        outputFormat="vector",  # a Spark ML vector, as BinaryClassificationEvaluator needs
    )

    paramGrid = (
        ParamGridBuilder()
        .addGrid(
            estimator.kerasFitParams,
            [
                {"batch_size": 32, "epochs": 1, "verbose": 0},
                {"batch_size": 8, "epochs": 5, "verbose": 0},
            ],
        )
        .build()
    )
    bc = BinaryClassificationEvaluator(rawPredictionCol="prediction", labelCol="label")
    cv = CrossValidator(estimator=estimator, estimatorParamMaps=paramGrid, evaluator=bc, numFolds=2)

    start = time.perf_counter()
    cvModel = cv.fit(train_df)
    logger.info("CrossValidator fit in %.1f s", time.perf_counter() - start)
    for params, metric in zip(paramGrid, cvModel.avgMetrics):
        logger.info(
            "  kerasFitParams %s: mean areaUnderROC %.3f", params[estimator.kerasFitParams], metric
        )
    best = cvModel.bestModel
    summary = best.trainingSummary
    logger.info(
        "best: %s, final loss %.4f, trained in %.1f s, ONNX vs Keras max abs error %.2g",
        summary.settings.fit_params,
        summary.history["loss"][-1],
        summary.seconds,
        summary.parity_max_abs_error,
    )

    predictions = best.transform(train_df).select("uri", "label", "prediction")
    predictions.show(5, truncate=60)
    logger.info("training-set areaUnderROC of the best model: %.3f", bc.evaluate(predictions))

    path = str(work / "cv-model")
    cvModel.save(path)
    reloaded = CrossValidatorModel.load(path)
    again = reloaded.bestModel.transform(train_df).select("uri", "prediction").collect()
    logger.info(
        "saved to %s and reloaded: %d predictions, best model %s",
        path,
        len(again),
        type(reloaded.bestModel).__name__,
    )
    spark.stop()


if __name__ == "__main__":
    main()
