"""Driver side of the doctor's probe: what every executor of a session can run, asked once
per session, and the checks stages and training make with it before their jobs.

The probe is a tiny `mapInArrow` job (`runtime.probe`) with as many tasks as the session's
default parallelism, so each executor runs at least one as far as Spark's scheduler allows;
it works on classic Spark and Spark Connect alike.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from functools import partial
from typing import Any

from sparkonnx.engine.host_facts import HostFacts
from sparkonnx.engine.model_cache import CACHE_CONF
from sparkonnx.engine.providers import DeviceError
from sparkonnx.errors import SparkOnnxError
from sparkonnx.spark_api.runtime.executor import InferencePlan
from sparkonnx.spark_api.runtime.probe import PROBE_SCHEMA, probe_partition
from sparkonnx.spark_api.runtime.where_ran import device_report
from sparkonnx.spark_api.runtime.worker_logging import EXECUTOR_LOG_LEVEL_CONF, parse_level
from sparkonnx.spark_api.session import session_key

logger = logging.getLogger(__name__)

#: Spark conf switch of the driver-side device check ("false": let the tasks find out).
DEVICE_CHECK_CONF = "spark.sparkonnx.deviceCheck"
_SKIP_HINT = f"skip this check with spark.conf.set('{DEVICE_CHECK_CONF}', 'false')"

_probed: dict[str, list[HostFacts]] = {}
_lock = threading.Lock()


class ExecutorProbeError(SparkOnnxError, RuntimeError):
    """The probe job itself failed on the executors; the message gives the executor's error."""


def conf_value(spark: Any, key: str) -> str | None:
    """A Spark conf value of this session, None when unset or unreadable."""
    try:
        value = spark.conf.get(key, None)
    except Exception:  # a session whose conf cannot be read
        return None
    return None if value is None else str(value)


def executor_log_level(spark: Any) -> str | None:
    """`EXECUTOR_LOG_LEVEL_CONF` of this session (checked here, on the driver), or None."""
    value = conf_value(spark, EXECUTOR_LOG_LEVEL_CONF)
    parse_level(value, EXECUTOR_LOG_LEVEL_CONF)
    return value


def probe_executors(spark: Any, tasks: int | None = None, refresh: bool = False) -> list[HostFacts]:
    """Every executor's facts, one entry per executor (cached per session unless `refresh`)."""
    key = session_key(spark)
    with _lock:
        if not refresh and key in _probed:
            return _probed[key]
    ids = spark.range(0, 4096) if tasks is None else spark.range(0, tasks, 1, tasks)
    function = partial(probe_partition, executor_log_level(spark), _model_cache_conf(spark))
    try:
        rows = ids.mapInArrow(function, PROBE_SCHEMA).collect()
    except Exception as exc:
        text = " ".join(str(exc).split())
        raise ExecutorProbeError(
            f"the sparkonnx probe job failed on the executors: {text[-1500:]}. Executors need "
            "sparkonnx, onnxruntime, numpy and pyarrow in the Python that runs their tasks "
            "(PYSPARK_PYTHON, or spark.pyspark.python)"
        ) from exc
    found: dict[str, HostFacts] = {}
    for row in rows:
        found.setdefault(row["executor"], HostFacts.from_dict(json.loads(row["facts"])))
    facts = [found[name] for name in sorted(found)]
    with _lock:
        _probed[key] = facts
    return facts


def _model_cache_conf(spark: Any) -> str | None:
    """The session's ``spark.sparkonnx.modelCacheDir`` (where on-disk models are cached)."""
    return (conf_value(spark, CACHE_CONF) or "").strip() or None


def _check_enabled(spark: Any) -> bool:
    value = (conf_value(spark, DEVICE_CHECK_CONF) or "true").strip().lower()
    return value not in ("false", "0", "off", "no")


def _describe(facts: HostFacts, device: str) -> str:
    provider = "CUDAExecutionProvider" if device == "cuda" else "CPUExecutionProvider"
    why = facts.provider_checks.get(provider, "not in this onnxruntime build")
    return f"executor {facts.executor} (python {facts.python_executable}): {why}"


def require_device(spark: Any, device: str) -> None:
    """Refuse `device` ('cuda') on the driver when no executor can create a session on it
    (the doctor's probe, once per session); warn naming those that cannot."""
    if device != "cuda" or not _check_enabled(spark):
        return
    executors = probe_executors(spark)
    able = [f for f in executors if f.can_use(device)]
    unable = [f for f in executors if not f.can_use(device)]
    if executors and not able:
        reasons = "; ".join(_describe(f, device) for f in unable)
        raise DeviceError(
            f"device='cuda' was requested but none of the {len(executors)} executors can run "
            f"ONNX Runtime on CUDA: {reasons}. Fix: give the executors a GPU and "
            "onnxruntime-gpu with its CUDA / cuDNN libraries, or use device='auto' (CPU "
            f"fallback) or 'cpu'. Run 'sparkonnx doctor' for every executor's details; "
            f"{_SKIP_HINT}."
        )
    if unable:
        logger.warning(
            "device='cuda': %d of %d executors cannot use CUDA and their tasks will fail: %s",
            len(unable),
            len(executors),
            "; ".join(_describe(f, device) for f in unable),
        )


def ready_plan(spark: Any, plan: InferencePlan, stage: str, report: bool = True) -> InferencePlan:
    """`plan` checked for its device (`require_device`) and given what tasks report with:
    the executors' log level and, on classic Spark with `report`, the what-ran-where
    accumulator (not for plans a Python data source carries: its tasks send no updates)."""
    require_device(spark, plan.device)
    reporter = device_report(spark, stage) if report else None
    return dataclasses.replace(plan, log_level=executor_log_level(spark), device_report=reporter)


def executors_without_training(spark: Any) -> list[HostFacts]:
    """The executors (doctor's probe, cached per session) that cannot import TensorFlow/Keras."""
    return [f for f in probe_executors(spark) if not (f.tensorflow and f.keras)]
