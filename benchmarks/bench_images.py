"""Is decoding the bottleneck of the image model path? Images/s of its three parts, local[2].

Writes JPEG photos (skimage.data, randomly cropped and scaled to 200-600 px a side) to a temp
dir, converts a Keras image network (random weights, no download) to ONNX on the driver, then:

0. read: ``read_images`` alone, the structs handed to a ``mapInArrow`` that counts them;
1. decode: ``read_images`` + the ImageTransformer's preprocessing (resize to 224x224, RGB,
   scaling, float32 NHWC tensor) in ``mapInArrow``, no model: images/s;
2. model: ONNX Runtime alone on one decoded batch of the same images (already a tensor), in
   this process with as many threads as Spark has cores: images/s;
3. whole: ``read_images`` -> ``ImageTransformer`` -> written to the ``noop`` sink: images/s.

Prints the three rates and the ratios decode / model (above 1: decoding keeps up with the
model) and whole / model (the share of the model's speed the whole path reaches). Not a test.

    .venv/bin/python benchmarks/bench_images.py [--images 400] [--model mobilenetv2|resnet50]
        [--repeats 2] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from PIL import Image

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from sparkonnx import ImageTransformer, from_keras, read_images
from sparkonnx.engine.image_preprocess import ImagePreprocessing

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "retina", "immunohistochemistry")
SCALING = {"scale": 1 / 127.5, "mean": [1.0]}  # Keras 'tf' preprocessing, as MobileNetV2


def write_photos(root: Path, n: int, seed: int = 0) -> None:
    """n JPEGs cropped and scaled from skimage's sample photos."""
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)() for name in PHOTOS]
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1)), int(w * rng.uniform(0.5, 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        side = int(rng.integers(200, 601))
        img = Image.fromarray(photo[y : y + ch, x : x + cw]).convert("RGB")
        img = img.resize((side, max(1, side * ch // cw)), Image.Resampling.BILINEAR)
        img.save(root / f"photo_{i:04d}.jpg", quality=90)


def keras_network(name: str) -> object:
    import keras

    keras.utils.set_random_seed(0)
    if name == "resnet50":
        return keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    return keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3))


def preprocess_only(
    pre: ImagePreprocessing, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """mapInArrow step: image structs -> the model's input tensor; one row per image."""
    for batch in batches:
        tensor, _ = pre.structs_to_tensor(batch.column(batch.schema.get_field_index("image")))
        yield pa.RecordBatch.from_pydict({"n": pa.array([len(tensor)], pa.int64())})


def count_rows(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow step: the decoded structs cross into Python and are only counted."""
    for batch in batches:
        yield pa.RecordBatch.from_pydict({"n": pa.array([batch.num_rows], pa.int64())})


def best_rate(n: int, run: Callable[[], object], repeats: int) -> float:
    """Images/s of the fastest of ``repeats`` runs (after one warm-up)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return n / min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--model", choices=["mobilenetv2", "resnet50"], default="mobilenetv2")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import onnxruntime as ort
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.files.openCostInBytes", "0")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    cores = spark.sparkContext.defaultParallelism

    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        root = Path(tmp)
        write_photos(root, args.images)
        start = time.perf_counter()
        model = from_keras(keras_network(args.model)).model
        print(f"converted {args.model} in {time.perf_counter() - start:.1f} s ({cores} cores)")
        transformer = ImageTransformer(
            inputCol="image",
            outputCol="probs",
            model=model,
            batchSize=args.batch_size,
            **SCALING,
        )
        pre = transformer.preprocessing()
        images = read_images(str(root), numPartitions=cores, spark=spark)

        def read_only() -> object:
            return images.mapInArrow(count_rows, "n long").groupBy().sum("n").collect()

        def decode() -> object:
            step = functools.partial(preprocess_only, pre)
            return images.mapInArrow(step, "n long").groupBy().sum("n").collect()

        def whole() -> object:
            transformer.transform(images).write.format("noop").mode("overwrite").save()
            return None

        rows = images.limit(args.batch_size).collect()
        structs = pa.array([r.image.asDict() for r in rows if r.image is not None])
        tensor, _ = pre.structs_to_tensor(structs)
        options = ort.SessionOptions()
        options.intra_op_num_threads = cores
        session = ort.InferenceSession(
            model.model_bytes, options, providers=["CPUExecutionProvider"]
        )
        feed = {model.inputs[0].name: tensor}

        read_rate = best_rate(args.images, read_only, args.repeats)
        decode_rate = best_rate(args.images, decode, args.repeats)
        model_rate = best_rate(len(tensor), lambda: session.run(None, feed), args.repeats + 1)
        whole_rate = best_rate(args.images, whole, args.repeats)

    print(f"{args.images} JPEGs (200-600 px) -> 224x224, {args.model}, batchSize {args.batch_size}")
    print(f"  read + decode (read_images)  : {read_rate:8.1f} img/s")
    print(f"  read + decode + resize alone : {decode_rate:8.1f} img/s")
    print(f"  model alone (ORT, {cores} threads) : {model_rate:8.1f} img/s")
    print(f"  whole path                   : {whole_rate:8.1f} img/s")
    print(f"  decode / model = {decode_rate / model_rate:.2f}  (above 1: decoding keeps up)")
    print(f"  whole / model  = {whole_rate / model_rate:.2f}")
    spark.stop()


if __name__ == "__main__":
    main()
