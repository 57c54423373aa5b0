"""One small cache of what stages build on the driver from their model and Params.

A stage keeps here what is costly to make again on every transform: a zoo stage's inner
`ImageTransformer`, a model pruned to the outputs a stage keeps, a gated int8 / fp16 build.
It is a bounded LRU guarded by a lock; a key is built once even when several threads transform
with one stage at the same time (the others wait for it). A failed build caches nothing.

Keys say what an entry depends on. `stage_key` adds the stage's *lineage*: a token that
`copy()` keeps (pyspark's copy is shallow) and a new or loaded stage does not. Entries that
depend on more than the Params (an int8 build calibrated on the first DataFrame a stage saw)
take it, so a copy may share them; the Params they depend on go in the key too, so a copy with
other Params gets an entry of its own. Entries that follow from content alone (a pruned model:
source sha256 and outputs) are shared by every stage.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sparkonnx.engine.model import ModelOnDiskError, OnnxModel

if TYPE_CHECKING:
    from sparkonnx.spark_api.params import HasPrecision
    from sparkonnx.spark_api.precision import Sampling

logger = logging.getLogger(__name__)

V = TypeVar("V")

_TOKEN_ATTR = "_sparkonnx_cache_lineage"
_tokens = itertools.count(1)


class StageCache:
    """A thread-safe LRU of at most `maxsize` entries, each built once per key."""

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1; got {maxsize}")
        self.maxsize = maxsize
        self.builds = 0
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[Hashable, threading.Lock] = {}

    def get_or_build(self, key: Hashable, build: Callable[[], V]) -> V:
        """The entry for `key`, calling `build()` (once, whatever the threads) when missing."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            key_lock = self._building.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # built by another thread while this one waited
                if key in self._entries:
                    self._entries.move_to_end(key)
                    return self._entries[key]
            try:
                value = build()
            except BaseException:
                with self._lock:
                    self._building.pop(key, None)
                raise
            with self._lock:  # stored before the key's lock goes: no second build can start
                self._entries[key] = value
                self.builds += 1
                self._building.pop(key, None)
                self._evict(self.maxsize)
            return value

    def _evict(self, keep: int) -> None:
        while len(self._entries) > keep:
            evicted, _ = self._entries.popitem(last=False)
            logger.debug("stage cache full (%d entries): evicted %r", keep, evicted)

    def resize(self, maxsize: int) -> None:
        """Keep at most `maxsize` entries from now on (the least recently used go first)."""
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1; got {maxsize}")
        with self._lock:
            self.maxsize = maxsize
            self._evict(maxsize)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def stage_key(stage: object, kind: str, *parts: Hashable) -> tuple[Hashable, ...]:
    """A key for an entry of `stage`'s lineage (shared by its copies): (kind, token, *parts)."""
    token = stage.__dict__.setdefault(_TOKEN_ATTR, next(_tokens))
    return (kind, token, *parts)


#: The cache every stage uses. 16 entries: each may hold a model (a zoo network is ~100 MB).
STAGE_CACHE = StageCache(16)


def pruned_model(model: OnnxModel, outputs: Sequence[str]) -> OnnxModel:
    """`model` keeping only `outputs` (and what they need), pruned once per model and outputs."""
    from sparkonnx.engine.pruning import keep_outputs

    key = ("pruned", model.sha256, tuple(outputs))
    return STAGE_CACHE.get_or_build(key, partial(keep_outputs, model, list(outputs)))


def precision_model(
    stage: HasPrecision, model: OnnxModel, dataset: Any, sampling: Sampling, device: str
) -> OnnxModel:
    """`precision.resolve_precision`, once per stage lineage, model and precision Params."""
    if stage.getPrecision() == "fp32":
        return model
    if model.on_disk:
        raise ModelOnDiskError(
            f"precision={stage.getPrecision()!r} needs the model in memory, but {model.source} "
            f"is kept on disk ({model.size_bytes} bytes with its external data); use "
            "precision='fp32', or quantize the model offline and load the smaller file"
        )
    from sparkonnx.spark_api.precision import precision_settings, resolve_precision

    key = stage_key(stage, "precision", model.sha256, *precision_settings(stage))
    build = partial(resolve_precision, stage, model, dataset, sampling, device=device)
    return STAGE_CACHE.get_or_build(key, build)
