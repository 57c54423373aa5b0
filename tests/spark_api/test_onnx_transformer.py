import numpy as np
import onnxruntime as ort
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.linalg import Vectors

from sparkonnx import ONNXTransformer, testing
from sparkonnx.engine.tensors import TensorConversionError
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api import shipping
from sparkonnx.spark_api.runtime.executor import session_stats


def ort_run(proto, feeds):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def features_df(spark, n=300, width=8, partitions=3, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, width)).astype(np.float32)
    rows = [(i, f"row{i}", x[i].tolist()) for i in range(n)]
    df = spark.createDataFrame(rows, "id long, name string, features array<float>")
    return df.repartition(partitions), x


@pytest.mark.parametrize("batch_size", [7, 1024])
def test_output_equals_direct_onnxruntime(any_spark, batch_size):
    df, x = features_df(any_spark)
    proto = testing.mlp((8, 16, 3))
    transformer = ONNXTransformer(
        model=proto, inputCol="features", outputCol="pred", batchSize=batch_size
    )
    out = transformer.transform(df)
    assert out.columns == ["id", "name", "features", "pred"]
    rows = sorted(out.collect(), key=lambda r: r.id)
    assert [r.name for r in rows] == [f"row{i}" for i in range(len(x))]  # every row, kept intact
    (expected,) = ort_run(proto, {"x": x})
    np.testing.assert_allclose(np.array([r.pred for r in rows]), expected, rtol=1e-5, atol=1e-6)


def test_row_order_is_kept_within_partitions(spark):
    df, x = features_df(spark, n=200, partitions=1)
    df = df.orderBy("id")
    proto = testing.mlp((8, 4))
    out = ONNXTransformer(model=proto, inputCol="features", outputCol="y").transform(df)
    rows = out.collect()
    assert [r.id for r in rows] == list(range(200))
    np.testing.assert_allclose(
        np.array([r.y for r in rows]), ort_run(proto, {"x": x})[0], rtol=1e-5
    )


def test_model_file_and_large_model_shipped_as_spark_file(any_spark, workdir, monkeypatch):
    proto = testing.mlp((8, 32, 2), seed=5)
    path = workdir / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    monkeypatch.setattr(shipping, "INLINE_LIMIT_BYTES", 0)  # force the file path
    df, x = features_df(any_spark, n=50)
    out = ONNXTransformer(modelFile=str(path), inputCol="features", outputCol="y").transform(df)
    rows = sorted(out.collect(), key=lambda r: r.id)
    np.testing.assert_allclose(
        np.array([r.y for r in rows]), ort_run(proto, {"x": x})[0], rtol=1e-5
    )


def test_sessions_built_once_per_worker_across_partitions(spark):
    proto = testing.mlp((8, 16, 3), seed=42)
    df, _ = features_df(spark, n=400, partitions=16)
    transformer = ONNXTransformer(model=proto, inputCol="features", outputCol="pred")
    sha = transformer.getModel().sha256
    # collect the outputs: a count() alone may skip the model (Spark prunes unused columns)
    assert len(transformer.transform(df).select("pred").collect()) == 400
    assert len(transformer.transform(df).select("pred").collect()) == 400  # same sessions
    stats = (
        spark.range(0, 32, numPartitions=8)
        .mapInArrow(session_stats, "pid long, model_sha256 string, sessions_built long")
        .where(f"model_sha256 = '{sha}'")
        .collect()
    )
    per_worker = {r.pid: r.sessions_built for r in stats}
    assert per_worker, "no worker reported the model's session"
    assert all(count == 1 for count in per_worker.values()), per_worker
    assert sum(per_worker.values()) < 16  # 32 tasks ran; far fewer sessions were built


def test_multi_input_multi_output(any_spark):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.full((3, 4), 2.0, dtype=np.float32)
    df = any_spark.createDataFrame(
        [(i, a[i].tolist(), b[i].tolist()) for i in range(3)],
        "id int, left array<float>, right array<float>",
    )
    out = ONNXTransformer(
        model=testing.two_in_two_out(4),
        inputMapping={"left": "a", "right": "b:0"},
        outputMapping={"sum": "total", "prod": "product"},
    ).transform(df)
    rows = sorted(out.collect(), key=lambda r: r.id)
    np.testing.assert_array_equal([r.total for r in rows], a + b)
    np.testing.assert_array_equal([r.product for r in rows], a * b)


def test_rank4_input_from_flat_array_column(spark):
    images = np.random.default_rng(3).random((6, 3, 8, 8), dtype=np.float32)
    df = spark.createDataFrame(
        [(i, images[i].reshape(-1).tolist()) for i in range(6)], "id int, pixels array<float>"
    )
    proto = testing.tiny_cnn()
    out = ONNXTransformer(model=proto, inputCol="pixels", outputCol="scores").transform(df)
    rows = sorted(out.collect(), key=lambda r: r.id)
    np.testing.assert_allclose(
        [r.scores for r in rows], ort_run(proto, {"image": images})[0], rtol=1e-5, atol=1e-6
    )


