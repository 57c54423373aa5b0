"""Issue 14.8: a failure names its row by a stable identity (partition, position there, the
rowIdCol value; the file for images), not by its index in one Arrow batch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sparkonnx import InvalidParamError, ONNXTransformer, read_images, testing
from sparkonnx.spark_api.session import sql_functions
from tests.security.models import tiny_image_stage

BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"


@pytest.fixture()
def small_batches(spark):
    """Arrow batches of 500 rows, so that row 2500 is in the sixth batch of its task."""
    spark.conf.set(BATCH_ROWS, "500")
    yield
    spark.conf.unset(BATCH_ROWS)


def _features(spark, bad_id: int, bad: str, partitions: int = 2):
    F = sql_functions(spark.range(1))
    df = spark.range(0, 3000, numPartitions=partitions).withColumn(
        "key", F.concat(F.lit("k"), F.col("id").cast("string"))
    )
    good = F.array(*[F.lit(float(i)) for i in range(4)])
    odd = F.lit(None) if bad == "null" else F.array(F.lit(1.0), F.lit(2.0), F.lit(3.0))
    x = F.when(F.col("id") == bad_id, odd).otherwise(good)
    return df.withColumn("x", x.cast("array<float>"))


def test_a_null_row_is_named_by_partition_position_and_id(spark, small_batches):
    df = _features(spark, 2500, "null")  # partition 1 holds ids 1500..2999
    stage = ONNXTransformer(inputCol="x", outputCol="y", model=testing.mlp((4, 3)))
    with pytest.raises(Exception, match=r"'x' has a null array in row 1000 of partition 1;"):
        stage.transform(df).collect()
    stage.setRowIdCol("key")
    with pytest.raises(Exception, match=r"null array in row 1000 of partition 1 \(key='k2500'\)"):
        stage.transform(df).collect()


def test_ragged_rows_blame_the_odd_one_even_in_first_place(spark):
    df = _features(spark, 0, "short", partitions=1).limit(4)
    stage = ONNXTransformer(inputCol="x", outputCol="y", model=testing.mlp((4, 3)), rowIdCol="id")
    with pytest.raises(
        Exception,
        match=r"ragged arrays: row 0 of partition 0 \(id=0\) has 3 elements where 3 of 4 have 4",
    ):
        stage.transform(df).collect()


def test_a_missing_row_id_column_is_named(spark):
    df = _features(spark, 0, "null")
    stage = ONNXTransformer(inputCol="x", outputCol="y", model=testing.mlp((4, 3)), rowIdCol="nope")
    with pytest.raises(
        InvalidParamError, match=r"rowIdCol 'nope' is not a column of the DataFrame"
    ):
        stage.transform(df)


def test_invalid_images_name_the_file_and_the_row(spark, workdir):
    folder = workdir / "img"
    folder.mkdir()
    photos = Path(pytest.importorskip("skimage.data").__path__[0])
    shutil.copy(photos / "chelsea.png", folder / "a.png")
    (folder / "b.png").write_bytes(b"not a png")
    images = read_images(str(folder), numPartitions=1, spark=spark).orderBy("path")
    F = sql_functions(images)
    images = images.withColumn(
        "image",
        F.when(F.col("error").isNull(), F.col("image")).otherwise(
            F.struct(
                F.col("path").alias("origin"),
                *[F.lit(-1).alias(n) for n in ("height", "width", "nChannels", "mode")],
                F.lit(None).cast("binary").alias("data"),
            )
        ),
    )
    stage = tiny_image_stage(handleInvalid="error", rowIdCol="path")
    with pytest.raises(
        Exception,
        match=r"column 'image', row 1 of partition 0 \(path='file:.*/b\.png'\) \(file:.*/b\.png\)"
        r": undefined image",
    ):
        stage.transform(images.coalesce(1)).collect()
