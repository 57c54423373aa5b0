"""Executors' own sparkonnx log lines, on the executor's stderr log.

Spark configures no Python `logging` in its Python workers, so library lines emitted there
(CPU fallbacks, sessions built) appear nowhere. `install_worker_logging` adds one stderr
handler to the ``sparkonnx`` logger, once per worker process, and only inside a Spark task
(the driver's logging is the application's business). The level comes from the Spark conf
`EXECUTOR_LOG_LEVEL_CONF` (read on the driver and carried by the task), else from the
executor's `LOG_LEVEL_ENV` environment variable, else WARNING.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

#: Spark conf read on the driver when a stage is planned: the executors' sparkonnx log level.
EXECUTOR_LOG_LEVEL_CONF = "spark.sparkonnx.executorLogLevel"
#: Environment variable read on executors when the conf is not set.
LOG_LEVEL_ENV = "SPARKONNX_LOG_LEVEL"
_FORMAT = "%(asctime)s %(levelname)s sparkonnx executor pid=%(process)d %(name)s: %(message)s"
_MARK = "_sparkonnx_worker_handler"
_lock = threading.Lock()


def parse_level(value: str | None, where: str) -> int | None:
    """A logging level from a name ('INFO') or number ('20'); ValueError naming `where`."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().upper()
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text)
    if not isinstance(level, int):
        raise ValueError(
            f"{where}={value!r} is not a logging level; use DEBUG, INFO, WARNING or ERROR"
        )
    return level


def _in_spark_task() -> bool:
    try:
        from pyspark import TaskContext
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return False
    return TaskContext.get() is not None


def install_worker_logging(level: str | None = None) -> logging.Handler | None:
    """Install (once per process) the stderr handler of the ``sparkonnx`` logger in a Spark
    task and set its level; returns the handler, or None outside a task. Idempotent."""
    if not _in_spark_task():
        return None
    problem = None
    try:
        chosen = parse_level(level, EXECUTOR_LOG_LEVEL_CONF)
        if chosen is None:
            chosen = parse_level(os.environ.get(LOG_LEVEL_ENV), LOG_LEVEL_ENV)
    except ValueError as exc:  # a bad level never fails a task: it is logged instead
        problem, chosen = f"{exc}; logging at WARNING", None
    chosen = logging.WARNING if chosen is None else chosen
    logger = logging.getLogger("sparkonnx")
    with _lock:
        handler = next((h for h in logger.handlers if getattr(h, _MARK, False)), None)
        if handler is None:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter(_FORMAT))
            setattr(handler, _MARK, True)
            logger.addHandler(handler)
            logger.propagate = False  # the worker's root logger, if someone set one, stays quiet
        handler.setLevel(chosen)
        logger.setLevel(chosen)
    if problem is not None:
        logger.warning(problem)
    return handler
