"""The doctor's probe on real executors (local[2] and Spark Connect), the driver-side device
check it feeds, what ran where, the executors' log handler, and fitMultiple's early check."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import sparkonnx
from sparkonnx import (
    DeviceError,
    ImageSchema,
    ImageTransformer,
    ONNXTransformer,
    TrainingDependencyError,
    imageArrayToStruct,
    testing,
)
from sparkonnx.diagnostics.report import SCHEMA, DoctorReport
from sparkonnx.engine.cache_dir import model_cache_dir
from sparkonnx.engine.host_facts import CPU_FEATURES, host_facts, importable
from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.runtime import executor_facts
from sparkonnx.spark_api.runtime.where_ran import devices_used
from sparkonnx.spark_api.runtime.worker_logging import EXECUTOR_LOG_LEVEL_CONF
from sparkonnx.spark_api.session import session_key
from tests.conftest import CONNECT_SERVER


def _model(seed: int) -> OnnxModel:
    """A small MLP of its own (a new sha256, so nothing about it was seen before)."""
    return OnnxModel.load(testing.mlp((4, 8, 2), seed=seed))


def _rows(spark, n: int = 8):
    x = np.arange(n * 4, dtype=np.float32).reshape(n, 4) / 10
    return spark.createDataFrame([(i, x[i].tolist()) for i in range(n)], "id long, x array<float>")


def _cuda_usable(spark) -> bool:
    return any(f.can_use("cuda") for f in executor_facts.probe_executors(spark))


def test_doctor_reports_every_executor_and_agrees_with_this_process(any_spark, tmp_path):
    # the folder on-disk models would be cached in: the session's conf (executors' env vars
    # were fixed when they started, so $SPARKONNX_CACHE set by other tests is not theirs)
    any_spark.conf.set("spark.sparkonnx.modelCacheDir", str(tmp_path / "models"))
    try:
        report = sparkonnx.doctor(any_spark)
    finally:
        any_spark.conf.unset("spark.sparkonnx.modelCacheDir")
    assert isinstance(report, DoctorReport) and report.executors
    here = host_facts(try_providers=False)
    for facts in report.executors:
        assert facts.executor != "driver" and facts.host == here.host
        assert facts.python_executable == sys.executable
        assert facts.versions == here.versions and facts.extra["pyspark"] == any_spark.version
        assert facts.provider_checks["CPUExecutionProvider"] is None  # a CPU session ran
        assert facts.tensorflow == importable("tensorflow")
        assert facts.model_cache_dir == str(model_cache_dir(str(tmp_path / "models")))
        assert facts.model_cache_free_bytes and facts.model_cache_free_bytes > 0
        flags = set(Path("/proc/cpuinfo").read_text().split("flags", 1)[1].split("\n")[0].split())
        assert facts.cpu_features == [f for f in CPU_FEATURES if f in flags]
    assert report.mismatches == []
    data = json.loads(report.to_json())
    assert data["schema"] == SCHEMA and data["device"] is None
    assert data["executors"][0]["available_providers"] == report.executors[0].available_providers
    table = report.render()
    assert "providers usable" in table and report.executors[0].executor in table


def test_mismatched_versions_are_flagged_in_json_and_table():
    driver = dataclasses.replace(host_facts(try_providers=False), extra={"pyspark": "4.3.0"})
    other = dict(driver.versions, numpy="1.26.4")
    executor = dataclasses.replace(
        driver, executor="worker-7:4242", versions=other, extra={"pyspark": "4.3.0"}
    )
    report = DoctorReport("classic spark://m:7077", "4.3.0", driver, [executor], device="cuda")
    expected = f"executor worker-7:4242: numpy 1.26.4, driver has {driver.versions['numpy']}"
    assert report.mismatches == [expected]
    assert report.to_dict()["mismatches"] == [expected]
    assert report.device_ok is False and report.to_dict()["device"]["ok"] is False
    table = report.render()
    assert "1.26.4*" in table and "driver vs executor mismatches" in table
    assert "device cuda: usable on 0 of 1 executors (NOT USABLE ANYWHERE)" in table


def test_cuda_is_refused_on_the_driver_before_any_job(any_spark):
    if _cuda_usable(any_spark):
        pytest.skip("an executor here can really use CUDA")
    stage = ONNXTransformer(model=_model(1), inputCol="x", outputCol="y", device="cuda")
    with pytest.raises(DeviceError) as caught:
        stage.transform(_rows(any_spark))  # transform only: no job has run
    message = str(caught.value)
    assert re.search(r"device='cuda' was requested but none of the \d+ executors can run", message)
    assert f"(python {sys.executable}): " in message  # names where, and why
    assert "fell back to ['CPUExecutionProvider']" in message
    assert "device='auto'" in message and executor_facts.DEVICE_CHECK_CONF in message
    # the same from the SQL function and the image stage
    with pytest.raises(DeviceError, match="none of the"):
        sparkonnx.register_udf(any_spark, "cuda_refused", _model(1), device="cuda")
    image = np.zeros((8, 8, 3), np.uint8)
    schema = "id int, image " + ImageSchema.columnSchema.simpleString()
    images = any_spark.createDataFrame([(0, imageArrayToStruct(image, "mem://0"))], schema)
    cnn = ImageTransformer(inputCol="image", outputCol="y", model=testing.tiny_cnn(), device="cuda")
    with pytest.raises(DeviceError, match="none of the"):
        cnn.transform(images)


def test_device_check_can_be_switched_off(spark):
    if _cuda_usable(spark):
        pytest.skip("an executor here can really use CUDA")
    spark.conf.set(executor_facts.DEVICE_CHECK_CONF, "false")
    try:
        stage = ONNXTransformer(model=_model(1), inputCol="x", outputCol="y", device="cuda")
        stage.transform(_rows(spark))  # planned; its tasks would fail
    finally:
        spark.conf.unset(executor_facts.DEVICE_CHECK_CONF)


def test_the_driver_logs_which_device_each_executor_used(spark, caplog):
    model = _model(2)
    caplog.set_level(logging.INFO, logger="sparkonnx.spark_api.runtime.where_ran")
    out = ONNXTransformer(model=model, inputCol="x", outputCol="y").transform(_rows(spark))
    assert out.count() == 8 and len(out.collect()) == 8
    used = [u for u in devices_used(spark) if u.model == model.sha256[:12]]
    assert used and {u.stage for u in used} == {"ONNXTransformer"}
    assert {u.device for u in used} == {"cpu"}
    assert all(u.providers == ("CPUExecutionProvider",) for u in used)
    lines = [r.getMessage() for r in caplog.records if model.sha256[:12] in r.getMessage()]
    assert len(lines) == len(used)  # one line per executor, not per task or batch
    assert lines[0].startswith(f"ONNXTransformer ran model {model.sha256[:12]} on executor ")
    assert lines[0].endswith(": cpu (CPUExecutionProvider)")


def test_connect_has_no_accumulators_but_transforms_still_run(connect_spark):
    model = _model(3)
    out = ONNXTransformer(model=model, inputCol="x", outputCol="y").transform(_rows(connect_spark))
    assert len(out.collect()) == 8 and devices_used(connect_spark) == []


def test_worker_log_handler_is_installed_once_per_worker_at_the_conf_level(spark):
    def handlers(batches):  # runs in a Python worker (pickled by value)
        from sparkonnx.spark_api.runtime.worker_logging import install_worker_logging

        for _ in batches:
            pass
        install_worker_logging("INFO")
        install_worker_logging("DEBUG")  # again: the same handler, the new level
        logger = logging.getLogger("sparkonnx")
        ours = [h for h in logger.handlers if getattr(h, "_sparkonnx_worker_handler", False)]
        levels = [h.level for h in ours]
        yield pa.RecordBatch.from_pydict({"n": [len(ours)], "level": [levels[0]]})

    rows = spark.range(0, 4, 1, 2).mapInArrow(handlers, "n long, level long").collect()
    assert [(r.n, r.level) for r in rows] == [(1, logging.DEBUG)] * 2
    from sparkonnx.spark_api.runtime.worker_logging import install_worker_logging

    assert install_worker_logging("INFO") is None  # on the driver: the app's logging rules


def test_executor_log_lines_reach_the_executor_stderr_log(connect_spark):
    model = _model(4)
    connect_spark.conf.set(EXECUTOR_LOG_LEVEL_CONF, "INFO")
    try:
        stage = ONNXTransformer(model=model, inputCol="x", outputCol="y")
        assert len(stage.transform(_rows(connect_spark)).collect()) == 8
    finally:
        connect_spark.conf.unset(EXECUTOR_LOG_LEVEL_CONF)
    logs = Path(str(CONNECT_SERVER["log_dir"]))
    pattern = re.compile(
        r"INFO sparkonnx executor pid=\d+ sparkonnx\.engine\.sessions: built ONNX Runtime "
        rf"session for model {model.sha256[:12]} on cpu"
    )
    deadline = time.monotonic() + 20  # the server's log is written asynchronously
    while not any(pattern.search(p.read_text(errors="replace")) for p in logs.glob("*.out")):
        assert time.monotonic() < deadline, f"no executor log line in {list(logs.glob('*.out'))}"
        time.sleep(0.5)


def test_a_bad_executor_log_level_is_refused_on_the_driver(spark):
    spark.conf.set(EXECUTOR_LOG_LEVEL_CONF, "LOUD")
    try:
        with pytest.raises(ValueError, match=r"executorLogLevel='LOUD' is not a logging level"):
            ONNXTransformer(model=_model(5), inputCol="x", outputCol="y").transform(_rows(spark))
    finally:
        spark.conf.unset(EXECUTOR_LOG_LEVEL_CONF)


# A Python for executors that cannot find TensorFlow / Keras: the venv's own interpreter with
# both hidden by an import hook, which names itself as sys.executable (as a separate venv would).
_WITHOUT_TF = """
import importlib.abc, os, runpy, sys

