"""score_parquet / format("sparkonnx"): Parquet row groups scored in the Python workers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkonnx import ONNXTransformer, register_data_source, score_parquet, testing
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.runtime.parquet_files import plan_tasks

WIDTH = 4


def _table(ids: np.ndarray, seed: int = 0) -> pa.Table:
    x = np.random.default_rng(seed).standard_normal((len(ids), WIDTH)).astype(np.float32)
    offsets = pa.array(np.arange(len(ids) + 1, dtype=np.int32) * WIDTH)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "features": pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1))),
            "label": pa.array([f"row{i}" for i in ids]),
        }
    )


def _model_file(workdir: Path, model=None) -> str:
    path = workdir / "model.onnx"
    path.write_bytes((model or testing.mlp((WIDTH, 8, 3))).SerializeToString())
    return str(path)


def _by_id(rows, column: str) -> dict[int, list[float]]:
    return {r["id"]: r[column] for r in rows}


def _assert_same_as_onnx_transformer(spark, table: str, scored, model: str) -> None:
    expected = ONNXTransformer(modelFile=model, inputCol="features", outputCol="pred")
    ref = _by_id(expected.transform(spark.read.parquet(table)).collect(), "pred")
    got = _by_id(scored.collect(), "pred")
    assert got.keys() == ref.keys()
    np.testing.assert_array_equal(np.array([got[i] for i in ref]), np.array(list(ref.values())))


@pytest.fixture()
def table(workdir: Path) -> str:
    """Two files, 300 rows, row groups of 50 and 70 rows."""
    folder = workdir / "table"
    folder.mkdir()
    pq.write_table(_table(np.arange(0, 200), seed=1), folder / "part-0.parquet", row_group_size=50)
    pq.write_table(
        _table(np.arange(200, 300), seed=2), folder / "part-1.parquet", row_group_size=70
    )
    (folder / "_SUCCESS").write_text("")
    return str(folder)


def test_equals_onnx_transformer_on_multi_file_multi_row_group_tables(spark, table, workdir):
    model = _model_file(workdir)
    tasks = plan_tasks(table, target_bytes=4_000)
    assert len(tasks) > 2 and sum(len(s.row_groups) for t in tasks for s in t) == 4 + 2
    scored = score_parquet(
        spark, table, modelFile=model, inputCol="features", outputCol="pred",
        keepColumns=["id", "label"], targetPartitionBytes=4_000, batchSize=16,
    )  # fmt: skip
    assert scored.columns == ["id", "label", "pred"]
    assert scored.schema["pred"].dataType.simpleString() == "array<float>"
    _assert_same_as_onnx_transformer(spark, table, scored, model)
    labels = {r["id"]: r["label"] for r in scored.select("id", "label").collect()}
    assert labels[7] == "row7" and labels[299] == "row299"


def test_the_format_with_options_gives_the_same_rows(spark, table, workdir):
    model = _model_file(workdir)
    register_data_source(spark)
    scored = (
        spark.read.format("sparkonnx")
        .option("modelFile", model)
        .option("inputMapping", '{"features": "x"}')
        .option("outputCol", "pred")
        .option("keepColumns", "id")
        .load(table)
    )
    assert scored.columns == ["id", "pred"]
    _assert_same_as_onnx_transformer(spark, table, scored, model)


def test_hive_partition_folders_become_columns_when_kept(spark, workdir):
    folder = workdir / "by_day"
    for day, ids in (("1", np.arange(0, 40)), ("2", np.arange(40, 90))):
        (folder / f"day={day}").mkdir(parents=True)
        pq.write_table(_table(ids, seed=int(day)), folder / f"day={day}" / "f.parquet")
    model = _model_file(workdir)
    scored = score_parquet(
        spark, str(folder), modelFile=model, inputCol="features", outputCol="pred",
        keepColumns=["id", "day"],
    )  # fmt: skip
    days = {r["id"]: r["day"] for r in scored.select("id", "day").collect()}
    assert days[0] == 1 and days[89] == 2 and len(days) == 90
    _assert_same_as_onnx_transformer(spark, str(folder), scored.drop("day"), model)


def test_on_spark_connect(connect_spark, table, workdir):
    model = _model_file(workdir)
    scored = score_parquet(
        connect_spark, table, modelFile=model, inputCol="features", outputCol="pred",
        keepColumns=["id"], targetPartitionBytes=4_000,
    )  # fmt: skip
    got = _by_id(scored.collect(), "pred")
    x = pq.read_table(table).sort_by("id")
    feats = np.array(x.column("features").to_pylist(), np.float32)
    import onnxruntime as ort

    expected = ort.InferenceSession(Path(model).read_bytes()).run(None, {"x": feats})[0]
    np.testing.assert_allclose(np.array([got[i] for i in range(300)]), expected, rtol=1e-6)


def test_delta_iceberg_and_hudi_folders_are_refused_naming_onnx_transformer(spark, table, workdir):
    model = _model_file(workdir)
    for marker, kind in (("_delta_log", "Delta"), (".hoodie", "Hudi")):
        (Path(table) / marker).mkdir()
        with pytest.raises(ValueError, match=rf"{kind}.*ONNXTransformer.*spark\.read\.format"):
            score_parquet(spark, table, modelFile=model, inputCol="features", outputCol="pred")
        (Path(table) / marker).rmdir()
    (Path(table) / "metadata").mkdir()
    (Path(table) / "metadata" / "v1.metadata.json").write_text("{}")
    with pytest.raises(ValueError, match=r"Iceberg.*ONNXTransformer"):
        score_parquet(spark, table, modelFile=model, inputCol="features", outputCol="pred")


def test_a_corrupt_parquet_file_gives_an_error_naming_it(spark, table, workdir):
    model = _model_file(workdir)
    bad = Path(table) / "part-2.parquet"
    bad.write_bytes(b"PAR1 this is not a parquet footer")
    scored = score_parquet(spark, table, modelFile=model, inputCol="features", outputCol="pred")
    with pytest.raises(Exception, match=r"cannot read Parquet file '[^']*part-2\.parquet'"):
        scored.collect()


def test_driver_side_checks_are_onnx_transformers(spark, table, workdir):
    model = _model_file(workdir)
    with pytest.raises(ValueError, match=r"columns \['nope'\] are not in the Parquet table.*id"):
        score_parquet(spark, table, modelFile=model, inputCol="features", outputCol="p",
                      keepColumns=["nope"])  # fmt: skip
    with pytest.raises(Exception, match=r"column 'label' has type string, which cannot feed"):
        score_parquet(spark, table, modelFile=model, inputCol="label", outputCol="p")
    with pytest.raises(ValueError, match=r"output column 'id' already exists"):
        score_parquet(spark, table, modelFile=model, inputCol="features", outputCol="id",
                      keepColumns=["id"])  # fmt: skip
    register_data_source(spark)
    reader = spark.read.format("sparkonnx").option("modelFile", model).option("inputcol", "x")
    with pytest.raises(Exception, match=r"unknown sparkonnx options \['bogus'\]"):
        reader.option("bogus", "1").load(table).schema  # noqa: B018


def test_two_input_model_binary_and_number_columns(spark, workdir):
    folder = workdir / "two"
    folder.mkdir()
    a = np.random.default_rng(3).standard_normal((60, WIDTH)).astype(np.float32)
    pq.write_table(
        pa.table({"id": np.arange(60), "a": pa.array(list(map(bytes, a)), pa.binary()),
                  "b": pa.array(list(map(bytes, a * 2)), pa.binary())}),
        folder / "f.parquet", row_group_size=25,
    )  # fmt: skip
    model = _model_file(workdir, testing.two_in_two_out(WIDTH))
    scored = score_parquet(
        spark, str(folder), modelFile=model, inputMapping={"a": "a", "b": "b"},
        outputMapping={"sum": "s", "prod": "p"}, keepColumns=["id"],
    )  # fmt: skip
    rows = {r["id"]: r for r in scored.collect()}
    np.testing.assert_allclose(np.array([rows[i]["s"] for i in range(60)]), a * 3, rtol=1e-6)
    np.testing.assert_allclose(np.array([rows[i]["p"] for i in range(60)]), a * a * 2, rtol=1e-6)


def test_int8_precision_is_onnx_transformers_gated_model(
    spark, workdir, precision_cache, int8_record
):
    rows = 64
    x = testing.as_nchw(testing.smooth_images(rows, seed=0)).reshape(rows, -1)
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * x.shape[1])
    folder = workdir / "images"
    folder.mkdir()
    table = pa.table({"id": np.arange(rows), "image": pa.ListArray.from_arrays(offsets, x.ravel())})
    pq.write_table(table, folder / "part-0.parquet", row_group_size=16)
    model = _model_file(workdir, testing.small_classifier())
    given = dict(modelFile=model, inputCol="image", outputCol="pred", precision="int8")
    # this test is about the path, not the bar nor the speed (a tiny CNN: int8 is no faster)
    given.update(precisionTolerance={"top1": 0.8, **testing.GATE_ONLY})
    scored = score_parquet(spark, str(folder), keepColumns=["id"], calibrationRows=rows, **given)
    record = int8_record(calibration_rows=48, gate_rows=16)  # the gate ran, on the table's rows
    assert "DataFrame" in record["calibration"]["source"]
    int8 = _by_id(scored.collect(), "pred")
    expected = ONNXTransformer(calibrationRows=rows, **given).transform(
        spark.read.parquet(str(folder))
    )
    fp32 = ONNXTransformer(modelFile=model, inputCol="image", outputCol="pred")
    ref = _by_id(expected.collect(), "pred")
    plain = _by_id(fp32.transform(spark.read.parquet(str(folder))).collect(), "pred")
    assert int8.keys() == ref.keys() == set(range(rows))
    np.testing.assert_array_equal(np.array([int8[i] for i in ref]), np.array(list(ref.values())))
    assert max(np.abs(np.array(int8[i]) - np.array(plain[i])).max() for i in ref) > 0  # int8 ran


def test_a_plan_option_naming_other_code_is_refused_before_it_runs(spark, table, workdir):
    import base64
    import pickle

    marker = workdir / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    register_data_source(spark)
    for payload in (pickle.dumps(Evil()), b"not a pickle"):
        option = base64.b64encode(payload).decode()
        reader = spark.read.format("sparkonnx").option("__sparkonnx_plan", option)
        with pytest.raises(
            Exception, match=r"option __sparkonnx_plan (names posix\.system|is not)"
        ):
            reader.load(table).schema  # noqa: B018
    assert not marker.exists()


def test_task_size_spreads_a_small_table_over_the_cores_but_not_below_the_floor():
    from sparkonnx.spark_api.runtime.parquet_files import MIN_TASK_BYTES, task_bytes

    mib = 1024 * 1024
    assert task_bytes(64 * mib, 128 * mib, 1) == 64 * mib  # one core: the whole table
    assert task_bytes(64 * mib, 128 * mib, 2) == 32 * mib  # two cores: two tasks
    assert task_bytes(1024 * mib, 128 * mib, 2) == 128 * mib  # big tables: the target
    assert task_bytes(6 * mib, 128 * mib, 4) == MIN_TASK_BYTES  # never tiny tasks
    assert task_bytes(10, 4_000, 2) == 4_000  # a target below the floor is the user's


def test_a_table_under_the_target_still_gives_every_core_a_task(spark, workdir):
    folder = workdir / "wide"
    folder.mkdir()
    rows, width = 8_000, 256  # 8 MiB of float32 in 16 row groups: under the 128 MiB target
    x = np.random.default_rng(3).standard_normal((rows, width)).astype(np.float32)
    offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * width)
    features = pa.ListArray.from_arrays(offsets, pa.array(x.reshape(-1)))
    table = pa.table({"id": pa.array(np.arange(rows), pa.int64()), "features": features})
    pq.write_table(table, folder / "part-0.parquet", row_group_size=500)
    model = workdir / "wide.onnx"
    model.write_bytes(testing.mlp((width, 4)).SerializeToString())
    given = dict(modelFile=str(model), inputCol="features", outputCol="pred", keepColumns=["id"])

    spread = score_parquet(spark, str(folder), **given)  # local[2]: two tasks
    assert spark.sparkContext.defaultParallelism == 2
    assert spread.rdd.getNumPartitions() == 2 and spread.count() == rows
    assert score_parquet(spark, str(folder), minPartitions=1, **given).rdd.getNumPartitions() == 1
    with pytest.raises(InvalidParamError, match="minPartitions"):
        score_parquet(spark, str(folder), minPartitions=0, **given)
