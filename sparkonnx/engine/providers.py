"""Execution-provider policy: which ONNX Runtime provider runs a model, and the CPU fallback."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, Literal

from sparkonnx.errors import SparkOnnxError, check_int, check_one_of

logger = logging.getLogger(__name__)

Device = Literal["auto", "cpu", "cuda"]
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEVICE_FIX = (
    "Use 'auto' (CUDA when usable, else CPU), 'cpu', or 'cuda' (needs the onnxruntime-gpu "
    "package and a visible NVIDIA GPU)"
)

#: Environment variable (on executors: `spark.executorEnv.SPARKONNX_CUDA_OPTIONS`): more CUDA
#: provider options as a JSON object, e.g. {"cudnn_conv_algo_search": "HEURISTIC"}.
CUDA_OPTIONS_ENV = "SPARKONNX_CUDA_OPTIONS"

_fallback_logged: set[str] = set()
_fallback_lock = threading.Lock()


class DeviceError(SparkOnnxError, RuntimeError):
    """The requested device cannot be used; the message says why and what is available."""


@dataclass(frozen=True)
class ProviderPlan:
    """The providers (with options) to hand to an InferenceSession, most preferred first."""

    device: str
    providers: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]

    def as_ort_arguments(self) -> tuple[list[str], list[dict[str, str]]]:
        """`providers` and `provider_options` lists for `ort.InferenceSession`."""
        names = [name for name, _ in self.providers]
        options = [dict(opts) for _, opts in self.providers]
        return names, options

    @property
    def wants_cuda(self) -> bool:
        return any(name == CUDA for name, _ in self.providers)

    @property
    def cuda_device_id(self) -> int | None:
        """The GPU ordinal handed to the CUDA provider (None: the plan does not use CUDA)."""
        for name, options in self.providers:
            if name == CUDA:
                return int(dict(options).get("device_id", "0"))
        return None


def validate_device(device: str, device_id: int | None = None) -> str:
    """Normalise and check a `device` (and `deviceId`); the one check every layer uses.

    A value outside 'auto' / 'cpu' / 'cuda', or a negative deviceId, raises InvalidParamError;
    a value of the wrong type raises TypeError.
    """
    device = check_one_of("device", device, DEVICES, fix=DEVICE_FIX)
    if device_id is not None:
        validate_device_id(device_id)
    return device


def validate_device_id(device_id: Any) -> int:
    """A GPU ordinal: a non-negative int (bools refused); else InvalidParamError / TypeError."""
    return check_int(
        "deviceId",
        device_id,
        minimum=0,
        or_none=True,
        fix="Use the GPU's ordinal (0 for the first), or leave it unset to use the task's GPU "
        "resource",
    )


def available_providers() -> list[str]:
    """Providers compiled into the installed onnxruntime (not a guarantee that they can start)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def nvidia_devices() -> list[str]:
    """The NVIDIA device nodes the driver exposes to this process (``nvidia0``, ...), in order."""
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    found = [n for n in names if n.startswith("nvidia") and n[len("nvidia") :].isdigit()]
    return sorted(found, key=lambda n: int(n[len("nvidia") :]))


def nvidia_device_visible() -> bool:
    """True when the NVIDIA driver exposes at least one device node to this process."""
    return bool(nvidia_devices())


