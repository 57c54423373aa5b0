"""The `--parquet` run of bench_tensor.py: light and heavy MLP scored from Parquet files.

Paths, on the same files and model, repeats interleaved: raw (pyarrow reads the files + ORT in
one process, 2 threads) = 1.00; `score_parquet` (the sparkonnx data source); ONNXTransformer on
`spark.read.parquet`; pyspark's predict_batch_udf on `spark.read.parquet`. Spark paths write to
the `noop` sink. Not a test.

    .venv/bin/python benchmarks/bench_tensor.py --parquet [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import interleaved
from sparkonnx import ONNXTransformer, score_parquet

RAW = "raw (pyarrow + ORT, 1 process)"
OURS = "score_parquet"
ROW_GROUP_ROWS = 10_000


def write_table(folder: Path, x: np.ndarray, files: int = 4) -> str:
    """`x` with an id column as `files` Parquet files of ROW_GROUP_ROWS-row groups."""
    folder.mkdir(parents=True, exist_ok=True)
    n, width = x.shape
    for part, rows in enumerate(np.array_split(np.arange(n), files)):
        offsets = pa.array(np.arange(len(rows) + 1, dtype=np.int32) * width)
        table = pa.table(
            {
                "id": pa.array(rows, pa.int64()),
                "features": pa.ListArray.from_arrays(offsets, pa.array(x[rows].reshape(-1))),
            }
        )
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=ROW_GROUP_ROWS)
    return str(folder)


def raw_from_parquet(model_bytes: bytes, table: str, width: int, batch: int) -> Callable[[], Any]:
    """Read every file with pyarrow and run ORT (all cores) on the features, one process."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 2
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    files = sorted(Path(table).glob("*.parquet"))

    def run() -> None:
        for path in files:
            for part in pq.ParquetFile(path).iter_batches(batch_size=10_000, columns=["features"]):
                column = part.column(0)
                x = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), width)
                for start in range(0, len(x), batch):
                    session.run(["y"], {"x": x[start : start + batch]})

    return run


def parquet_paths(
    spark: Any, model_bytes: bytes, table: str, width: int, batch: int, udf_path: Callable
) -> dict[str, Callable[[], Any]]:
    """The four paths over the same files (`udf_path`: bench_tensor's predict_batch_udf one)."""
    model_file = Path(table).parent / "model.onnx"
    model_file.write_bytes(model_bytes)

    def sink(frame: Any) -> Callable[[], Any]:
        return lambda: frame.write.format("noop").mode("overwrite").save()

    common = dict(modelFile=str(model_file), inputCol="features", outputCol="y", batchSize=batch)
    frame = spark.read.parquet(table)
    return {
        RAW: raw_from_parquet(model_bytes, table, width, batch),
        OURS: sink(score_parquet(spark, table, keepColumns=["id"], **common)),
        "ONNXTransformer on read.parquet": sink(ONNXTransformer(**common).transform(frame)),
        "predict_batch_udf on read.parquet": sink(udf_path(frame, model_bytes, width, 0, batch)),
    }


def run_parquet(
    spark: Any, args: Any, models: dict[str, tuple[int, ...]], udf_path: Callable
) -> None:
    """Print rows/s and the ratio to raw for each model of `args.models`."""
    from benchmarks.bench_tensor import flops_per_row

    for name in args.models.split(","):
        widths = models[name]
        from sparkonnx import testing

        model_bytes = testing.mlp(widths).SerializeToString()
        x = np.random.default_rng(0).standard_normal((args.rows, widths[0]), dtype=np.float32)
        with tempfile.TemporaryDirectory(prefix="sparkonnx-bench-") as tmp:
            table = write_table(Path(tmp) / "table", x)
            paths = parquet_paths(spark, model_bytes, table, widths[0], args.batch, udf_path)
            results = interleaved(paths, args.repeats)
        base = args.rows / results[RAW]
        print(f"\n{name} MLP {'-'.join(map(str, widths))} from Parquet "
              f"({flops_per_row(widths) / 1e6:.1f} MFLOP/row)")  # fmt: skip
        print(f"  {'path':36s} {'rows/s':>10s} {'ratio to raw':>13s}")
        for path, seconds in results.items():
            rate = args.rows / seconds
            print(f"  {path:36s} {rate:10.0f} {rate / base:13.2f}")
