"""Saving and loading sparkonnx stages: Params metadata plus the ONNX bytes stored beside it.

Everything goes through DataFrame writers (no JVM calls), so it works on classic Spark and on
Spark Connect and with any file system Spark can write to. Layout under `path`:
`metadata/` (pyspark.ml's JSON metadata, loadable by `DefaultParamsReader`) and `model/`
(parquet with the model's sha256 and bytes).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Generic, TypeVar, cast

from pyspark.ml.param import Params
from pyspark.ml.util import (
    DefaultParamsReader,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api import current_class_path

RW = TypeVar("RW", bound="OnnxStagePersistence")


class OnnxStageWriter(MLWriter):
    """Writes a stage's Params metadata and its ONNX model bytes."""

    def __init__(self, instance: OnnxStagePersistence) -> None:
        super().__init__()
        self.instance = instance

    def save(self, path: str) -> None:  # overwrite handled by the writers' mode, not the JVM
        self.saveImpl(path)

    def saveImpl(self, path: str) -> None:
        spark = self.sparkSession
        mode = "overwrite" if self.shouldOverwrite else "error"
        model = self.instance._model_for_saving()
        extra = {"modelSha256": model.sha256 if model else None}
        metadata = DefaultParamsWriter._get_metadata_to_save(
            cast(Params, self.instance), spark, extra
        )
        spark.createDataFrame([(metadata,)], schema=["value"]).coalesce(1).write.mode(mode).text(
            os.path.join(path, "metadata")
        )
        if model is not None:
            spark.createDataFrame(
                [(model.sha256, bytearray(model.model_bytes))], "sha256 string, model binary"
            ).coalesce(1).write.mode(mode).parquet(os.path.join(path, "model"))


class OnnxStageReader(MLReader, Generic[RW]):
    """Reads what OnnxStageWriter wrote, checking the class name and the model's hash."""

    def __init__(self, cls: type[RW]) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> RW:
        spark = self.sparkSession
        expected = f"{self.cls.__module__}.{self.cls.__name__}"
        metadata = DefaultParamsReader.loadMetadata(path, spark)
        saved = current_class_path(metadata["class"])  # a save from before the reshaping
        if saved != expected:
            raise TypeError(
                f"the stage saved under {path} is a {metadata['class']}; "
                f"{self.cls.__name__}.load reads {expected} stages: load it with "
                f"{saved.rpartition('.')[2]}.load or PipelineModel.load"
            )
        instance = self.cls()
        cast(Params, instance)._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(instance, metadata)
        sha = metadata.get("modelSha256")
        if sha:
            row = spark.read.parquet(os.path.join(path, "model")).head()
            if row is None:
                raise ValueError(f"no ONNX model stored under {path}/model")
            data = bytes(row["model"])
            if hashlib.sha256(data).hexdigest() != sha:
                raise ValueError(
                    f"the ONNX model stored under {path}/model does not match the sha256 "
                    f"recorded in its metadata ({sha[:12]}...); the saved stage is corrupt"
                )
            instance._set_loaded_model(OnnxModel.from_bytes(data, source=f"{path}/model"))
        return instance


class OnnxStagePersistence(MLReadable, MLWritable):
    """Mixin: `write()` / `read()` for stages that carry an ONNX model."""

    def write(self) -> OnnxStageWriter:
        return OnnxStageWriter(self)

    def save(self, path: str) -> None:
        self.write().save(path)

    @classmethod
    def read(cls: type[RW]) -> OnnxStageReader[RW]:
        return OnnxStageReader(cls)

    @classmethod
    def load(cls: type[RW], path: str) -> RW:
        return cls.read().load(path)

    # hooks the stage implements
    def _model_for_saving(self) -> OnnxModel | None:
        raise NotImplementedError

    def _set_loaded_model(self, model: OnnxModel) -> None:
        raise NotImplementedError


class HoldsOnnxModel(OnnxStagePersistence):
    """Mixin for stages that hold their model in `self._model` (set, or read from `modelFile`).

    List it first among the bases so its `copy` wraps pyspark's `Params.copy`.
    """

    _model: OnnxModel | None

    def getModel(self) -> OnnxModel:  # implemented by the stage
        raise NotImplementedError

    def setModelFile(self, value: str) -> Any:
        self._model = None
        return cast(Params, self)._set(modelFile=value)

    def setModel(self, model: Any) -> Any:  # implemented by the stage
        raise NotImplementedError

    def _set_init_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Set `__init__`'s keyword arguments: None leaves a Param unset, `model` goes to
        `setModel`."""
        kwargs = dict(kwargs)
        model = kwargs.pop("model", None)
        cast(Params, self)._set(**{k: v for k, v in kwargs.items() if v is not None})
        if model is not None:
            self.setModel(model)

    def _model_for_saving(self) -> OnnxModel | None:
        return self.getModel()

    def _set_loaded_model(self, model: OnnxModel) -> None:
        self._model = model

    def copy(self, extra: Any = None) -> Any:
        that = super().copy(extra)  # type: ignore[misc]
        that._model = self._model
        return that
