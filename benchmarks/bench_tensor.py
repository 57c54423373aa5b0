"""Tensor-path throughput: ONNXTransformer vs raw ONNX Runtime vs the hand-written alternatives.

Same model and same data in one run: raw ORT on numpy in one process (both cores); then, on
local[2] over a cached DataFrame written to the `noop` sink: ONNXTransformer, pyspark's
`predict_batch_udf` running the same ORT model, and a plain `mapInPandas` running it; also
ONNXTransformer on the same float32 values packed in a binary column (an opt-in input format).
Repeats are interleaved across paths. Prints rows/s and each ratio to raw ORT. Not a test.

    .venv/bin/python benchmarks/bench_tensor.py [--rows 200000] [--repeats 3] [--models light,heavy]
    .venv/bin/python benchmarks/bench_tensor.py --parquet   # from Parquet files (bench_parquet.py)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator

import numpy as np
import onnx
import pandas as pd
import pyarrow as pa

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

import itertools

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import interleaved  # after sys.path: `python benchmarks/x.py` works
from sparkonnx import ONNXTransformer, testing
from sparkonnx.spark_api.runtime.arrow_udf_path import arrow_udf_supported

MODELS = {"light": (256, 512, 512, 16), "heavy": (256, 2048, 2048, 16)}
RAW = "raw ORT (1 process, 2 threads)"
OURS = "ONNXTransformer"
BINARY = "ONNXTransformer, binary column"


def flops_per_row(widths: tuple[int, ...]) -> float:
    return 2.0 * sum(a * b for a, b in itertools.pairwise(widths))


def raw_ort(model_bytes: bytes, x: np.ndarray, batch: int) -> Callable[[], object]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 2
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])

    def run() -> None:
        for start in range(0, len(x), batch):
            session.run(["y"], {"x": x[start : start + batch]})

    return run


def _one_thread_session(model_bytes: bytes):  # what a careful hand-written UDF would build
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def predict_batch_udf_path(df, model_bytes: bytes, width: int, out: int, batch: int):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    def make_predict_fn():
        session = _one_thread_session(model_bytes)

        def predict(x: np.ndarray) -> np.ndarray:
            return session.run(["y"], {"x": x.astype(np.float32, copy=False)})[0]

        return predict

    udf = predict_batch_udf(
        make_predict_fn,
        return_type=ArrayType(FloatType()),
        batch_size=batch,
        input_tensor_shapes=[[width]],
    )
    return df.withColumn("y", udf("features"))


def map_in_pandas_path(df, model_bytes: bytes, batch: int):
    def predict(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        session = _one_thread_session(model_bytes)
        for frame in frames:
            x = np.stack(frame["features"].to_numpy()).astype(np.float32)
            y = session.run(["y"], {"x": x})[0]
            frame["y"] = list(y)
            yield frame

    return df.mapInPandas(predict, f"{df.schema.simpleString()[7:-1]}, y array<float>")


def packed_frame(spark, x: np.ndarray):
    """The same rows with `x` packed as float32 bytes in a binary column, cached like `df`."""
    table = pa.table(
        {"id": pa.array(np.arange(len(x))), "packed": pa.array(list(map(bytes, x)), pa.binary())}
    )
    frame = spark.createDataFrame(table).repartition(2).cache()
    frame.count()
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--models", default="light,heavy")
    parser.add_argument("--skip", default="", help="comma list of paths to skip")
    parser.add_argument("--parquet", action="store_true", help="score Parquet files instead")
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "6g")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    if args.parquet:
        from benchmarks.bench_parquet import run_parquet

        print(f"rows={args.rows} batch={args.batch} cores={os.cpu_count()} spark={spark.version}")
        run_parquet(spark, args, MODELS, predict_batch_udf_path)
        spark.stop()
        return
    skip = set(filter(None, args.skip.split(",")))
    way = "arrow_udf" if arrow_udf_supported() else "mapInArrow"
    print(
        f"rows={args.rows} batch={args.batch} cores={os.cpu_count()} spark={spark.version} "
        f"ONNXTransformer via {way}"
    )
    for name in args.models.split(","):
        widths = MODELS[name]
        model_bytes = testing.mlp(widths).SerializeToString()
        onnx.checker.check_model(onnx.load_from_string(model_bytes))
        x = np.random.default_rng(0).standard_normal((args.rows, widths[0]), dtype=np.float32)
        table = pa.table(
            {
                "id": pa.array(np.arange(args.rows)),
                "features": pa.ListArray.from_arrays(
                    pa.array(np.arange(args.rows + 1, dtype=np.int32) * widths[0]),
                    pa.array(x.reshape(-1)),
                ),
            }
        )
        df = spark.createDataFrame(table).repartition(2).cache()
        df.count()

        def sink(frame) -> Callable[[], object]:
            return lambda: frame.write.format("noop").mode("overwrite").save()

        paths: dict[str, Callable[[], object]] = {
            RAW: raw_ort(model_bytes, x, args.batch),
            OURS: sink(
                ONNXTransformer(
                    model=model_bytes, inputCol="features", outputCol="y", batchSize=args.batch
                ).transform(df)
            ),
        }
        if "binary" not in skip:  # the same float32 values, packed in a binary column (opt-in)
            packed = packed_frame(spark, x)
            paths[BINARY] = sink(
                ONNXTransformer(
                    model=model_bytes, inputCol="packed", outputCol="y", batchSize=args.batch
                ).transform(packed)
            )
        if "predict_batch_udf" not in skip:
            frame = predict_batch_udf_path(df, model_bytes, widths[0], widths[-1], args.batch)
            paths["predict_batch_udf + ORT"] = sink(frame)
        if "mapInPandas" not in skip:
            paths["mapInPandas + ORT"] = sink(map_in_pandas_path(df, model_bytes, args.batch))
        results = interleaved(paths, args.repeats)
        df.unpersist()

        if BINARY in paths:
            packed.unpersist()
        base = args.rows / results[RAW]
        mflop = flops_per_row(widths) / 1e6
        print(f"\n{name} MLP {'-'.join(map(str, widths))} ({mflop:.1f} MFLOP/row)")
        print(f"  {'path':34s} {'rows/s':>10s} {'ratio to raw ORT':>17s}")
        for path, seconds in results.items():
            rate = args.rows / seconds
            print(f"  {path:34s} {rate:10.0f} {rate / base:17.2f}")
        ours = args.rows / results[OURS]
        for path in ("predict_batch_udf + ORT", "mapInPandas + ORT"):
            if path in results:
                print(f"  ONNXTransformer / {path}: {ours / (args.rows / results[path]):.2f}x")
    spark.stop()


if __name__ == "__main__":
    main()
