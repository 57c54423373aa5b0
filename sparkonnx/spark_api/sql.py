"""Models as named Spark SQL functions: `register_udf` and sparkdl's `registerKerasImageUDF`.

The function is an iterator Arrow UDF (a pandas one on pyspark 4.0; `mapInPandas` cannot be
called from SQL), built for the kind of the given session (classic or Spark Connect). It runs
in the executors' Python workers with the same per-process `SESSION_CACHE` and batched runs as
the transformers. What it sends to executors is one plain `InferencePlan` whose ``prepare``
hook is `runtime.sql_udf.prepare_arguments`.

Arguments, one per model input, in the model's input order:

- numeric scalars or (nested) arrays: a tensor input (flat arrays are reshaped to the input's
  static dims or to `inputShape`);
- image structs (`read_images`, `spark.read.format("image")`): prepared exactly as
  `ImageTransformer` prepares them, with the same resolution: the arguments `inputSize`,
  `channelOrder`, `layout`, `scale`, `mean`, `std`, `resample` win over the preprocessing stored
  in the model's metadata, which wins over the input's shape (static size: images are resized
  to it);
- with a `preprocessor` (file path -> image array): a string column of file paths, or image
  structs, whose `origin` is given when it is a file on the executor (else the struct is
  written to a temporary PNG first, as sparkdl did). What it returns is an RGB(A) or gray image
  of any size, prepared like an image struct.

A row with a null argument, an undecodable image or a failing preprocessor gets a null result
(`handleInvalid='keep'`; with `errorField` the result is a struct holding the reason) or fails
the task naming the row (`handleInvalid='error'`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from sparkonnx.engine.image_preprocess import ImagePreprocessing, resolve_preprocessing
from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.engine.providers import validate_device
from sparkonnx.engine.sessions import validate_batch_size
from sparkonnx.spark_api.runtime.arrow_udf_path import arrow_udf_supported
from sparkonnx.spark_api.runtime.executor import InferencePlan, OutputColumn, run_columns
from sparkonnx.spark_api.runtime.executor_facts import ready_plan
from sparkonnx.spark_api.runtime.image_executor import VectorOutput
from sparkonnx.spark_api.runtime.sql_udf import (
    Preprocessor,
    SqlArguments,
    prepare_arguments,
    run_pandas_columns,
)
from sparkonnx.spark_api.session import active_session, python_udf
from sparkonnx.spark_api.shipping import ship_model
from sparkonnx.spark_api.transformers.image_params import HasImageOutput, HasImagePreprocessing
from sparkonnx.spark_api.types import spark_output_dtype, spark_type_for

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import DataType

logger = logging.getLogger(__name__)

__all__ = ["registerKerasImageUDF", "register_udf"]


# --------------------------------------------------------------------------- the model


def _resolve_model(model: Any) -> OnnxModel:
    """Any supported model form as an OnnxModel, converting TF / Keras sources once here."""
    from sparkonnx.spark_api.transformers.tf_input_graph import TFInputGraph

    if isinstance(model, TFInputGraph):
        return model.model
    if isinstance(model, OnnxModel):
        return model
    if isinstance(model, bytes | bytearray | memoryview):
        return OnnxModel.from_bytes(bytes(model))
    if type(model).__module__.startswith("onnx") and type(model).__name__ == "ModelProto":
        return OnnxModel.load(model)
    if isinstance(model, str | os.PathLike) and str(model).lower().endswith(".onnx"):
        return OnnxModel.from_path(model)
    from sparkonnx.converters import convert

    try:
        result = convert(model)
    except TypeError as exc:
        raise TypeError(
            f"register_udf cannot use a {type(model).__name__} as a model: {exc}. Give an ONNX "
            "file / bytes / onnx.ModelProto / OnnxModel, a Keras model or .keras / .h5 file, a "
            "SavedModel directory, a tf.function or a TFInputGraph"
        ) from exc
    if result.parity is not None:
        logger.info("register_udf: %s", result.parity.summary())
    return result.model


def _with_shape(spec: TensorSpec, shape: Sequence[int]) -> TensorSpec:
    """`spec` with its per-row dims replaced by `shape` (checked against static dims)."""
    dims = tuple(int(d) for d in shape)
    if not dims or any(d <= 0 for d in dims):
        raise ValueError(
            f"inputShape for {spec.name!r} must be positive per-row dims such as (28, 28, 1) "
            f"(no batch axis); got {tuple(shape)!r}"
        )
    inner = spec.shape[1:] if spec.shape else None
    fits = inner is None or (
        len(inner) == len(dims)
        and all(not isinstance(a, int) or a == b for a, b in zip(inner, dims, strict=True))
    )
    if not fits:
        raise ValueError(
            f"inputShape {dims} does not fit model input {spec.describe()}: give one dim per "
            "axis after the batch axis, equal to every static dim"
        )
    batch = spec.shape[0] if spec.shape else None
    return dataclasses.replace(spec, shape=(batch, *dims))


def _input_specs(
    model: OnnxModel, inputShape: Sequence[int] | dict[str, Sequence[int]] | None
) -> tuple[TensorSpec, ...]:
    specs = list(model.inputs)
    if inputShape is None:
        return tuple(specs)
    if isinstance(inputShape, dict):
        shapes = {model.input(name).name: shape for name, shape in inputShape.items()}
    elif len(specs) == 1:
        shapes = {specs[0].name: inputShape}
    else:
        names = [s.name for s in specs]
        raise ValueError(
            f"the model has {len(specs)} inputs {names}; give inputShape as a dict "
            "{input name: per-row shape}"
        )
    return tuple(_with_shape(s, shapes[s.name]) if s.name in shapes else s for s in specs)


class _ImageArguments(HasImagePreprocessing, HasImageOutput):
    """register_udf's image arguments, checked by the image stages' own Param converters."""


#: register_udf's keyword arguments for image structs: ImageTransformer's preprocessing Params.
IMAGE_ARGUMENTS = ("inputSize", "channelOrder", "layout", "scale", "mean", "std", "resample")


def _image_arguments(image: dict[str, Any], **given: Any) -> _ImageArguments:
    """The image stages' Params holding `image` and `given` (None: unset, as for the stages)."""
    unknown = sorted(set(image) - set(IMAGE_ARGUMENTS))
    if unknown:
        raise TypeError(
            f"register_udf got unexpected keyword arguments {unknown}; besides its own, it takes "
            f"ImageTransformer's preprocessing Params {list(IMAGE_ARGUMENTS)} (and, with "
            "tokenizerFile for a text model, pooling, normalize, modelOutput, maxLength)"
        )
    given.update(image)
    params = _ImageArguments()
    params._set(**{k: v for k, v in given.items() if v is not None})
    return params


