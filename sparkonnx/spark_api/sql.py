"""Models as named Spark SQL functions: `register_udf` and sparkdl's `registerKerasImageUDF`.

The function is a scalar-iterator pandas UDF (`mapInPandas` cannot be called from SQL): it runs
in the executors' Python workers with the same per-process `SESSION_CACHE` and batched runs as
the transformers, and works from `spark.sql(...)` on classic Spark and on Spark Connect. What it
sends to executors is one plain `UdfSpec` value (model reference, tensor specs, options) and
the module function `predict_batches`.

Arguments, one per model input, in the model's input order:

- numeric scalars or (nested) arrays: a tensor input (flat arrays are reshaped to the input's
  static dims or to `inputShape`);
- image structs (`read_images`, `spark.read.format("image")`): resized to the model's static
  height / width, BGR(A) swapped to `channelOrder`, NCHW inputs transposed;
- with a `preprocessor` (file path -> image array): a string column of file paths, or image
  structs, which are written to a temporary PNG first, as sparkdl did.

A null argument gives a null result.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkonnx.engine.image_batch import image_structs_to_batch
from sparkonnx.engine.images import IMAGE_FIELDS
from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.engine.providers import validate_device
from sparkonnx.engine.tensors import TensorConversionError, column_to_tensor, tensor_to_arrow
from sparkonnx.spark_api.runtime.executor import InferencePlan, OutputColumn, session_for
from sparkonnx.spark_api.session import active_session
from sparkonnx.spark_api.shipping import ship_model
from sparkonnx.spark_api.types import spark_output_dtype, spark_type_for

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.types import DataType

logger = logging.getLogger(__name__)

Preprocessor = Callable[[str], np.ndarray]
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class UdfSpec:
    """Everything a task needs, as plain values: the plan plus the UDF's own options."""

    plan: InferencePlan
    flatten: bool = False
    channel_order: str = "RGB"
    preprocessor: Preprocessor | None = None  # user code, shipped with the UDF


# --------------------------------------------------------------------------- driver side


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


def _return_type(outputs: tuple[TensorSpec, ...], flatten: bool) -> DataType:
    from pyspark.sql import types as T

    def one(spec: TensorSpec) -> DataType:
        if flatten:
            return T.ArrayType(spark_type_for(dataclasses.replace(spec, shape=(None,))), False)
        return spark_type_for(spec)

    if len(outputs) == 1:
        return one(outputs[0])
    return T.StructType([T.StructField(s.name, one(s), True) for s in outputs])


