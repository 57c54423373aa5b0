"""Spark SQL types <-> tensor dtypes and ranks, and the driver-side column checks."""

from __future__ import annotations

import numpy as np
from pyspark.sql import types as T

from sparkonnx.engine.model import TensorSpec
from sparkonnx.engine.tensors import TensorConversionError

_SPARK_OF_NUMPY: dict[str, T.DataType] = {
    "float32": T.FloatType(),
    "float64": T.DoubleType(),
    "float16": T.FloatType(),  # widened: Spark has no half type
    "int8": T.ByteType(),
    "int16": T.ShortType(),
    "int32": T.IntegerType(),
    "int64": T.LongType(),
    "uint8": T.ShortType(),  # widened: Spark has no unsigned types
    "uint16": T.IntegerType(),
    "uint32": T.LongType(),
    "bool": T.BooleanType(),
}
_NUMPY_OF_SPARK: dict[type, str] = {
    T.FloatType: "float32",
    T.DoubleType: "float64",
    T.ByteType: "int8",
    T.ShortType: "int16",
    T.IntegerType: "int32",
    T.LongType: "int64",
    T.BooleanType: "bool",
}


def spark_output_dtype(dtype: np.dtype) -> np.dtype:
    """The numpy dtype a model output is cast to so that Spark can hold it."""
    spark_type = _SPARK_OF_NUMPY.get(np.dtype(dtype).name)
    if spark_type is None:
        raise TypeError(
            f"model outputs of type {np.dtype(dtype).name} cannot become a Spark column"
        )
    return np.dtype(_NUMPY_OF_SPARK[type(spark_type)])


def spark_type_for(spec: TensorSpec) -> T.DataType:
    """Spark type of an output column: the element type nested in rank-1 arrays."""
    if spec.rank is None:
        raise TypeError(
            f"model output {spec.name!r} has an unknown rank; re-export the model with a static "
            "output rank (e.g. run onnx.shape_inference) to use it from Spark"
        )
    result: T.DataType = _SPARK_OF_NUMPY[spark_output_dtype(spec.dtype).name]
    for _ in range(max(spec.rank - 1, 0)):
        result = T.ArrayType(result, containsNull=False)
    return result


def _element_of(dataType: T.DataType) -> tuple[np.dtype | None, int]:
    """(numpy element dtype or None, array depth) of a Spark column type."""
    depth = 0
    while isinstance(dataType, T.ArrayType):
        dataType = dataType.elementType
        depth += 1
    if isinstance(dataType, T.UserDefinedType) and dataType.simpleString() == "vector":
        return np.dtype("float64"), depth + 1
    name = _NUMPY_OF_SPARK.get(type(dataType))
    return (np.dtype(name) if name else None), depth


def check_input_column(
    schema: T.StructType, column: str, spec: TensorSpec, allow_cast: bool
) -> None:
    """Fail on the driver, before any job, when `column` cannot feed model input `spec`."""
    if column not in schema.fieldNames():
        raise ValueError(
            f"input column {column!r} (for model input {spec.name!r}) is not in the DataFrame; "
            f"its columns are: {', '.join(schema.fieldNames())}"
        )
    dataType = schema[column].dataType
    element, depth = _element_of(dataType)
    expected = f"{spec.describe()}"
    if element is None:
        raise TensorConversionError(
            f"column {column!r} has type {dataType.simpleString()}, which cannot feed model input "
            f"{expected}; use a numeric column, an array (of arrays) of numbers, or a Spark ML "
            "vector"
        )
    if element != spec.dtype and not allow_cast and not np.can_cast(element, spec.dtype, "safe"):
        raise TensorConversionError(
            f"column {column!r} has type {dataType.simpleString()} but model input {expected} "
            f"wants {spec.dtype.name}; {element.name} -> {spec.dtype.name} can lose information. "
            f"Cast the column (e.g. col({column!r}).cast('array<float>')) or set allowCast=True"
        )
    rank = spec.rank
    if rank is not None and depth > max(rank - 1, 0) and not (rank <= 1 and depth == 1):
        raise TensorConversionError(
            f"column {column!r} has type {dataType.simpleString()} ({depth} levels of arrays) but "
            f"model input {expected} has rank {rank}"
        )