def test_nested_array_input_and_vector_io(spark):
    x = np.random.default_rng(4).standard_normal((5, 8))
    df = spark.createDataFrame([(i, Vectors.dense(x[i])) for i in range(5)], ["id", "vec"])
    proto = testing.mlp((8, 3))
    out = ONNXTransformer(
        model=proto, inputCol="vec", outputCol="y", allowCast=True, outputFormat="vector"
    ).transform(df)
    rows = sorted(out.collect(), key=lambda r: r.id)
    assert type(rows[0].y).__name__ == "DenseVector"
    expected = ort_run(proto, {"x": x.astype(np.float32)})[0]
    np.testing.assert_allclose([r.y.toArray() for r in rows], expected, rtol=1e-5, atol=1e-6)


def test_scalar_double_column(spark):
    df = spark.createDataFrame([(1.5,), (2.0,)], "v double")
    out = ONNXTransformer(model=testing.scale_model(), inputCol="v", outputCol="w").transform(df)
    assert sorted(r.w for r in out.collect()) == [3.0, 4.0]


# -- errors, checked on the driver before any job ----------------------------------------------
def test_missing_column_lists_columns(spark):
    df, _ = features_df(spark, n=5)
    t = ONNXTransformer(model=testing.mlp((8, 2)), inputCol="feats", outputCol="y")
    with pytest.raises(ValueError, match=r"'feats'.*not in the DataFrame.*id, name, features"):
        t.transform(df)


def test_lossy_cast_is_refused_with_the_fix(spark):
    df = spark.createDataFrame([([1.0] * 8,)], "f array<double>")
    t = ONNXTransformer(model=testing.mlp((8, 2)), inputCol="f", outputCol="y")
    with pytest.raises(TensorConversionError, match=r"'f' has type array<double>.*allowCast=True"):
        t.transform(df)
    assert len(t.setAllowCast(True).transform(df).collect()[0].y) == 2


def test_string_column_and_too_many_array_levels(spark):
    df = spark.createDataFrame([("a", [[1.0]])], "s string, deep array<array<float>>")
    with pytest.raises(TensorConversionError, match=r"'s' has type string"):
        ONNXTransformer(model=testing.mlp((8, 2)), inputCol="s", outputCol="y").transform(df)
    with pytest.raises(TensorConversionError, match=r"'deep'.*rank 2"):
        ONNXTransformer(model=testing.mlp((8, 2)), inputCol="deep", outputCol="y").transform(df)


def test_mapping_errors(spark):
    df, _ = features_df(spark, n=5)
    with pytest.raises(ValueError, match=r"2 inputs \('a', 'b'\); use inputMapping"):
        ONNXTransformer(
            model=testing.two_in_two_out(), inputCol="features", outputCol="y"
        ).transform(df)
    with pytest.raises(ValueError, match=r"2 outputs \('sum', 'prod'\); use outputMapping"):
        ONNXTransformer(
            model=testing.two_in_two_out(), inputMapping={"features": "a"}, outputCol="y"
        ).transform(df)
    with pytest.raises(ValueError, match=r"no input named 'c'.*'a', 'b'"):
        ONNXTransformer(
            model=testing.two_in_two_out(),
            inputMapping={"features": "c"},
            outputMapping={"sum": "s"},
        ).transform(df)
    with pytest.raises(ValueError, match=r"'name' already exists"):
        ONNXTransformer(model=testing.mlp((8, 2)), inputCol="features", outputCol="name").transform(
            df
        )
    with pytest.raises(ValueError, match="has no model"):
        ONNXTransformer(inputCol="features", outputCol="y").transform(df)
    with pytest.raises(InvalidParamError, match="device must be one of"):
        ONNXTransformer(model=testing.mlp((8, 2)), device="tpu")


def test_bad_rows_fail_the_task_with_a_clear_message(spark):
    df = spark.createDataFrame(
        [(0, [1.0] * 8), (1, [1.0] * 7), (2, None)], "id int, f array<float>"
    )
    t = ONNXTransformer(model=testing.mlp((8, 2)), inputCol="f", outputCol="y")
    with pytest.raises(
        Exception,
        match=r"column 'f' has (ragged arrays|rows of shape float32\[N, 7\]).*float32\[N, 8\]",
    ):
        t.transform(df.where("id < 2")).collect()
    with pytest.raises(Exception, match=r"column 'f' has a null array in row 1"):
        t.transform(df.where("id != 1").coalesce(1)).collect()


