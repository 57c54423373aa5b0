"""sparkonnx end to end on local Spark: convert a Keras model once, run it on executors.

1. Tensors: the seed README's Keras model (10 features -> Dense(20, relu) -> Dense(1, sigmoid))
   is converted to ONNX on the driver (with its parity check), then applied to a 200,000-row
   DataFrame by ONNXTransformer; a sample is compared with Keras' own predictions.
2. Images: real photos shipped inside the scikit-image / scikit-learn wheels (plus one broken
   file) are read into a DataFrame with read_images; the broken file stays as a row with its
   error; a small convolutional Keras model, converted the same way, scores every image with
   ImageTransformer (resize, BGR -> RGB on the executors).

    bash scripts/demo.sh          # or: .venv/bin/python examples/demo.py [--rows N]
"""

from __future__ import annotations

import argparse
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


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def keras_tabular_model():
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input((10,), name="features"),
            keras.layers.Dense(20, activation="relu"),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def keras_image_model(size: int = 64):
    import keras

    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((size, size, 3), name="image"),
            keras.layers.Rescaling(1 / 255.0),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.BatchNormalization(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, activation="softmax"),
        ]
    )


def tensors_demo(spark, rows: int) -> None:
    from sparkonnx import ONNXTransformer
    from sparkonnx.converters import from_keras

    say("1. Tensors: convert the seed's Keras model to ONNX on the driver")
    model = keras_tabular_model()
    converted = from_keras(model)
    print(converted)

    import pyarrow as pa

    x = np.random.default_rng(0).standard_normal((rows, 10)).astype(np.float32)
    table = pa.table(
        {
            "id": np.arange(rows),
            "features": pa.ListArray.from_arrays(
                pa.array(np.arange(rows + 1, dtype=np.int32) * 10), pa.array(x.reshape(-1))
            ),
        }
    )
    df = spark.createDataFrame(table).repartition(2).cache()
    df.count()

    say(f"   ONNXTransformer over {rows:,} rows on local[2]")
    transformer = ONNXTransformer(
        model=converted.model, inputCol="features", outputCol="prediction"
    )
    scored = transformer.transform(df)
    start = time.perf_counter()
    scored.write.format("noop").mode("overwrite").save()
    seconds = time.perf_counter() - start
    print(f"scored {rows:,} rows in {seconds:.2f} s ({rows / seconds:,.0f} rows/s)")
    scored.orderBy("id").show(5, truncate=60)

    sample = scored.orderBy("id").limit(1000).collect()
    ours = np.array([r.prediction for r in sample])
    keras_out = model.predict(x[:1000], verbose=0)
    error = float(np.abs(ours - keras_out).max())
    print(f"max |ONNX on Spark - Keras| over 1,000 rows: {error:.2e}")
    if error > 1e-5:
        raise SystemExit(f"demo failed: ONNX output differs from Keras by {error}")


def write_sample_images(folder: Path) -> list[str]:
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = {name: getattr(data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")}
    for name, image in zip(("china", "flower"), load_sample_images().images, strict=True):
        photos[name] = image
    for name, pixels in photos.items():
        Image.fromarray(pixels).save(folder / f"{name}.jpg", quality=92)
    Image.fromarray(data.camera()).save(folder / "camera.png")  # grayscale
    (folder / "broken.jpg").write_bytes((folder / "chelsea.jpg").read_bytes()[:300])
    return sorted(p.name for p in folder.iterdir())


def images_demo(spark, folder: Path) -> None:
    from pyspark.sql import functions as F

    from sparkonnx import ImageTransformer, read_images
    from sparkonnx.converters import from_keras

    say("2. Images: read real photos (and one broken file) on the executors")
    files = write_sample_images(folder)
    print(f"{len(files)} files: {', '.join(files)}")
    images = read_images(str(folder), numPartitions=2).cache()
    images.select(
        F.element_at(F.split("path", "/"), -1).alias("file"),
        "image.height",
        "image.width",
        "image.nChannels",
        "error",
    ).orderBy("file").show(truncate=50)
    rows = images.count()
    if rows != len(files):
        raise SystemExit(f"demo failed: {len(files)} files but {rows} rows")

    say("   a small Keras CNN, converted to ONNX, scores every decodable image")
    size = 64
    converted = from_keras(keras_image_model(size))
    print(converted)

    # ImageTransformer resizes each image to the model's 64x64 input, swaps Spark's BGR to RGB
    # and feeds uint8 values as float32 (the model rescales them itself); the broken file's row
    # is kept with a null score.
    scored = ImageTransformer(
        inputCol="image", outputCol="scores", model=converted.model, scale=1.0
    ).transform(images)
    scored.select(F.element_at(F.split("path", "/"), -1).alias("file"), "scores", "error").orderBy(
        "file"
    ).show(truncate=60)
    if scored.count() != len(files):
        raise SystemExit("demo failed: a row was lost while scoring")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sparkonnx-demo")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    try:
        tensors_demo(spark, args.rows)
        with tempfile.TemporaryDirectory(prefix="sparkonnx-demo-") as folder:
            images_demo(spark, Path(folder))
    finally:
        spark.stop()
    say("demo finished")


if __name__ == "__main__":
    main()
