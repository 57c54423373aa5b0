"""The doctor's executor probe: one `mapInArrow` task reports its executor's `HostFacts`.

A worker process answers from a cache after its first probe (the facts of a process do not
change; creating a CUDA session takes a while). `executor_id` names an executor by its host
and the pid of its JVM (the Python worker's nearest ``java`` ancestor), the same for every
Python worker it starts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from sparkonnx.engine.host_facts import HostFacts, host_facts
from sparkonnx.engine.providers import gpu_id_from_resources
from sparkonnx.spark_api.runtime.worker_logging import install_worker_logging

logger = logging.getLogger(__name__)

#: The probe's output: one row per task.
PROBE_SCHEMA = "executor string, facts string"
_cache: dict[tuple[int | None, str | None], HostFacts] = {}
_executor: list[str] = []


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # field 4, after the "(comm)" field


def _jvm_pid() -> int | None:
    """The pid of the nearest ``java`` ancestor process (Linux /proc; None elsewhere)."""
    pid: int | None = os.getppid()
    for _ in range(4):
        if pid is None or pid <= 1:
            return None
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                return pid
        except OSError:
            return None
        pid = _parent(pid)
    return None


def executor_id() -> str:
    """This executor as ``host:jvm-pid`` (``host:files-dir`` where /proc is missing)."""
    if not _executor:
        jvm = _jvm_pid()
        if jvm is not None:
            _executor.append(f"{socket.gethostname()}:{jvm}")
        else:
            from pyspark import SparkFiles

            _executor.append(f"{socket.gethostname()}:{SparkFiles.getRootDirectory()}")
    return _executor[0]


def _task_gpus() -> tuple[list[str], int | None]:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    resources = ctx.resources() if ctx is not None else {}
    addresses = list(getattr(resources.get("gpu"), "addresses", []) or [])
    return [str(a) for a in addresses], gpu_id_from_resources(resources)


def probe_facts(log_level: str | None = None, model_cache: str | None = None) -> HostFacts:
    """This worker's facts (built once per process, task GPU and cache folder), with executor
    identity; `model_cache`: the session's ``spark.sparkonnx.modelCacheDir``, if set."""
    install_worker_logging(log_level)
    import pyspark

    addresses, gpu_id = _task_gpus()
    facts = _cache.get((gpu_id, model_cache))
    if facts is None:
        facts = host_facts(try_providers=True, gpu_id=gpu_id, model_cache=model_cache)
        _cache[(gpu_id, model_cache)] = facts
    extra = {"pyspark": pyspark.__version__, "task_gpus": addresses}
    facts = dataclasses.replace(facts, executor=executor_id(), extra=extra)
    logger.info(
        "doctor probe on executor %s: providers usable %s, python %s",
        facts.executor,
        facts.usable_providers,
        facts.python_executable,
    )
    return facts


def probe_partition(
    log_level: str | None, model_cache: str | None, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The probe's `mapInArrow` function: reads nothing, yields one row of JSON facts."""
    for _ in batches:
        pass
    facts = probe_facts(log_level, model_cache)
    yield pa.RecordBatch.from_arrays(
        [pa.array([facts.executor]), pa.array([json.dumps(facts.to_dict())])],
        names=["executor", "facts"],
    )
