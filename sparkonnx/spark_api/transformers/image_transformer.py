"""ImageTransformer: an ONNX model applied to an image column (sparkdl's TFImageTransformer,
which also takes a TF graph, is in `tf_image_transformer`).

The image column holds Spark's image struct (from :func:`sparkonnx.read_images`,
``spark.read.format("image")`` or ``readImagesWithCustomFn``). On the executors each Arrow batch
of structs becomes one input tensor without per-row Python work when the images already have
the model's size (otherwise Pillow resizes them one by one): resized, channels reordered (BGR
structs to RGB unless told otherwise), laid out NHWC or NCHW, cast and scaled, see
:mod:`sparkonnx.engine.image_preprocess`. The output is a vector (array or Spark ML vector) or,
with ``outputMode='image'``, an image struct again.

A row whose image is null or undecodable (mode -1) is kept: its output is null (with the reason
in ``errorCol`` when set), or, with ``handleInvalid='error'``, the task fails naming the row.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import partial
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from typing_extensions import Self

from sparkonnx.engine.image_preprocess import (
    ImagePreprocessing,
    resolve_preprocessing,
)
from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.engine.providers import validate_device
from sparkonnx.spark_api.images.reading import IMAGE_STRUCT_TYPE, require_image_column
from sparkonnx.spark_api.params import (
    HasInputCol,
    HasModelFile,
    HasOutputCol,
    HasPrecision,
    HasRowIdCol,
    HasRuntimeOptions,
)
from sparkonnx.spark_api.persistence import HoldsOnnxModel, ModelLike
from sparkonnx.spark_api.runtime.arrow_udf_path import add_model_columns
from sparkonnx.spark_api.runtime.executor import InferencePlan, OutputColumn
from sparkonnx.spark_api.runtime.executor_facts import ready_plan
from sparkonnx.spark_api.runtime.image_executor import (
    ImageOutput,
    VectorOutput,
    prepare_images,
)
from sparkonnx.spark_api.runtime.model_ref import ModelRef
from sparkonnx.spark_api.session import array_to_vector, sql_functions
from sparkonnx.spark_api.shipping import ship_model
from sparkonnx.spark_api.transformers.image_params import (
    HasImageOutput,
    HasImagePreprocessing,
    HasMaxPixels,
)
from sparkonnx.spark_api.transformers.stage_cache import precision_model, pruned_model
from sparkonnx.spark_api.types import spark_output_dtype, spark_type_for

logger = logging.getLogger(__name__)

__all__ = ["ImageTransformer"]


# --------------------------------------------------------------------------- driver side


def pick(specs: tuple[TensorSpec, ...], name: str | None, kind: str, param: str) -> TensorSpec:
    """The spec called ``name``, or the only one; errors list the names to choose from."""
    if name is not None:
        for spec in specs:
            if name in (spec.name, f"{spec.name}:0") or spec.name == f"{name}:0":
                return spec
        raise ValueError(
            f"the model has no {kind} named {name!r}; its {kind}s are "
            f"{[s.describe() for s in specs]}"
        )
    if len(specs) != 1:
        raise ValueError(
            f"the model has {len(specs)} {kind}s {[s.describe() for s in specs]}; choose one "
            f"with {param}='<name>'"
        )
    return specs[0]


def output_column(
    spec: TensorSpec,
    column: str,
    mode: str,
    *,
    layout: str,
    channel_order: str,
    origin_column: str | None,
) -> tuple[OutputColumn, T.DataType]:
    """The executor-side output description and the Spark type of its column."""
    if spec.rank is None:
        raise ValueError(
            f"model output {spec.describe()} has an unknown rank; re-export it with shapes"
        )
    if mode == "image":
        if spec.rank not in (3, 4) or spec.dtype.kind not in "fu" or spec.dtype.itemsize > 8:
            raise ValueError(
                f"outputMode='image' needs an image output (rank 3 or 4, uint8 / uint16 / float), "
                f"but model output is {spec.describe()}; use outputMode='vector'"
            )
        if spec.dtype.kind == "u" and spec.dtype.name not in ("uint8", "uint16"):
            raise ValueError(f"image outputs must be uint8, uint16 or float, got {spec.describe()}")
        out = ImageOutput(
            spec.name, column, spec.dtype.name, spec.rank, layout, channel_order, origin_column
        )
        return out, IMAGE_STRUCT_TYPE
    dtype = spark_output_dtype(spec.dtype)
    flat = TensorSpec(spec.name, dtype, ("N", None))
    return VectorOutput(spec.name, column, dtype.name, 2), spark_type_for(flat)


def _to_tensor_name(value: Any) -> str:
    """A tensor name; TF tensors / operations (sparkdl took those) give their name."""
    if hasattr(value, "graph") and isinstance(getattr(value, "name", None), str):
        return str(value.name)
    return TypeConverters.toString(value)


class ImageModelBase(
    HoldsOnnxModel,
    Transformer,
    HasInputCol,
    HasOutputCol,
    HasModelFile,
    HasImageOutput,
    HasRuntimeOptions,
    HasRowIdCol,
):
    """What the image transformers share: the model, output Params and running the plan."""

    #: outputMode / outputFormat when neither is set ('vector' on sparkdl's stages).
    _default_output = "array"

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(
            batchSize=64,
            device="auto",
            outputFormat=self._default_output,
            outputMode=self._default_output,
            handleInvalid="keep",
        )

    def _no_model_message(self) -> str:
        return f"{type(self).__name__} has no model: pass modelFile='path' or model=..."

    # -- running ---------------------------------------------------------------------------
    def _new_columns(self, schema: T.StructType, out_type: T.DataType) -> T.StructType:
        fields = list(schema.fields)
        new = [(self.getOutputCol(), out_type)]
        error_col = self.getErrorCol()
        if error_col is not None:
            new.append((error_col, T.StringType()))
        names = [n for n, _ in new]
        for name in names:
            if name in schema.fieldNames() or names.count(name) > 1:
                raise ValueError(
                    f"output column {name!r} already exists (columns: {schema.fieldNames()} and "
                    f"{names}); choose another outputCol / errorCol or drop it first"
                )
        return T.StructType(fields + [T.StructField(n, t, True) for n, t in new])

    def _run(
        self,
        dataset: DataFrame,
        model: OnnxModel,
        plan: InferencePlan,
        schema: T.StructType,
    ) -> DataFrame:
        plan = dataclasses.replace(plan, model=ship_model(dataset.sparkSession, model))
        plan = ready_plan(dataset.sparkSession, plan, type(self).__name__)
        result = add_model_columns(dataset, plan, schema)  # only the image column goes to Python
        if self.getOutputMode() == "vector":
            F = sql_functions(dataset)
            col = F.col(self.getOutputCol())  # array_to_vector fails on nulls: keep them null
            vector = F.when(col.isNull(), F.lit(None)).otherwise(array_to_vector(dataset)(col))
            result = result.withColumn(self.getOutputCol(), vector)
        return result

    def _plan_base(self, model: OnnxModel, columns: list[str] | None = None) -> InferencePlan:
        return InferencePlan(
            row_id_column=self._checked_row_id_col(columns or []),
            model=ModelRef(model.sha256),  # replaced by the shipped reference in _run
            inputs=(),
            outputs=(),
            batch_size=self.getBatchSize(),
            device=validate_device(self.getDevice(), self.getDeviceId()),
            device_id=self.getDeviceId(),
        )


class ImageTransformer(ImageModelBase, HasImagePreprocessing, HasPrecision, HasMaxPixels):
    """Applies an ONNX model (or one converted from TF / Keras) to an image-struct column.

    - ``inputCol``: image structs (``read_images``, ``spark.read.format("image")``, ...).
    - ``model`` / ``modelFile``: the model; ``inputTensor`` / ``outputTensor`` pick the image
      input and the output when it has several.
    - Preprocessing Params (``inputSize``, ``channelOrder``, ``layout``, ``scale``, ``mean``,
      ``std``, ``resample``) win over the model's stored spec (metadata
      ``sparkonnx.preprocessing``), which wins over its input shape; the dtype is the input's.
    - ``outputMode``: each row's output flattened, as 'array' (default) or 'vector' (a Spark ML
      DenseVector), or 'image' (an image struct, channels back in BGR order, origin kept);
      ``outputFormat`` 'array' / 'vector' is the same choice (see `HasImageOutput`).
    - ``handleInvalid`` 'keep' (null output for null / undecodable images) or 'error';
      ``errorCol`` adds the reason per row. Every input column and row is kept.
    - ``maxPixels`` (default 50 M): a bigger image is an invalid row, never resized.
    - ``precision`` 'int8' / 'int8-dynamic' / 'fp16': runs a gated lower-precision copy of the
      model (only the output kept), calibrated on preprocessed images sampled from the
      DataFrame (see `sparkonnx.spark_api.precision`).
    """

    inputTensor: Param[str] = Param(
        Params._dummy(),
        "inputTensor",
        "name of the model's image input (a tf.Tensor is taken by its name)",
        _to_tensor_name,
    )
    outputTensor: Param[str] = Param(
        Params._dummy(),
        "outputTensor",
        "name of the model output to keep (a tf.Tensor is taken by its name)",
        _to_tensor_name,
    )

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        model: ModelLike | None = None,
        modelFile: str | None = None,
        inputTensor: str | None = None,
        outputTensor: str | None = None,
        outputMode: str = "array",
        channelOrder: str | None = None,
        layout: str | None = None,
        inputSize: list[int] | None = None,
        scale: float | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        resample: str | None = None,
        handleInvalid: str = "keep",
        errorCol: str | None = None,
        maxPixels: int | None = None,
        rowIdCol: str | None = None,
        batchSize: int = 64,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "array",
        precision: str = "fp32",
        calibrationPath: str | None = None,
        calibrationRows: int = 128,
        calibrationSeed: int = 0,
        precisionTolerance: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._set_init_kwargs(self._input_kwargs)  # type: ignore[attr-defined]

    def getInputTensor(self) -> str | None:
        return self.getOrDefault(self.inputTensor) if self.isDefined(self.inputTensor) else None

    def getOutputTensor(self) -> str | None:
        return self.getOrDefault(self.outputTensor) if self.isDefined(self.outputTensor) else None

    def setInputTensor(self, value: str) -> Self:
        return self._set(inputTensor=value)

    def setOutputTensor(self, value: str) -> Self:
        return self._set(outputTensor=value)

    def preprocessing(self) -> ImagePreprocessing:
        """The preprocessing the model's image input gets (Params > metadata > input shape)."""
        model = self.getModel()
        spec = pick(model.inputs, self.getInputTensor(), "input", "inputTensor")
        if len(model.inputs) > 1:
            raise ValueError(
                f"the model has {len(model.inputs)} inputs {[s.describe() for s in model.inputs]}"
                "; ImageTransformer feeds one image input. Use ONNXTransformer for the others"
            )
        from sparkonnx.converters.metadata import preprocessing_of

        try:
            return resolve_preprocessing(
                spec, preprocessing_of(model), self.preprocessingOverrides()
            )
        except ValueError as exc:
            raise ValueError(f"ImageTransformer on column {self.getInputCol()!r}: {exc}") from exc

    def _transform(self, dataset: DataFrame) -> DataFrame:
        column = self.getInputCol()
        require_image_column(dataset.schema, column)
        model = self.getModel()
        pre = self.preprocessing()
        in_spec = pick(model.inputs, self.getInputTensor(), "input", "inputTensor")
        out_spec = pick(model.outputs, self.getOutputTensor(), "output", "outputTensor")
        out, out_type = output_column(
            out_spec,
            self.getOutputCol(),
            self.getOutputMode(),
            layout=pre.layout,
            channel_order=pre.channel_order,
            origin_column=column,
        )
        schema = self._new_columns(dataset.schema, out_type)
        model = self._precision_model(model, dataset, in_spec, out_spec, pre)
        prepare = partial(
            prepare_images,
            column,
            in_spec.name,
            pre,
            self.getHandleInvalid() == "error",
            self.getErrorCol(),
            max_pixels=self.getMaxPixels(),
        )
        plan = dataclasses.replace(
            self._plan_base(model, dataset.columns),
            inputs=((column, in_spec),),
            outputs=(out,),
            prepare=prepare,
        )
        logger.info("ImageTransformer on %r: %s", column, pre)
        return self._run(dataset, model, plan, schema)

    def _precision_model(
        self,
        model: OnnxModel,
        dataset: DataFrame,
        in_spec: TensorSpec,
        out_spec: TensorSpec,
        pre: ImagePreprocessing,
    ) -> OnnxModel:
        """`model`, or for precision 'int8' / 'fp16' its gated form with only the used output."""
        if self.getPrecision() == "fp32":
            return model
        from sparkonnx.spark_api.precision import image_sampling

        pruned = pruned_model(model, [out_spec.name])
        sampling = image_sampling(self.getInputCol(), in_spec.name, pre)
        return precision_model(self, pruned, dataset, sampling, self.getDevice())
