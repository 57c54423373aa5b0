"""Images into DataFrames without the JVM's ImageSchema (works on Spark Connect).

:func:`read_images` lists files (local ones in a Spark task, see
:mod:`~sparkonnx.spark_api.images.local_files`; others with Spark's ``binaryFile`` source) and
decodes them with Pillow on the executors (``mapInArrow``), into Spark's image schema (BGR
order, OpenCV mode codes, see :mod:`sparkonnx.engine.images`) plus ``path`` and ``error``
columns. No file is dropped: a file that is empty, truncated, corrupt, too big (``maxPixels``)
or not an image keeps its row, with a null ``image`` and the reason in ``error``;
``strict=True`` fails the job instead, naming the file.

Image columns from ``spark.read.format("image")`` have the same struct type and are accepted
wherever an image column is (:func:`require_image_column`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
from pyspark.sql.types import (
    BinaryType,
    DataType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from sparkonnx.engine.image_decode import DEFAULT_MAX_PIXELS, decode_file_batches
from sparkonnx.engine.images import IMAGE_FIELDS, OCV_TYPES
from sparkonnx.errors import check_optional_int
from sparkonnx.spark_api.images.local_files import is_local, plan_files
from sparkonnx.spark_api.images.structs import imageArrayToStruct, imageStructToArray
from sparkonnx.spark_api.session import active_session, is_connect

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, Row, SparkSession

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_STRUCT_TYPE",
    "READ_IMAGES_SCHEMA",
    "ImageSchema",
    "is_image_struct_type",
    "readImagesWithCustomFn",
    "read_images",
    "require_image_column",
]

#: The image struct, as ``spark.read.format("image")`` reports it (every field nullable).
IMAGE_STRUCT_TYPE = StructType(
    [
        StructField("origin", StringType(), True),
        StructField("height", IntegerType(), True),
        StructField("width", IntegerType(), True),
        StructField("nChannels", IntegerType(), True),
        StructField("mode", IntegerType(), True),
        StructField("data", BinaryType(), True),
    ]
)

#: Columns of :func:`read_images`: the image (null when the file could not be decoded), the
#: file's path, and the reason it could not be decoded (null for good rows).
READ_IMAGES_SCHEMA = StructType(
    [
        StructField("image", IMAGE_STRUCT_TYPE, True),
        StructField("path", StringType(), True),
        StructField("error", StringType(), True),
    ]
)


class _ImageSchema:
    """A JVM-free stand-in for ``pyspark.ml.image.ImageSchema`` (also on Spark Connect).

    ``ocvTypes`` also lists the 16-bit and float32 modes this package reads and writes; Spark's
    own knows only Undefined, CV_8U, CV_8UC1, CV_8UC3 and CV_8UC4.
    """

    undefinedImageType = "Undefined"

    @property
    def columnSchema(self) -> StructType:
        """``struct<origin, height, width, nChannels, mode, data>``."""
        return IMAGE_STRUCT_TYPE

    @property
    def imageSchema(self) -> StructType:
        """A schema with one nullable image column named ``image``."""
        return StructType([StructField("image", IMAGE_STRUCT_TYPE, True)])

    @property
    def imageFields(self) -> list[str]:
        """Field names of the image struct."""
        return list(IMAGE_FIELDS)

    @property
    def ocvTypes(self) -> dict[str, int]:
        """OpenCV type name -> mode code."""
        return dict(OCV_TYPES)

    def toNDArray(self, image: Row) -> np.ndarray:
        """Image struct -> (height, width, nChannels) array, BGR(A)."""
        return imageStructToArray(image)

    def toImage(self, array: np.ndarray, origin: str = "") -> Row:
        """(height, width[, channels]) BGR(A) array -> image struct Row."""
        return imageArrayToStruct(array, origin)

    def readImages(
        self,
        path: str | Sequence[str],
        recursive: bool = False,
        numPartitions: int = -1,
        dropImageFailures: bool = False,
        sampleRatio: float = 1.0,
        seed: int = 0,
    ) -> DataFrame:
        """Spark 2.3's ``ImageSchema.readImages``: a DataFrame of one ``image`` column.

        Read by :func:`read_images` in the active session; a file that cannot be decoded gives
        a null image (``dropImageFailures=True`` drops it). ``numPartitions=-1``: Spark's
        default. For the reason a file failed, use ``read_images`` (its ``error`` column).
        """
        images = read_images(
            path,
            recursive=recursive,
            numPartitions=None if numPartitions in (-1, None) else numPartitions,
            sampleRatio=sampleRatio,
            seed=seed,
        ).select("image")
        return images.where(images["image"].isNotNull()) if dropImageFailures else images

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"sparkonnx.ImageSchema has no attribute {name!r}; it has readImages(path), "
            "columnSchema, imageSchema, imageFields, ocvTypes, undefinedImageType, toNDArray and "
            "toImage (pyspark.ml.image.ImageSchema's, which needs the JVM). To read images use "
            "sparkonnx.read_images(path) (columns image, path and error, the reason a file "
            "could not be read)"
        )


ImageSchema = _ImageSchema()


# --------------------------------------------------------------------------- column checks


def is_image_struct_type(dataType: DataType) -> bool:
    """True if ``dataType`` is the image struct (field names and types; nullability ignored)."""
    if not isinstance(dataType, StructType) or len(dataType.fields) != len(IMAGE_FIELDS):
        return False
    return all(
        f.name == e.name and f.dataType == e.dataType
        for f, e in zip(dataType.fields, IMAGE_STRUCT_TYPE.fields)
    )


def require_image_column(df: DataFrame | StructType, column: str) -> None:
    """Raise ValueError unless ``column`` of ``df`` (a DataFrame or its schema) is an image
    struct; the message names the column, the expected type and what was found."""
    schema = df if isinstance(df, StructType) else df.schema
    if column not in schema.names:
        raise ValueError(
            f"image column {column!r} not found; the DataFrame has columns {schema.names}. "
            "Pass the name of a column holding image structs (e.g. 'image')"
        )
    found = schema[column].dataType
    if not is_image_struct_type(found):
        raise ValueError(
            f"column {column!r} is not an image struct: expected "
            f"{IMAGE_STRUCT_TYPE.simpleString()}, found {found.simpleString()}. Load images "
            "with sparkonnx.read_images(path) or spark.read.format('image').load(path); "
            "decode file bytes (binaryFile, streams too) with sparkonnx.decode_images(df)"
        )


# --------------------------------------------------------------------------- reading


def _hadoop_path(uri: str) -> str:
    """``DataFrame.inputFiles()`` URIs (file:///a%20b) in binaryFile's ``path`` form (file:/a b)."""
    parts = urlsplit(uri)
    path = unquote(parts.path)
    if not parts.scheme:
        return path
    if parts.netloc:
        return f"{parts.scheme}://{parts.netloc}{path}"
    return f"{parts.scheme}:{path}"


def _empty_files(files: DataFrame) -> list[str]:
    """Files that Spark's file sources skip because they have zero bytes.

    Spark's scan never reads zero-length files, so they would vanish without a row. The file
    index still lists them: compare its count with the scanned rows (a cheap job that reads no
    file contents) and, only when they differ, find the missing paths.
    """
    listed = files.inputFiles()
    scanned_count = files.select("path").count()
    if scanned_count >= len(listed):
        return []
    scanned = {r[0] for r in files.select("path").collect()}
    missing = [p for p in map(_hadoop_path, listed) if p not in scanned]
    if len(missing) != len(listed) - scanned_count:
        logger.warning(
            "read_images: %d listed files were not scanned but %d could not be matched by "
            "path; rows for empty files are not added",
            len(listed) - scanned_count,
            len(missing),
        )
        return []
    logger.info("read_images: %d empty files get a row with error 'empty file'", len(missing))
    return missing


def _parallelism(spark: SparkSession) -> int:
    """The session's default parallelism (Spark Connect: its conf, else 8)."""
    if not is_connect(spark):
        return int(spark.sparkContext.defaultParallelism)
    try:
        return max(1, int(spark.conf.get("spark.default.parallelism", "8") or 8))
    except ValueError:
        return 8


def _read_files(
    spark: SparkSession,
    path: str | Sequence[str],
    *,
    recursive: bool,
    numPartitions: int | None,
    sampleRatio: float,
    seed: int,
    pathGlobFilter: str | None,
) -> tuple[DataFrame, bool]:
    """The files under ``path``, sampled and repartitioned, and whether they are local.

    Local paths: (path, error) rows listed by `local_files` (contents read while decoding).
    Other file systems: (path, content) rows from ``binaryFile``, empty files included.
    """
    check_optional_int("numPartitions", numPartitions, minimum=1)
    if not isinstance(sampleRatio, int | float) or not 0.0 < sampleRatio <= 1.0:
        raise ValueError(f"sampleRatio must be in (0, 1], got {sampleRatio!r}")
    paths = [path] if isinstance(path, str) else list(path)
    if not paths:
        raise ValueError("path is empty: pass a file, a directory, a glob or a list of them")
    if all(is_local(p) for p in paths):
        files = plan_files(
            spark,
            paths,
            recursive=recursive,
            glob_filter=pathGlobFilter,
            sample_ratio=float(sampleRatio),
            seed=seed,
            num_partitions=numPartitions,
            parallelism=_parallelism(spark),
        )
        return files, True
    reader = spark.read.format("binaryFile")
    if recursive:
        reader = reader.option("recursiveFileLookup", "true")
    if pathGlobFilter:
        reader = reader.option("pathGlobFilter", pathGlobFilter)
    files = reader.load(paths).select("path", "content")
    empty = _empty_files(files)
    if empty:
        rows = [(p, bytearray()) for p in empty]
        files = files.unionByName(spark.createDataFrame(rows, "path string, content binary"))
    if sampleRatio < 1.0:
        files = files.sample(withReplacement=False, fraction=float(sampleRatio), seed=seed)
    if numPartitions is not None:
        files = files.repartition(numPartitions)
    return files, False


def read_images(
    path: str | Sequence[str],
    *,
    recursive: bool = False,
    numPartitions: int | None = None,
    sampleRatio: float = 1.0,
    seed: int = 0,
    strict: bool = False,
    pathGlobFilter: str | None = None,
    maxPixels: int | None = DEFAULT_MAX_PIXELS,
    spark: SparkSession | None = None,
) -> DataFrame:
    """Read image files into a DataFrame of ``image`` (Spark's image struct), ``path``, ``error``.

    Files are decoded with Pillow on the executors (EXIF orientation applied; BGR(A) order;
    gray 1 channel; 16-bit gray kept 16-bit). Every file listed gives one row.

    - ``path``: a file, directory or glob (``*``, ``?``, ``[ab]``, ``{a,b}``), or a list of
      them. Local paths (``/data``, ``file:/data``) are listed in a Spark task by
      :mod:`sparkonnx.spark_api.images.local_files`: any file name works (':' included), each
      real file appears once (folder links are followed, but a folder already listed is not
      listed again), and a dangling or looping link, or a FIFO / device, is a row with its
      reason. Other file systems (``hdfs:``, ``s3a:``...) are listed by Spark's
      ``binaryFile`` source, which cannot read names Hadoop rejects.
    - ``recursive``: also read files in subdirectories. Otherwise only the files directly in
      the directory.
    - ``numPartitions``: decode in that many tasks (default: as Spark splits files, by bytes).
    - ``sampleRatio``: keep each file with this probability (``seed``: the same files and seed
      give the same sample). Only the sampled files are read and decoded.
    - ``strict``: by default a file that cannot be decoded gives a row with a null ``image`` and
      the reason in ``error`` (e.g. "empty file", "truncated image file ...", "cannot identify
      image file ..."); ``strict=True`` fails the job with the file's path in the message.
    - ``pathGlobFilter``: only files whose name matches, e.g. ``"*.jpg"``.
    - ``maxPixels``: images of more pixels (width x height; default 50 M, below Pillow's 178 M)
      are rows with an error, refused from the file header before decoding; None: no limit of
      ours (Pillow's decompression-bomb check still applies).
    - ``spark``: the session (classic or Spark Connect); default the active one.

    Hidden files (names starting with ``.`` or ``_``) are skipped, as Spark's listing does.
    Zero-length files are rows with the error "empty file".
    """
    return _decode(
        path,
        decoder=None,
        strict=strict,
        spark=spark,
        maxPixels=maxPixels,
        recursive=recursive,
        numPartitions=numPartitions,
        sampleRatio=sampleRatio,
        seed=seed,
        pathGlobFilter=pathGlobFilter,
    )


def readImagesWithCustomFn(
    path: str | Sequence[str],
    decode_f: Callable[[bytes], np.ndarray],
    numPartition: int | None = None,
    *,
    recursive: bool = False,
    strict: bool = False,
    maxPixels: int | None = DEFAULT_MAX_PIXELS,
    spark: SparkSession | None = None,
) -> DataFrame:
    """Read images with your own decoder, as sparkdl's ``imageIO.readImagesWithCustomFn``.

    ``decode_f(file_bytes)`` returns a (height, width[, channels]) uint8 / uint16 / float32
    array in **BGR(A)** order (as ``cv2.imdecode`` does); it runs on the executors, so it must
    be picklable and capture only plain values. A file for which it raises or returns None
    keeps its row with a null ``image`` and the reason in ``error`` (unless ``strict=True``).
    Same columns and listing as :func:`read_images`; ``maxPixels`` is checked on the array
    ``decode_f`` returns (its decoding is opaque to us).
    """
    if not callable(decode_f):
        raise TypeError(f"decode_f must be a function of the file bytes, got {decode_f!r}")
    return _decode(
        path,
        decoder=decode_f,
        strict=strict,
        spark=spark,
        maxPixels=maxPixels,
        recursive=recursive,
        numPartitions=numPartition,
        sampleRatio=1.0,
        seed=0,
        pathGlobFilter=None,
    )


def _decode(
    path: str | Sequence[str],
    *,
    decoder: Callable[[bytes], np.ndarray] | None,
    strict: bool,
    spark: SparkSession | None,
    maxPixels: int | None,
    **read_options: Any,
) -> DataFrame:
    check_optional_int("maxPixels", maxPixels, minimum=1)
    session = active_session(spark)
    files, local = _read_files(session, path, **read_options)
    # The closure holds plain values only: an importable function, the user's decoder, a bool.
    fn = functools.partial(
        decode_file_batches,
        decoder=decoder,
        strict=bool(strict),
        max_pixels=maxPixels,
        content_column=None if local else "content",
        error_column="error" if local else None,
    )
    return files.mapInArrow(fn, READ_IMAGES_SCHEMA)
