"""The seed README's "Deploying models as SQL functions", runnable on local Spark.

1. A Keras image model is registered with `registerKerasImageUDF` and used from SQL on images
   read with `read_images` (sparkdl used InceptionV3 with ImageNet weights; a tiny untrained
   CNN stands in here, so nothing is downloaded).
2. The same model with a Keras-style preprocessor (file path -> image array).
3. Any tensor model as a SQL function with `register_udf`: the README's Keras classifier.
Each result is compared with Keras' own predictions.

    .venv/bin/python examples/sql_udf.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image
from pyspark.sql import SparkSession

SIZE = 32


def sample_image_dir(n: int = 8) -> Path:
    """A few random RGB PNG files of SIZE x SIZE pixels."""
    root = Path(tempfile.mkdtemp(prefix="sparkonnx-images-"))
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"img{i}.png")
    return root


def image_model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5, activation="softmax"),
        ]
    )


def load_img(fpath):
    """A preprocessor: file path -> RGB uint8 array of the model's size.

    sparkdl's README used keras.preprocessing's load_img / img_to_array, which work here too;
    plain Pillow keeps TensorFlow off the executors.
    """
    with Image.open(fpath) as img:
        return np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.NEAREST), np.uint8)


def check(name: str, got: list, expected: np.ndarray, tolerance: float = 1e-5) -> None:
    diff = float(np.abs(np.array(got, dtype=np.float32) - expected).max())
    print(f"{name}: {len(got)} rows, max |diff| vs Keras = {diff:.2e}")
    assert diff <= tolerance, diff


def main() -> None:
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sparkonnx-sql-udf")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    from sparkonnx import read_images, register_udf, registerKerasImageUDF

    sample_img_dir = sample_image_dir()
    files = sorted(sample_img_dir.glob("*.png"))
    model = image_model()
    rgb = np.stack([load_img(f) for f in files]).astype(np.float32)
    expected = model.predict(rgb, verbose=0)

    # 1. A Keras image model as a SQL function on an image column.
    registerKerasImageUDF("my_custom_keras_model_udf", model)
    image_df = read_images(str(sample_img_dir))
    image_df.createOrReplaceTempView("sample_images")
    result = spark.sql(
        "SELECT path, my_custom_keras_model_udf(image) AS predictions FROM sample_images "
        "ORDER BY path"
    )
    result.show(3, truncate=60)
    check("registerKerasImageUDF", [r.predictions for r in result.collect()], expected)

    # 2. With a preprocessor (file path -> image array), as in Keras workflows.
    registerKerasImageUDF("keras_udf_with_preprocessing", model, load_img)
    rows = spark.sql(
        "SELECT keras_udf_with_preprocessing(image) AS from_image, "
        "keras_udf_with_preprocessing(path) AS from_path FROM sample_images ORDER BY path"
    ).collect()
    check("  ... preprocessor on images", [r.from_image for r in rows], expected)
    check("  ... preprocessor on paths", [r.from_path for r in rows], expected)

    # 3. Any tensor model: the README's Keras classifier, called from SQL.
    import keras

    keras.utils.set_random_seed(1)
    classifier = keras.Sequential(
        [
            keras.Input((10,)),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    x = np.random.default_rng(1).standard_normal((100, 10))
    spark.createDataFrame(
        [(i, x[i].tolist()) for i in range(len(x))], "id int, features array<double>"
    ).createOrReplaceTempView("customers")
    register_udf(spark, "churn_score", classifier)
    scores = spark.sql("SELECT id, churn_score(features)[0] AS score FROM customers ORDER BY id")
    scores.show(3)
    check(
        "register_udf",
        [r.score for r in scores.collect()],
        classifier.predict(x.astype(np.float32), verbose=0)[:, 0],
    )
    spark.stop()


if __name__ == "__main__":
    main()
