"""DeepImageFeaturizer (ResNet50) int8 vs fp32 vs predict_batch_udf + Keras, on one DataFrame.

One run, same images: 224x224 crops of the photos shipped in scikit-image / scikit-learn in a
cached DataFrame of image structs (plus the same pixels as a numeric array for
predict_batch_udf), on local[2] with one core per task, every path written to the `noop` sink.
- DeepImageFeaturizer fp32: the zoo's fused ResNet50 graph (weights=None, seed 0);
- DeepImageFeaturizer int8: the same stage with precision='int8': the first transform samples
  --calibration-rows images from this DataFrame, calibrates on 3/4 of them, gates on the rest
  (mean cosine of the features vs fp32 >= 0.99) and caches the model (timed separately);
- predict_batch_udf + Keras: the zoo's Keras network (same weights) and preprocessing as one
  tf.function, one TF thread per task.
Each path: one untimed warm-up run, then --repeats rounds of one run of each path in turn; the
median per path. Prints img/s, ratios,
the gate's figures and the int8 vs fp32 agreement over every image. The int8 stage accepts int8
at any speed here (precisionTolerance min_speedup 0) so that the ratio is measured, not refused.

With --search, instead: the int8 search on two real models, driver-side, one run: every
configuration's gate figure, img/s and ratio to fp32 (see `search_tables`). Not a test: run by
hand, once.

    .venv/bin/python benchmarks/bench_precision.py [--images 256] [--repeats 3]
    .venv/bin/python benchmarks/bench_precision.py --search [--search-seconds 300]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import (  # after sys.path: `python benchmarks/x.py` works
    collect_vectors,
    cosine_rows,
    describe_worker_memory,
    image_dataframe,
    interleaved,
    keras_zoo_udf,
    local_spark,
)

MODEL = "ResNet50"


def _table(title: str, result: object) -> None:
    found = result.search  # type: ignore[attr-defined]
    timing = found.timing
    fp32 = timing.rows / timing.seconds[0]
    print(f"\n{title}: {found.mode_reason}; kept {found.chosen}")
    print("  | configuration | gate | img/s | x fp32 | s |\n  |---|---|---|---|---|")
    print(f"  | fp32 | | {fp32:.1f} | 1.00 | |")
    for t in found.trials:
        rate = "| | |" if t.speedup is None else f"| {fp32 * t.speedup:.1f} | {t.speedup:.2f} |"
        print(f"  | {t.config} | {t.figures()}, {t.status} {rate} {t.seconds:.0f} |")


def search_tables(args: argparse.Namespace) -> None:
    """The int8 search on ResNet50 features (the zoo's graph, weights=None, cut to `features`;
    calibrated on photo crops, judged by mean cosine on others) and on the pretrained
    EfficientNet-Lite0 of tests/pretrained.py (`logits` judged by top-1 on the 8 whole photos
    and 16 crops, calibrated on 6 crops, bar 0.8). Every configuration is listed
    (min_speedup 0); passing ones are timed against fp32 in this process (one ORT thread, 8
    rows, best of interleaved rounds): img/s = 8 / seconds."""
    import numpy as np

    from sparkonnx.converters.quantize import quantize
    from sparkonnx.engine.cpu_features import cpu_features
    from sparkonnx.engine.pruning import keep_outputs
    from sparkonnx.model_zoo.build import build_model
    from sparkonnx.testing import photo_crops
    from tests.pretrained import efficientnet_lite0, photos

    print(f"CPU: {cpu_features().summary()}; the machine is shared and loaded: ratios only")
    budget: dict = {"search_seconds": args.search_seconds, "tolerance": {"min_speedup": 0}}
    resnet = keep_outputs(build_model(MODEL, None), ["features"])
    crops = photo_crops(2 * args.calibration_rows, 224, seed=3)
    n = args.calibration_rows
    result = quantize(resnet, crops[:n], validation=crops[n:], **budget)
    _table(f"{MODEL} features (weights=None), {n} calibration / {n} gate crops", result)

    def rgb(count: int, seed: int) -> np.ndarray:
        return photo_crops(count, 224, seed)[..., ::-1].astype(np.float32)

    validation = np.concatenate([photos()[1], rgb(16, 2)])
    budget["tolerance"] = {"min_speedup": 0, "top1": 0.8}
    result = quantize(efficientnet_lite0(), rgb(6, 1), validation=validation, **budget)
    _table("EfficientNet-Lite0 ImageNet logits, 6 calibration crops / 24 gate rows", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32, help="batch size of every path")
    parser.add_argument("--calibration-rows", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--search", action="store_true", help="the int8 search tables instead")
    parser.add_argument("--search-seconds", type=float, default=300.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.search:
        search_tables(args)
        return
    logging.getLogger("sparkonnx.converters.quantize").setLevel(logging.INFO)
    os.environ.setdefault("SPARKONNX_CACHE", tempfile.mkdtemp(prefix="sparkonnx-bench-"))

    from sparkonnx import DeepImageFeaturizer
    from sparkonnx.model_zoo.build import build_model
    from sparkonnx.model_zoo.registry import get_model
    from sparkonnx.testing import photo_crops

    spec = get_model(MODEL)
    build_model(MODEL, None)  # the fp32 build, cached before anything is timed
    spark = local_spark()
    df = image_dataframe(spark, photo_crops(args.images, spec.input_size[0]))
    images = df.select("id", "image")
    params = dict(inputCol="image", outputCol="f", modelName=MODEL, weights=None)
    fp32 = DeepImageFeaturizer(**params, batchSize=args.batch).transform(images)
    int8_stage = DeepImageFeaturizer(
        **params,
        batchSize=args.batch,
        precision="int8",
        calibrationRows=args.calibration_rows,
        precisionTolerance={"min_speedup": 0},  # measure the ratio; do not refuse
    )
    start = time.perf_counter()
    int8 = int8_stage.transform(images)  # samples, calibrates, gates, caches
    calibration_seconds = time.perf_counter() - start
    keras = df.select(
        "id", keras_zoo_udf(MODEL, "features", args.batch, spec.input_size)("pixels").alias("f")
    )

    outputs = {"fp32": fp32, "int8": int8, "keras": keras}
    int8.write.format("noop").mode("overwrite").save()  # alone: peak memory of int8 only
    memory = describe_worker_memory()
    seconds = interleaved(
        {
            name: (lambda out=out: out.write.format("noop").mode("overwrite").save())
            for name, out in outputs.items()
        },
        args.repeats,
    )
    rates = {name: args.images / value for name, value in seconds.items()}
    features = {
        name: collect_vectors(out, "f")
        for name, out in (("fp32", fp32), ("int8", int8), ("keras", keras))
    }
    int8_cos = cosine_rows(features["int8"], features["fp32"])
    keras_cos = cosine_rows(features["keras"], features["fp32"])

    n, keras_rate = args.images, rates["keras"]
    print(f"\n{MODEL} features, {n} images, batch {args.batch}, local[2], 2 cores")
    for name, label in (("int8", "int8"), ("fp32", "fp32")):
        rate = rates[name]
        print(f"  DeepImageFeaturizer {label}  {rate:7.1f} img/s  {rate / keras_rate:.2f}x Keras")
    print(f"  predict_batch_udf + Keras  {keras_rate:7.1f} img/s  1.00x")
    print(
        f"  int8 / fp32 {rates['int8'] / rates['fp32']:.2f}x; the first int8 transform "
        f"(sample + calibrate + gate + cache) took {calibration_seconds:.1f} s"
    )
    print(
        f"  int8 vs fp32 features on all {n} images: mean cosine {int8_cos.mean():.4f}, "
        f"min {int8_cos.min():.4f}; Keras vs ONNX fp32: min cosine {keras_cos.min():.6f}"
    )
    print(f"  after an int8 run, before any other path: {memory}")
    spark.stop()


if __name__ == "__main__":
    main()