def _image_preprocessing(
    name: str, model: OnnxModel, specs: tuple[TensorSpec, ...], overrides: dict[str, Any]
) -> tuple[ImagePreprocessing | str, ...]:
    """Each input's preprocessing, resolved as ImageTransformer does, or why it has none.

    Raises when preprocessing arguments were given but fit no input.
    """
    from sparkonnx.converters.metadata import preprocessing_of

    stored = preprocessing_of(model)
    resolved: list[ImagePreprocessing | str] = []
    for spec in specs:
        try:
            resolved.append(resolve_preprocessing(spec, stored, overrides))
        except ValueError as exc:
            resolved.append(str(exc))
    if overrides and all(isinstance(r, str) for r in resolved):
        raise ValueError(f"register_udf {name!r}: {resolved[0]}")
    return tuple(resolved)


# --------------------------------------------------------------------------- outputs


def _outputs(model: OnnxModel, flatten: bool) -> tuple[OutputColumn, ...]:
    """One output column per model output (flattened to [N, k] with `flatten`)."""
    return tuple(
        VectorOutput(s.name, s.name, spark_output_dtype(s.dtype).name, 2)
        if flatten
        else OutputColumn(s.name, s.name, spark_output_dtype(s.dtype).name, s.rank or 1)
        for s in model.outputs
    )


def _return_type(model: OnnxModel, flatten: bool, error_field: str | None) -> DataType:
    """The SQL type: one output's array, or a struct of outputs (and the error field)."""
    from pyspark.sql import types as T

    def one(spec: TensorSpec) -> DataType:
        if flatten:
            return spark_type_for(
                TensorSpec(spec.name, spark_output_dtype(spec.dtype), ("N", None))
            )
        return spark_type_for(spec)

    fields = [T.StructField(s.name, one(s), True) for s in model.outputs]
    if error_field is not None:
        if error_field in [f.name for f in fields]:
            raise ValueError(
                f"errorField {error_field!r} is also the name of a model output "
                f"{[f.name for f in fields]}; choose another name"
            )
        fields.append(T.StructField(error_field, T.StringType(), True))
    return fields[0].dataType if len(fields) == 1 else T.StructType(fields)


def sql_function(spark: Any, plan: InferencePlan, return_type: DataType) -> Any:
    """The UDF over `plan`, built for the kind of `spark` (never from the environment)."""
    from pyspark.util import PythonEvalType

    if arrow_udf_supported():
        body: Any = partial(run_columns, plan)
        eval_type: int = PythonEvalType.SQL_SCALAR_ARROW_ITER_UDF
    else:
        body = partial(run_pandas_columns, plan)
        eval_type = PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF
    return python_udf(spark, body, return_type, eval_type)


# --------------------------------------------------------------------------- registering