class _Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _Hidden())
sys.executable = os.path.abspath(__file__)
args = sys.argv[1:]
while args and args[0].startswith("-") and args[0] != "-m":
    args = args[1:]
sys.argv = [args[1], *args[2:]]
runpy.run_module(args[1], run_name="__main__", alter_sys=True)
"""


@pytest.fixture()
def executors_without_tensorflow(spark, tmp_path, monkeypatch):
    """Executors' Python workers started from a Python that cannot import TensorFlow."""
    script = tmp_path / "python-without-tf"
    script.write_text(f"#!{sys.executable}\n{_WITHOUT_TF}")
    script.chmod(0o755)
    monkeypatch.setattr(spark.sparkContext, "pythonExec", str(script))
    executor_facts.probe_executors(spark, refresh=True)
    yield script
    monkeypatch.undo()
    executor_facts._probed.pop(session_key(spark), None)


def test_fit_multiple_refuses_executors_without_tensorflow_before_gathering(
    spark, executors_without_tensorflow, tmp_path, monkeypatch
):
    pytest.importorskip("keras")
    from sparkonnx.spark_api.training.keras_estimator import KerasEstimator

    gathered = []
    monkeypatch.setattr(KerasEstimator, "_gather", lambda *a: gathered.append(a))
    est = KerasEstimator(
        inputCol="x", outputCol="y", labelCol="id", modelFile=str(tmp_path / "none.keras")
    )
    models = est.fitMultiple(_rows(spark), [{est.seed: 1}, {est.seed: 2}])
    with pytest.raises(TrainingDependencyError) as caught:
        next(iter(models))
    message = str(caught.value)
    assert f"with Python {executors_without_tensorflow} (tensorflow and keras not found)" in message
    assert "run pip install 'sparkonnx[convert]' with that Python on every worker" in message
    assert "install pip install" not in message and gathered == []
