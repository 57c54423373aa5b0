"""Parquet tables as files and row groups, through `pyarrow.fs`: the file system of a path, the
table's schema and Hive partition columns, the row groups grouped into tasks, and the refusal of
table formats whose raw files would give wrong rows (Delta, Iceberg, Hudi).

Pure pyarrow: runs on the driver (planning) and on executors (opening a task's files).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sparkonnx.errors import SparkOnnxError

logger = logging.getLogger(__name__)

#: URI schemes Hadoop uses that pyarrow knows under another name.
_SCHEME_ALIASES = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfss": "abfs"}


class ParquetTableError(SparkOnnxError, ValueError):
    """A path that cannot be scored as plain Parquet files (a table format, a corrupt file)."""


@dataclass(frozen=True)
class FileSlice:
    """Some row groups of one Parquet file and the Hive partition values of its folder."""

    path: str
    row_groups: tuple[int, ...]
    partition_values: tuple[tuple[str, object], ...] = ()


def filesystem_for(path: str) -> tuple[pafs.FileSystem, str]:
    """(pyarrow file system, path inside it) for a local path or a URI (s3a://, hdfs://, gs://...)."""
    if "://" not in path:
        return pafs.LocalFileSystem(), path
    scheme, rest = path.split("://", 1)
    scheme = _SCHEME_ALIASES.get(scheme.lower(), scheme.lower())
    if scheme == "file":
        return pafs.LocalFileSystem(), rest
    try:
        return pafs.FileSystem.from_uri(f"{scheme}://{rest}")
    except (pa.ArrowException, ValueError) as error:
        raise ParquetTableError(
            f"cannot open {path!r} through pyarrow.fs ({error}); supported: local paths, file://, "
            "hdfs://, s3:// (s3a://), gs://, abfs:// with their usual credentials"
        ) from error


def _table_format(fs: pafs.FileSystem, root: str) -> str | None:
    """'Delta' / 'Hudi' / 'Iceberg' when `root` holds that table format's metadata folder."""
    names = {info.base_name: info for info in fs.get_file_info(pafs.FileSelector(root))}
    if "_delta_log" in names:
        return "Delta (found _delta_log/)"
    if ".hoodie" in names:
        return "Hudi (found .hoodie/)"
    metadata = names.get("metadata")
    if metadata is not None and metadata.type == pafs.FileType.Directory:
        inside = fs.get_file_info(pafs.FileSelector(metadata.path))
        if any(
            i.base_name.endswith(".metadata.json") or i.base_name == "version-hint.text"
            for i in inside
        ):
            return "Iceberg (found metadata/*.metadata.json)"
    return None


def refuse_table_formats(path: str) -> None:
    """Raise when `path` is a Delta / Iceberg / Hudi table (its raw files include dead rows)."""
    fs, root = filesystem_for(path)
    if fs.get_file_info(root).type != pafs.FileType.Directory:
        return
    found = _table_format(fs, root)
    if found is not None:
        raise ParquetTableError(
            f"{path!r} is a {found} table: its Parquet files include rows that were deleted or "
            "rewritten, so scoring them raw would give wrong rows. Read it with its own format "
            "and score with ONNXTransformer, e.g. ONNXTransformer(...).transform("
            f'spark.read.format("delta").load({path!r}))'
        )


def open_dataset(path: str) -> ds.FileSystemDataset:
    """The Parquet dataset at `path` (a file or a folder, Hive partition folders discovered)."""
    fs, root = filesystem_for(path)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no Parquet file or folder at {path!r}")
    try:
        return ds.dataset(root, filesystem=fs, format="parquet", partitioning="hive")
    except (pa.ArrowException, OSError) as error:
        raise ParquetTableError(f"cannot read the Parquet table at {path!r}: {error}") from error


def partition_columns(dataset: ds.FileSystemDataset) -> tuple[str, ...]:
    """Names of the Hive partition columns (folder names like ``year=2024``), in schema order."""
    found: set[str] = set()
    for fragment in dataset.get_fragments():  # listed already: no file is opened
        found.update(ds.get_partition_keys(fragment.partition_expression))
    return tuple(name for name in dataset.schema.names if name in found)


def file_metadata(fs: pafs.FileSystem, path: str) -> pq.FileMetaData:
    """A Parquet file's footer; a ParquetTableError naming the file when it is not Parquet."""
    try:
        return pq.read_metadata(path, filesystem=fs)
    except (pa.ArrowException, OSError) as error:
        raise ParquetTableError(f"cannot read Parquet file {path!r}: {error}") from error


def _partition_values(fragment: ds.ParquetFileFragment) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(ds.get_partition_keys(fragment.partition_expression).items()))


#: No task is planned smaller than this (uncompressed), however many cores there are.
MIN_TASK_BYTES = 4 * 1024 * 1024


def task_bytes(total_bytes: int, target_bytes: int, min_tasks: int) -> int:
    """The size tasks are cut to: `target_bytes`, smaller when that would give fewer than
    `min_tasks` tasks (so every core gets work), never below `MIN_TASK_BYTES`."""
    spread = -(-total_bytes // max(min_tasks, 1))  # ceil
    return max(1, min(target_bytes, max(MIN_TASK_BYTES, spread)))


def plan_tasks(path: str, target_bytes: int, min_tasks: int = 1) -> list[list[FileSlice]]:
    """The table's row groups, in file order, grouped into tasks of about `target_bytes`
    (uncompressed) each, or of a size that gives `min_tasks` tasks when that is smaller
    (`task_bytes`); a row group is never split, files with no rows are skipped."""
    fs, _ = filesystem_for(path)
    dataset = open_dataset(path)
    fragments = sorted(dataset.get_fragments(), key=lambda f: f.path)
    metas = [file_metadata(fs, fragment.path) for fragment in fragments]
    total = sum(m.row_group(i).total_byte_size for m in metas for i in range(m.num_row_groups))
    target_bytes = task_bytes(total, target_bytes, min_tasks)
    tasks: list[list[FileSlice]] = []
    current: list[FileSlice] = []
    size = 0
    for fragment, meta in zip(fragments, metas, strict=True):
        values = _partition_values(fragment)
        groups: list[int] = []
        for index in range(meta.num_row_groups):
            if meta.row_group(index).num_rows == 0:
                continue
            groups.append(index)
            size += meta.row_group(index).total_byte_size
            if size >= target_bytes:
                current.append(FileSlice(fragment.path, tuple(groups), values))
                tasks.append(current)
                current, groups, size = [], [], 0
        if groups:
            current.append(FileSlice(fragment.path, tuple(groups), values))
    if current:
        tasks.append(current)
    logger.info("%s: %d tasks of about %d bytes", path, len(tasks), target_bytes)
    return tasks
