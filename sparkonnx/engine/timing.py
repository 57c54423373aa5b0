"""Time ONNX models against each other on the same rows, on the machine that will run them.

Used to decide whether int8 is worth it: the fp32 model and each int8 candidate get a CPU
session with the same thread count, a warm-up run, then rounds interleaved across the models
(so a load spike hits all of them alike); each model's figure is its best round. Spark-free:
executors call `time_models` inside one task.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["time_models"]


def _session(model: bytes | str, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def _one_pass(session: Any, feeds: Sequence[Mapping[str, np.ndarray]]) -> float:
    start = time.perf_counter()
    for feed in feeds:
        session.run(None, dict(feed))
    return time.perf_counter() - start


def time_models(
    models: Sequence[bytes | str],
    feeds: Sequence[Mapping[str, np.ndarray]],
    *,
    threads: int = 1,
    seconds: float = 1.0,
    min_rounds: int = 3,
) -> list[float]:
    """Seconds per pass over `feeds` (best round) for each model, in order.

    Rounds go on until every model had `min_rounds` or `seconds` of wall time have passed.
    """
    if not models or not feeds:
        raise ValueError("time_models needs at least one model and one feed")
    sessions = [_session(m, max(1, threads)) for m in models]
    for s in sessions:
        _one_pass(s, feeds[:1])  # warm-up: allocations, kernel selection
    best = [float("inf")] * len(sessions)
    deadline = time.perf_counter() + seconds
    rounds = 0
    while rounds < min_rounds or time.perf_counter() < deadline:
        for i, s in enumerate(sessions):
            best[i] = min(best[i], _one_pass(s, feeds))
        rounds += 1
        if rounds >= 50:
            break
    return best
