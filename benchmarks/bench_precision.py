"""ResNet50 features on Spark: ONNXTransformer fp32 and int8 vs `predict_batch_udf` + Keras.

One DataFrame of decoded photos (crops of scikit-image's sample photos, resized to 224x224),
preprocessed once into a float tensor column (Keras' ResNet50 'caffe' preprocessing), cached;
every path reads that column and writes its 2048-d avg-pool features to the `noop` sink, on
local[2] with one core per task. The network is `keras.applications.ResNet50(weights=None)`,
seeded (no download), converted with sparkonnx's converters; int8 is calibrated by
ONNXTransformer itself on a sample drawn from the DataFrame, then gated (cosine vs fp32). Keras
runs a tf.function of the model with one TF thread per task, like ONNX Runtime here. Prints
img/s, ratios, and the int8 vs fp32 agreement over every row. Not a test: run it by hand.

    .venv/bin/python benchmarks/bench_precision.py [--rows 256] [--batch 16] [--seed 0]

When DeepImageFeaturizer lands, the ONNX paths switch to it (same model, same column).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SIZE = 224
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)


def photo_crops(n: int, seed: int = 0) -> np.ndarray:
    """float32 [n, 224, 224, 3]: random crops of scikit-image's photos, ResNet50-preprocessed."""
    return caffe_preprocess(photo_pixels(n, seed))


def photo_pixels(n: int, seed: int = 0) -> np.ndarray:
    """uint8 RGB [n, 224, 224, 3]: random square crops (random flips) of the sample photos."""
    import skimage
    from PIL import Image

    folder = Path(skimage.__file__).parent / "data"
    files = sorted(glob.glob(str(folder / "*.png")) + glob.glob(str(folder / "*.jpg")))
    photos = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    photos = [p for p in photos if min(p.shape[:2]) >= 64]
    rng = np.random.default_rng(seed)
    out = np.empty((n, SIZE, SIZE, 3), np.uint8)
    for i in range(n):
        p = photos[rng.integers(len(photos))]
        h, w, _ = p.shape
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(p[y : y + side, x : x + side]).resize((SIZE, SIZE))
        arr = np.asarray(crop)
        out[i] = arr[:, ::-1] if rng.random() < 0.5 else arr
    return out


def caffe_preprocess(rgb: np.ndarray) -> np.ndarray:
    """keras.applications.resnet50.preprocess_input, in numpy: RGB -> BGR, minus ImageNet mean."""
    return rgb[..., ::-1].astype(np.float32) - CAFFE_MEAN_BGR


def resnet50_two_outputs(seed: int = 0) -> Any:
    """ResNet50(weights=None), seeded: outputs [avg-pool features (2048), probabilities (1000)]."""
    import keras

    keras.utils.set_random_seed(seed)
    base = keras.applications.ResNet50(weights=None)
    return keras.Model(base.inputs, [base.get_layer("avg_pool").output, base.output])


def resnet50_features(seed: int = 0) -> Any:
    """ResNet50(weights=None), seeded, up to its 2048-d avg-pool features (the featurizer)."""
    import keras

    keras.utils.set_random_seed(seed)
    base = keras.applications.ResNet50(weights=None)
    return keras.Model(base.inputs, base.get_layer("avg_pool").output)


def _keras_predict_fn(path: str) -> Callable[[], Callable[[np.ndarray], np.ndarray]]:
    def make_predict_fn() -> Callable[[np.ndarray], np.ndarray]:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        import keras

        model = keras.models.load_model(path)
        infer = tf.function(lambda x: model(x, training=False))  # a graph, not eager op by op

        def predict(x: np.ndarray) -> np.ndarray:
            return np.asarray(infer(tf.constant(x.reshape(-1, SIZE, SIZE, 3))))

        return predict

    return make_predict_fn


def _run(df: Any) -> float:
    start = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - start


