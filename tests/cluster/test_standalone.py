"""sparkonnx on a real standalone cluster (master + two workers on 127.0.0.1), executors on a
venv with only the base install: file-shipped models, executors without TensorFlow, a pipeline
saved by one driver and run by another, and `kill -9` of an executor mid-job."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]


def test_model_is_shipped_as_a_file_and_scores_like_onnx_runtime(first_driver, driver_run):
    result = first_driver["ship"]
    assert result["model_bytes"] > result["inline_limit"]  # too big to travel in the closure
    assert result["ids"]
    shipped = {name for fact in result["executors"] for name in fact["shipped"]}
    assert len(shipped) == 1 and shipped.pop().endswith(".onnx")
    y = np.load(driver_run.out / "ship-y.npy")
    reference = np.load(driver_run.out / "ship-reference.npy")
    assert y.shape == (2000, 8)
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-6)


def test_executors_run_the_base_install_without_tensorflow(first_driver, standalone_cluster):
    executors = first_driver["ship"]["executors"]
    venv = str(standalone_cluster.executor_python.parents[1])
    assert {fact["python"] for fact in executors} == {str(standalone_cluster.executor_python)}
    assert all(fact["sparkonnx"].startswith(venv) for fact in executors)  # the wheel, not /work
    assert not any(fact["tensorflow"] for fact in executors)
    assert len({fact["pid"] for fact in executors}) >= 2  # both workers' executors took tasks


def test_killing_an_executor_mid_job_leaves_the_output_unchanged(first_driver, driver_run):
    result = first_driver["kill"]
    killed = result["killed"]
    assert killed, "the job finished before an executor could be killed"
    assert killed["pid"] in result["executors_before"]
    assert killed["pid"] not in result["executors_after"]
    assert 0 < killed["done"] < killed["of"]
    assert result["ids"]
    undisturbed = np.load(driver_run.out / "kill-undisturbed.npy")
    disturbed = np.load(driver_run.out / "kill-disturbed.npy")
    assert np.array_equal(undisturbed, disturbed)
    # the executor started in its place has the shipped model file too
    (new,) = set(result["executors_after"]) - set(result["executors_before"])
    on_new = [fact for fact in result["facts_after"] if fact["executor_jvm"] == new]
    assert on_new and all(fact["shipped"] for fact in on_new)


def test_pipeline_saved_by_one_driver_runs_in_another(first_driver, second_driver, driver_run):
    assert first_driver["save"]["images"] == 12
    saved = json.loads((driver_run.out / "pipeline-scores.json").read_text())
    loaded = second_driver["load"]
    assert loaded["stages"] == ["ImageTransformer"]
    assert loaded["scores"] == saved  # exactly: same model, same pixels, same executors' ORT


def test_doctor_reports_every_executor_and_exits_7_for_cuda(standalone_cluster, driver_run):
    import subprocess
    import sys

    command = [sys.executable, "-m", "sparkonnx.cli", "doctor", "--json", "--device", "cuda"]
    proc = subprocess.run(
        [*command, "--master", standalone_cluster.url],
        env=driver_run.env(),
        cwd=driver_run.out,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 7, proc.stderr[-3000:]  # EXIT_DEVICE: cuda usable nowhere
    report = json.loads(proc.stdout)
    assert report["schema"] == "sparkonnx.doctor/1"
    executors = report["executors"]
    assert len({e["executor"] for e in executors}) >= 2  # both workers' executors answered
    for facts in executors:
        assert facts["python_executable"] == str(standalone_cluster.executor_python)
        assert not facts["tensorflow"]  # the base install
    assert report["device"] == {"requested": "cuda", "usable_on": [], "ok": False}
