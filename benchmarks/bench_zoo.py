"""DeepImageFeaturizer (ResNet50, fp32) on local[2] vs raw ONNX Runtime vs predict_batch_udf+Keras.

One run, same images: decoded 224x224 photo crops in a cached DataFrame of image structs.
- raw ORT: the zoo graph on the same uint8 BGR batch, one process, both cores;
- DeepImageFeaturizer: the whole Spark path, written to the `noop` sink;
- predict_batch_udf + Keras: the Keras ResNet50 (same seeded weights) as a tf.function, one TF
  thread per task, fed the same pixels (BGR -> RGB and caffe preprocessing inside).
Weights are random (weights=None, seed 0): throughput does not depend on them.

    .venv/bin/python benchmarks/bench_zoo.py [--images 128] [--model ResNet50]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pyarrow as pa


def photos(n: int, size: int = 224) -> np.ndarray:
    """n BGR uint8 crops of the photos shipped in scikit-image / scikit-learn."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    sources += list(load_sample_images().images)
    rng = np.random.default_rng(0)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        img = sources[i % len(sources)]
        y, x = rng.integers(0, img.shape[0] - 200), rng.integers(0, img.shape[1] - 200)
        crop = Image.fromarray(img[y : y + 200, x : x + 200]).resize((size, size))
        out[i] = np.asarray(crop)[..., ::-1]
    return out


def timed(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import onnxruntime as ort
    from pyspark.sql import SparkSession

    from sparkonnx import DeepImageFeaturizer
    from sparkonnx.engine.images import batch_to_image_structs
    from sparkonnx.model_zoo.build import build_model
    from sparkonnx.model_zoo.registry import get_model

    spec = get_model(args.model)
    model = build_model(spec.name, None)
    bgr = photos(args.images, spec.input_size[0])

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 2
    session = ort.InferenceSession(model.model_bytes, options, providers=["CPUExecutionProvider"])
    raw_seconds = timed(
        lambda: [
            session.run(["features"], {"image": bgr[i : i + 32]}) for i in range(0, len(bgr), 32)
        ],
        args.repeats,
    )

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    structs = batch_to_image_structs(bgr, origins=[f"img{i}" for i in range(len(bgr))])
    images = spark.createDataFrame(pa.table({"image": structs})).repartition(2).cache()
    images.count()

    featurizer = DeepImageFeaturizer(
        inputCol="image", outputCol="features", modelName=spec.name, weights=None
    )
    ours_seconds = timed(
        lambda: featurizer.transform(images).write.format("noop").mode("overwrite").save(),
        args.repeats,
    )

    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    name = spec.name

    def make_predict_fn():
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from sparkonnx.model_zoo.build import WeightsChoice as W
        from sparkonnx.model_zoo.build import _build_keras as build
        from sparkonnx.model_zoo.build import fused_function as fuse
        from sparkonnx.model_zoo.registry import get_model as get

        serve = fuse(get(name), build(get(name), W(None, "random"), seed=0))

        def predict(x: np.ndarray) -> np.ndarray:
            return serve(tf.constant(x.astype(np.uint8)))["features"].numpy()

        return predict

    keras_udf = predict_batch_udf(
        make_predict_fn,
        return_type=ArrayType(FloatType()),
        batch_size=32,
        input_tensor_shapes=[[spec.input_size[0], spec.input_size[1], 3]],
    )
    # predict_batch_udf needs a numeric array column: the same pixels, cached
    table = pa.table(
        {
            "pixels": pa.ListArray.from_arrays(
                pa.array(np.arange(len(bgr) + 1, dtype=np.int32) * bgr[0].size),
                pa.array(bgr.reshape(-1).astype(np.int16)),
            )
        }
    )
    pixel_df = spark.createDataFrame(table).repartition(2).cache()
    pixel_df.count()
    keras_seconds = timed(
        lambda: (
            pixel_df.withColumn("f", keras_udf("pixels"))
            .write.format("noop")
            .mode("overwrite")
            .save()
        ),
        args.repeats,
    )

    n = len(bgr)
    raw, ours, keras_rate = n / raw_seconds, n / ours_seconds, n / keras_seconds
    print(f"\n{spec.name} features, {n} images {spec.input_size}, local[2], 2 cores")
    print(f"  raw ORT (1 process, 2 threads)  {raw:8.1f} img/s  1.00")
    print(f"  DeepImageFeaturizer             {ours:8.1f} img/s  {ours / raw:.2f} of raw ORT")
    print(
        f"  predict_batch_udf + Keras       {keras_rate:8.1f} img/s  {keras_rate / raw:.2f} of raw"
    )
    print(f"  DeepImageFeaturizer / Keras path: {ours / keras_rate:.2f}x")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"  peak RSS of child processes (JVM / Python workers): {peak:.0f} MB")
    spark.stop()


if __name__ == "__main__":
    main()
