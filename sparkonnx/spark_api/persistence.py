"""Saving and loading sparkonnx stages: Params metadata plus the ONNX bytes stored beside it.

Everything goes through DataFrame writers (no JVM calls), so it works on classic Spark and on
Spark Connect and with any file system Spark can write to. Layout under `path`:
`metadata/` (pyspark.ml's JSON metadata, loadable by `DefaultParamsReader`), `model/`
(parquet with the model's sha256 and bytes) and one such folder per other artifact a stage
carries (`tokenizer/` for the text stages), their hashes in the metadata's `artifacts`.

Trust rule: loading a stage runs no code it was not given. The ONNX model and the artifacts
(a tokenizer.json) are data; a Param naming a function (``imageLoader``) loads only when that
name is registered in this process (`sparkonnx.register_image_loader`, or a function handed to
a stage here) or listed in ``load(path, trusted=[...])``; standard-library and builtins names
never load. Bad metadata (not JSON, no ``uid`` / ``paramMap`` / ``class``, unknown Params or
artifacts) is an `InvalidStageError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from typing import Any, Generic, TypeVar, cast

from pyspark.ml.param import Params
from pyspark.ml.util import (
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from typing_extensions import Self

from sparkonnx.engine.model import InvalidModelError, ModelOnDiskError, OnnxModel
from sparkonnx.errors import SparkOnnxError
from sparkonnx.spark_api import current_class_path
from sparkonnx.spark_api.params import set_given
from sparkonnx.spark_api.runtime.code_names import require_trusted

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
        if model is not None and model.on_disk:
            raise ModelOnDiskError(
                f"cannot save {type(self.instance).__name__} with its model: {model.source} is "
                f"kept on disk ({model.size_bytes} bytes with its external data), too big to "
                "store inside the saved stage. Keep the model's files where every driver can "
                "read them and build the stage with modelFile=<path> after loading"
            )
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


class InvalidStageError(SparkOnnxError, ValueError):
    """A saved stage that cannot be loaded: unreadable or incomplete metadata, an unknown Param,
    a value its Param refuses, or a missing / corrupt model. The message names the file."""


def read_metadata(spark: Any, path: str) -> dict[str, Any]:
    """The JSON metadata a stage saved under ``path``; InvalidStageError naming what is wrong."""
    where = os.path.join(path, "metadata")
    try:
        rows = spark.read.text(where).head(1)
    except Exception as exc:  # AnalysisException (no such path), unreadable files...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidStageError(
            f"cannot read the saved stage's metadata {where}: {first}. Is {path} a stage saved "
            "with .save(path)? (after editing its files by hand, delete the .crc files too)"
        ) from exc
    if not rows:
        raise InvalidStageError(f"the saved stage's metadata {where} is empty")
    text = rows[0][0]
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidStageError(
            f"the saved stage's metadata {where} is not JSON ({exc}): {text[:80]!r}"
        ) from None
    if not isinstance(metadata, dict):
        raise InvalidStageError(
            f"the saved stage's metadata {where} is a JSON {type(metadata).__name__}, not the "
            "object pyspark.ml writes"
        )
    missing = [k for k in ("class", "uid", "paramMap") if k not in metadata]
    if missing:
        raise InvalidStageError(
            f"the saved stage's metadata {where} misses {', '.join(map(repr, missing))}; it "
            f"has {sorted(metadata)}"
        )
    for key in ("paramMap", "defaultParamMap"):
        if not isinstance(metadata.get(key, {}), dict):
            raise InvalidStageError(
                f"the saved stage's metadata {where}: {key!r} must be a JSON object, found "
                f"{metadata[key]!r}"
            )
    if not isinstance(metadata["class"], str) or not isinstance(metadata["uid"], str):
        raise InvalidStageError(
            f"the saved stage's metadata {where}: 'class' and 'uid' must be strings, found "
            f"{metadata['class']!r} and {metadata['uid']!r}"
        )
    return metadata


def _saved_params(metadata: dict[str, Any]) -> dict[str, Any]:
    """Every Param value the metadata sets, defaults included (a default is a value too)."""
    return {**metadata.get("defaultParamMap", {}), **metadata["paramMap"]}


def set_saved_params(instance: Params, metadata: dict[str, Any], where: str) -> None:
    """Set the metadata's Params on ``instance``; InvalidStageError for an unknown Param or a
    value its Param refuses."""
    saved = _saved_params(metadata)
    unknown = sorted(name for name in saved if not instance.hasParam(name))
    if unknown:
        known = sorted(p.name for p in instance.params)
        raise InvalidStageError(
            f"the saved stage's metadata {where} sets {', '.join(map(repr, unknown))}, which "
            f"{type(instance).__name__} does not have; its Params are {known}"
        )
    for section in ("paramMap", "defaultParamMap"):
        for name, value in metadata.get(section, {}).items():
            try:
                if section == "paramMap":
                    instance.set(instance.getParam(name), value)
                else:
                    instance._setDefault(**{name: value})
            except (TypeError, ValueError) as exc:
                raise InvalidStageError(
                    f"the saved stage's metadata {where} holds a value its Param refuses: "
                    f"{name}={value!r} ({exc})"
                ) from exc


class OnnxStageReader(MLReader, Generic[RW]):
    """Reads what OnnxStageWriter wrote, checking the class name, the Params, the names of any
    code it would run (`OnnxStagePersistence._CODE_PARAMS`) and the model's hash."""

    def __init__(self, cls: type[RW], trusted: Iterable[str] = ()) -> None:
        super().__init__()
        self.cls = cls
        self.trusted = tuple(trusted)

    def load(self, path: str) -> RW:
        spark = self.sparkSession
        expected = f"{self.cls.__module__}.{self.cls.__name__}"
        metadata = read_metadata(spark, path)
        saved = current_class_path(metadata["class"])  # a save from before the reshaping
        if saved != expected:
            raise TypeError(
                f"the stage saved under {path} is a {metadata['class']}; "
                f"{self.cls.__name__}.load reads {expected} stages: load it with "
                f"{saved.rpartition('.')[2]}.load or PipelineModel.load"
            )
        where = os.path.join(path, "metadata")
        values = _saved_params(metadata)
        for name in self.cls._CODE_PARAMS:  # before anything is set, imported or called
            if values.get(name) is not None:
                require_trusted(values[name], where, self.trusted, what=name)
        instance = self.cls()
        cast(Params, instance)._resetUid(metadata["uid"])
        set_saved_params(cast(Params, instance), metadata, where)
        sha = metadata.get("modelSha256")
        if sha:
            instance._set_loaded_model(_read_model(spark, path, sha))
        for name, sha in _saved_artifacts(metadata, self.cls, where).items():
            data = _read_blob(spark, path, name, sha)
            try:
                instance._set_loaded_artifact(name, data)
            except (TypeError, ValueError) as exc:
                folder = os.path.join(path, name)
                raise InvalidStageError(
                    f"the {name} saved under {folder} is refused: {exc}"
                ) from exc
        return instance


