"""DeepImageFeaturizer (fp32) on local[2] vs raw ONNX Runtime vs predict_batch_udf + Keras.

One run, same images: 224x224 crops of the photos shipped in scikit-image / scikit-learn, in a
cached DataFrame of image structs (plus the same pixels as a numeric array for
predict_batch_udf).
- raw ORT: the zoo graph on the same uint8 BGR batches, one process, both cores;
- DeepImageFeaturizer: the whole Spark path (one transformed DataFrame) to the `noop` sink;
- predict_batch_udf + Keras: the zoo's Keras network (same seeded weights) and preprocessing
  as one tf.function, one TF thread per task, on the same pixels.
Every path: one untimed warm-up run (workers start, sessions / Keras models are built), then
--repeats rounds of one run of each path in turn (so a load change hits all paths alike); the
median per path. Weights are random (weights=None, seed 0): speed does not depend on
them. Prints img/s, ratios and the Python workers' peak memory. Not a test: run it by hand.

    .venv/bin/python benchmarks/bench_zoo.py [--images 256] [--model ResNet50] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import (  # after sys.path: `python benchmarks/x.py` works
    describe_worker_memory,
    image_dataframe,
    interleaved,
    keras_zoo_udf,
    local_spark,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--model", default="ResNet50")
    parser.add_argument("--batch", type=int, default=32, help="batch size of every path")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import onnxruntime as ort

    from sparkonnx import DeepImageFeaturizer
    from sparkonnx.model_zoo.build import build_model
    from sparkonnx.model_zoo.registry import get_model
    from sparkonnx.testing import photo_crops

    spec = get_model(args.model)
    model = build_model(spec.name, None)
    bgr = photo_crops(args.images, spec.input_size[0])
    n, b = len(bgr), args.batch

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 2
    session = ort.InferenceSession(model.model_bytes, options, providers=["CPUExecutionProvider"])

    spark = local_spark()
    df = image_dataframe(spark, bgr)
    featurizer = DeepImageFeaturizer(
        inputCol="image", outputCol="features", modelName=spec.name, weights=None, batchSize=b
    )
    ours_df = featurizer.transform(df.select("id", "image"))
    keras_udf = keras_zoo_udf(spec.name, "features", b, spec.input_size)
    keras_df = df.select("id", keras_udf("pixels").alias("f"))
    paths = {
        "raw": lambda: [
            session.run(["features"], {"image": bgr[i : i + b]}) for i in range(0, n, b)
        ],
        "ours": lambda: ours_df.write.format("noop").mode("overwrite").save(),
        "keras": lambda: keras_df.write.format("noop").mode("overwrite").save(),
    }
    paths["ours"]()  # first, alone: the workers' peak memory is then ours only, not Keras'
    memory = describe_worker_memory()
    seconds = interleaved(paths, args.repeats)
    raw, ours, keras = (n / seconds[k] for k in ("raw", "ours", "keras"))

    print(f"\n{spec.name} features, {n} images {spec.input_size}, batch {b}, local[2], 2 cores")
    print(f"  raw ORT (1 process, 2 threads)  {raw:8.1f} img/s  1.00")
    print(f"  DeepImageFeaturizer             {ours:8.1f} img/s  {ours / raw:.2f} of raw ORT")
    print(f"  predict_batch_udf + Keras       {keras:8.1f} img/s  {keras / raw:.2f} of raw ORT")
    print(f"  DeepImageFeaturizer / Keras path: {ours / keras:.2f}x")
    print(f"  after a DeepImageFeaturizer run, before any other path: {memory}")
    spark.stop()


if __name__ == "__main__":
    main()
