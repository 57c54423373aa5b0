"""Decode images on CPU tasks, run the model on GPU tasks: stage-level scheduling (pyspark 4.0+).

Decoding needs cores, inference needs a GPU: asking every task for a GPU
(`spark.task.resource.gpu.amount`) leaves the GPUs idle while images decode, and limits the
decoding tasks to one per GPU. A ResourceProfile asks for a GPU only in the stage that scores:

- executors offer GPUs (`spark.executor.resource.gpu.amount`, plus a discovery script on the
  workers), but `spark.task.resource.gpu.amount` is not set, so ordinary tasks take none;
- `read_images` decodes in the first stage (default profile: CPU tasks);
- `repartition` ends that stage; the model stage runs in the next one, which a pass-through
  `mapInArrow(..., profile=...)` puts on tasks that each hold one GPU. Each task's ONNX Runtime
  session then uses the GPU Spark gave it (`TaskContext.resources()["gpu"]`; the stage's
  `deviceId` overrides it).

On a standalone cluster with dynamic allocation off, such a task-only profile runs on the
default executors (Spark 3.4+). On this project's test machines the GPUs are fake, so inference
falls back to CPU with a warning naming the GPU it was given (tests/cluster/test_gpu.py).

    python examples/gpu_stage_profile.py spark://host:7077 /path/to/images
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pyarrow as pa


def gpu_task_profile(gpus: float = 1.0, cpus: int = 1) -> Any:
    """A task-only ResourceProfile: each task of a stage using it holds ``gpus`` GPUs."""
    from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

    tasks = TaskResourceRequests().cpus(cpus).resource("gpu", gpus)
    return ResourceProfileBuilder().require(tasks).build


def pass_through(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """A `mapInArrow` function that returns its batches: only there to carry the profile."""
    yield from batches


def decode_then_score(
    spark: Any, images: str, stage: Any, partitions: int, keep: list[str] | None = None
) -> Any:
    """``stage`` (e.g. an ImageTransformer) over the images in ``images``: decoding on CPU
    tasks, the model on GPU tasks. ``keep``: the columns to return (default: all but the
    decoded image, so the pixels do not travel through Python once more)."""
    from sparkonnx import read_images

    decoded = read_images(images, spark=spark).repartition(partitions)
    scored = stage.transform(decoded)
    scored = scored.select(*(keep or [c for c in scored.columns if c != "image"]))
    return scored.mapInArrow(pass_through, scored.schema, profile=gpu_task_profile())


def main(argv: list[str]) -> None:
    from pyspark.sql import SparkSession

    from sparkonnx import ImageTransformer, testing

    master, images = argv
    spark = (
        SparkSession.builder.master(master)
        .config("spark.executor.resource.gpu.amount", "1")
        .getOrCreate()
    )
    stage = ImageTransformer(
        inputCol="image", outputCol="probabilities", model=testing.small_classifier()
    )
    for row in decode_then_score(spark, images, stage, partitions=4).collect():
        print(row.path, [round(p, 3) for p in row.probabilities])
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
