"""A model kept on disk: its graph file plus the external data files it names, hashed by
streaming (never read whole into memory, never serialized as one protobuf message).

A model over protobuf's 2 GiB limit can only exist this way. Its identity is the sha256 of
:data:`FORMAT` followed by, for each member (the graph file first, under the empty name, then
the data files sorted by their location): ``name NUL size NUL content``. The executors' disk
cache (`sparkonnx.engine.model_cache`) recomputes it while copying, so a corrupt copy is never
used.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sparkonnx.errors import SparkOnnxError

FORMAT = b"sparkonnx-model-files-v1\n"
CHUNK_BYTES = 4 * 1024 * 1024


class ModelFilesError(SparkOnnxError, ValueError):
    """The external data files of an on-disk model are missing, misplaced or too short."""


class MembersHasher:
    """Streams members (name, size, content) into the sha256 that identifies an on-disk model."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(FORMAT)

    def start(self, name: str, size: int) -> None:
        """Begin the member `name` ('' for the graph file) of `size` bytes."""
        self._hash.update(name.encode("utf-8") + b"\0" + str(size).encode() + b"\0")

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def read_chunks(handle: BinaryIO) -> Iterator[bytes]:
    """The content of an open file in chunks of `CHUNK_BYTES`."""
    while chunk := handle.read(CHUNK_BYTES):
        yield chunk


def open_regular(path: Path) -> BinaryIO:
    """Open `path` for reading, refusing a symbolic link (no following, even if swapped in)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb")


@dataclass(frozen=True)
class ModelFiles:
    """An ONNX graph file and the external data files it names, with their sha256 and size."""

    graph: Path  # the .onnx file (absolute)
    data: tuple[str, ...]  # external data locations, relative to graph's folder, sorted
    sha256: str
    size: int  # bytes, all members together

    @property
    def folder(self) -> Path:
        return self.graph.parent

    def members(self) -> list[tuple[str, Path]]:
        """(name, path) of every member in hashing order: the graph file as '', then data."""
        return [("", self.graph), *((name, self.folder / name) for name in self.data)]

    @classmethod
    def of(cls, graph: Path, data: Iterable[str]) -> ModelFiles:
        """Hash `graph` and its data files (locations checked by `check_data_files`)."""
        files = cls(Path(os.path.abspath(graph)), tuple(sorted(set(data))), "", 0)
        sha256, size = hash_members(files.members())
        return cls(files.graph, files.data, sha256, size)


def check_data_files(graph: Path, extents: Iterable[tuple[str, str, int, int]]) -> dict[str, int]:
    """{location: size} of the data files named by (tensor, location, offset, length) tuples;
    ModelFilesError naming the tensor and file when one is misplaced, not a file or too short."""
    sizes: dict[str, int] = {}
    for tensor, location, offset, length in extents:
        if location not in sizes:
            sizes[location] = _data_file_size(graph, tensor, location)
        if offset + length > sizes[location]:
            raise ModelFilesError(
                f"{graph}: its external data cannot be loaded: tensor {tensor!r} needs bytes "
                f"{offset}..{offset + length} of {location!r}, which has {sizes[location]} "
                "bytes: the data file is truncated or belongs to another model; copy it again "
                "beside the model"
            )
    return sizes


def _data_file_size(graph: Path, tensor: str, location: str) -> int:
    """The size of a data file, after checking it is a regular file inside graph's folder."""
    relative = PurePosixPath(location)
    folder = graph.parent
    where = folder / location
    if relative.is_absolute():
        problem = "should be a relative path, but it is an absolute path"
    elif ".." in relative.parts or location in ("", "."):
        problem = f"points outside the directory {folder}"
    elif where == graph:
        problem = "is the model file itself"
    elif os.path.islink(where):
        problem = "is a symbolic link"
    elif not os.path.realpath(where).startswith(os.path.realpath(folder) + os.sep):
        problem = f"resolves outside the directory {folder} (through a linked folder)"
    else:
        try:
            info = os.lstat(where)
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror})"
        else:
            if stat.S_ISREG(info.st_mode):
                return info.st_size
            problem = "is not a regular file"
    raise ModelFilesError(
        f"{graph}: its external data cannot be loaded: tensor {tensor!r}: {location!r} "
        f"{problem}. External data must be regular files inside the model's folder {folder} "
        "(relative locations, no '..', no links); nothing outside it is read"
    )


def hash_members(members: Iterable[tuple[str, Path]]) -> tuple[str, int]:
    """(sha256, total size) of members (name, path), streamed in chunks."""
    hasher = MembersHasher()
    total = 0
    for name, path in members:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            hasher.start(name, size)
            for chunk in read_chunks(handle):
                hasher.update(chunk)
        total += size
    return hasher.hexdigest(), total
