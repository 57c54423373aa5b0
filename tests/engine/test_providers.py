import logging
from types import SimpleNamespace

import pytest

from sparkonnx.engine import providers
from sparkonnx.engine.providers import (
    CPU,
    CUDA,
    DeviceError,
    check_session_providers,
    gpu_id_from_resources,
    plan_providers,
)

GPU_BUILD = ["TensorrtExecutionProvider", CUDA, CPU]
CPU_BUILD = [CPU]


def _session(used):
    return SimpleNamespace(get_providers=lambda: list(used))


def test_cpu_is_cpu_only():
    plan = plan_providers("cpu", available=GPU_BUILD)
    assert plan.as_ort_arguments() == ([CPU], [{}])


def test_cuda_plan_has_device_id_and_cpu_fallback():
    plan = plan_providers("cuda", 1, available=GPU_BUILD)
    assert plan.as_ort_arguments() == ([CUDA, CPU], [{"device_id": "1"}, {}])
    assert plan_providers("auto", available=GPU_BUILD, gpu_visible=True).wants_cuda


def test_auto_on_gpu_build_without_gpu_skips_cuda():
    # onnxruntime-gpu on a CPU machine: 'auto' must not even try CUDA (noisy library errors)
    assert not plan_providers("auto", available=GPU_BUILD, gpu_visible=False).wants_cuda
    # an explicit 'cuda' still tries, so its failure is reported with onnxruntime's reason
    assert plan_providers("cuda", available=GPU_BUILD, gpu_visible=False).wants_cuda


def test_cuda_without_cuda_build_lists_providers():
    with pytest.raises(DeviceError, match=r"no CUDAExecutionProvider.*\['CPUExecutionProvider'\]"):
        plan_providers("cuda", available=CPU_BUILD)


def test_auto_falls_back_to_cpu_and_logs_once(caplog):
    providers._fallback_logged.clear()
    with caplog.at_level(logging.WARNING, logger="sparkonnx.engine.providers"):
        assert plan_providers("auto", available=CPU_BUILD).as_ort_arguments()[0] == [CPU]
        plan_providers("AUTO", available=CPU_BUILD)
    assert len([r for r in caplog.records if "running on CPU" in r.message]) == 1


def test_session_that_silently_dropped_cuda():
    # onnxruntime-gpu on a machine without a GPU keeps only the CPU provider, without raising
    cuda_plan = plan_providers("cuda", available=GPU_BUILD)
    with pytest.raises(DeviceError, match="CUDA provider could not be initialised"):
        check_session_providers(cuda_plan, _session([CPU]))
    auto_plan = plan_providers("auto", available=GPU_BUILD, gpu_visible=True)
    assert check_session_providers(auto_plan, _session([CPU])) == "cpu"
    assert check_session_providers(auto_plan, _session([CUDA, CPU])) == "cuda"


@pytest.mark.parametrize(
    ("device", "device_id", "message"),
    [("gpu", None, "device must be one of"), ("cuda", -1, "deviceId must be")],
)
def test_bad_device_arguments(device, device_id, message):
    with pytest.raises(ValueError, match=message):
        plan_providers(device, device_id, available=GPU_BUILD)


def test_gpu_id_from_spark_task_resources():
    assert gpu_id_from_resources(None) is None
    assert gpu_id_from_resources({}) is None
    assert gpu_id_from_resources({"gpu": SimpleNamespace(addresses=["3", "4"])}) == 3
    with pytest.raises(DeviceError, match="not an integer"):
        gpu_id_from_resources({"gpu": SimpleNamespace(addresses=["gpu-a"])})


def test_real_cuda_request_on_this_machine():
    """On a machine without a usable GPU, device='cuda' fails loudly at session creation."""
    import onnxruntime as ort

    from sparkonnx import testing
    from sparkonnx.engine.sessions import SessionCache

    cache = SessionCache()
    loader = testing.mlp((4, 2)).SerializeToString
    if CUDA not in ort.get_available_providers():
        with pytest.raises(DeviceError):
            plan_providers("cuda")
        return
    try:
        session = cache.get("m", loader, plan_providers("cuda"))
    except DeviceError as exc:
        assert "could not be initialised" in str(exc)
    else:  # a real GPU: the session must really run on it
        assert session.device == "cuda"


def test_auto_without_a_visible_gpu_warns_naming_the_gpu_spark_gave(caplog):
    providers._fallback_logged.clear()
    with caplog.at_level(logging.INFO, logger="sparkonnx.engine.providers"):
        for _ in range(2):
            plan = plan_providers("auto", 1, available=GPU_BUILD, gpu_visible=False)
            assert plan.as_ort_arguments() == ([CPU], [{}]) and plan.cuda_device_id is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    expected = (
        "device='auto': running on CPU because no NVIDIA GPU is visible (/dev/nvidia*), so GPU 1 "
        "(deviceId, else the task's Spark resources) is not used (providers: "
        "['CPUExecutionProvider'])"
    )
    assert [r.message for r in warnings] == [expected]  # once per process and GPU


def test_cuda_failure_names_the_gpu_it_asked_for():
    plan = plan_providers("cuda", 3, available=GPU_BUILD)
    assert plan.cuda_device_id == 3
    with pytest.raises(DeviceError, match=r"device='cuda' \(GPU 3\) was requested but the CUDA"):
        check_session_providers(plan, _session([CPU]))


def test_cuda_options_from_the_environment(monkeypatch):
    monkeypatch.setenv(
        providers.CUDA_OPTIONS_ENV,
        '{"cudnn_conv_algo_search": "HEURISTIC", "arena_extend_strategy": "kSameAsRequested", '
        '"gpu_mem_limit": 2147483648, "do_copy_in_default_stream": true}',
    )
    plan = plan_providers("cuda", 2, available=GPU_BUILD)
    assert plan.as_ort_arguments()[1][0] == {
        "device_id": "2",
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",
        "do_copy_in_default_stream": "1",
        "gpu_mem_limit": "2147483648",
    }
    assert plan_providers("cpu", available=GPU_BUILD).as_ort_arguments() == ([CPU], [{}])


@pytest.mark.parametrize("raw", ["HEURISTIC", "[1]", '{"device_id": 1}'])
def test_bad_cuda_options_say_what_is_expected(monkeypatch, raw):
    monkeypatch.setenv(providers.CUDA_OPTIONS_ENV, raw)
    with pytest.raises(DeviceError, match=r"SPARKONNX_CUDA_OPTIONS must be a JSON object.*got"):
        plan_providers("cuda", available=GPU_BUILD)
