"""What sparkdl's quick user guide takes for granted, made on this machine for its scripts.

The guide's code ran in a Databricks notebook that already had a SparkSession (``spark``,
``sqlContext``), a folder of photos (``/data/myimages``, ``sample_img_dir``), labelled training
DataFrames (``train_images_df``, ``train_df``) and ImageNet weights to download. This module
provides each of them, and nothing here is part of the guide's code:

- the photos are real ones of mixed sizes (scikit-image's and scikit-learn's sample photos,
  one of them grayscale), written as JPEGs;
- the labelled set is easy on purpose, so that a few training steps can learn it: crops of
  mixed sizes of a cat photo (label 0) and of the Hubble deep field (label 1);
- ``SmallImageNet`` stands in for ``keras.applications.InceptionV3`` (299x299 RGB in, 1000
  softmax scores out) with no pretrained weights: small enough to convert and train in seconds.

Files go to ``$SPARKDL_GUIDE_DIR`` (default: a new temporary folder per process).
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

#: Images per class in the labelled set.
PER_CLASS = 24
CLASSES = ("cat", "space")


@functools.cache
def data_dir() -> Path:
    """Where the photos and the guide's model files go ($SPARKDL_GUIDE_DIR or a temp folder)."""
    folder = os.environ.get("SPARKDL_GUIDE_DIR") or tempfile.mkdtemp(prefix="sparkdl-guide-")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def tmp_dir() -> str:
    """The folder standing for the guide's /tmp (model files)."""
    path = data_dir() / "tmp"
    path.mkdir(exist_ok=True)
    return str(path)


def spark_session() -> Any:
    """The notebook's `spark`: the active session, else a local[2] one."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master("local[2]").appName("sparkdl-guide")
    return builder.config("spark.ui.enabled", "false").getOrCreate()


def sql_context(spark: Any) -> Any:
    """The notebook's `sqlContext` (pyspark's SQLContext still exists, deprecated)."""
    import warnings

    from pyspark.sql import SQLContext

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return SQLContext(spark.sparkContext, spark)


def _photos() -> dict[str, np.ndarray]:
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = {
        name: getattr(skimage.data, name)()
        for name in ("chelsea", "coffee", "astronaut", "rocket", "camera")
    }
    samples = load_sample_images()
    for filename, image in zip(samples.filenames, samples.images, strict=True):
        photos[Path(filename).stem] = image
    return photos


@functools.cache
def sample_img_dir() -> str:
    """The guide's /data/myimages: 7 real photos as JPEGs, of 5 sizes, one grayscale."""
    folder = data_dir() / "myimages"
    folder.mkdir(exist_ok=True)
    for name, image in _photos().items():
        Image.fromarray(image).save(folder / f"{name}.jpg", quality=92)
    return str(folder)


def _crops(image: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    crops = []
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(110, 260, size=2))
        y = int(rng.integers(0, image.shape[0] - h))
        x = int(rng.integers(0, image.shape[1] - w))
        crops.append(image[y : y + h, x : x + w])
    return crops


@functools.cache
def labelled_dir() -> str:
    """Crops of mixed sizes: cat_NN.jpg (label 0) and space_NN.jpg (label 1)."""
    import skimage.data

    folder = data_dir() / "labelled"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    sources = {"cat": skimage.data.chelsea(), "space": skimage.data.hubble_deep_field()}
    for name in CLASSES:
        for i, crop in enumerate(_crops(sources[name], PER_CLASS, rng)):
            Image.fromarray(crop).save(folder / f"{name}_{i:02d}.jpg", quality=92)
    return str(folder)


def _uris_and_labels() -> list[tuple[str, float]]:
    folder = Path(labelled_dir())
    return [(str(p), float(CLASSES.index(p.name.split("_")[0]))) for p in sorted(folder.iterdir())]


def train_images_df(spark: Any) -> Any:
    """The transfer-learning block's `train_images_df`: image, uri, label (0 cat, 1 space)."""
    from sparkonnx import read_images

    images = read_images(labelled_dir(), spark=spark)
    labels = spark.createDataFrame(
        [(f"file:{uri}", uri, label) for uri, label in _uris_and_labels()],
        "path string, uri string, label double",
    )
    return images.join(labels, "path").select("image", "uri", "label")


def train_df(spark: Any, width: int = 1000) -> Any:
    """The tuning block's `train_df`: uri, label and one_hot_label (a vector as wide as the
    model's output, 1000 for InceptionV3 and its stand-in)."""
    from pyspark.ml.linalg import Vectors

    rows = [
        (uri, label, Vectors.sparse(width, [int(label)], [1.0]))
        for uri, label in _uris_and_labels()
    ]
    return spark.createDataFrame(rows, ["uri", "label", "one_hot_label"])


def SmallImageNet(weights: Any = None, classes: int = 1000) -> Any:
    """A small stand-in for keras.applications.InceptionV3: 299x299 RGB in, `classes` softmax
    scores out, no pretrained weights (so `weights` must be None), seeded."""
    import keras

    if weights is not None:
        raise ValueError(
            f"the stand-in has no pretrained weights: pass weights=None, not {weights!r}"
        )
    keras.utils.set_random_seed(0)
    inputs = keras.Input((299, 299, 3), name="image")
    x = keras.layers.AveragePooling2D(pool_size=13)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    # near-zero class weights: a few optimizer steps are enough to learn an easy labelled set
    head = keras.initializers.RandomNormal(stddev=1e-4, seed=0)
    outputs = keras.layers.Dense(classes, activation="softmax", kernel_initializer=head)(x)
    return keras.Model(inputs, outputs, name="small_imagenet")
