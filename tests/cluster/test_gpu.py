"""GPUs as Spark resources on a real standalone cluster whose workers' discovery script reports
two fake GPUs ("0", "1"): which GPU each task asks ONNX Runtime for, the CPU fallback (there is
no GPU here) with a warning naming the GPU in the executor's log, device='cuda' failing with
that GPU named, and examples/gpu_stage_profile.py (a stage-level ResourceProfile)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def gpu_driver(driver_run):
    """Task GPUs from the conf (spark.task.resource.gpu.amount=1)."""
    return driver_run("gpu")


def executor_logs(cluster, app_id: str) -> str:
    """The stderr logs of every executor the application had."""
    return "\n".join(
        p.read_text(errors="replace") for p in cluster.work_dir.glob(f"{app_id}/*/stderr")
    )


def test_each_task_asks_for_the_gpu_spark_gave_it(gpu_driver):
    tasks = gpu_driver["gpu"]["tasks"]
    assert len(tasks) == 8
    for task in tasks:
        assert len(task["addresses"]) == 1 and task["addresses"][0] in ("0", "1")
        assert task["cuda_device_id"] == int(task["addresses"][0])
        assert task["cuda_options"] == {  # spark.executorEnv.SPARKONNX_CUDA_OPTIONS reached it
            "device_id": task["addresses"][0],
            "cudnn_conv_algo_search": "HEURISTIC",
            "arena_extend_strategy": "kSameAsRequested",
        }
        assert task["auto_device"] == "cpu"  # no GPU visible: device='auto' plans CPU
    # two tasks at once per executor, each holding a different one of its two GPUs
    assert {t["addresses"][0] for t in tasks} == {"0", "1"}


def test_auto_falls_back_to_cpu_with_a_warning_naming_the_gpu(
    gpu_driver, standalone_cluster, driver_run
):
    result = gpu_driver["gpu"]
    y = np.load(driver_run.out / "gpu-auto-y.npy")
    np.testing.assert_allclose(
        y, np.load(driver_run.out / "gpu-reference.npy"), rtol=1e-5, atol=1e-6
    )
    logs = executor_logs(standalone_cluster, result["app"])
    fallback = "device='auto': running on CPU because no NVIDIA GPU is visible (/dev/nvidia*)"
    for gpu in ("0", "1"):
        assert f"{fallback}, so GPU {gpu} (deviceId, else the task's Spark resources)" in logs, (
            logs[-3000:]
        )


def test_cuda_is_refused_on_the_driver_when_no_executor_can_use_it(gpu_driver):
    result = gpu_driver["gpu"]
    error = result["driver_error"]
    assert error is not None and error.startswith("DeviceError: device='cuda' was requested")
    assert "none of the" in error and "executors can run ONNX Runtime on CUDA" in error
    assert "sparkonnx doctor" in error
    # the doctor's probe is the only job: the transform itself started none
    assert result["jobs_for_driver_check"] <= 1


def test_cuda_fails_naming_the_tasks_gpu(gpu_driver):
    error = gpu_driver["gpu"]["cuda_error"]
    assert error is not None, "device='cuda' ran although no GPU can be used here"
    assert "DeviceError" in error and "could not be initialised" in error
    assert "device='cuda' (GPU 0)" in error or "device='cuda' (GPU 1)" in error


def test_resource_profile_puts_gpus_on_the_scoring_stage_only(second_driver):
    result = second_driver["profile"]
    assert all(task["addresses"] == [] for task in result["decode_tasks"])
    for task in result["score_tasks"]:
        assert len(task["addresses"]) == 1
        assert task["cuda_device_id"] == int(task["addresses"][0])
    # the example's decode-on-CPU, score-on-GPU pipeline gives the plain pipeline's scores
    assert len(result["scores"]) == 12
    assert result["scores"] == result["plain_scores"]
