"""Listing local image files in a Spark task, so that no file is lost or doubled.

Hadoop's local file system rejects names with ':' (the whole ``binaryFile`` read fails) and
follows directory links, loops included (4 files became 164 rows). For local paths
(``/data``, ``file:/data``) :func:`read_images` lists files here instead, in a Python task
(so on Spark Connect the listing runs where the files are, not on the client):

- every real file appears once: directory links are followed, but a folder whose real path
  was already listed is not listed again, and a file reached by two paths keeps the first;
- a link to a folder that contains it (a loop), a dangling link and anything that is not a
  regular file (a FIFO, a device) are rows with the reason, never silence and never a hang;
- names are used as they are (':' included); files are read by path in the decoding task.

Hidden names (starting with '.' or '_'), like Spark's listing, are skipped inside folders.
``pathGlobFilter`` applies to file names; folder problems (a loop, a folder that cannot be
listed) are rows whatever it says.
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import glob
import hashlib
import math
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa

__all__ = ["LISTING_SCHEMA", "ListedFile", "is_local", "list_files", "list_roots", "plan_files"]

#: mapInArrow output of `list_roots`: one row per file (or unusable entry) found.
LISTING_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("error", pa.string()),
        pa.field("real", pa.string()),
        pa.field("root", pa.string()),
    ]
)
#: What Spark's file sources use to split files into partitions (their defaults).
MAX_PARTITION_BYTES = 128 * 1024 * 1024
OPEN_COST_BYTES = 4 * 1024 * 1024
_MISSING = "path does not exist"
_LISTING_DDL = "path string, size long, error string, real string, root string"


@dataclass(frozen=True)
class ListedFile:
    """One row of the listing: ``path`` (``file:/abs``), bytes, the reason it cannot be read
    (None: readable), its real path (for de-duplication) and the root it was found under."""

    path: str
    size: int | None
    error: str | None
    real: str | None
    root: str


def is_local(path: str) -> bool:
    """True for a path on the local file system: no scheme, or ``file:``."""
    scheme = urlsplit(path).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_root(path: str) -> str:
    """An absolute local path from ``/a``, ``a``, ``file:/a`` or ``file:///a``."""
    if path.startswith("file:"):
        path = path[len("file:") :]
        if path.startswith("//"):
            path = "/" + path[2:].lstrip("/")
    return os.path.abspath(path)


def _expand_braces(pattern: str) -> list[str]:
    """Hadoop glob braces ``{a,b}`` expanded (nested too); other wildcards are kept."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    for end in range(start, len(pattern)):
        depth += {"{": 1, "}": -1}.get(pattern[end], 0)
        if depth == 0:
            break
    else:
        return [pattern]
    head, body, tail = pattern[:start], pattern[start + 1 : end], pattern[end + 1 :]
    options, depth, last = [], 0, 0
    for i, ch in enumerate(body):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            options.append(body[last:i])
            last = i + 1
    options.append(body[last:])
    return [x for option in options for x in _expand_braces(head + option + tail)]


def _name_matches(name: str, glob_filter: str | None) -> bool:
    return glob_filter is None or any(
        fnmatch.fnmatchcase(name, p) for p in _expand_braces(glob_filter)
    )


def _hidden(name: str) -> bool:
    return name.startswith((".", "_")) or name.endswith("._COPYING_")


class _Walk:
    """One root's listing: real folders first, then the folder links found in them."""

    def __init__(self, root: str, recursive: bool, glob_filter: str | None) -> None:
        self.root, self.recursive, self.glob_filter = root, recursive, glob_filter
        self.rows: list[ListedFile] = []
        self.seen_dirs: set[str] = set()
        self.links: list[str] = []

    def add(self, path: str, size: int | None, error: str | None, real: str | None) -> None:
        self.rows.append(ListedFile(f"file:{path}", size, error, real, self.root))

    def entry(self, path: str, top: bool = False) -> None:
        """A file, folder or link found at ``path`` (``top``: given by the user)."""
        name = os.path.basename(path)
        if not top and _hidden(name):
            return
        try:
            info = os.stat(path)
        except OSError as exc:
            if not top and not _name_matches(name, self.glob_filter):
                return
            if os.path.islink(path):
                target = os.readlink(path)
                loop = exc.errno == errno.ELOOP
                why = "a symbolic link loop" if loop else "a dangling symbolic link"
                self.add(path, None, f"{why} (-> {target}): {exc.strerror}", None)
            else:
                self.add(path, None, f"cannot read it: {exc.strerror}", None)
            return
        if stat.S_ISDIR(info.st_mode):
            if top or self.recursive:
                if os.path.islink(path) and not top:
                    self.links.append(path)
                else:
                    self.folder(path)
            return
        if not top and not _name_matches(name, self.glob_filter):
            return
        real = os.path.realpath(path)
        if not stat.S_ISREG(info.st_mode):
            self.add(path, None, "not a regular file (a FIFO, socket or device); not read", real)
            return
        self.add(path, info.st_size, None, real)

    def folder(self, path: str) -> None:
        real = os.path.realpath(path)
        if real in self.seen_dirs:
            return
        self.seen_dirs.add(real)
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            self.add(path, None, f"cannot list this folder: {exc.strerror}", real)
            return
        for name in names:
            self.entry(os.path.join(path, name))

    def follow_links(self) -> None:
        """Folder links, after every real folder: loops are rows, repeats are skipped."""
        while self.links:
            link = self.links.pop(0)
            target = os.path.realpath(link)
            parent = os.path.realpath(os.path.dirname(link))
            if parent == target or parent.startswith(target.rstrip(os.sep) + os.sep):
                self.add(
                    link,
                    None,
                    f"a symbolic link loop: it points to {target}, a folder it is inside; "
                    "not followed (each file is listed once)",
                    None,
                )
            elif target not in self.seen_dirs:
                self.folder(link)


