"""Issue 14.2 and 14.3: models ONNX Runtime cannot run are refused on the driver, before any
Spark job, naming the operator; external data never reads a file outside the model's folder."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparkonnx import (
    ImageTransformer,
    InvalidModelError,
    InvalidStageError,
    OnnxModel,
    ONNXTransformer,
    register_udf,
    testing,
)
from sparkonnx.engine import runnable
from sparkonnx.engine.runnable import ModelNotRunnableError, check_runnable
from sparkonnx.spark_api.shipping import DRIVER_CHECK_CONF
from tests.security.models import evil_op, external_data
from tests.security.saved import edit_metadata

SECRET = b"TOPSECRET"
EVIL_NAMED = r"operator 'EvilOp' of domain 'com\.evil' \(node 'n_evil': com\.evil:EvilOp\)"


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "sparkonnx"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "sparkonnx.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def _jobs(spark: Any, group: str) -> list[int]:
    return list(spark.sparkContext.statusTracker().getJobIdsForGroup(group))


# ------------------------------------------------------------------ 14.2 unknown operators


def test_transform_refuses_an_unknown_operator_before_any_spark_job(spark):
    df = spark.createDataFrame([([1.0, 2.0, 3.0, 4.0],)], "x array<float>")
    stage = ONNXTransformer(inputCol="x", outputCol="y", model=evil_op())
    spark.sparkContext.setJobGroup("h14-evil", "driver check")
    try:
        with pytest.raises(ModelNotRunnableError, match=EVIL_NAMED) as info:
            stage.transform(df)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert _jobs(spark, "h14-evil") == []
    assert DRIVER_CHECK_CONF in str(info.value)  # the message names the switch
    with pytest.raises(ModelNotRunnableError, match="EvilOp"):
        register_udf(spark, "evil_udf", evil_op())


def test_image_stages_refuse_it_too(spark):
    graph = testing.image_identity(size=(4, 4))
    graph.graph.node[0].op_type, graph.graph.node[0].domain = "EvilOp", "com.evil"
    graph.opset_import.add(domain="com.evil", version=1)
    image = spark.createDataFrame(
        [(None,)],
        "image struct<origin:string,height:int,width:int,nChannels:int,mode:int,data:binary>",
    )
    with pytest.raises(ModelNotRunnableError, match=r"'EvilOp' of domain 'com\.evil'"):
        ImageTransformer(inputCol="image", outputCol="out", model=graph).transform(image)


def test_the_check_runs_once_per_model_and_can_be_switched_off(spark, monkeypatch):
    model = OnnxModel.load(testing.mlp((4, 3), seed=123))
    monkeypatch.setattr(runnable, "_checked", set())
    check_runnable(model)
    assert runnable._checked == {model.sha256}
    df = spark.createDataFrame([([1.0, 2.0, 3.0, 4.0],)], "x array<float>")
    spark.conf.set(DRIVER_CHECK_CONF, "false")
    try:
        ONNXTransformer(inputCol="x", outputCol="y", model=evil_op()).transform(df)  # lazy: ok
    finally:
        spark.conf.unset(DRIVER_CHECK_CONF)
    assert runnable._checked == {model.sha256}


def test_inspect_says_why_no_provider_can_run_it(tmp_path):
    path = tmp_path / "evil.onnx"
    path.write_bytes(evil_op().SerializeToString())
    done = _cli("inspect", str(path))
    assert done.returncode == 3, done.stderr
    assert "CPUExecutionProvider: operator 'EvilOp' of domain 'com.evil'" in done.stdout
    assert "no installed provider can run" in done.stderr and "Traceback" not in done.stderr


# ------------------------------------------------------------------ 14.3 external data


@pytest.fixture()
def secret(workdir: Path) -> Path:
    """A file next to (not inside) the model's folder, that no model may read."""
    path = workdir / "secret.bin"
    path.write_bytes(SECRET)
    (workdir / "models").mkdir()
    return path


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("../secret.bin", r"'\.\./secret\.bin' points outside the directory"),
        ("{secret}", r"should be a relative path, but it is an absolute path"),
        ("link.bin", r"is a symbolic link"),
    ],
)
def test_external_data_outside_the_folder_is_an_invalid_model(secret, location, refused):
    models = secret.parent / "models"
    (models / "link.bin").symlink_to(secret)
    path = models / "leak.onnx"
    path.write_bytes(external_data(location.format(secret=secret)).SerializeToString())
    with pytest.raises(InvalidModelError, match=rf"leak\.onnx: its external data .*{refused}"):
        OnnxModel.from_path(path)
    done = _cli("inspect", str(path))
    assert done.returncode == 3, done.stderr  # bad input, not "a bug"
    assert "external data cannot be loaded" in done.stderr and "Traceback" not in done.stderr


def test_model_bytes_must_be_self_contained(secret, monkeypatch):
    """A relative location would be read from the current folder of every executor."""
    monkeypatch.chdir(secret.parent)
    data = external_data("secret.bin").SerializeToString()
    with pytest.raises(InvalidModelError, match=r"tensor 'w' keeps its data in an external file"):
        OnnxModel.from_bytes(data)


def test_a_saved_stage_with_a_leaking_model_is_refused(spark, workdir, secret, monkeypatch):
    stage = ONNXTransformer(inputCol="x", outputCol="y", model=testing.mlp((4, 3)))
    stage.save(str(workdir / "stage"))
    leak = external_data("secret.bin").SerializeToString()
    sha = hashlib.sha256(leak).hexdigest()
    table = spark.createDataFrame([(sha, bytearray(leak))], "sha256 string, model binary")
    table.coalesce(1).write.mode("overwrite").parquet(str(workdir / "stage" / "model"))
    edit_metadata(workdir / "stage", lambda m: m.__setitem__("modelSha256", sha))
    monkeypatch.chdir(secret.parent)
    with pytest.raises(InvalidStageError, match=r"model is refused: .*keeps its data in an ext"):
        ONNXTransformer.load(str(workdir / "stage"))
    assert os.stat(secret).st_size == len(SECRET)


def test_good_external_data_still_loads(workdir):
    models = workdir / "m"
    models.mkdir()
    (models / "w.bin").write_bytes(bytes(range(9)))
    path = models / "ok.onnx"
    path.write_bytes(external_data("w.bin").SerializeToString())
    model = OnnxModel.from_path(path)
    import onnxruntime as ort

    out = ort.InferenceSession(model.model_bytes).run(None, {"x": np.ones(9, np.uint8)})[0]
    assert out.tolist() == list(range(1, 10))
