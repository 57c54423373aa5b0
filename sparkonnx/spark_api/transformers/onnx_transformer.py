"""ONNXTransformer: any ONNX model applied to tensor columns of a DataFrame."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.sql import DataFrame
from pyspark.sql import types as T

from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.engine.providers import validate_device
from sparkonnx.engine.tensors import TensorConversionError
from sparkonnx.spark_api.params import (
    HasInputCol,
    HasModelFile,
    HasOutputCol,
    HasPrecision,
    HasRowIdCol,
    HasRuntimeOptions,
    HasTensorMappings,
    HasTensorOutputOptions,
)
from sparkonnx.spark_api.persistence import HoldsOnnxModel, ModelLike
from sparkonnx.spark_api.runtime.arrow_udf_path import add_model_columns
from sparkonnx.spark_api.runtime.executor import InferencePlan, OutputColumn
from sparkonnx.spark_api.runtime.executor_facts import ready_plan
from sparkonnx.spark_api.runtime.model_ref import ModelRef
from sparkonnx.spark_api.session import array_to_vector
from sparkonnx.spark_api.shipping import ship_model
from sparkonnx.spark_api.transformers.stage_cache import precision_model
from sparkonnx.spark_api.types import check_input_column, spark_output_dtype, spark_type_for

logger = logging.getLogger(__name__)


class TensorModelBase(
    HoldsOnnxModel, Transformer, HasRuntimeOptions, HasTensorOutputOptions, HasRowIdCol
):
    """Runs a model on tensor columns; subclasses say where the model comes from and which
    columns feed which inputs (`_mappings`). ONNXTransformer, KerasTransformer, TFTransformer.
    A row that cannot be converted fails the task naming its partition, its position there
    and, with ``rowIdCol``, that column's value.
    """

    _input_kwargs: dict[str, Any]  # set by pyspark's @keyword_only

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(batchSize=1024, device="auto", outputFormat="array", allowCast=False)

    def _mappings(self, model: OnnxModel) -> tuple[dict[str, str], dict[str, str]]:
        """({column: input name}, {output name: column}) from the Params and the model."""
        raise NotImplementedError

    def _plan(self, schema: T.StructType, model: OnnxModel) -> tuple[InferencePlan, T.StructType]:
        inputs, outputs = self._mappings(model)
        allow_cast = self.getAllowCast()
        input_specs = []
        for column, input_name in inputs.items():
            spec = model.input(input_name)
            _check_input(schema, column, spec, allow_cast)
            input_specs.append((column, spec))
        out_fields = list(schema.fields)
        out_columns = []
        for output_name, column in outputs.items():
            spec = model.output(output_name)
            if column in schema.fieldNames():
                raise ValueError(
                    f"output column {column!r} already exists in the DataFrame; choose another "
                    "outputCol / outputMapping column or drop it first"
                )
            out_fields.append(T.StructField(column, spark_type_for(spec), nullable=False))
            out_columns.append(
                OutputColumn(spec.name, column, spark_output_dtype(spec.dtype).name, spec.rank or 1)
            )
        if self.getOutputFormat() == "vector":
            for out in out_columns:
                if out.rank != 2:
                    raise ValueError(
                        f"outputFormat='vector' needs rank-2 outputs ([N, k]); output "
                        f"{out.output!r} has rank {out.rank}"
                    )
        device = validate_device(self.getDevice(), self.getDeviceId())
        plan = InferencePlan(
            model=ModelRef(model.sha256),  # replaced by the shipped reference in _transform
            inputs=tuple(input_specs),
            outputs=tuple(out_columns),
            batch_size=self.getBatchSize(),
            device=device,
            device_id=self.getDeviceId(),
            allow_cast=allow_cast,
            row_id_column=self._checked_row_id_col(schema.fieldNames()),
        )
        return plan, T.StructType(out_fields)

    def _precision_model(
        self, model: OnnxModel, plan: InferencePlan, dataset: DataFrame
    ) -> OnnxModel:
        """Hook: the model to run, e.g. its gated int8 / fp16 form; `model` by default."""
        return model

    def _transform(self, dataset: DataFrame) -> DataFrame:
        model = self.getModel()
        plan, schema = self._plan(dataset.schema, model)
        model = self._precision_model(model, plan, dataset)
        spark = dataset.sparkSession
        plan = dataclasses.replace(plan, model=ship_model(spark, model))
        plan = ready_plan(spark, plan, type(self).__name__)
        result = add_model_columns(dataset, plan, schema)
        if self.getOutputFormat() == "vector":
            to_vector = array_to_vector(dataset)
            for out in plan.outputs:
                result = result.withColumn(out.column, to_vector(result[out.column]))
        return result


class ONNXTransformer(
    TensorModelBase,
    HasInputCol,
    HasOutputCol,
    HasModelFile,
    HasTensorMappings,
    HasPrecision,
):
    """Runs an ONNX model on executors with ONNX Runtime, one output column per model output.

    One-in one-out models take `inputCol` / `outputCol`; otherwise give `inputMapping`
    {column: model input} and `outputMapping` {model output: column}. The model is `modelFile`
    (a path the driver can read) or `model` (bytes, an `onnx.ModelProto` or an `OnnxModel`).
    Every input column and the row order are kept. `precision` 'int8' / 'int8-dynamic' /
    'fp16' runs a gated lower-precision copy of the model (see `sparkonnx.spark_api.precision`).
    """

    @keyword_only
    def __init__(
        self,
        *,
        model: ModelLike | None = None,
        modelFile: str | None = None,
        inputCol: str | None = None,
        outputCol: str | None = None,
        inputMapping: dict[str, str] | None = None,
        outputMapping: dict[str, str] | None = None,
        batchSize: int = 1024,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "array",
        allowCast: bool = False,
        precision: str = "fp32",
        calibrationPath: str | None = None,
        calibrationRows: int = 128,
        calibrationSeed: int = 0,
        precisionTolerance: dict[str, float] | None = None,
        rowIdCol: str | None = None,
    ) -> None:
        super().__init__()
        self._set_init_kwargs(self._input_kwargs)

    def _mappings(self, model: OnnxModel) -> tuple[dict[str, str], dict[str, str]]:
        if self.isDefined(self.inputMapping):
            inputs = self.getInputMapping()
        elif self.isSet(self.inputCol):
            inputs = column_inputs(
                model, self.getInputCol(), "use inputMapping={column: input name}"
            )
        else:
            raise ValueError("set inputCol (one-input models) or inputMapping {column: input name}")
        if self.isDefined(self.outputMapping):
            outputs = self.getOutputMapping()
        else:
            outputs = column_outputs(
                model,
                self.getOutputCol(),
                "use outputMapping={output name: column} to choose which to keep and their columns",
            )
        check_inputs_fed(model, inputs)
        return inputs, outputs

    def _precision_model(
        self, model: OnnxModel, plan: InferencePlan, dataset: DataFrame
    ) -> OnnxModel:
        if self.getPrecision() == "fp32":
            return model
        from sparkonnx.spark_api.precision import tensor_sampling

        sampling = tensor_sampling(dict(plan.inputs), plan.allow_cast)
        return precision_model(self, model, dataset, sampling, plan.device)


def column_inputs(model: OnnxModel, column: str, fix: str) -> dict[str, str]:
    """{column: the model's only input}; with several inputs an error naming them and `fix`."""
    if len(model.inputs) != 1:
        names = ", ".join(repr(s.name) for s in model.inputs)
        raise ValueError(
            f"inputCol is set but the model has {len(model.inputs)} inputs ({names}); {fix}"
        )
    return {column: model.inputs[0].name}


def column_outputs(model: OnnxModel, column: str, fix: str) -> dict[str, str]:
    """{the model's only output: column}; with several outputs an error naming them and `fix`."""
    if len(model.outputs) != 1:
        names = ", ".join(repr(s.name) for s in model.outputs)
        raise ValueError(f"the model has {len(model.outputs)} outputs ({names}); {fix}")
    return {model.outputs[0].name: column}


def check_inputs_fed(model: OnnxModel, inputs: dict[str, str]) -> None:
    """Every model input is fed by a column of `inputs` ({column: input name})."""
    fed = {model.input(v).name for v in inputs.values()}
    missing = [s.name for s in model.inputs if s.name not in fed]
    if missing:
        raise ValueError(
            f"model inputs {missing} are not fed by any column; inputMapping is {inputs}, "
            f"the model needs {[s.name for s in model.inputs]}"
        )


def _check_input(schema: T.StructType, column: str, spec: TensorSpec, allow_cast: bool) -> None:
    """The driver-side column check; a binary column holds packed values of the input's dtype."""
    if column in schema.fieldNames() and isinstance(schema[column].dataType, T.BinaryType):
        if spec.dtype.kind not in "biuf":
            raise TensorConversionError(
                f"column {column!r} is binary (packed values) but model input {spec.describe()} "
                f"is not numeric"
            )
        return
    check_input_column(schema, column, spec, allow_cast)