def _check_registration(name: Any, preprocessor: Any, batchSize: Any) -> None:
    """register_udf's own arguments, checked before any model work."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a SQL function name must be an identifier like 'my_model'; got {name!r}")
    if preprocessor is not None and not callable(preprocessor):
        raise TypeError(
            f"preprocessor must be a function (file path -> image array), got "
            f"{type(preprocessor).__name__}"
        )
    validate_batch_size(batchSize)


def register_udf(
    spark: SparkSession,
    name: str,
    model: Any,
    *,
    inputShape: Sequence[int] | dict[str, Sequence[int]] | None = None,
    batchSize: int = 1024,
    device: str = "auto",
    deviceId: int | None = None,
    preprocessor: Preprocessor | None = None,
    flatten: bool = False,
    handleInvalid: str = "keep",
    errorField: str | None = None,
    tokenizerFile: str | None = None,
    **image: Any,
) -> Any:
    """Register `model` as the SQL function `name` (one argument per model input) and return it.

    `model`: an ONNX file / bytes / ModelProto / OnnxModel, a Keras model or .keras / .h5 file,
    a SavedModel directory, a tf.function, or a `TFInputGraph`; TF / Keras sources are converted
    to ONNX here, once. `inputShape`: per-row shape (no batch axis) of a tensor input, or a dict
    by input name, for models with dynamic dims. `image`: ImageTransformer's preprocessing
    Params for image-struct arguments (`inputSize`, `channelOrder`, `layout`, `scale`, `mean`,
    `std`, `resample`; unset ones come from the model's metadata and input shape).
    `preprocessor`: file path -> image array, for path or image arguments. `flatten`: each
    row's output as one flat array. `handleInvalid`: 'keep' (null result) or 'error'.
    `errorField`: the result becomes a struct with this string field holding why a row is null.
    One output gives an array column; several (or `errorField`) a struct with one field each.

    `tokenizerFile` (a tokenizer.json) registers a text function `name(text)` instead; its
    keyword arguments are then pooling, normalize, modelOutput, maxLength (see `text_sql`).
    """
    _check_registration(name, preprocessor, batchSize)
    if tokenizerFile is not None:
        from sparkonnx.spark_api.transformers.text_sql import register_from_sql_options

        tensor_only: dict[str, Any] = dict(
            inputShape=inputShape, preprocessor=preprocessor, flatten=flatten,
            errorField=errorField, handleInvalid=handleInvalid != "keep",
        )  # fmt: skip
        return register_from_sql_options(
            spark, name, model, tokenizerFile, batchSize, device, deviceId, tensor_only, image
        )
    params = _image_arguments(image, handleInvalid=handleInvalid, errorCol=errorField)
    onnx_model = _resolve_model(model)
    specs = _input_specs(onnx_model, inputShape)
    labels = tuple(f"{name} argument {i + 1}" for i in range(len(specs)))
    images = _image_preprocessing(name, onnx_model, specs, params.preprocessingOverrides())
    strict = params.getHandleInvalid() == "error"
    arguments = SqlArguments(labels, specs, images, preprocessor, strict, errorField)
    plan = InferencePlan(
        model=ship_model(spark, onnx_model),
        inputs=tuple(zip(labels, specs, strict=True)),
        outputs=_outputs(onnx_model, flatten),
        **_run_settings(batchSize, device, deviceId),
        prepare=partial(prepare_arguments, arguments),
    )
    signature = f"{name}({', '.join(s.name for s in specs)})"
    return_type = _return_type(onnx_model, flatten, errorField)
    return register_plan(spark, name, plan, return_type, signature, onnx_model.sha256)


def _run_settings(batch_size: int, device: str, device_id: int | None) -> dict[str, Any]:
    """The InferencePlan fields every SQL function sets the same way."""
    device = validate_device(device, device_id)
    return dict(batch_size=batch_size, device=device, device_id=device_id, allow_cast=True)


def register_plan(
    spark: Any, name: str, plan: InferencePlan, return_type: DataType, signature: str, sha: str
) -> Any:
    """Check `plan` on the driver (device, executors' log level), register it as the SQL
    function `name` returning `return_type`, log `signature` and return the function."""
    plan = ready_plan(spark, plan, f"SQL function {name}")
    udf = sql_function(spark, plan, return_type)
    spark.udf.register(name, udf)
    logger.info(
        "registered SQL function %s -> %s for model %s",
        signature,
        return_type.simpleString(),
        sha[:12],
    )
    return udf


def registerKerasImageUDF(
    udf_name: str,
    keras_model_or_file_path: Any,
    preprocessor: Preprocessor | None = None,
    *,
    spark: SparkSession | None = None,
    **options: Any,
) -> Any:
    """sparkdl's image UDF: a Keras model (object or .keras / .h5 path) as the SQL function
    `udf_name` on an image-struct column, returning each row's output as a flat float array.

    Images are prepared as `register_udf` prepares image structs: resized to the model's input
    size, given as RGB (unless the model's metadata says otherwise). With `preprocessor` (file
    path -> image array, as in Keras workflows) each image is loaded with it from its origin; a
    string column of file paths is passed to it directly. `options`: register_udf's keyword
    arguments (batchSize defaults to 64 here).
    """
    from sparkonnx.converters import from_keras

    result = from_keras(keras_model_or_file_path)
    if result.parity is not None:
        logger.info("registerKerasImageUDF %s: %s", udf_name, result.parity.summary())
    return register_udf(
        active_session(spark, "pass spark=... to registerKerasImageUDF"),
        udf_name,
        result.model,
        preprocessor=preprocessor,
        **{"batchSize": 64, "flatten": True, **options},
    )
