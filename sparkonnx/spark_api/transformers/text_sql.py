"""Text models as SQL functions: `register_udf(spark, name, model, tokenizerFile=...)`.

The function takes one string argument and runs the text stages' own executor plan (tokenize,
length buckets, pooling) through one iterator Arrow UDF, on classic Spark and Spark Connect.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import types as T

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.transformers import text_plan
from sparkonnx.spark_api.transformers.text_transformers import TextEmbedder, TextTransformer

_EMBEDDER_OPTIONS = ("pooling", "normalize", "modelOutput")


def register_text_udf(spark: Any, name: str, model: Any, tokenizer: Any, **options: Any) -> Any:
    """Register `model` + `tokenizer` as the SQL function `name(text)` and return the UDF.

    An embedding model (a token-level or `sentence_embedding` output, or any of `pooling`,
    `normalize`, `modelOutput` given) returns `array<float>` embeddings as TextEmbedder does;
    any other model returns its outputs as TextTransformer does (a struct when several).
    Other `options`: maxLength, batchSize, device, deviceId.
    """
    from sparkonnx.spark_api.sql import register_plan

    onnx_model = OnnxModel.load(model)
    given = {k: v for k, v in options.items() if v is not None}
    stage: TextEmbedder | TextTransformer
    if _is_embedder(onnx_model, given):
        stage = TextEmbedder(
            model=onnx_model, tokenizer=tokenizer, inputCol="text", outputCol=name, **given
        )
    else:
        outputs = {spec.name: spec.name for spec in onnx_model.outputs}
        stage = TextTransformer(
            model=onnx_model, tokenizer=tokenizer, inputCol="text", outputMapping=outputs, **given
        )
    pruned, spec, outputs_used, fields = stage._plan_text(None)
    plan = stage._runtime_plan(spark, pruned, spec, outputs_used)
    return_type: T.DataType = fields[0].dataType if len(fields) == 1 else T.StructType(fields)
    signature = f"{name}(text) ({type(stage).__name__})"
    return register_plan(spark, name, plan, return_type, signature, onnx_model.sha256)


def _is_embedder(model: OnnxModel, options: dict[str, Any]) -> bool:
    if any(key in options for key in _EMBEDDER_OPTIONS):
        return True
    try:
        spec = text_plan.embedding_output(model, None)
    except ValueError:
        return False
    return spec.rank == 3 or spec.name == "sentence_embedding"


def register_from_sql_options(
    spark: Any,
    name: str,
    model: Any,
    tokenizer: str,
    batch_size: int,
    device: str,
    device_id: int | None,
    tensor_only: dict[str, Any],
    options: dict[str, Any],
) -> Any:
    """`register_udf`'s text branch: its arguments checked, then `register_text_udf`."""
    given = sorted(k for k, v in tensor_only.items() if v)
    if given:
        raise ValueError(f"{', '.join(given)} do not apply to a text function (tokenizerFile)")
    unknown = sorted(set(options) - {*_EMBEDDER_OPTIONS, "maxLength"})
    if unknown:
        raise TypeError(
            f"unknown text option(s) {unknown}; allowed: pooling, normalize, modelOutput, maxLength"
        )
    if batch_size != 1024:  # register_udf's tensor default: text functions default to 64 texts
        options = {**options, "batchSize": batch_size}
    return register_text_udf(
        spark, name, model, tokenizer, device=device, deviceId=device_id, **options
    )
