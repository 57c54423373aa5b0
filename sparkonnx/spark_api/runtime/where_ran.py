"""What ran where: each task reports the device its ONNX Runtime session really uses, and the
driver logs every new (stage, model, executor, device) once.

Classic Spark: a set-valued accumulator, one per SparkContext, carried by the task's plan.
Its driver-side merge (run by pyspark when a task's updates arrive) logs what is new, so the
lines appear while the job runs, with no extra job. Spark Connect has no accumulators: there
each executor logs the sessions it builds to its own stderr (`worker_logging`), and
`sparkonnx doctor` shows what every executor can use.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

from pyspark.accumulators import AccumulatorParam

logger = logging.getLogger(__name__)


class DeviceUse(NamedTuple):
    """One stage's model on one executor: the device and providers its session runs on."""

    stage: str
    model: str  # sha256 prefix
    executor: str
    device: str
    providers: tuple[str, ...]


class DeviceUseParam(AccumulatorParam[set[DeviceUse]]):
    """Merges sets of `DeviceUse`; on the driver (no task context) it logs the new ones."""

    def zero(self, value: Any) -> set[DeviceUse]:
        return set()

    def addInPlace(self, value1: set[DeviceUse], value2: set[DeviceUse]) -> set[DeviceUse]:
        new = value2 - value1
        value1 |= value2
        if new and not _in_task():
            for use in sorted(new):
                logger.info(
                    "%s ran model %s on executor %s: %s (%s)",
                    use.stage,
                    use.model,
                    use.executor,
                    use.device,
                    ", ".join(use.providers),
                )
        return value1


def _in_task() -> bool:
    from pyspark import TaskContext

    return TaskContext.get() is not None


@dataclass(frozen=True)
class DeviceReport:
    """What a task's plan carries to report its device: the stage's name and the accumulator."""

    stage: str
    accumulator: Any  # pyspark Accumulator of set[DeviceUse]

    def record(self, sha256: str, device: str, providers: tuple[str, ...]) -> None:
        """On an executor: add this worker's use of the model (cheap: one small set)."""
        from sparkonnx.spark_api.runtime.probe import executor_id

        use = DeviceUse(self.stage, sha256[:12], executor_id(), device, tuple(providers))
        self.accumulator.add({use})


_accumulators: dict[str, Any] = {}
_lock = threading.Lock()


def device_report(spark: Any, stage: str) -> DeviceReport | None:
    """The `DeviceReport` for a stage of this classic session; None on Spark Connect."""
    from sparkonnx.spark_api.session import is_connect, session_key

    if is_connect(spark):
        return None
    key = session_key(spark)
    with _lock:
        accumulator = _accumulators.get(key)
        if accumulator is None:
            accumulator = spark.sparkContext.accumulator(set(), DeviceUseParam())
            _accumulators[key] = accumulator
    return DeviceReport(stage, accumulator)


def devices_used(spark: Any) -> list[DeviceUse]:
    """Every (stage, model, executor, device) seen so far in this classic session, sorted;
    [] on Spark Connect (see the module docstring)."""
    from sparkonnx.spark_api.session import is_connect, session_key

    if is_connect(spark):
        return []
    accumulator = _accumulators.get(session_key(spark))
    return [] if accumulator is None else sorted(accumulator.value)