def list_files(root: str, recursive: bool, glob_filter: str | None) -> list[ListedFile]:
    """Everything `read_images` reads under one local ``root`` (a file, folder or glob)."""
    walk = _Walk(root, recursive, glob_filter)
    if glob.has_magic(root) or "{" in root:
        matches = sorted({m for p in _expand_braces(root) for m in glob.glob(p)})
    else:
        matches = [root] if os.path.lexists(root) else []
    if not matches:
        return [ListedFile(f"file:{root}", None, _MISSING, None, root)]
    for match in matches:
        walk.entry(match, top=True)
    walk.follow_links()
    return walk.rows


def list_roots(
    recursive: bool, glob_filter: str | None, batches: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """The ``mapInArrow`` listing task: a ``root`` column in, `LISTING_SCHEMA` rows out."""
    for batch in batches:
        for root in batch.column("root").to_pylist():
            rows = list_files(root, recursive, glob_filter)
            yield pa.RecordBatch.from_pylist([vars(r) for r in rows], schema=LISTING_SCHEMA)


def _sampled(path: str, ratio: float, seed: int) -> bool:
    """Keep ``path`` with probability ``ratio``; the same path and seed always agree."""
    digest = hashlib.sha256(f"{seed}:{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < ratio


def _partitions(files: Sequence[ListedFile], parallelism: int) -> int:
    """How many decoding tasks, the way Spark splits files (bytes + an open cost per file)."""
    total = sum((f.size or 0) + OPEN_COST_BYTES for f in files)
    split = min(MAX_PARTITION_BYTES, max(OPEN_COST_BYTES, total // max(parallelism, 1)))
    return max(1, min(len(files), max(math.ceil(total / split), 1)))


def plan_files(
    spark: Any,
    roots: Sequence[str],
    *,
    recursive: bool,
    glob_filter: str | None,
    sample_ratio: float,
    seed: int,
    num_partitions: int | None,
    parallelism: int,
) -> Any:
    """A DataFrame of (path, error) to decode: listed in a Spark task, de-duplicated by real
    path, sampled and spread over partitions. FileNotFoundError for a root that is missing."""
    absolute = [local_root(r) for r in roots]
    roots_df = spark.createDataFrame([(r,) for r in absolute], "root string")
    task = functools.partial(list_roots, recursive, glob_filter)
    listed = roots_df.mapInArrow(task, _LISTING_DDL).collect()
    missing = [r.root for r in listed if r.error == _MISSING]
    if missing:
        raise FileNotFoundError(
            f"read_images: path does not exist: {', '.join(missing)} (looked for on the "
            "executors' local file system)"
        )
    seen: set[str] = set()
    files: list[ListedFile] = []
    for row in listed:
        if row.real is not None and row.error is None:
            if row.real in seen:
                continue  # the same file under another path: listed once
            seen.add(row.real)
        if sample_ratio >= 1.0 or _sampled(row.path, sample_ratio, seed):
            files.append(ListedFile(row.path, row.size, row.error, row.real, row.root))
    rows = [(f.path, f.error) for f in files]
    df = spark.createDataFrame(rows, "path string, error string")
    return df.repartition(num_partitions or _partitions(files, parallelism))
