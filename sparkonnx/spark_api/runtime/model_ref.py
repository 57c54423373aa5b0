"""The reference a task holds to its model: a sha256 plus inline bytes or a Spark file name.

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
        from pyspark import SparkFiles

        assert self.file_name is not None
        path = SparkFiles.get(self.file_name)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"shipped model file {self.file_name} not found on this executor at {path}; "
                "was the DataFrame transformed with another SparkSession than the one it "
                "belongs to?"
            )
        return path
