"""Executors' disk cache of on-disk models (graph + external data files), keyed by sha256.

An entry is the folder ``<cache>/<sha256>/`` holding the model's files under their own names,
so ONNX Runtime loads the graph from its path with the data beside it. The cache outlives the
Spark application: a worker that has a model does not copy it again. Several processes (two
executors on one host, Python workers of one executor) may fill it at once: each writes into a
temporary folder of its own, fsyncs, checks the sha256 it computed while copying and renames
the folder into place (atomic; the first rename wins, the others discard their copy). An entry
whose files no longer hash to its name is moved aside and copied again.

Where: `cache_dir`: the given folder (Spark conf ``spark.sparkonnx.modelCacheDir``, set on the
driver), else ``$SPARKONNX_MODEL_CACHE`` (e.g. ``spark.executorEnv.SPARKONNX_MODEL_CACHE``),
else ``$SPARKONNX_CACHE/models``, else ``~/.cache/sparkonnx/models``.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from sparkonnx.engine.cache_dir import MODEL_CACHE_ENV, model_cache_dir
from sparkonnx.engine.model_files import MembersHasher, hash_members, read_chunks
from sparkonnx.errors import SparkOnnxError

logger = logging.getLogger(__name__)

CACHE_ENV = MODEL_CACHE_ENV
CACHE_CONF = "spark.sparkonnx.modelCacheDir"

_verified: set[Path] = set()  # entries hashed by this process
_lock = threading.Lock()


class ModelCacheError(SparkOnnxError, OSError):
    """A model's files could not be put in the disk cache, or their copy has the wrong hash."""


def cache_dir(configured: str | None = None) -> Path:
    """The disk cache folder (`cache_dir.model_cache_dir`): `configured`, else
    $SPARKONNX_MODEL_CACHE, else $SPARKONNX_CACHE/models, else ~/.cache/sparkonnx/models."""
    return model_cache_dir(configured)


def cached_model(
    sha256: str,
    graph_name: str,
    data: Sequence[str],
    source: Callable[[str], str],
    cache: Path,
) -> Path:
    """The path of the graph file of model `sha256` in `cache`, copying its members there first
    when they are missing or corrupt; `source(name)` gives the local path of a member ('' is the
    graph file, other names are data locations)."""
    entry = cache / sha256
    graph = entry / graph_name
    with _lock:
        if entry in _verified and graph.is_file():
            return graph
    if entry.is_dir():
        if _entry_sha256(entry, graph_name, data) == sha256:
            _remember(entry)
            return graph
        _discard(entry, "its files do not match its sha256")
    _fill(entry, graph_name, data, source)
    _remember(entry)
    return graph


def _remember(entry: Path) -> None:
    with _lock:
        _verified.add(entry)


def _entry_sha256(entry: Path, graph_name: str, data: Sequence[str]) -> str | None:
    """The sha256 of a cached entry's members, or None when one cannot be read."""
    try:
        return hash_members([("", entry / graph_name), *((n, entry / n) for n in data)])[0]
    except OSError:
        return None


def _discard(entry: Path, why: str) -> None:
    """Move a bad entry aside (atomic: no process ever loads it again), then delete it."""
    logger.warning("model cache entry %s is replaced: %s", entry, why)
    aside = entry.with_name(f".bad-{entry.name}-{uuid.uuid4().hex}")
    try:
        os.rename(entry, aside)
    except FileNotFoundError:  # another process moved it first
        return
    shutil.rmtree(aside, ignore_errors=True)


def _fill(entry: Path, graph_name: str, data: Sequence[str], source: Callable[[str], str]) -> None:
    """Copy every member into a private folder, check the sha256, rename it to `entry`."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    staging = entry.with_name(f".tmp-{entry.name}-{os.getpid()}-{uuid.uuid4().hex}")
    staging.mkdir()
    try:
        hasher = MembersHasher()
        for name in ("", *data):
            _copy(Path(source(name)), staging / (name or graph_name), name, hasher)
        _fsync_dir(staging)
        if hasher.hexdigest() != entry.name:
            raise ModelCacheError(
                f"the shipped files of model {entry.name[:12]}... hash to "
                f"{hasher.hexdigest()[:12]}...: they changed on the driver after the model was "
                "loaded, or were damaged on the way; load the model again and rerun"
            )
        try:
            os.rename(staging, entry)
        except OSError as exc:  # another process renamed its copy first: keep that one
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            logger.info("model %s: another process cached it first", entry.name[:12])
        else:
            _fsync_dir(entry.parent)
            logger.info("model %s cached in %s", entry.name[:12], entry)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy(src: Path, dst: Path, name: str, hasher: MembersHasher) -> None:
    """Copy `src` to `dst` in chunks, feeding the member to `hasher`, and fsync it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as reader, open(dst, "wb") as writer:
        hasher.start(name, os.fstat(reader.fileno()).st_size)
        for chunk in read_chunks(reader):
            hasher.update(chunk)
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
