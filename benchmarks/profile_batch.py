"""Where the time goes inside one task, per Arrow batch (no Spark): convert in, run, convert out.

.venv/bin/python benchmarks/profile_batch.py [--rows 10000] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

from sparkonnx import testing
from sparkonnx.engine.model import OnnxModel
from sparkonnx.engine.providers import plan_providers
from sparkonnx.engine.sessions import SessionCache, SessionOptions
from sparkonnx.engine.tensors import column_to_tensor, tensor_to_arrow

MODELS = {"light": (256, 512, 512, 16), "heavy": (256, 2048, 2048, 16)}


def best_of(fn, repeats: int = 7) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def profile(name: str, widths: tuple[int, ...], args: argparse.Namespace) -> None:
    """Time the three steps of one task's batch for one model."""
    model = OnnxModel.load(testing.mlp(widths))
    session = SessionCache().get(
        model.sha256,
        lambda m=model: m.model_bytes,
        plan_providers("cpu"),
        SessionOptions(intra_op_threads=args.threads),
    )
    x = np.random.default_rng(0).standard_normal((args.rows, widths[0]), dtype=np.float32)
    column = pa.ListArray.from_arrays(
        pa.array(np.arange(args.rows + 1, dtype=np.int32) * widths[0]), pa.array(x.reshape(-1))
    )
    packed = pa.array(list(map(bytes, x)), pa.binary())  # the same rows as packed float32
    spec = model.inputs[0]
    tensor = column_to_tensor(column, "features", spec)
    y = session.run({"x": tensor}, args.batch)["y"]
    parts = {
        "arrow -> tensor": best_of(lambda: column_to_tensor(column, "features", spec)),
        f"ORT run (batchSize {args.batch})": best_of(
            lambda: session.run({"x": tensor}, args.batch)
        ),
        "ORT run (whole batch)": best_of(lambda: session.run({"x": tensor}, None)),
        "binary arrow -> tensor": best_of(lambda: column_to_tensor(packed, "packed", spec)),
        "tensor -> arrow": best_of(lambda: tensor_to_arrow(y)),
    }
    print(f"\n{name} MLP, {args.rows} rows per Arrow batch, {args.threads} ORT thread(s)")
    alternatives = ("ORT run (whole batch)", "binary arrow -> tensor")  # not in the total
    total = sum(v for k, v in parts.items() if k not in alternatives)
    for label, seconds in parts.items():
        print(f"  {label:28s} {seconds * 1e3:8.2f} ms  {seconds / total:6.1%}")
    print(f"  => per-task ceiling {args.rows / total:,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1024)
    args = parser.parse_args()
    for name, widths in MODELS.items():
        profile(name, widths, args)


if __name__ == "__main__":
    main()
