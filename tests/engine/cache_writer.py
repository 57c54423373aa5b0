"""Run in a child process by test_model_cache: fill the model cache after a barrier."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any


def fill_after_barrier(
    cache: str, sha256: str, data: list[str], sources: dict[str, str], barrier: Any, results: Any
) -> None:
    """`cached_model` with every process's first copy held until all reached it; puts (graph
    path, the cache's log messages) on `results`."""
    from sparkonnx.engine.model_cache import cached_model

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    log = logging.getLogger("sparkonnx.engine.model_cache")
    log.addHandler(Collect())
    log.setLevel(logging.INFO)

    def source(name: str) -> str:
        if name == "":  # both processes have their staging folder: copy and rename together
            barrier.wait(timeout=60)
        return sources[name]

    graph = cached_model(sha256, "m.onnx", data, source, Path(cache))
    results.put((str(graph), messages))
