"""The reference a task holds to its model: a sha256 plus inline bytes or a Spark file name,
or, for a model kept on disk, the Spark files of its members.

Built on the driver by `sparkonnx.spark_api.shipping`; `ModelRef.load()` runs on executors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelRef:
    """What a task needs to find a model: its hash plus inline bytes or a Spark file name."""

    sha256: str
    inline: bytes | None = field(default=None, repr=False)
    file_name: str | None = None

    def load(self) -> bytes | str:
        """On an executor: the model bytes, or the local path of the shipped file."""
        if self.inline is not None:
            return self.inline
        assert self.file_name is not None
        return shipped_file(self.file_name)


def shipped_file(name: str) -> str:
    """On an executor: the local path of the Spark file (or Connect artifact) `name`."""
    from pyspark import SparkFiles

    path = SparkFiles.get(name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"shipped model file {name} not found on this executor at {path}; "
            "was the DataFrame transformed with another SparkSession than the one it "
            "belongs to?"
        )
    return path


@dataclass(frozen=True)
class ModelFilesRef(ModelRef):
    """A model kept on disk, shipped as its files (graph + external data): the executor
    assembles them once in its disk cache (`sparkonnx.engine.model_cache`) and returns the
    cached graph's path."""

    graph_name: str = "model.onnx"
    #: (member, Spark file name): the graph file as member '', then each data location
    members: tuple[tuple[str, str], ...] = ()
    cache_dir: str | None = None  # spark.sparkonnx.modelCacheDir on the driver, if set

    def load(self) -> str:
        """On an executor: the cached graph file's path (copied there on first use)."""
        from sparkonnx.engine.model_cache import cache_dir, cached_model

        names = dict(self.members)
        data = [member for member, _ in self.members if member]
        path = cached_model(
            self.sha256,
            self.graph_name,
            data,
            lambda member: shipped_file(names[member]),
            cache_dir(self.cache_dir),
        )
        return str(path)
