"""What one Python process can run: versions, ONNX Runtime providers really usable, GPUs, CPU
instruction sets, whether TensorFlow is importable, and the model cache's free space.

Spark-free (the doctor's executor probe and the driver both call `host_facts`). Nothing here
imports TensorFlow: its presence is checked with `importlib.util.find_spec`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import re
import socket
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from sparkonnx.engine.cache_dir import free_bytes, model_cache_dir
from sparkonnx.engine.cpu_features import cpu_features as read_cpu
from sparkonnx.engine.providers import CPU, CUDA, nvidia_device_visible, nvidia_devices

#: CPU flags that change ONNX Runtime's speed, as /proc/cpuinfo names them.
CPU_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)
#: The packages whose driver and executor versions must agree.
VERSIONED = ("sparkonnx", "onnxruntime", "numpy", "pyarrow")


@dataclass(frozen=True)
class HostFacts:
    """One Python process's environment, as plain JSON-able values."""

    host: str
    pid: int
    python_executable: str
    python_version: str
    platform: str
    versions: dict[str, str]
    onnxruntime_packages: dict[str, str]  # installed distributions: onnxruntime(-gpu)
    available_providers: list[str]
    #: provider -> None (a session was created and ran on it) or why not; empty: not tried
    provider_checks: dict[str, str | None]
    gpu_devices: list[str]
    cuda_visible_devices: str | None
    cpu_model: str
    cpu_features: list[str] | None  # None: unknown on this platform
    tensorflow: bool
    keras: bool
    model_cache_dir: str
    model_cache_free_bytes: int | None
    executor: str = "driver"  # set by the executor probe: host plus executor JVM pid
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. pyspark version, task GPUs

    @property
    def usable_providers(self) -> list[str]:
        """Providers a real session was created and run on."""
        return [name for name, why in self.provider_checks.items() if why is None]

    def can_use(self, device: str) -> bool:
        """True when `device` ('cpu' / 'cuda') had a working session here."""
        return (CUDA if device == "cuda" else CPU) in self.usable_providers

    def to_dict(self) -> dict[str, Any]:
        """The facts as a JSON-able dict (inverse: `HostFacts.from_dict`)."""
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> HostFacts:
        """Facts read back from `to_dict` (unknown keys ignored: newer executors)."""
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def host_facts(
    try_providers: bool = True, gpu_id: int | None = None, model_cache: str | None = None
) -> HostFacts:
    """This process's facts; with `try_providers`, one tiny session per CPU / CUDA provider.
    `model_cache`: the model cache folder the session configures (``modelCacheDir``), if any."""
    import onnxruntime as ort

    available = list(ort.get_available_providers())
    cache = model_cache_dir(model_cache)
    return HostFacts(
        host=socket.gethostname(),
        pid=os.getpid(),
        python_executable=sys.executable,
        python_version=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        versions=package_versions(),
        onnxruntime_packages=_installed("onnxruntime", "onnxruntime-gpu"),
        available_providers=available,
        provider_checks=check_providers(available, gpu_id) if try_providers else {},
        gpu_devices=nvidia_devices(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        cpu_model=_cpu_model(),
        cpu_features=cpu_features(),
        tensorflow=importable("tensorflow"),
        keras=importable("keras"),
        model_cache_dir=str(cache),
        model_cache_free_bytes=free_bytes(cache),
    )


def importable(name: str) -> bool:
    """True when `name` can be found for import here (found, not imported)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a finder refusing it, or a broken package
        return False


def package_versions() -> dict[str, str]:
    """The versions of `VERSIONED` packages as imported here."""
    import numpy
    import onnxruntime
    import pyarrow

    import sparkonnx

    modules = {"sparkonnx": sparkonnx, "onnxruntime": onnxruntime, "numpy": numpy}
    modules["pyarrow"] = pyarrow
    return {name: str(getattr(module, "__version__", "?")) for name, module in modules.items()}


def _installed(*distributions: str) -> dict[str, str]:
    found = {}
    for name in distributions:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def tiny_model_bytes() -> bytes:
    """A one-node float model (y = x + x) to create a session on each provider."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Add", ["x", "x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def check_providers(available: list[str], gpu_id: int | None = None) -> dict[str, str | None]:
    """For CPU and (when listed) CUDA: None when a session really ran on it, else why not."""
    checks: dict[str, str | None] = {CPU: _try_session(CPU, {})}
    if CUDA in available:
        checks[CUDA] = _try_session(CUDA, {"device_id": str(gpu_id or 0)})
    return checks


def _try_session(provider: str, options: dict[str, str]) -> str | None:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    names = [provider] if provider == CPU else [provider, CPU]
    opts = [options] if provider == CPU else [options, {}]
    with _captured_stderr() as log:
        try:
            session = ort.InferenceSession(
                tiny_model_bytes(), sess_options=so, providers=names, provider_options=opts
            )
            session.run(None, {"x": np.ones((1, 4), np.float32)})
        except Exception as exc:  # any failure is the answer, reported as text
            return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    if provider in session.get_providers():
        return None
    gpu = "an NVIDIA device is visible" if nvidia_device_visible() else "no /dev/nvidia* device"
    why = _ort_load_error(log.getvalue()) or "its CUDA / cuDNN libraries could not be loaded"
    return f"listed, but a session on it fell back to {session.get_providers()}: {why}; {gpu}"


class _Text:
    value = ""

    def getvalue(self) -> str:
        return self.value


@contextlib.contextmanager
def _captured_stderr() -> Iterator[_Text]:
    """What native code (onnxruntime's logger) writes to file descriptor 2 meanwhile."""
    text = _Text()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to capture
        yield text
        return
    with tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.value = sink.read().decode("utf-8", "replace")


def _ort_load_error(log: str) -> str | None:
    """The library onnxruntime could not load, and the CUDA / cuDNN versions it asks for."""
    loaded = re.search(r"with error: ([^\n\x1b]+)", log)
    needs = re.search(r"Require (cuDNN [^ ]+ and CUDA [^ .]+(?:\.\*)?)", log)
    parts = [loaded.group(1).strip()] if loaded else []
    if needs:
        parts.append(f"onnxruntime-gpu needs {needs.group(1)}")
    return "; ".join(parts) or None


def cpu_features() -> list[str] | None:
    """Which of `CPU_FEATURES` this CPU has (read by `engine.cpu_features`, the one reader of
    /proc/cpuinfo); None when the platform does not say."""
    record = read_cpu()
    if record.source == "/proc/cpuinfo" and record.flags:
        return [name for name in CPU_FEATURES if name in record.flags]
    if sys.platform == "darwin":
        return _darwin_features()
    return None


def _darwin_features() -> list[str] | None:
    import subprocess

    try:
        out = subprocess.run(
            ["sysctl", "-n", "machdep.cpu.features", "machdep.cpu.leaf7_features"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    flags = {f.lower().replace(".", "_") for f in out.split()}
    return [name for name in CPU_FEATURES if name in flags] if flags else None


def _cpu_model() -> str:
    record = read_cpu()
    if record.source == "/proc/cpuinfo" and record.model != "unknown CPU":
        return record.model
    return platform.processor() or platform.machine() or "unknown"
