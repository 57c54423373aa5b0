"""Issue 14.9: a saved stage with bad metadata is one InvalidStageError naming the file and
what is wrong, never a bare KeyError / JSONDecodeError / AttributeError."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from pyspark.ml import Pipeline, PipelineModel

from sparkonnx import InvalidStageError, ONNXTransformer, testing
from tests.security.saved import edit_metadata, stage_dirs


@pytest.fixture()
def saved(spark: Any, workdir: Path) -> Path:
    stage = ONNXTransformer(inputCol="x", outputCol="y", model=testing.mlp((4, 3)))
    stage.save(str(workdir / "stage"))
    return workdir / "stage"


def _drop(key: str) -> Any:
    return lambda metadata: metadata.pop(key)


def _set(key: str, value: Any) -> Any:
    return lambda metadata: metadata.__setitem__(key, value)


def _param(name: str, value: Any) -> Any:
    return lambda metadata: metadata["paramMap"].__setitem__(name, value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("{not json", r"metadata is not JSON \(Expecting property name.*'\{not json'"),
        ("[1, 2]", r"metadata is a JSON list, not the object pyspark\.ml writes"),
        (_drop("uid"), r"metadata misses 'uid'; it has \['class', 'defaultParamMap'"),
        (_drop("paramMap"), r"metadata misses 'paramMap'"),
        (_drop("class"), r"metadata misses 'class'"),
        (_set("paramMap", [1]), r"metadata: 'paramMap' must be a JSON object, found \[1\]"),
        (_set("uid", 7), r"'class' and 'uid' must be strings"),
        (
            _param("imageLoader", "x:y"),
            (
                r"metadata sets 'imageLoader', which ONNXTransformer does not have; its "
                r"Params are \[.*'batchSize'"
            ),
        ),
        (_param("batchSize", "many"), r"a value its Param refuses: batchSize=.many. \(.*many"),
    ],
)
def test_bad_metadata_is_named(spark, saved, change, message):
    edit_metadata(saved, change)
    with pytest.raises(InvalidStageError, match=message) as info:
        ONNXTransformer.load(str(saved))
    assert f"{saved}/metadata" in str(info.value)


def test_missing_metadata_and_model_are_named(spark, saved, workdir):
    with pytest.raises(InvalidStageError, match=r"cannot read the saved stage's metadata .*nope"):
        ONNXTransformer.load(str(workdir / "nope"))
    shutil.rmtree(saved / "model")
    with pytest.raises(
        InvalidStageError, match=r"records a model \(sha256 .*\) but .*/model cannot be read"
    ):
        ONNXTransformer.load(str(saved))


def test_a_tampered_model_is_refused(spark, saved):
    sha = "0" * 64
    edit_metadata(saved, _set("modelSha256", sha))
    with pytest.raises(InvalidStageError, match=r"does not match the sha256 .*000000000000"):
        ONNXTransformer.load(str(saved))


def test_bad_stage_metadata_inside_a_pipeline_is_named(spark, workdir):
    df = spark.createDataFrame([([1.0, 2.0, 3.0, 4.0],)], "x array<float>")
    stage = ONNXTransformer(inputCol="x", outputCol="y", model=testing.mlp((4, 3)))
    path = workdir / "pipeline"
    Pipeline(stages=[stage]).fit(df).write().save(str(path))
    edit_metadata(stage_dirs(path)[0], _param("noSuchParam", 1))
    with pytest.raises(InvalidStageError, match=r"stages/0_.*/metadata sets 'noSuchParam'"):
        PipelineModel.load(str(path))
    edit_metadata(stage_dirs(path)[0], _drop("uid"))
    with pytest.raises(InvalidStageError, match="misses 'uid'"):
        PipelineModel.load(str(path))
