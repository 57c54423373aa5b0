"""Saving and loading sparkonnx stages: Params metadata plus the ONNX bytes stored beside it.

Everything goes through DataFrame writers (no JVM calls), so it works on classic Spark and on
Spark Connect and with any file system Spark can write to. Layout under `path`:
`metadata/` (pyspark.ml's JSON metadata, loadable by `DefaultParamsReader`), `model/`
(parquet with the model's sha256 and bytes) and one such folder per other artifact a stage
carries (`tokenizer/` for the text stages), their hashes in the metadata's `artifacts`.
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
from typing_extensions import Self

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api import current_class_path
from sparkonnx.spark_api.params import set_given

RW = TypeVar("RW", bound="OnnxStagePersistence")

#: What `model=` takes: a path, bytes, an onnx.ModelProto, an OnnxModel or a conversion result.
ModelLike = OnnxModel | bytes | str | os.PathLike[str] | Any


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
        artifacts = {
            name: (hashlib.sha256(data).hexdigest(), data)
            for name, data in self.instance._artifacts_for_saving().items()
        }
        extra: dict[str, Any] = {"modelSha256": model.sha256 if model else None}
        if artifacts:
            extra["artifacts"] = {name: sha for name, (sha, _) in artifacts.items()}
        metadata = DefaultParamsWriter._get_metadata_to_save(
            cast(Params, self.instance), spark, extra
        )
        spark.createDataFrame([(metadata,)], schema=["value"]).coalesce(1).write.mode(mode).text(
            os.path.join(path, "metadata")
        )
        if model is not None:
            _write_blob(spark, mode, os.path.join(path, "model"), model.sha256, model.model_bytes)
        for name, (sha, data) in artifacts.items():
            _write_blob(spark, mode, os.path.join(path, name), sha, data)


def _write_blob(spark: Any, mode: str, folder: str, sha256: str, data: bytes) -> None:
    """One row (sha256, bytes) as parquet under `folder` (column `model`, as stages always had)."""
    spark.createDataFrame([(sha256, bytearray(data))], "sha256 string, model binary").coalesce(
        1
    ).write.mode(mode).parquet(folder)


def _read_blob(spark: Any, folder: str, sha256: str, what: str) -> bytes:
    """The bytes `_write_blob` stored under `folder`, checked against the recorded sha256."""
    row = spark.read.parquet(folder).head()
    if row is None:
        raise ValueError(f"no {what} stored under {folder}")
    data = bytes(row["model"])
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(
            f"the {what} stored under {folder} does not match the sha256 "
            f"recorded in its metadata ({sha256[:12]}...); the saved stage is corrupt"
        )
    return data


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
            data = _read_blob(spark, os.path.join(path, "model"), sha, "ONNX model")
            instance._set_loaded_model(OnnxModel.from_bytes(data, source=f"{path}/model"))
        for name, sha in (metadata.get("artifacts") or {}).items():
            blob = _read_blob(spark, os.path.join(path, name), sha, name)
            instance._set_loaded_artifact(name, blob)
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

    def _artifacts_for_saving(self) -> dict[str, bytes]:
        """Other bytes the stage needs (e.g. a tokenizer), by a folder name beside `model/`."""
        return {}

    def _set_loaded_artifact(self, name: str, data: bytes) -> None:
        raise ValueError(f"{type(self).__name__} does not know the saved artifact {name!r}")


class HoldsOnnxModel(OnnxStagePersistence):
    """Mixin for stages that hold their model: given (`model=`, `setModel`, a load) or read from
    `modelFile` on first use.

    A given model stands while `modelFile` keeps the value it had then: setting another
    `modelFile` (`setModelFile`, `copy(extra)`, a `ParamGridBuilder` map) reads that file
    instead, so the one set last wins and a copy with another file never runs this one's model.
    Copies share the model object (pyspark's `copy` is shallow).
    """

    _model: OnnxModel | None = None
    _model_file: str | None = None  # modelFile's value when `_model` was given or read

    # hooks the stage may override
    def _resolve_model(self, model: ModelLike) -> OnnxModel:
        """The OnnxModel for a `model=` value: a path, bytes, an onnx.ModelProto, an OnnxModel
        or a conversion result (anything with an OnnxModel `.model`, e.g. `from_keras(...)`)."""
        inner = getattr(model, "model", None)
        return inner if isinstance(inner, OnnxModel) else OnnxModel.load(model)

    def _load_model_file(self, path: str) -> OnnxModel:
        return OnnxModel.from_path(path)

    def _no_model_message(self) -> str:
        return (
            f"{type(self).__name__} has no model: pass modelFile='path/to/model.onnx' or "
            "model=<bytes | onnx.ModelProto | OnnxModel>"
        )

    def setModel(self, model: ModelLike) -> Self:
        """Use this model (instead of `modelFile`, until another `modelFile` is set)."""
        self._hold(self._resolve_model(model))
        return self

    def getModel(self) -> OnnxModel:
        """The model: the one given, else the one read (once) from `modelFile`."""
        path = self._current_model_file()
        if self._model is not None and self._model_file == path:
            return self._model
        if path is None:
            raise ValueError(self._no_model_message())
        model = self._load_model_file(path)
        self._hold(model)
        return model

    def _current_model_file(self) -> str | None:
        params = cast(Params, self)
        if not params.hasParam("modelFile") or not params.isDefined("modelFile"):
            return None
        return str(params.getOrDefault("modelFile"))

    def _hold(self, model: OnnxModel) -> None:
        self._model, self._model_file = model, self._current_model_file()

    def _set_init_kwargs(self, kwargs: dict[str, Any]) -> None:
        """Set `__init__`'s keyword arguments: None leaves a Param unset, `model` goes to
        `setModel`."""
        kwargs = dict(kwargs)
        model = kwargs.pop("model", None)
        set_given(cast(Params, self), kwargs)
        if model is not None:
            self.setModel(model)

    def _model_for_saving(self) -> OnnxModel | None:
        return self.getModel()

    def _set_loaded_model(self, model: OnnxModel) -> None:
        self._hold(model)