def plan_providers(
    device: str,
    device_id: int | None = None,
    available: list[str] | None = None,
    gpu_visible: bool | None = None,
) -> ProviderPlan:
    """Choose providers for `device` ('auto' | 'cpu' | 'cuda') and a GPU ordinal.

    'cuda' where the build has no CUDA provider raises DeviceError listing what is available;
    'auto' uses CUDA only when the build has it and a GPU is visible, else CPU (logged once).
    """
    device = validate_device(device, device_id)
    available = available_providers() if available is None else available
    if gpu_visible is None:
        gpu_visible = nvidia_device_visible()
    if device == "auto" and CUDA in available and not gpu_visible:
        reason = "no NVIDIA GPU is visible (/dev/nvidia*)"
        if device_id is None:
            _log_fallback_once(reason, [CPU], logging.INFO)
        else:  # Spark (or deviceId) gave this task a GPU that cannot be used: worth a warning
            _log_fallback_once(
                f"{reason}, so GPU {device_id} (deviceId, else the task's Spark "
                "resources) is not used",
                [CPU],
            )
        return ProviderPlan("cpu", ((CPU, ()),))
    cpu = (CPU, ())
    if device == "cpu":
        return ProviderPlan("cpu", (cpu,))
    cuda_opts = cuda_provider_options(device_id)
    if CUDA in available:
        return ProviderPlan(device, ((CUDA, cuda_opts), cpu))
    if device == "cuda":
        raise DeviceError(
            "device='cuda' was requested but this onnxruntime build has no CUDAExecutionProvider; "
            f"available providers: {available}. Install 'onnxruntime-gpu' (and not 'onnxruntime' "
            "beside it), or use device='auto' / 'cpu'."
        )
    _log_fallback_once("no CUDAExecutionProvider in this onnxruntime build", available)
    return ProviderPlan("cpu", (cpu,))


def cuda_provider_options(device_id: int | None) -> tuple[tuple[str, str], ...]:
    """The CUDA provider's options: ``device_id``, then those of `CUDA_OPTIONS_ENV` (sorted)."""
    raw = os.environ.get(CUDA_OPTIONS_ENV, "").strip()
    extra: object = {}
    if raw:
        try:
            extra = json.loads(raw)
        except json.JSONDecodeError:
            extra = None
    if not isinstance(extra, dict) or "device_id" in extra:
        raise DeviceError(
            f"{CUDA_OPTIONS_ENV} must be a JSON object of CUDA provider options other than "
            f"device_id (use deviceId or Spark's GPU resources), e.g. "
            f'\'{{"cudnn_conv_algo_search": "HEURISTIC"}}\'; got {raw!r}'
        )
    options = {str(k): _option_text(v) for k, v in extra.items()}
    return (("device_id", str(device_id or 0)), *sorted(options.items()))


def _option_text(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def check_session_providers(plan: ProviderPlan, session: Any) -> str:
    """Check the providers a created session really uses against the plan; return the device used.

    ONNX Runtime silently drops CUDA when its libraries cannot load; 'cuda' then fails loudly and
    'auto' logs the fallback once.
    """
    used = list(session.get_providers())
    if not plan.wants_cuda or CUDA in used:
        return "cuda" if CUDA in used else "cpu"
    reason = (
        "the CUDA provider could not be initialised (no GPU visible, or CUDA/cuDNN libraries "
        "missing); see onnxruntime's log above for the library it could not load"
    )
    if plan.device == "cuda":
        raise DeviceError(
            f"device='cuda' (GPU {plan.cuda_device_id}) was requested but {reason}; the session "
            f"runs on {used}. Use device='auto' to fall back to CPU."
        )
    _log_fallback_once(reason, used)
    return "cpu"


def _log_fallback_once(reason: str, providers: list[str], level: int = logging.WARNING) -> None:
    with _fallback_lock:
        if reason in _fallback_logged:
            return
        _fallback_logged.add(reason)
    logger.log(level, "device='auto': running on CPU because %s (providers: %s)", reason, providers)


def gpu_id_from_resources(resources: dict[str, Any] | None) -> int | None:
    """The first GPU address of a Spark task's resources ({'gpu': ResourceInformation}), if any."""
    if not resources or "gpu" not in resources:
        return None
    info = resources["gpu"]
    addresses = getattr(info, "addresses", info)
    if not addresses:
        return None
    try:
        return int(addresses[0])
    except (TypeError, ValueError):
        raise DeviceError(f"the task's GPU address {addresses[0]!r} is not an integer") from None
