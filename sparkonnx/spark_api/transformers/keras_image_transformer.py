"""KerasImageFileTransformer: a Keras model file applied to a column of image URIs.

As sparkdl's: the user's ``imageLoader(uri) -> np.ndarray`` reads and preprocesses each image
on the executors, and the model runs on the stacked arrays. The Keras file is converted to ONNX
once, on the driver (TensorFlow is needed there only); executors run ONNX Runtime and never
import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
from pyspark import keyword_only
from pyspark.ml.param import Param, Params
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from typing_extensions import Self

from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.spark_api.persistence import OnnxStagePersistence, OnnxStageWriter
from sparkonnx.spark_api.runtime.code_names import (
    UntrustedCodeError,
    code_name_of,
    remember_trusted_function,
    resolve_code_name,
    trust_code_name,
)
from sparkonnx.spark_api.runtime.executor import PreparedBatch, RowPlace
from sparkonnx.spark_api.runtime.image_executor import errors_column, fail_on_errors
from sparkonnx.spark_api.transformers.image_transformer import ImageModelBase, output_column, pick
from sparkonnx.spark_api.transformers.keras_transformer import keras_file_to_onnx

logger = logging.getLogger(__name__)

__all__ = ["KerasImageFileTransformer"]

ImageLoader = Callable[[str], np.ndarray]


def _to_loader(value: Any) -> ImageLoader | str:
    if callable(value):
        remember_trusted_function(value)  # the user handed it over: its saved name may load
        return value
    if isinstance(value, str) and ":" in value:
        # Standard library / builtins names are refused outright; a name set here is the
        # user's (a saved one reaches this converter only after OnnxStageReader trusted it).
        trust_code_name(value)
        return value
    raise TypeError(
        "imageLoader must be a function uri -> numpy array, or its import path "
        f"'package.module:function'; got {value!r}"
    )


def loader_path(loader: ImageLoader | str) -> str:
    """The 'module:qualname' import path of ``loader``; ValueError if it cannot be imported."""
    if isinstance(loader, str):
        return loader
    name = code_name_of(loader)
    if name is not None:
        try:
            if resolve_loader(name) is loader:
                remember_trusted_function(loader)  # saved from this process: it may load here
                if name.startswith("__main__:"):
                    logger.warning(
                        "imageLoader %s is defined in __main__: loading this stage needs a "
                        "script defining it too",
                        name,
                    )
                return name
        except (ImportError, AttributeError, UntrustedCodeError):
            pass
    raise ValueError(
        f"cannot save imageLoader {loader!r}: only functions importable by name (defined at the "
        "top level of a module, not lambdas or nested functions, and not from the standard "
        "library) can be saved. Move it into a module, or pass its import path, e.g. "
        "imageLoader='mypackage.loaders:load_image'"
    )


def resolve_loader(loader: ImageLoader | str) -> ImageLoader:
    """The loader function itself (imported when given as 'module:qualname', see
    `sparkonnx.spark_api.runtime.code_names` for the names refused)."""
    if not isinstance(loader, str):
        return loader
    return resolve_code_name(loader)


class HasImageLoader(Params):
    """imageLoader, saved as its 'module:function' import path."""

    imageLoader: Param[Any] = Param(
        Params._dummy(),
        "imageLoader",
        "function uri -> numpy array run on the executors (or its 'module:function' path)",
        _to_loader,
    )

    #: Loading checks this Param's saved name before importing it (`OnnxStageReader`).
    _CODE_PARAMS: tuple[str, ...] = ("imageLoader",)

    def getImageLoader(self) -> ImageLoader | str:
        return self.getOrDefault(self.imageLoader)

    def setImageLoader(self, value: ImageLoader | str) -> Self:
        return self._set(imageLoader=value)

    def write(self) -> OnnxStageWriter:
        """A writer saving the stage with the loader as its 'module:function' import path."""
        that = self.copy()
        if self.isDefined(self.imageLoader):
            that._set(imageLoader=loader_path(self.getImageLoader()))
        return OnnxStageWriter(cast(OnnxStagePersistence, that))


def _one_image(arr: Any, spec: TensorSpec) -> np.ndarray:
    """A loader's result as one image of the model input's shape (a leading 1-axis dropped)."""
    if arr is None:
        raise ValueError("imageLoader returned None")
    arr = np.asarray(arr)
    assert spec.shape is not None
    rank = len(spec.shape)
    if arr.ndim == rank and arr.shape[0] == 1:
        arr = arr[0]
    inner = spec.shape[1:]
    fits = arr.ndim == rank - 1 and all(
        not isinstance(d, int) or d == s for d, s in zip(inner, arr.shape)
    )
    if not fits:
        want = ", ".join(str(d) if isinstance(d, int) else "?" for d in inner)
        raise ValueError(
            f"imageLoader returned an array of shape {arr.shape}; model input {spec.name!r} "
            f"takes ({want}) per image, or (1, {want}) with a batch axis"
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"imageLoader returned a {arr.dtype} array; expected numbers")
    return arr


def prepare_uris(
    column: str,
    spec: TensorSpec,
    loader: ImageLoader | str,
    strict: bool,
    error_column: str | None,
    batch: pa.RecordBatch,
    place: RowPlace | None = None,
) -> PreparedBatch:
    """The `InferencePlan.prepare` hook: URIs -> ``imageLoader`` per row -> one input tensor."""
    load = resolve_loader(loader)
    uris = batch.column(column).to_pylist()
    images: list[np.ndarray] = []
    rows = np.zeros(len(uris), bool)
    errors: dict[int, str] = {}
    for i, uri in enumerate(uris):
        if uri is None:
            errors[i] = "null URI"
            continue
        try:
            images.append(_one_image(load(uri), spec))
        except Exception as exc:  # the user's loader may raise anything
            errors[i] = f"{type(exc).__name__}: {exc}"
            continue
        rows[i] = True
    if strict:
        fail_on_errors(column, errors, uris, place)
    shapes = {img.shape for img in images}
    if len(shapes) > 1:
        raise ValueError(
            f"imageLoader returned arrays of different shapes {sorted(shapes)} for column "
            f"{column!r}; a batch needs one shape: resize in the loader"
        )
    if images:
        tensor = np.stack(images).astype(spec.dtype, copy=False)
    else:
        inner = [d if isinstance(d, int) else 0 for d in (spec.shape or ())[1:]]
        tensor = np.zeros((0, *inner), spec.dtype)
    extra: tuple[tuple[str, pa.Array], ...] = ()
    if error_column is not None:
        extra = ((error_column, errors_column(len(uris), errors)),)
    return PreparedBatch({spec.name: tensor}, rows, extra)


class KerasImageFileTransformer(HasImageLoader, ImageModelBase):
    """Applies a Keras model file to a column of image URIs, loading images with your function.

    - ``inputCol``: image URIs (strings) that ``imageLoader`` can read on the executors.
    - ``modelFile``: a Keras ``.keras`` / ``.h5`` file (converted to ONNX once, on the driver)
      or an ``.onnx`` file; or ``model=`` an already converted model.
    - ``imageLoader(uri) -> np.ndarray``: runs on the executors; returns one image in the
      model's input shape, with or without a leading batch axis of 1 (e.g. (299, 299, 3) or
      (1, 299, 299, 3)), already preprocessed (values are cast to the model's input dtype).
      It is pickled with the task: a function defined at a module's top level travels by
      reference (its module must be importable on the executors, including a Spark Connect
      server's), a nested one by value. To save the stage, define it at a module's top level.
      Loading a saved stage imports its loader only when trusted: a function given to a stage
      in this process, one registered with ``sparkonnx.register_image_loader``, or a name in
      ``load(path, trusted=[...])``; standard-library names are always refused.
    - ``outputMode`` 'vector' (default, as sparkdl: the flattened output as a Spark ML
      DenseVector), 'array' (the same as array<float>) or 'image' (an NHWC output with RGB
      channels as an image struct, BGR, with the URI as origin); ``outputFormat`` 'vector' /
      'array' is the same choice (set one, or both equal; see `HasImageOutput`).
    - A row whose URI is null or whose loader call fails gets a null output (reason in
      ``errorCol`` when set), or fails the task with ``handleInvalid='error'``.
    """

    _default_output = "vector"

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        modelFile: str | None = None,
        model: Any = None,
        imageLoader: ImageLoader | str | None = None,
        outputMode: str = "vector",
        handleInvalid: str = "keep",
        errorCol: str | None = None,
        rowIdCol: str | None = None,
        batchSize: int = 64,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "vector",
    ) -> None:
        super().__init__()
        self._set_init_kwargs(self._input_kwargs)  # type: ignore[attr-defined]

    def _load_model_file(self, path: str) -> OnnxModel:
        if Path(path).suffix == ".onnx":
            return OnnxModel.from_path(path)
        logger.info("converting Keras model %s to ONNX on the driver", path)
        return keras_file_to_onnx(path)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        column = self.getInputCol()
        if column not in dataset.columns:
            raise ValueError(
                f"URI column {column!r} not found; the DataFrame has columns {dataset.columns}"
            )
        found = dataset.schema[column].dataType
        if not isinstance(found, T.StringType):
            raise ValueError(
                f"column {column!r} must hold image URIs (string), found {found.simpleString()}"
            )
        if not self.isDefined(self.imageLoader):
            raise ValueError(
                "KerasImageFileTransformer needs imageLoader=<function uri -> numpy array>"
            )
        resolve_loader(self.getImageLoader())  # a bad or forged name fails here, before any job
        model = self.getModel()
        in_spec = pick(model.inputs, None, "input", "a single-input model")
        if in_spec.rank is None or in_spec.rank < 2:
            raise ValueError(
                f"model input {in_spec.describe()} has no per-image shape; expected e.g. "
                "[N, height, width, channels]"
            )
        out_spec = pick(model.outputs, None, "output", "a single-output model")
        out, out_type = output_column(
            out_spec,
            self.getOutputCol(),
            self.getOutputMode(),
            layout="NHWC",
            channel_order="RGB",
            origin_column=column,
        )
        schema = self._new_columns(dataset.schema, out_type)
        prepare = partial(
            prepare_uris,
            column,
            in_spec,
            self.getImageLoader(),
            self.getHandleInvalid() == "error",
            self.getErrorCol(),
        )
        plan = dataclasses.replace(
            self._plan_base(model, dataset.columns),
            inputs=((column, in_spec),),
            outputs=(out,),
            prepare=prepare,
        )
        return self._run(dataset, model, plan, schema)
