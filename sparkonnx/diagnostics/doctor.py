"""`doctor()`: probe the executors of a session (given, or started from a master / a Spark
Connect address) and compare them with the driver."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from typing import Any

from sparkonnx.diagnostics.report import DoctorReport

logger = logging.getLogger(__name__)


def _start_session(master: str | None, remote: str | None) -> Any:
    """A session for `remote` (Spark Connect) or `master` (classic, default local[*])."""
    if remote is not None:
        from pyspark.sql.connect.session import SparkSession as ConnectSession

        return ConnectSession.builder.remote(remote).getOrCreate()
    from pyspark.sql import SparkSession

    master = master or "local[*]"
    if master.startswith("local"):  # workers on this machine: use this Python
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName("sparkonnx-doctor")
    return builder.config("spark.ui.enabled", "false").getOrCreate()


def _describe_session(spark: Any, remote: str | None) -> str:
    from sparkonnx.spark_api.session import is_connect

    if is_connect(spark):
        return f"Spark Connect {remote}" if remote else "Spark Connect"
    return f"classic {spark.sparkContext.master}"


def doctor(
    spark: Any = None,
    *,
    master: str | None = None,
    remote: str | None = None,
    device: str | None = None,
    tasks: int | None = None,
) -> DoctorReport:
    """Probe every executor of `spark` (or of a session started for `remote` / `master`,
    default the active session, else local[*]) and return the report; `device` ('cpu' /
    'cuda') is judged in `DoctorReport.device_ok`. `tasks`: the probe job's task count
    (default: the session's default parallelism)."""
    import pyspark

    from sparkonnx.engine.host_facts import host_facts
    from sparkonnx.engine.providers import validate_device
    from sparkonnx.spark_api.runtime.executor_facts import probe_executors
    from sparkonnx.spark_api.session import active_session

    if device is not None and validate_device(device) == "auto":
        raise ValueError("device for the doctor must be 'cpu' or 'cuda' (the one to check)")
    if tasks is not None and tasks < 1:
        raise ValueError(f"tasks must be a positive integer; got {tasks}")
    started = spark is None and (master is not None or remote is not None)
    if spark is None and not started:
        try:
            spark = active_session()
        except RuntimeError:
            started = True
    if started:
        spark = _start_session(master, remote)
    try:
        executors = probe_executors(spark, tasks, refresh=True)
        driver = host_facts(try_providers=False)
        driver = dataclasses.replace(driver, extra={"pyspark": pyspark.__version__})
        return DoctorReport(
            session=_describe_session(spark, remote),
            spark_version=str(spark.version),
            driver=driver,
            executors=executors,
            device=None if device is None else device.lower(),
        )
    finally:
        if started:
            spark.stop()
