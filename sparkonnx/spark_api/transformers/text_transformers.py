"""TextEmbedder and TextTransformer: ONNX text models on a string column.

The tokenizer (a Hugging Face tokenizer.json) and the model are shipped to the executors once;
there `tokenizers` (Rust) tokenizes each Arrow batch and ONNX Runtime runs it in length
buckets (`sparkonnx.spark_api.runtime.text`). No PyTorch, no TensorFlow on the executors.
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.sql import DataFrame
from pyspark.sql import types as T
from typing_extensions import Self

from sparkonnx.engine.model import OnnxModel
from sparkonnx.engine.providers import validate_device
from sparkonnx.spark_api.params import (
    HasInputCol,
    HasModelFile,
    HasOutputCol,
    HasOutputFormat,
    HasOutputMapping,
    HasPrecision,
    HasRowIdCol,
    HasRuntimeOptions,
)
from sparkonnx.spark_api.persistence import HoldsOnnxModel
from sparkonnx.spark_api.runtime.arrow_udf_path import add_model_columns
from sparkonnx.spark_api.runtime.executor import InferencePlan, OutputColumn
from sparkonnx.spark_api.runtime.executor_facts import ready_plan
from sparkonnx.spark_api.runtime.model_ref import ModelRef
from sparkonnx.spark_api.runtime.text import TextSpec, prepare_text, run_text
from sparkonnx.spark_api.session import array_to_vector, sql_functions
from sparkonnx.spark_api.shipping import ship_bytes, ship_model
from sparkonnx.spark_api.transformers import text_plan
from sparkonnx.spark_api.transformers.text_params import HasEmbeddingOptions, HasTextOptions
from sparkonnx.spark_api.transformers.text_pooling import with_pooling
from sparkonnx.spark_api.types import spark_output_dtype, spark_type_for

ModelLike = OnnxModel | bytes | str | os.PathLike[str] | Any  # Any: onnx.ModelProto
TokenizerLike = bytes | str | os.PathLike[str] | Any  # Any: tokenizers.Tokenizer
DEFAULT_BATCH_SIZE = 64  # texts per ONNX Runtime call: attention memory grows with rows x seq^2
Planned = tuple[OnnxModel, TextSpec, list[OutputColumn], list[T.StructField]]


class _TextStage(
    HoldsOnnxModel,
    Transformer,
    HasInputCol,
    HasModelFile,
    HasTextOptions,
    HasRuntimeOptions,
    HasOutputFormat,
    HasPrecision,
    HasRowIdCol,
):
    """What both text stages share: model + tokenizer, planning, precision and the transform."""

    _input_kwargs: dict[str, Any]  # set by pyspark's @keyword_only
    #: Saved beside the model: the tokenizer.json bytes (data, read by `tokenizers`; no code).
    _ARTIFACTS = ("tokenizer",)
    #: Sort each Arrow batch's texts by length before the ORT runs (off: benchmarks only).
    _length_buckets = True

    def _init_text(self, kwargs: dict[str, Any]) -> None:
        self._tokenizer: tuple[bytes, str | None] | None = None  # (bytes, tokenizerFile then)
        self._setDefault(batchSize=DEFAULT_BATCH_SIZE, device="auto", outputFormat="array")
        kwargs = dict(kwargs)
        tokenizer = kwargs.pop("tokenizer", None)
        self._set_init_kwargs(kwargs)
        if tokenizer is not None:
            self.setTokenizer(tokenizer)

    # -- model and tokenizer ---------------------------------------------------------------
    def _no_model_message(self) -> str:
        return (
            f"{type(self).__name__} has no model: pass modelFile='model.onnx' (from optimum-cli "
            "export onnx or torch.onnx.export) or model=<bytes | onnx.ModelProto | OnnxModel>"
        )

    def _tokenizer_file(self) -> str | None:
        return self.getTokenizerFile() if self.isDefined(self.tokenizerFile) else None

    def setTokenizer(self, tokenizer: TokenizerLike) -> Self:
        """Use this tokenizer (tokenizer.json path or bytes, or a tokenizers.Tokenizer), until
        another `tokenizerFile` is set."""
        self._tokenizer = (text_plan.read_tokenizer(tokenizer), self._tokenizer_file())
        return self

    def getTokenizerBytes(self) -> bytes:
        """The tokenizer.json bytes: the ones given, else `tokenizerFile`'s (read once)."""
        path = self._tokenizer_file()
        if self._tokenizer is not None and self._tokenizer[1] == path:
            return self._tokenizer[0]
        if path is None:
            raise ValueError(
                f"{type(self).__name__} has no tokenizer: pass tokenizerFile='tokenizer.json' "
                "(the one exported with the model) or tokenizer=<tokenizers.Tokenizer>"
            )
        data = text_plan.read_tokenizer(path)
        self._tokenizer = (data, path)
        return data

    def _artifacts_for_saving(self) -> dict[str, bytes]:
        return {"tokenizer": self.getTokenizerBytes()}

    def _set_loaded_artifact(self, name: str, data: bytes) -> None:
        if name != "tokenizer":
            super()._set_loaded_artifact(name, data)
        text_plan.parse_tokenizer(data, "the saved tokenizer")  # ValueError if not one
        self._tokenizer = (data, self._tokenizer_file())

    def copy(self, extra: Any = None) -> Any:
        that = super().copy(extra)
        that._tokenizer = self._tokenizer
        return that

    # -- planning on the driver ------------------------------------------------------------
    def _outputs(self, model: OnnxModel) -> tuple[list[OutputColumn], list[T.StructField]]:
        raise NotImplementedError

    def _pooling(self) -> tuple[str | None, bool]:
        """(pooling, normalize) for the executors; None: outputs as they are."""
        return None, False

    def _plan_text(self, schema: T.StructType | None) -> Planned:
        """The model cut to the outputs used, the executors' TextSpec, outputs and new fields.

        `schema` None (a SQL function): no input column to check.
        """
        model = self.getModel()
        source = self._tokenizer_file() or "<bytes>"
        tokenizer = text_plan.parse_tokenizer(self.getTokenizerBytes(), source)
        feeds = text_plan.text_feeds(model)
        text_plan.check_vocabulary(tokenizer, model, source)
        max_length = text_plan.resolve_max_length(self.getMaxLength(), tokenizer, model)
        if not self.isDefined(self.inputCol):
            raise ValueError(f"set inputCol, the string column {type(self).__name__} reads")
        column = self.getInputCol()
        outputs, fields = self._outputs(model)
        if schema is not None:
            text_plan.check_text_column(schema, column)
            for field in fields:
                if field.name in schema.fieldNames():
                    raise ValueError(
                        f"output column {field.name!r} already exists in the DataFrame; choose "
                        "another output column or drop it first"
                    )
        pooling, normalize = self._pooling()
        spec = TextSpec(
            ModelRef(""), column, max_length, feeds, pooling, normalize, self._length_buckets
        )
        return self._pruned(model, [o.output for o in outputs]), spec, outputs, fields

    def _pruned(self, model: OnnxModel, outputs: list[str]) -> OnnxModel:
        """`model` with only `outputs` (kept per stage: cutting a large model takes a while)."""
        from sparkonnx.engine.pruning import keep_outputs

        memo: dict[tuple[str, tuple[str, ...]], OnnxModel] = self.__dict__.setdefault(
            "_pruned_models", {}
        )
        key = (model.sha256, tuple(outputs))
        if key not in memo:
            memo[key] = keep_outputs(model, outputs)
        return memo[key]

    def _gated_form(
        self, model: OnnxModel, spec: TextSpec, outputs: list[OutputColumn]
    ) -> tuple[OnnxModel, TextSpec, list[OutputColumn]]:
        """The graph the precision gate judges and the executors then run (as it is here)."""
        return model, spec, outputs

    def _precision_model(
        self, model: OnnxModel, spec: TextSpec, outputs: list[OutputColumn], dataset: DataFrame
    ) -> tuple[OnnxModel, TextSpec, list[OutputColumn]]:
        """The gated int8 / fp16 form of `model` when `precision` asks for one, with the
        TextSpec and outputs the executors run it with."""
        if self.getPrecision() == "fp32":
            return model, spec, outputs
        from sparkonnx.spark_api.precision import resolve_precision

        model, spec, outputs = self._gated_form(model, spec, outputs)
        sampling = text_plan.text_sampling(spec, self.getTokenizerBytes())
        gated = resolve_precision(self, model, dataset, sampling, device=self.getDevice())
        return gated, spec, outputs

    def _runtime_plan(
        self,
        spark: Any,
        model: OnnxModel,
        spec: TextSpec,
        outputs: list[OutputColumn],
        row_id: str | None = None,
    ) -> InferencePlan:
        """The plan executors run: model and tokenizer shipped by reference, text hooks;
        ``row_id``: the rowIdCol errors name rows by."""
        tokenizer = ship_bytes(spark, self.getTokenizerBytes(), ".json")
        spec = dataclasses.replace(spec, tokenizer=tokenizer)
        return InferencePlan(
            model=ship_model(spark, model),
            inputs=((spec.column, model.input("input_ids")),),
            outputs=tuple(outputs),
            batch_size=self.getBatchSize(),
            device=validate_device(self.getDevice(), self.getDeviceId()),
            device_id=self.getDeviceId(),
            prepare=partial(prepare_text, spec),
            run=partial(run_text, spec),
            row_id_column=row_id,
        )

    def _transform(self, dataset: DataFrame) -> DataFrame:
        model, spec, outputs, fields = self._plan_text(dataset.schema)
        row_id = self._checked_row_id_col(dataset.columns)
        model, spec, outputs = self._precision_model(model, spec, outputs, dataset)
        plan = self._runtime_plan(dataset.sparkSession, model, spec, outputs, row_id)
        plan = ready_plan(dataset.sparkSession, plan, type(self).__name__)
        result = add_model_columns(dataset, plan, T.StructType([*dataset.schema.fields, *fields]))
        if self.getOutputFormat() == "vector":  # Spark's array_to_vector fails on nulls
            F, to_vector = sql_functions(result), array_to_vector(result)
            for out in outputs:
                values = result[out.column]
                vector = F.when(values.isNull(), None).otherwise(to_vector(values))
                result = result.withColumn(out.column, vector)
        return result

    def _check_vector_format(self, outputs: list[OutputColumn]) -> None:
        if self.getOutputFormat() == "vector":
            for out in outputs:
                if out.rank != 2:
                    raise ValueError(
                        f"outputFormat='vector' needs outputs with one vector per text; output "
                        f"{out.output!r} has rank {out.rank}"
                    )


