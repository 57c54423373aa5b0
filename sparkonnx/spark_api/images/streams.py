"""Images from files that keep arriving: `read_image_stream` (Structured Streaming) and
`decode_images`, which decodes any DataFrame of file bytes, streaming or not.

`read_images` lists its files once, on the driver (and adds rows for empty files with a job),
which a stream cannot do. Here Spark's ``binaryFile`` source lists the folder at each
micro-batch and the bytes are decoded on the executors exactly as `read_images` decodes them,
into the same ``image`` / ``path`` / ``error`` columns: the image stages and SQL functions then
run on the stream as on a batch DataFrame.

Spark's file sources skip zero-length files: on a stream an empty file gives no row (a batch
`read_images` gives it a row with the error "empty file").
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from pyspark.sql.types import (
    BinaryType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from sparkonnx.engine.image_decode import DEFAULT_MAX_PIXELS, decode_file_batches
from sparkonnx.spark_api.images.reading import READ_IMAGES_SCHEMA
from sparkonnx.spark_api.session import active_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["BINARY_FILE_SCHEMA", "decode_images", "read_image_stream"]

#: The schema of Spark's ``binaryFile`` source (a streaming read must be given it).
BINARY_FILE_SCHEMA = StructType(
    [
        StructField("path", StringType(), False),
        StructField("modificationTime", TimestampType(), False),
        StructField("length", LongType(), False),
        StructField("content", BinaryType(), True),
    ]
)


def decode_images(
    files: DataFrame,
    *,
    pathCol: str = "path",
    contentCol: str = "content",
    strict: bool = False,
    maxPixels: int | None = DEFAULT_MAX_PIXELS,
    decoder: Callable[[bytes], np.ndarray] | None = None,
) -> DataFrame:
    """Decode a DataFrame of (path, file bytes) rows, e.g. ``binaryFile``, streaming or not,
    into `read_images`' columns ``image``, ``path``, ``error`` (one row per input row).

    ``strict``, ``maxPixels`` and ``decoder`` (file bytes -> BGR(A) array, as for
    `readImagesWithCustomFn`) mean what they mean for `read_images`. Other columns are dropped.
    """
    for role, column in (("pathCol", pathCol), ("contentCol", contentCol)):
        if column not in files.columns:
            raise ValueError(
                f"decode_images: {role}={column!r} is not a column; the DataFrame has "
                f"{files.columns}. Read files with spark.read(Stream).format('binaryFile') "
                "(columns path, content) or name your columns with pathCol / contentCol"
            )
    if decoder is not None and not callable(decoder):
        raise TypeError(f"decoder must be a function of the file bytes, got {decoder!r}")
    fn = functools.partial(
        decode_file_batches,
        decoder=decoder,
        strict=bool(strict),
        max_pixels=maxPixels,
        path_column=pathCol,
        content_column=contentCol,
    )
    return files.select(pathCol, contentCol).mapInArrow(fn, READ_IMAGES_SCHEMA)


def read_image_stream(
    path: str,
    *,
    pathGlobFilter: str | None = None,
    recursive: bool = False,
    maxFilesPerTrigger: int | None = None,
    strict: bool = False,
    maxPixels: int | None = DEFAULT_MAX_PIXELS,
    spark: SparkSession | None = None,
) -> DataFrame:
    """A streaming DataFrame of the images arriving in folder ``path``: columns ``image``,
    ``path`` and ``error`` as `read_images` gives them (write it with ``writeStream``).

    ``maxFilesPerTrigger``: at most that many new files per micro-batch (Spark's default: all).
    Write a file elsewhere and move it in (or give it a name starting with '.' or '_' until it
    is complete): Spark's file source may otherwise list it half written.
    """
    session = active_session(spark)
    reader = session.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA)
    if pathGlobFilter:
        reader = reader.option("pathGlobFilter", pathGlobFilter)
    if recursive:
        reader = reader.option("recursiveFileLookup", "true")
    if maxFilesPerTrigger is not None:
        if isinstance(maxFilesPerTrigger, bool) or int(maxFilesPerTrigger) < 1:
            raise ValueError(f"maxFilesPerTrigger must be a positive int, got {maxFilesPerTrigger}")
        reader = reader.option("maxFilesPerTrigger", str(int(maxFilesPerTrigger)))
    return decode_images(reader.load(path), strict=strict, maxPixels=maxPixels)