def register_udf(
    spark: SparkSession,
    name: str,
    model: Any,
    *,
    inputShape: Sequence[int] | dict[str, Sequence[int]] | None = None,
    batchSize: int = 1024,
    device: str = "auto",
    deviceId: int | None = None,
    channelOrder: str = "RGB",
    preprocessor: Preprocessor | None = None,
    flatten: bool = False,
) -> Any:
    """Register `model` as the SQL function `name` (one argument per model input) and return it.

    `model`: an ONNX file / bytes / ModelProto / OnnxModel, a Keras model or .keras / .h5 file,
    a SavedModel directory, a tf.function, or a `TFInputGraph`; TF / Keras sources are converted
    to ONNX here, once. `inputShape`: per-row shape (no batch axis) of the input, or a dict by
    input name, for models with dynamic dims. `channelOrder`: 'RGB' (Keras, most models) or
    'BGR' for image-struct arguments. `preprocessor`: file path -> image array, for path or
    image arguments. `flatten`: return each row's output as one flat array. One output gives
    an array column; several give a struct with one field per output.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a SQL function name must be an identifier like 'my_model'; got {name!r}")
    if channelOrder not in CHANNEL_ORDERS:
        raise ValueError(f"channelOrder must be one of {CHANNEL_ORDERS}; got {channelOrder!r}")
    if preprocessor is not None and not callable(preprocessor):
        raise TypeError(
            f"preprocessor must be a function (file path -> image array), got "
            f"{type(preprocessor).__name__}"
        )
    if not isinstance(batchSize, int) or batchSize <= 0:
        raise ValueError(f"batchSize must be a positive integer; got {batchSize!r}")
    onnx_model = _resolve_model(model)
    specs = _input_specs(onnx_model, inputShape)
    outputs = tuple(
        OutputColumn(
            s.name, s.name, spark_output_dtype(s.dtype).name, 2 if flatten else (s.rank or 1)
        )
        for s in onnx_model.outputs
    )
    return_type = _return_type(onnx_model.outputs, flatten)
    plan = InferencePlan(
        model=ship_model(spark, onnx_model),
        inputs=tuple((f"argument {i + 1}", s) for i, s in enumerate(specs)),
        outputs=outputs,
        batch_size=batchSize,
        device=validate_device(device, deviceId),
        device_id=deviceId,
        allow_cast=True,
    )
    udf = _pandas_udf(UdfSpec(plan, flatten, channelOrder, preprocessor), return_type)
    spark.udf.register(name, udf)
    logger.info(
        "registered SQL function %s(%s) -> %s for model %s",
        name,
        ", ".join(s.name for s in specs),
        return_type.simpleString(),
        onnx_model.sha256[:12],
    )
    return udf


def _pandas_udf(spec: UdfSpec, return_type: DataType) -> Any:
    """A scalar-iterator pandas UDF over `predict_batches`; the closure holds `spec` only."""
    from pyspark.sql.functions import pandas_udf

    if len(spec.plan.inputs) == 1:

        def predict(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
            return predict_batches(spec, ((b,) for b in batches))

    else:

        def predict(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:  # type: ignore[misc]
            return predict_batches(spec, batches)

    return pandas_udf(predict, return_type)  # type: ignore[call-overload]


def registerKerasImageUDF(
    udf_name: str,
    keras_model_or_file_path: Any,
    preprocessor: Preprocessor | None = None,
    *,
    spark: SparkSession | None = None,
    batchSize: int = 64,
    device: str = "auto",
) -> Any:
    """sparkdl's image UDF: a Keras model (object or .keras / .h5 path) as the SQL function
    `udf_name` on an image-struct column, returning each row's output as a flat float array.

    Images are resized to the model's input size and given as RGB. With `preprocessor` (a file
    path -> image array function, as in Keras workflows), each image is written to a temporary
    PNG and loaded with it; a string column of file paths is passed to it directly.
    """
    from sparkonnx.converters import from_keras

    result = from_keras(keras_model_or_file_path)
    if result.parity is not None:
        logger.info("registerKerasImageUDF %s: %s", udf_name, result.parity.summary())
    return register_udf(
        active_session(spark, "pass spark=... to registerKerasImageUDF"),
        udf_name,
        result.model,
        batchSize=batchSize,
        device=device,
        preprocessor=preprocessor,
        flatten=True,
    )


# --------------------------------------------------------------------------- executor side


def predict_batches(
    spec: UdfSpec, batches: Iterator[tuple[pd.Series | pd.DataFrame, ...]]
) -> Iterator[pd.Series | pd.DataFrame]:
    """The UDF body: the worker's cached session, then one pandas result per batch."""
    session = None
    for args in batches:
        if session is None:
            session = session_for(spec.plan)
        yield _predict(spec, session, args)


def _predict(spec: UdfSpec, session: Any, args: tuple[pd.Series | pd.DataFrame, ...]) -> Any:
    n = len(args[0])
    valid = np.ones(n, dtype=bool)
    for arg in args:
        valid &= ~_invalid_rows(arg)
    results: dict[str, np.ndarray] = {}
    if valid.any():
        feeds = {}
        for (label, tensor_spec), arg in zip(spec.plan.inputs, args, strict=True):
            rows = arg[valid] if not valid.all() else arg
            feeds[tensor_spec.name] = _to_tensor(spec, label, tensor_spec, rows)
        results = session.run(feeds, spec.plan.batch_size, [o.output for o in spec.plan.outputs])
    columns = [_to_pandas(spec, o, results.get(o.output), valid) for o in spec.plan.outputs]
    if len(columns) == 1:
        return columns[0]
    return pd.DataFrame({o.output: c for o, c in zip(spec.plan.outputs, columns, strict=True)})


def _is_image(arg: pd.Series | pd.DataFrame) -> bool:
    return isinstance(arg, pd.DataFrame) and set(IMAGE_FIELDS) <= set(arg.columns)


def _invalid_rows(arg: pd.Series | pd.DataFrame) -> np.ndarray:
    """Rows that give a null result: null values, null or undecodable (mode -1) images."""
    if _is_image(arg):
        mode = pd.to_numeric(arg["mode"], errors="coerce")
        return np.asarray(arg["data"].isna() | mode.isna() | (mode == -1), dtype=bool)
    if isinstance(arg, pd.DataFrame):
        raise TensorConversionError(
            f"a struct argument with fields {list(arg.columns)} is not an image struct "
            f"(fields {list(IMAGE_FIELDS)}); pass arrays of numbers or image structs"
        )
    return np.asarray(arg.isna(), dtype=bool)