def _features(df: Any, column: str) -> np.ndarray:
    rows = df.select("id", column).orderBy("id").toArrow()
    flat = rows.column(column).combine_chunks().flatten().to_numpy()
    return flat.reshape(rows.num_rows, -1)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256, help="images in the DataFrame")
    parser.add_argument("--batch", type=int, default=16, help="batch size of every path")
    parser.add_argument("--calibration-rows", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("sparkonnx.spark_api.precision").setLevel(logging.INFO)
    logging.getLogger("sparkonnx.converters.quantize").setLevel(logging.INFO)

    import pyarrow as pa
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import SparkSession
    from pyspark.sql import types as T

    from sparkonnx import ONNXTransformer
    from sparkonnx.converters import from_keras

    tmp = Path(tempfile.mkdtemp(prefix="sparkonnx-bench-precision-"))
    os.environ.setdefault("SPARKONNX_CACHE", str(tmp / "cache"))
    keras_model = resnet50_features(args.seed)
    keras_path = tmp / "resnet50.keras"
    keras_model.save(keras_path)
    t0 = time.perf_counter()
    fp32 = from_keras(keras_model, sample_input=photo_crops(2, seed=99), output_names=["features"])
    print(f"converted in {time.perf_counter() - t0:.1f} s; {fp32.parity.summary()}")  # type: ignore[union-attr]

    x = photo_crops(args.rows, args.seed)
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.driver.memory", "6g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.batch * 4))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    table = pa.table(
        {
            "id": pa.array(np.arange(args.rows)),
            "x": pa.ListArray.from_arrays(
                pa.array(np.arange(args.rows + 1) * x[0].size, pa.int32()), x.reshape(-1)
            ),
        }
    )
    df = spark.createDataFrame(table).repartition(2).cache()
    df.count()

    results: dict[str, float] = {}
    outputs: dict[str, np.ndarray] = {}

    def bench(name: str, transformed: Any) -> None:
        _run(transformed)  # warm-up: sessions / Keras models built in both workers
        seconds = _run(transformed)
        results[name] = args.rows / seconds
        outputs[name] = _features(transformed, "features")
        print(f"{name:>28}: {results[name]:7.1f} img/s ({seconds:.1f} s for {args.rows})")

    onnx_args = {"model": fp32.model, "inputCol": "x", "outputCol": "features"}
    bench("ONNXTransformer fp32", ONNXTransformer(**onnx_args, batchSize=args.batch).transform(df))
    int8 = ONNXTransformer(
        **onnx_args,
        batchSize=args.batch,
        precision="int8",
        calibrationRows=args.calibration_rows,
        calibrationSeed=args.seed,
    )
    t0 = time.perf_counter()
    int8_df = int8.transform(df)  # calibrates on a DataFrame sample, gates, caches
    print(f"int8 calibration + gate (first transform): {time.perf_counter() - t0:.1f} s")
    bench("ONNXTransformer int8", int8_df)
    keras_udf = predict_batch_udf(
        _keras_predict_fn(str(keras_path)),
        return_type=T.ArrayType(T.FloatType()),
        batch_size=args.batch,
        input_tensor_shapes=[[SIZE * SIZE * 3]],
    )
    bench("predict_batch_udf + Keras", df.withColumn("features", keras_udf("x")))

    cos = _cosine(outputs["ONNXTransformer int8"], outputs["ONNXTransformer fp32"])
    keras_cos = _cosine(outputs["predict_batch_udf + Keras"], outputs["ONNXTransformer fp32"])
    keras_img_s = results["predict_batch_udf + Keras"]
    print(
        f"\nint8 / Keras {results['ONNXTransformer int8'] / keras_img_s:.2f}x, "
        f"fp32 / Keras {results['ONNXTransformer fp32'] / keras_img_s:.2f}x, "
        f"int8 / fp32 {results['ONNXTransformer int8'] / results['ONNXTransformer fp32']:.2f}x"
    )
    print(
        f"int8 vs fp32 features over all {args.rows} rows: mean cosine {cos.mean():.4f}, "
        f"min {cos.min():.4f}; Keras vs ONNX fp32: min cosine {keras_cos.min():.6f}"
    )
    spark.stop()


if __name__ == "__main__":
    main()
