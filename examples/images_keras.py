"""sparkdl's "Applying deep learning models at scale to images" examples, on sparkonnx.

Runs end to end on local[2] with photos from skimage.data written to a temp dir:

1. For Keras users: a Keras image model saved to a file, applied with
   ``KerasImageFileTransformer`` to a column of image URIs with a Keras-style ``imageLoader``.
2. For TensorFlow users: ``TFImageTransformer`` (= ``ImageTransformer``) on an image column
   read with ``read_images``, once as vectors and once with ``outputMode="image"``.

The network is MobileNetV2 with random weights (``--weights imagenet`` downloads the real
ones), so the predictions are not meaningful; the plumbing is what is shown.

    .venv/bin/python examples/images_keras.py [--weights imagenet]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

logger = logging.getLogger("images_keras")
SIZE = 224


def load_and_preprocess(uri: str):  # -> np.ndarray
    """A typical Keras way to load and prepare an image; runs on the executors.

    Self-contained (imports inside, no TensorFlow): Spark pickles it with the task.
    """
    import numpy as np
    from PIL import Image

    image = Image.open(uri).convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR)
    array = np.asarray(image, np.float32)[np.newaxis]  # (1, 224, 224, 3), as Keras' loaders
    return array / 127.5 - 1.0  # keras.applications.mobilenet_v2.preprocess_input


def write_photos(folder: Path) -> list[str]:
    from PIL import Image
    from skimage import data

    paths = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "retina"):
        path = folder / f"{name}.jpg"
        Image.fromarray(getattr(data, name)()).convert("RGB").save(path, quality=92)
        paths.append(str(path))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")  # kept, with a null output
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", choices=["random", "imagenet"], default="random")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import keras
    from pyspark.sql import SparkSession

    from sparkonnx import KerasImageFileTransformer, TFImageTransformer, read_images

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    with tempfile.TemporaryDirectory(prefix="sparkonnx-images-") as tmp:
        folder = Path(tmp)
        files = write_photos(folder)

        # -- For Keras users ----------------------------------------------------------------
        weights = None if args.weights == "random" else "imagenet"
        model = keras.applications.MobileNetV2(weights=weights)
        model_file = str(folder / "model-full.keras")
        model.save(model_file)

        transformer = KerasImageFileTransformer(
            inputCol="uri",
            outputCol="predictions",
            modelFile=model_file,  # converted to ONNX once, here on the driver
            imageLoader=load_and_preprocess,
            outputMode="vector",
        )
        uri_df = spark.createDataFrame([(f,) for f in files], "uri string")
        keras_pred_df = transformer.transform(uri_df)
        for row in keras_pred_df.collect():
            top = max(range(len(row.predictions)), key=row.predictions.__getitem__)
            logger.info("%-14s top class %4d", Path(row.uri).name, top)

        # -- For TensorFlow users: an ONNX image model on an image column --------------------
        image_df = read_images(str(folder), pathGlobFilter="*.jpg", spark=spark)  # + path, error
        featurizer = TFImageTransformer(
            inputCol="image",
            outputCol="predictions",
            model=transformer.getModel(),  # the converted model; any ONNX model works
            scale=1 / 127.5,  # the loader's scaling, now done by the transformer
            mean=[1.0],
            errorCol="why",
        )
        for row in featurizer.transform(image_df).select("path", "predictions", "why").collect():
            state = f"{len(row.predictions)} scores" if row.predictions else f"null ({row.why})"
            logger.info("%-14s %s", Path(row.path).name, state)

        resized = TFImageTransformer(
            inputCol="image", outputCol="resized", model=_resize_model(), outputMode="image"
        ).transform(image_df)
        for row in resized.where("resized is not null").select("resized").collect():
            img = row.resized
            logger.info("%-14s resized to %dx%d", Path(img.origin).name, img.height, img.width)
    spark.stop()


def _resize_model():  # -> onnx.ModelProto
    """sparkdl's TF example graph: images resized to 299x299. Here resizing is the
    transformer's preprocessing, so the graph is an identity on [N, 299, 299, 3]."""
    from onnx import TensorProto, helper

    shape = ["N", 299, 299, 3]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["resized"])],
        "resize_299",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("resized", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # what onnxruntime 1.31 reads
    return model


if __name__ == "__main__":
    main()