def _to_tensor(
    spec: UdfSpec, label: str, tensor_spec: TensorSpec, arg: pd.Series | pd.DataFrame
) -> np.ndarray:
    if spec.preprocessor is not None and (_is_image(arg) or _is_strings(arg)):
        arrays = [spec.preprocessor(p) for p in _paths(arg)]
        return _image_tensor(np.stack([np.asarray(a) for a in arrays]), tensor_spec, "RGB")
    if _is_image(arg):
        return _images_to_tensor(arg, tensor_spec, spec.channel_order)
    if _is_strings(arg):
        raise TensorConversionError(
            f"{label} is a string column; file paths need preprocessor=<path -> image array> "
            "(registerKerasImageUDF / register_udf), or read the files with read_images"
        )
    column = pa.array(arg, from_pandas=True)
    return column_to_tensor(column, label, tensor_spec, allow_cast=True)


def _is_strings(arg: pd.Series | pd.DataFrame) -> bool:
    return isinstance(arg, pd.Series) and len(arg) > 0 and isinstance(arg.iloc[0], str)


def _struct_array(frame: pd.DataFrame) -> pa.StructArray:
    types = {"origin": pa.string(), "data": pa.binary()}
    arrays = [
        pa.array(frame[f].tolist(), type=types.get(f, pa.int32()), from_pandas=True)
        for f in IMAGE_FIELDS
    ]
    return pa.StructArray.from_arrays(arrays, names=list(IMAGE_FIELDS))


def _image_size(tensor_spec: TensorSpec) -> tuple[tuple[int, int] | None, int | None, bool]:
    """(height, width) if static, channels if static, and whether the input is NCHW."""
    shape = tensor_spec.shape
    if shape is None or len(shape) != 4:
        raise TensorConversionError(
            f"image arguments need a rank-4 model input (NHWC or NCHW); model input "
            f"{tensor_spec.describe()} is not one"
        )
    nchw = shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4)
    h, w, c = (shape[2], shape[3], shape[1]) if nchw else (shape[1], shape[2], shape[3])
    size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
    return size, (c if isinstance(c, int) else None), nchw


def _image_tensor(batch: np.ndarray, tensor_spec: TensorSpec, order: str) -> np.ndarray:
    """(n, h, w[, c]) images, channels already in the model's order, as the model's input."""
    if batch.ndim == 3:
        batch = batch[..., np.newaxis]
    if batch.ndim == 5 and batch.shape[1] == 1:  # preprocessors that return (1, h, w, c)
        batch = batch[:, 0]
    _size, _channels, nchw = _image_size(tensor_spec)
    if nchw:
        batch = batch.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(batch, dtype=tensor_spec.dtype)


def _images_to_tensor(frame: pd.DataFrame, tensor_spec: TensorSpec, order: str) -> np.ndarray:
    size, channels, _nchw = _image_size(tensor_spec)
    images = image_structs_to_batch(_struct_array(frame), size=size, channels=channels).array
    if order == "RGB" and images.shape[-1] in (3, 4):  # structs are BGR(A)
        images = np.concatenate([images[..., 2::-1], images[..., 3:]], axis=-1)
    return _image_tensor(images, tensor_spec, order)


def _paths(arg: pd.Series | pd.DataFrame) -> Iterator[str]:
    """Local file paths: the strings themselves, or each image spilled to a temporary PNG."""
    if not _is_image(arg):
        for text in arg:
            parts = urlsplit(text)
            yield unquote(parts.path) if parts.scheme == "file" else text
        return
    from PIL import Image

    images = image_structs_to_batch(_struct_array(arg)).array
    with tempfile.TemporaryDirectory(prefix="sparkonnx-udf-") as tmp:
        for i, image in enumerate(images):
            if image.dtype != np.uint8:
                raise TensorConversionError(
                    f"preprocessor: image row {i} has {image.dtype} samples; only 8-bit images "
                    "can be written to PNG for the preprocessor"
                )
            rgb = image[..., 2::-1] if image.shape[-1] >= 3 else image[..., 0]
            if image.shape[-1] == 4:
                rgb = np.concatenate([rgb, image[..., 3:]], axis=-1)
            path = os.path.join(tmp, f"{i}.png")
            Image.fromarray(np.ascontiguousarray(rgb)).save(path, format="PNG")
            yield path


def _to_pandas(
    spec: UdfSpec, out: OutputColumn, tensor: np.ndarray | None, valid: np.ndarray
) -> pd.Series:
    n = len(valid)
    if tensor is None:
        values = pa.nulls(n, out.arrow_type)
    else:
        tensor = tensor.astype(out.dtype, copy=False)
        if spec.flatten:
            tensor = tensor.reshape(len(tensor), -1)
        values = tensor_to_arrow(tensor)
        if not valid.all():
            index = np.cumsum(valid) - 1
            values = values.take(pa.array(index, mask=~valid))
    return values.to_pandas()
