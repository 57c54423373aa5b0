"""How a model stage adds its output columns: one iterator Arrow UDF (pyspark >= 4.1), or
`mapInArrow` on older pyspark.

With the Arrow UDF only the model's input columns go to Python and only its outputs come back;
Spark keeps every other column and the row order on the JVM side. `mapInArrow` sends every
column both ways.
"""

from __future__ import annotations

from functools import partial

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparkonnx.spark_api.runtime.executor import InferencePlan, run_columns, run_partition
from sparkonnx.spark_api.session import python_udf


def add_model_columns(dataset: DataFrame, plan: InferencePlan, schema: T.StructType) -> DataFrame:
    """`dataset` with the plan's output columns appended (`schema`: dataset's fields + them)."""
    if arrow_udf_supported():
        return with_output_columns(dataset, plan, schema)
    return dataset.mapInArrow(partial(run_partition, plan), schema)


#: A struct column name no DataFrame is expected to hold (multi-output models, briefly).
_OUTPUTS_COLUMN = "__sparkonnx_outputs__"


def arrow_udf_supported() -> bool:
    """True when pyspark has iterator Arrow UDFs (4.1+), the fast path of ONNXTransformer."""
    from pyspark.util import PythonEvalType

    return hasattr(PythonEvalType, "SQL_SCALAR_ARROW_ITER_UDF")


def _quoted(column: str) -> str:
    """A column name as a reference Spark will not split on dots."""
    return "`" + column.replace("`", "``") + "`"


def with_output_columns(dataset: DataFrame, plan: InferencePlan, schema: T.StructType) -> DataFrame:
    """`dataset` with the model outputs appended, through one iterator Arrow UDF.

    Unlike `mapInArrow`, only the input columns go to Python and only the outputs come back;
    Spark keeps the other columns (and the row order) on the JVM side. A multi-output model
    returns one struct, split into its columns (the UDF runs once per row either way).
    """
    fields = schema.fields[len(dataset.schema.fields) :]
    return_type: T.DataType = fields[0].dataType if len(fields) == 1 else T.StructType(fields)
    from pyspark.util import PythonEvalType

    eval_type = PythonEvalType.SQL_SCALAR_ARROW_ITER_UDF
    udf = python_udf(dataset, partial(run_columns, plan), return_type, eval_type)
    columns = [column for column, _ in plan.inputs]
    if plan.row_id_column is not None:  # passed last, only to name rows in errors
        columns.append(plan.row_id_column)
    call = udf(*(_quoted(column) for column in columns))  # names: classic or Connect
    if len(fields) == 1:
        return dataset.withColumn(fields[0].name, call)
    if _OUTPUTS_COLUMN in dataset.columns:
        raise ValueError(f"the DataFrame already has a column named {_OUTPUTS_COLUMN!r}")
    packed = dataset.withColumn(_OUTPUTS_COLUMN, call)
    outputs = {f.name: packed[_OUTPUTS_COLUMN].getField(f.name) for f in fields}
    return packed.withColumns(outputs).drop(_OUTPUTS_COLUMN)