class TextEmbedder(_TextStage, HasOutputCol, HasEmbeddingOptions):
    """Sentence embeddings of a string column: one float vector per text (null text: null).

    The model's token vectors ([batch, seq, dim], e.g. `last_hidden_state`) are pooled with
    `pooling` ('mean' over the attention mask, 'cls' or 'max'); a model that already pools
    ([batch, dim], e.g. `sentence_embedding`) is used as it is. `normalize` scales each vector
    to unit L2 norm (cosine similarity is then a dot product). `modelOutput` picks the output.
    """

    @keyword_only
    def __init__(
        self,
        *,
        model: ModelLike | None = None,
        modelFile: str | None = None,
        tokenizer: TokenizerLike | None = None,
        tokenizerFile: str | None = None,
        inputCol: str | None = None,
        outputCol: str | None = None,
        modelOutput: str | None = None,
        pooling: str = "mean",
        normalize: bool = True,
        maxLength: int | None = None,
        outputFormat: str = "array",
        rowIdCol: str | None = None,
        batchSize: int = DEFAULT_BATCH_SIZE,
        device: str = "auto",
        deviceId: int | None = None,
        precision: str = "fp32",
        calibrationPath: str | None = None,
        calibrationRows: int = 128,
        calibrationSeed: int = 0,
        precisionTolerance: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._init_text(self._input_kwargs)

    def _pooling(self) -> tuple[str | None, bool]:
        return self.getPooling(), self.getNormalize()

    def _gated_form(
        self, model: OnnxModel, spec: TextSpec, outputs: list[OutputColumn]
    ) -> tuple[OnnxModel, TextSpec, list[OutputColumn]]:
        """Token vectors: the model with its pooling (and L2 norm) as ONNX nodes, so the gate
        judges the embeddings returned; the executors run that graph and pool no more."""
        (out,) = outputs
        if spec.pooling is None or model.output(out.output).rank != 3:
            return model, spec, outputs  # already pooled: normalizing leaves cosines as they are
        pooled, name, feeds = with_pooling(
            model, out.output, spec.pooling, spec.normalize, spec.feeds
        )
        spec = dataclasses.replace(spec, feeds=feeds, pooling=None, normalize=False)
        return pooled, spec, [dataclasses.replace(out, output=name)]

    def _outputs(self, model: OnnxModel) -> tuple[list[OutputColumn], list[T.StructField]]:
        spec = text_plan.embedding_output(model, self.getModelOutput())
        if spec.rank == 2 and self.isSet(self.pooling):
            raise ValueError(
                f"model output {spec.describe()} is already one vector per text, so "
                f"pooling={self.getPooling()!r} cannot apply; drop pooling, or set modelOutput "
                "to the model's token-level [batch, seq, dim] output"
            )
        if not self.isDefined(self.outputCol):
            raise ValueError("set outputCol, the column TextEmbedder writes embeddings to")
        column = self.getOutputCol()
        field = T.StructField(column, T.ArrayType(T.FloatType(), False), nullable=True)
        return [OutputColumn(spec.name, column, "float32", 2)], [field]


class TextTransformer(_TextStage, HasOutputCol, HasOutputMapping):
    """A text model's outputs (e.g. classifier logits) as columns, one value or array per text.

    One-output models take `outputCol`; otherwise `outputMapping` {model output: column} picks
    the outputs. Outputs must be per text ([batch] or [batch, k]); for token vectors use
    TextEmbedder.
    """

    @keyword_only
    def __init__(
        self,
        *,
        model: ModelLike | None = None,
        modelFile: str | None = None,
        tokenizer: TokenizerLike | None = None,
        tokenizerFile: str | None = None,
        inputCol: str | None = None,
        outputCol: str | None = None,
        outputMapping: dict[str, str] | None = None,
        maxLength: int | None = None,
        outputFormat: str = "array",
        rowIdCol: str | None = None,
        batchSize: int = DEFAULT_BATCH_SIZE,
        device: str = "auto",
        deviceId: int | None = None,
        precision: str = "fp32",
        calibrationPath: str | None = None,
        calibrationRows: int = 128,
        calibrationSeed: int = 0,
        precisionTolerance: dict[str, float] | None = None,
    ) -> None:
        super().__init__()
        self._init_text(self._input_kwargs)

    def _outputs(self, model: OnnxModel) -> tuple[list[OutputColumn], list[T.StructField]]:
        if self.isDefined(self.outputMapping):
            mapping = self.getOutputMapping()
        elif len(model.outputs) == 1 and self.isDefined(self.outputCol):
            mapping = {model.outputs[0].name: self.getOutputCol()}
        else:
            names = ", ".join(repr(s.name) for s in model.outputs)
            raise ValueError(
                f"the model has {len(model.outputs)} output(s) ({names}); set outputCol for a "
                "one-output model, or outputMapping={output name: column}"
            )
        outputs, fields = [], []
        for name, column in mapping.items():
            spec = model.output(name)
            if spec.rank not in (1, 2):
                raise ValueError(
                    f"model output {spec.describe()} is not one value or vector per text; "
                    "TextTransformer returns per-text outputs ([batch] or [batch, k]): for "
                    "token vectors use TextEmbedder, which pools them"
                )
            dtype = spark_output_dtype(spec.dtype).name
            outputs.append(OutputColumn(spec.name, column, dtype, spec.rank))
            fields.append(T.StructField(column, spark_type_for(spec), nullable=True))
        self._check_vector_format(outputs)
        return outputs, fields
