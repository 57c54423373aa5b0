"""`sparkonnx doctor` in a subprocess: its own local session, a Spark Connect server, JSON,
exit codes, and an executor's log line on the executor's stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sparkonnx.cli import exit_codes
from tests.conftest import CONNECT_SERVER


def _doctor(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "sparkonnx"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "sparkonnx.cli"]
    return subprocess.run(
        [*command, "doctor", *args],
        capture_output=True,
        text=True,
        timeout=400,
        env={**os.environ, **env},
    )


def test_local_session_json_exit_code_and_executor_log_line():
    done = _doctor("--master", "local[1]", "--device", "cuda", "--json", SPARKONNX_LOG_LEVEL="INFO")
    report = json.loads(done.stdout)
    assert report["schema"] == "sparkonnx.doctor/1"
    assert report["session"] == "classic local[1]" and report["spark_version"]
    assert set(report) == {
        "schema",
        "session",
        "spark_version",
        "driver",
        "executors",
        "mismatches",
        "warnings",
        "device",
    }
    (executor,) = report["executors"]
    for key in ("python_executable", "versions", "available_providers", "provider_checks"):
        assert key in executor and key in report["driver"]
    assert set(executor["versions"]) == {"sparkonnx", "onnxruntime", "numpy", "pyarrow"}
    assert executor["provider_checks"]["CPUExecutionProvider"] is None
    assert isinstance(executor["tensorflow"], bool) and executor["gpu_devices"] == []
    assert report["mismatches"] == []
    # the executor's own INFO line, from its Python worker's handler, on its stderr
    assert "INFO sparkonnx executor pid=" in done.stderr
    assert f"doctor probe on executor {executor['executor']}" in done.stderr
    cuda = report["device"]
    assert cuda["requested"] == "cuda"
    if cuda["ok"]:  # a machine with a working GPU
        assert done.returncode == exit_codes.EXIT_OK
    else:
        assert done.returncode == exit_codes.EXIT_DEVICE == 7, done.stderr
        assert "CUDAExecutionProvider" in executor["provider_checks"]
        assert executor["provider_checks"]["CUDAExecutionProvider"].startswith("listed, but")
        last = done.stderr.strip().splitlines()[-1]
        assert (
            last == "sparkonnx doctor: device cuda cannot be used on any of the 1 executors "
            "(see the providers above)"
        )


def test_connect_server_table(connect_spark):
    done = _doctor("--remote", str(CONNECT_SERVER["url"]), "--device", "cpu")
    assert done.returncode == exit_codes.EXIT_OK, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"sparkonnx doctor: Spark Connect {CONNECT_SERVER['url']}, Spark ")
    header = next(line for line in lines if line.startswith("executor "))
    for column in ("python", "onnxruntime", "providers usable", "GPUs", "CPU features", "TF"):
        assert column in header
    assert any(line.startswith("driver ") for line in lines)
    assert "device cpu: usable on " in done.stdout and "(ok)" in done.stdout


def test_bad_arguments_exit_2_on_one_line():
    done = _doctor("--tasks", "0")
    assert done.returncode == exit_codes.EXIT_USAGE
    assert done.stderr.strip() == "sparkonnx doctor: error: tasks must be a positive integer; got 0"
    both = _doctor("--master", "local[1]", "--remote", "sc://x:1")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_help_has_examples_and_the_device_exit_code():
    done = _doctor("--help")
    assert done.returncode == 0
    assert "sparkonnx doctor --master spark://" in done.stdout and "Exits 7" in done.stdout
    assert "7  requested device not usable on any executor" in done.stdout