def _saved_artifacts(metadata: dict[str, Any], cls: type, where: str) -> dict[str, str]:
    """The metadata's {artifact folder: sha256}, each folder one the class saves itself."""
    artifacts = metadata.get("artifacts") or {}
    known: tuple[str, ...] = getattr(cls, "_ARTIFACTS", ())
    if not isinstance(artifacts, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in artifacts.items()
    ):
        raise InvalidStageError(
            f"the saved stage's metadata {where}: 'artifacts' must map folder names to sha256 "
            f"strings, found {artifacts!r}"
        )
    unknown = sorted(set(artifacts) - set(known))
    if unknown:
        raise InvalidStageError(
            f"the saved stage's metadata {where} lists artifacts {unknown}, which "
            f"{cls.__name__} does not save; it saves {list(known)}"
        )
    return artifacts


def _read_blob(spark: Any, path: str, name: str, sha: str) -> bytes:
    """The bytes `_write_blob` stored in folder ``name`` under ``path``, checked against the
    sha256 its metadata recorded; InvalidStageError naming the folder otherwise."""
    where = os.path.join(path, name)
    try:
        row = spark.read.parquet(where).head()
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidStageError(
            f"the saved stage's metadata records a {name} (sha256 {sha[:12]}...) but {where} "
            f"cannot be read: {first}"
        ) from exc
    if row is None or "model" not in row.asDict():
        raise InvalidStageError(f"no {name} stored under {where}")
    data = bytes(row["model"])
    if hashlib.sha256(data).hexdigest() != sha:
        raise InvalidStageError(
            f"the {name} stored under {where} does not match the sha256 recorded in its "
            f"metadata ({sha[:12]}...); the saved stage is corrupt"
        )
    return data


def _read_model(spark: Any, path: str, sha: str) -> OnnxModel:
    data = _read_blob(spark, path, "model", sha)
    try:
        return OnnxModel.from_bytes(data, source=os.path.join(path, "model"))
    except InvalidModelError as exc:
        raise InvalidStageError(f"the saved stage's model is refused: {exc}") from exc


class OnnxStagePersistence(MLReadable, MLWritable):
    """Mixin: `write()` / `read()` for stages that carry an ONNX model.

    Loading never imports code the user did not approve: Params listed in `_CODE_PARAMS` hold
    'module:function' names, which must be registered in this process or passed in
    ``load(path, trusted=[...])`` (see `sparkonnx.spark_api.runtime.code_names`).
    """

    #: Params whose saved value names a function to import and run (checked on load).
    _CODE_PARAMS: tuple[str, ...] = ()
    #: Folders of other data the stage saves beside `model/` (`_artifacts_for_saving`); a
    #: load reads only these.
    _ARTIFACTS: tuple[str, ...] = ()

    def write(self) -> OnnxStageWriter:
        return OnnxStageWriter(self)

    def save(self, path: str) -> None:
        self.write().save(path)

    @classmethod
    def read(cls: type[RW], trusted: Iterable[str] = ()) -> OnnxStageReader[RW]:
        """A reader; ``trusted``: code names (e.g. 'mypkg.loaders:load') it may import."""
        return OnnxStageReader(cls, trusted)

    @classmethod
    def load(cls: type[RW], path: str, trusted: Iterable[str] = ()) -> RW:
        """The stage saved under ``path``; ``trusted``: code names it may import and run."""
        return cls.read(trusted).load(path)

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
