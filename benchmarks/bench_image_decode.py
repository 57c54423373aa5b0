"""Image reading throughput: sparkonnx.read_images vs Spark's own ``image`` data source.

Generates ~500 JPEGs of varied size (160-640 px a side) in a temp dir, then on local[2]:

- decode: every file read and decoded (the sum of decoded bytes forces the work);
- decode + resize: the decoded structs resized to 224x224 BGR in a ``mapInArrow`` with the
  engine's ``image_structs_to_batch`` (the model path's input), same step for both sources.

Prints images/s of each and ours / Spark's as a ratio. Not a test: run it by hand.

    .venv/bin/python benchmarks/bench_image_decode.py [--images 500] [--repeats 3]
        [--open-cost-zero]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
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

from sparkonnx import read_images


def write_jpegs(root: Path, n: int, seed: int = 0) -> int:
    """n photo-like JPEGs (smooth gradients plus noise) of random sizes; returns total bytes."""
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(n):
        h, w = (int(v) for v in rng.integers(160, 641, 2))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (h + w)], -1)
        noise = rng.normal(0, 12, (h, w, 3))
        rgb = np.clip(base + noise, 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=90)
        (root / f"img_{i:04d}.jpg").write_bytes(buf.getvalue())
        total += buf.tell()
    return total


def resize_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow step: image structs -> (n, 224, 224, 3) uint8, returns one row per image."""
    from sparkonnx.engine.image_batch import image_structs_to_batch

    for batch in batches:
        images = batch.column(batch.schema.get_field_index("image"))
        out = image_structs_to_batch(images, size=(224, 224), channels=3)
        sums = np.zeros(batch.num_rows, np.int64)
        sums[out.rows] = out.array.reshape(len(out.rows), -1).sum(axis=1, dtype=np.int64)
        yield pa.record_batch({"s": pa.array(sums)})


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median seconds of `repeats` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--open-cost-zero",
        action="store_true",
        help="set spark.sql.files.openCostInBytes=0 (more, smaller file partitions)",
    )
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master("local[2]")
        .appName("bench-image-decode")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    if args.open_cost_zero:
        builder = builder.config("spark.sql.files.openCostInBytes", "0")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        root = Path(tmp)
        nbytes = write_jpegs(root, args.images)
        print(f"{args.images} JPEGs, {nbytes / 1e6:.1f} MB, local[2]")

        def spark_source():  # type: ignore[no-untyped-def]
            return spark.read.format("image").load(str(root))

        def ours():  # type: ignore[no-untyped-def]
            return read_images(str(root), spark=spark)

        def decode(make):  # type: ignore[no-untyped-def]
            return lambda: make().selectExpr("sum(length(image.data))").collect()

        def decode_resize(make):  # type: ignore[no-untyped-def]
            return lambda: (
                make().mapInArrow(resize_batches, "s long").selectExpr("sum(s)").collect()
            )

        ours_sum = decode(ours)()[0][0]
        theirs_sum = decode(spark_source)()[0][0]
        print(f"decoded bytes: ours {ours_sum}, Spark's {theirs_sum}")

        results = {}
        for label, step in (("decode", decode), ("decode + resize 224", decode_resize)):
            t_ours = timed(step(ours), args.repeats)
            t_spark = timed(step(spark_source), args.repeats)
            results[label] = (args.images / t_ours, args.images / t_spark)
        for label, (mine, theirs) in results.items():
            print(
                f"{label:>20}: sparkonnx {mine:7.1f} img/s   spark image source {theirs:7.1f} "
                f"img/s   ratio {mine / theirs:.2f}"
            )
    spark.stop()


if __name__ == "__main__":
    main()
