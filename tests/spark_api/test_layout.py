"""The shape of spark_api: what executors import, one session rule, and old saves still load."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml import PipelineModel

import sparkonnx.spark_api
from sparkonnx import ONNXTransformer, testing
from sparkonnx.spark_api import current_class_path, session
from sparkonnx.spark_api.runtime import __path__ as runtime_path

FIXTURES = Path(__file__).parent.parent / "fixtures" / "saved_before_move"
FORBIDDEN = ("sparkonnx.converters", "pyspark.ml", "tensorflow", "keras", "tf2onnx")


def test_runtime_modules_import_nothing_executors_do_not_have():
    names = [f"sparkonnx.spark_api.runtime.{m.name}" for m in pkgutil.iter_modules(runtime_path)]
    assert len(names) >= 4
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({FORBIDDEN!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_spark_api_keeps_at_most_eight_modules_at_its_top_level():
    top = [m.name for m in pkgutil.iter_modules(sparkonnx.spark_api.__path__) if not m.ispkg]
    assert len(top) + 1 <= 8, top  # + __init__
    rooms = {m.name for m in pkgutil.iter_modules(sparkonnx.spark_api.__path__) if m.ispkg}
    assert rooms == {"runtime", "transformers", "images", "training"}


def test_session_kind_comes_from_the_object_even_with_both_kinds_in_one_process(
    spark, connect_spark
):
    classic_df, connect_df = spark.range(2), connect_spark.range(2)
    assert not session.is_connect(spark) and not session.is_connect(classic_df)
    assert session.is_connect(connect_spark) and session.is_connect(connect_df)
    assert session.sql_functions(classic_df).__name__ == "pyspark.sql.functions"
    assert session.sql_functions(connect_df).__name__ == "pyspark.sql.connect.functions"
    assert session.active_session(connect_spark) is connect_spark
    assert session.active_session() is spark  # none given: the classic active session first
    # functions built for each kind run in their own session
    F = session.sql_functions(connect_df)
    assert connect_df.select(F.sum("id")).head()[0] == 1
    vec = session.array_to_vector(connect_df)(F.array(F.lit(1.0), F.lit(2.0)))
    assert connect_df.select(vec.alias("v")).head()["v"].toArray().tolist() == [1.0, 2.0]


def test_active_session_error_says_how_to_fix_it(monkeypatch):
    from pyspark.sql import SparkSession

    monkeypatch.setattr(SparkSession, "getActiveSession", classmethod(lambda cls: None))
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        monkeypatch.setattr(ConnectSession, "getActiveSession", classmethod(lambda cls: None))
    except ImportError:  # pragma: no cover
        pass
    with pytest.raises(RuntimeError, match=r"no active SparkSession.*pass spark=<session>"):
        session.active_session()


def test_old_class_paths_map_to_their_new_homes():
    old = "sparkonnx.spark_api.onnx_transformer.ONNXTransformer"
    assert current_class_path(old) == (
        "sparkonnx.spark_api.transformers.onnx_transformer.ONNXTransformer"
    )
    assert current_class_path("pyspark.ml.Pipeline") == "pyspark.ml.Pipeline"
    from sparkonnx.spark_api.keras_estimator import KerasEstimator  # type: ignore[import-not-found]

    assert KerasEstimator is sparkonnx.KerasEstimator


def test_stages_saved_before_the_reshaping_still_load_and_run(spark):
    saved = json.loads(
        next((FIXTURES / "onnx_transformer" / "metadata").glob("part-*")).read_text()
    )
    assert saved["class"] == "sparkonnx.spark_api.onnx_transformer.ONNXTransformer"
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    df = spark.createDataFrame(
        [(i, row.tolist()) for i, row in enumerate(x)], "id int, features array<float>"
    )
    import onnxruntime as ort

    expected = ort.InferenceSession(testing.mlp((4, 3)).SerializeToString()).run(None, {"x": x})[0]

    stage = ONNXTransformer.load(str(FIXTURES / "onnx_transformer"))
    assert stage.getBatchSize() == 7
    got = [r["scores"] for r in stage.transform(df).orderBy("id").collect()]
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-6, atol=1e-6)

    pipeline = PipelineModel.load(str(FIXTURES / "pipeline_model"))
    assert [type(s).__name__ for s in pipeline.stages] == ["ONNXTransformer", "ImageTransformer"]
    assert pipeline.stages[1].getOrDefault("mean") == [10.0]
    got = [r["scores"] for r in pipeline.stages[0].transform(df).orderBy("id").collect()]
    np.testing.assert_allclose(np.array(got), expected, rtol=1e-6, atol=1e-6)


def test_loading_a_stage_with_the_wrong_class_names_both(spark):
    from sparkonnx import ImageTransformer

    with pytest.raises(TypeError, match=r"is a sparkonnx\.spark_api\.onnx_transformer"):
        ImageTransformer.load(str(FIXTURES / "onnx_transformer"))