# -- persistence --------------------------------------------------------------------------------
def test_save_load_in_a_pipeline(spark, workdir):
    df, x = features_df(spark, n=40)
    proto = testing.mlp((8, 8, 2), seed=9)
    stage = ONNXTransformer(model=proto, inputCol="features", outputCol="y", batchSize=16)
    model = Pipeline(stages=[stage]).fit(df)
    path = str(workdir / "pipeline")
    model.save(path)
    loaded = PipelineModel.load(path)
    (reloaded,) = loaded.stages
    assert isinstance(reloaded, ONNXTransformer)
    assert reloaded.getBatchSize() == 16 and reloaded.uid == stage.uid
    assert reloaded.getModel().sha256 == stage.getModel().sha256
    rows = sorted(loaded.transform(df).collect(), key=lambda r: r.id)
    np.testing.assert_allclose([r.y for r in rows], ort_run(proto, {"x": x})[0], rtol=1e-5)
    stage.write().overwrite().save(str(workdir / "stage"))
    stage.write().overwrite().save(str(workdir / "stage"))  # overwrite works without the JVM
    assert ONNXTransformer.load(str(workdir / "stage")).getOutputCol() == "y"


def test_load_checks_the_class(spark, workdir):
    from pyspark.ml.feature import SQLTransformer

    path = str(workdir / "sql")
    SQLTransformer(statement="SELECT * FROM __THIS__").save(path)
    with pytest.raises(
        TypeError,
        match=r"is a org\.apache\.spark\.ml\.feature\.SQLTransformer; "
        r"ONNXTransformer\.load reads sparkonnx\.spark_api\.transformers\.onnx_transformer",
    ):
        ONNXTransformer.load(path)


@pytest.mark.connect
def test_save_load_on_connect(connect_spark, workdir):
    proto = testing.mlp((8, 2), seed=1)
    stage = ONNXTransformer(model=proto, inputCol="features", outputCol="y")
    path = str(workdir / "stage")
    stage.write().session(connect_spark).save(path)
    loaded = ONNXTransformer.read().session(connect_spark).load(path)
    df, x = features_df(connect_spark, n=10)
    rows = sorted(loaded.transform(df).collect(), key=lambda r: r.id)
    np.testing.assert_allclose([r.y for r in rows], ort_run(proto, {"x": x})[0], rtol=1e-5)


def test_outputs_come_from_one_arrow_udf_and_only_inputs_travel(spark):
    df, x = features_df(spark, n=40)
    out = ONNXTransformer(
        model=testing.two_in_two_out(8),
        inputMapping={"features": "a", "features2": "b:0"},
        outputMapping={"sum": "total", "prod": "product"},
    ).transform(df.withColumn("features2", df.features))
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert plan.count("ArrowEvalPython") == 1, plan  # one UDF call feeds both output columns
    assert "MapInArrow" not in plan, plan
    rows = sorted(out.collect(), key=lambda r: r.id)
    np.testing.assert_allclose([r.total for r in rows], 2 * x, rtol=1e-6)
    np.testing.assert_allclose([r.product for r in rows], x * x, rtol=1e-6)


def test_map_in_arrow_fallback_without_arrow_udfs(spark, monkeypatch):
    from sparkonnx.spark_api.runtime import arrow_udf_path

    monkeypatch.setattr(arrow_udf_path, "arrow_udf_supported", lambda: False)  # pyspark 4.0
    df, x = features_df(spark, n=30)
    out = ONNXTransformer(
        model=testing.two_in_two_out(8),
        inputMapping={"features": "a", "features2": "b:0"},
        outputMapping={"sum": "total", "prod": "product"},
    ).transform(df.withColumn("features2", df.features))
    assert "MapInArrow" in out._jdf.queryExecution().executedPlan().toString()
    assert out.columns == ["id", "name", "features", "features2", "total", "product"]
    rows = sorted(out.collect(), key=lambda r: r.id)
    np.testing.assert_allclose([r.total for r in rows], 2 * x, rtol=1e-6)


def test_binary_column_of_packed_float32(any_spark):
    x = np.random.default_rng(6).random((6, 3, 8, 8), dtype=np.float32)
    df = any_spark.createDataFrame(
        [(i, bytearray(x[i].tobytes())) for i in range(6)], "id int, packed binary"
    )
    proto = testing.tiny_cnn()
    out = ONNXTransformer(model=proto, inputCol="packed", outputCol="scores").transform(df)
    rows = sorted(out.collect(), key=lambda r: r.id)
    np.testing.assert_allclose(
        [r.scores for r in rows], ort_run(proto, {"image": x})[0], rtol=1e-5, atol=1e-6
    )


def test_binary_column_of_the_wrong_size_fails_the_task(spark):
    df = spark.createDataFrame([(1, bytearray(b"\0" * 12))], "id int, packed binary")
    out = ONNXTransformer(model=testing.mlp((8, 2)), inputCol="packed", outputCol="y")
    with pytest.raises(Exception, match=r"3 values per row"):
        out.transform(df).collect()
