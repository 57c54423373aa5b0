"""Per-process cache of ONNX Runtime sessions, keyed by model sha256 + providers + options.

On a Spark executor, the Python worker process lives across tasks
(`spark.python.worker.reuse`), so a session is built once per worker and reused.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkonnx.engine.providers import ProviderPlan, check_session_providers
from sparkonnx.errors import check_int

logger = logging.getLogger(__name__)

ModelLoader = Callable[[], "bytes | str"]  # returns ONNX bytes or a local file path


def validate_batch_size(batch_size: Any) -> int:
    """Rows per ONNX Runtime call: a positive int (the one check every layer uses)."""
    return check_int(
        "batchSize",
        batch_size,
        minimum=1,
        fix="Give the number of rows per ONNX Runtime call (1 or more; lower it for large "
        "inputs such as images)",
    )


@dataclass(frozen=True)
class SessionOptions:
    """The ORT session settings that make two sessions of one model different."""

    intra_op_threads: int | None = None  # None: ONNX Runtime's default (all cores)
    graph_optimization: str = "all"  # 'disable' | 'basic' | 'extended' | 'all'
    #: False: no pre-packed second copy of the weights (ONNX Runtime's default makes one)
    prepack_weights: bool = True

    def to_ort(self) -> Any:
        import onnxruntime as ort

        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[self.graph_optimization]
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        if not self.prepack_weights:
            so.add_session_config_entry("session.disable_prepacking", "1")
        if self.intra_op_threads is not None:
            so.intra_op_num_threads = max(1, int(self.intra_op_threads))
            # A Spark task owns its cores only between batches' Arrow work as well: spinning
            # threads would steal them from the conversion code and from the other tasks.
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return so


@dataclass
class ModelSession:
    """An InferenceSession with its signature and the device it really runs on."""

    session: Any
    device: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    providers: tuple[str, ...] = field(default=())

    def run(
        self,
        feeds: Mapping[str, np.ndarray],
        batch_size: int | None = None,
        output_names: list[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run in slices of `batch_size` rows and concatenate the outputs by name."""
        return run_batched(self.session, feeds, batch_size, output_names or list(self.output_names))


def run_batched(
    session: Any,
    feeds: Mapping[str, np.ndarray],
    batch_size: int | None,
    output_names: list[str],
) -> dict[str, np.ndarray]:
    """Split every feed along axis 0 into `batch_size` rows, run, concatenate outputs."""
    if not feeds:
        raise ValueError("no inputs to run")
    sizes = {name: len(a) for name, a in feeds.items()}
    n = next(iter(sizes.values()))
    if any(size != n for size in sizes.values()):
        raise ValueError(f"inputs have different numbers of rows: {sizes}")
    if batch_size is not None:
        batch_size = validate_batch_size(batch_size)
    if n == 0:
        raise ValueError("cannot run a model on zero rows")
    step = n if batch_size is None else batch_size
    if step >= n:
        outputs = session.run(output_names, dict(feeds))
        return dict(zip(output_names, outputs, strict=True))
    parts: list[list[np.ndarray]] = [[] for _ in output_names]
    for start in range(0, n, step):
        chunk = {name: a[start : start + step] for name, a in feeds.items()}
        for i, out in enumerate(session.run(output_names, chunk)):
            parts[i].append(out)
    return {
        name: np.concatenate(chunks, axis=0)
        for name, chunks in zip(output_names, parts, strict=True)
    }


class SessionCache:
    """A thread-safe, bounded LRU of ModelSessions. `created` counts sessions built."""

    def __init__(self, max_sessions: int = 4) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be >= 1; got {max_sessions}")
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[tuple[Any, ...], ModelSession] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[Any, ...], threading.Lock] = {}
        self.created = 0
        self.hits = 0
        self.builds_by_model: Counter[str] = Counter()

    def get(
        self,
        sha256: str,
        loader: ModelLoader,
        plan: ProviderPlan,
        options: SessionOptions = SessionOptions(),
    ) -> ModelSession:
        """The cached session for this model/providers/options, building it on first use."""
        key = (sha256, plan, options)
        with self._lock:
            cached = self._sessions.get(key)
            if cached is not None:
                self._sessions.move_to_end(key)
                self.hits += 1
                return cached
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one build per key even when several threads miss together
            with self._lock:
                cached = self._sessions.get(key)
                if cached is not None:
                    self.hits += 1
                    return cached
            built = _build_session(loader(), plan, options)
            with self._lock:
                self._sessions[key] = built
                self.created += 1
                self.builds_by_model[sha256] += 1
                while len(self._sessions) > self.max_sessions:
                    evicted, _ = self._sessions.popitem(last=False)
                    logger.info("session cache full: evicted model %s", evicted[0][:12])
                self._key_locks.pop(key, None)
            logger.info(
                "built ONNX Runtime session for model %s on %s (pid %d)",
                sha256[:12],
                built.device,
                os.getpid(),
            )
            return built

    def clear(self) -> None:
        with self._lock:
            self._sessions.clear()
            self.created = 0
            self.hits = 0
            self.builds_by_model.clear()

    def __len__(self) -> int:
        return len(self._sessions)


def _build_session(model: bytes | str, plan: ProviderPlan, options: SessionOptions) -> ModelSession:
    import onnxruntime as ort

    names, provider_options = plan.as_ort_arguments()
    session = ort.InferenceSession(
        model, sess_options=options.to_ort(), providers=names, provider_options=provider_options
    )
    device = check_session_providers(plan, session)
    return ModelSession(
        session=session,
        device=device,
        input_names=tuple(i.name for i in session.get_inputs()),
        output_names=tuple(o.name for o in session.get_outputs()),
        providers=tuple(session.get_providers()),
    )


def _default_cache_size() -> int:
    try:
        return max(1, int(os.environ.get("SPARKONNX_MAX_SESSIONS", "4")))
    except ValueError:
        return 4


#: The process-wide cache used by the Spark transformers on executors (and on the driver).
SESSION_CACHE = SessionCache(_default_cache_size())
