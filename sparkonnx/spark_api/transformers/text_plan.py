"""Driver-side checks and planning of the text stages: the tokenizer, the model's text inputs,
the token limit, the vocabulary check and the precision sample. Everything here fails before
any Spark job, naming what was given, what is allowed and the fix."""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa
from pyspark.sql import types as T

from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.spark_api.runtime.text import ROLES, TextSpec, encode, model_feeds, tokenizer_from

logger = logging.getLogger(__name__)

DEFAULT_MAX_LENGTH = 512  # when neither the tokenizer nor the model says
_PASS_THROUGH = {"Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten"}
Feeds = tuple[tuple[str, str, str], ...]


def read_tokenizer(value: Any) -> bytes:
    """tokenizer.json bytes from a path, bytes / str JSON or a `tokenizers.Tokenizer`."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if hasattr(value, "to_str") and hasattr(value, "encode_batch"):
        try:
            return str(value.to_str()).encode("utf-8")
        except Exception as exc:  # tokenizers raises a bare Exception
            raise ValueError(
                f"the tokenizer cannot be written as tokenizer.json ({exc}): the text stages "
                "ship and save the tokenizer as data, never Python code, so a custom (Python) "
                "normalizer / pre-tokenizer / decoder cannot be used; build it from the "
                "tokenizers library's own components"
            ) from exc
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"tokenizer file not found: {path}; give the tokenizer.json exported with the "
                "model (optimum-cli and AutoTokenizer.save_pretrained write one)"
            )
        with open(path, "rb") as f:
            return f.read()
    raise TypeError(
        "tokenizer must be a tokenizer.json path, its bytes or a tokenizers.Tokenizer; "
        f"got {type(value).__name__}"
    )


def parse_tokenizer(data: bytes, source: str) -> Any:
    """`data` as a `tokenizers.Tokenizer`, as saved (ValueError if it is not a tokenizer.json)."""
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # tokenizers raises its own Exception subclass
        raise ValueError(
            f"{source} is not a Hugging Face tokenizer.json ({exc}); a transformers 'slow' "
            "tokenizer (vocab.txt, sentencepiece .model) must be saved as tokenizer.json first: "
            "AutoTokenizer.from_pretrained(name).save_pretrained(folder)"
        ) from exc


def text_feeds(model: OnnxModel) -> Feeds:
    """(role, input name, dtype) for each model input; it must take `input_ids`, and may take
    `attention_mask` and `token_type_ids`, all integer tensors."""
    feeds = []
    names = [spec.name for spec in model.inputs]
    for spec in model.inputs:
        if spec.name not in ROLES:
            raise ValueError(
                f"model input {spec.describe()} is not a text input: the text stages feed "
                f"{', '.join(ROLES)} by name, and the model takes {names}. Export the model "
                "with those input names (optimum-cli export onnx, or torch.onnx.export with "
                "input_names=[...]), or use ONNXTransformer on token columns"
            )
        if spec.dtype not in (np.dtype("int64"), np.dtype("int32")):
            raise ValueError(
                f"model input {spec.describe()} must be int64 or int32 token ids / masks"
            )
        feeds.append((spec.name, spec.name, spec.dtype.name))
    if "input_ids" not in names:
        raise ValueError(f"the model has no 'input_ids' input (it takes {names})")
    return tuple(feeds)


def model_length_limit(model: OnnxModel) -> int | None:
    """The model's longest input: a static sequence dim, else its position-embedding rows."""
    shape = model.input("input_ids").shape
    if shape is not None and len(shape) == 2 and isinstance(shape[1], int):
        return shape[1]
    for tensor in model.proto.graph.initializer:
        if "position_embeddings" in tensor.name and len(tensor.dims) == 2:
            return int(tensor.dims[0])
    return None


def resolve_max_length(asked: int | None, tokenizer: Any, model: OnnxModel) -> int:
    """`maxLength` when set (checked against the model), else the tokenizer's then the model's."""
    limit = model_length_limit(model)
    if asked is not None:
        if limit is not None and asked > limit:
            raise ValueError(
                f"maxLength={asked} is longer than the model takes ({limit} tokens); set "
                f"maxLength <= {limit}"
            )
        return asked
    truncation = tokenizer.truncation or {}
    found = [n for n in (truncation.get("max_length"), limit) if n]
    if not found:
        logger.info(
            "neither tokenizer nor model gives a length limit: maxLength=%d", DEFAULT_MAX_LENGTH
        )
    return int(min(found)) if found else DEFAULT_MAX_LENGTH


def embedding_table(model: OnnxModel) -> tuple[str, int] | None:
    """(initializer name, rows) of the token-embedding table `input_ids` indexes, if found."""
    graph = model.proto.graph
    weights = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            weights.setdefault(node.output[0], node.attribute[0].t)
    names = {"input_ids"}
    for node in graph.node:  # graph order: the pass-through ops come before their Gather
        if node.op_type in _PASS_THROUGH and node.input and node.input[0] in names:
            names.update(node.output)
        elif node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in names:
            table = weights.get(node.input[0])
            if table is not None and len(table.dims) == 2:
                return node.input[0], int(table.dims[0])
    return None


def check_vocabulary(tokenizer: Any, model: OnnxModel, source: str) -> None:
    """Fail when the tokenizer's ids do not fit the model's embedding table (a wrong pair)."""
    found = embedding_table(model)
    if found is None:
        logger.debug("%s: no embedding table found for input_ids; vocabulary not checked", source)
        return
    name, rows = found
    vocab = int(tokenizer.get_vocab_size(with_added_tokens=True))
    if vocab > rows or vocab * 2 < rows:
        problem = (
            f"ids up to {vocab - 1}, past the table's last row {rows - 1}"
            if vocab > rows
            else "less than half of its rows"
        )
        raise ValueError(
            f"the tokenizer {source} has {vocab} tokens but the model's embedding table "
            f"{name!r} has {rows} rows ({problem}): they are not a pair. Give the "
            "tokenizer.json exported with this model (optimum-cli writes both to one folder)"
        )


def check_text_column(schema: T.StructType, column: str) -> None:
    """The input column exists and holds strings."""
    if column not in schema.fieldNames():
        raise ValueError(
            f"input column {column!r} is not in the DataFrame; its columns are: "
            f"{', '.join(schema.fieldNames())}"
        )
    data_type = schema[column].dataType
    if not isinstance(data_type, T.StringType):
        raise TypeError(
            f"input column {column!r} has type {data_type.simpleString()}, but the text stages "
            f"take a string column; cast it (col({column!r}).cast('string')) or pick the text "
            "column"
        )


def sample_feeds(spec: TextSpec, tokenizer_json: bytes, table: pa.Table) -> dict[str, np.ndarray]:
    """Sampled rows of the text column -> model feeds (null rows left out), for calibration."""
    column = table.column(spec.column).combine_chunks()
    texts = [t for t in column.to_pylist() if t is not None]
    if not texts:
        return {}
    tokenizer = tokenizer_from(tokenizer_json, spec.max_length)
    tokens = encode(tokenizer, texts, any(role == "token_type_ids" for role, _, _ in spec.feeds))
    return model_feeds(spec, tokens)


def text_sampling(spec: TextSpec, tokenizer_json: bytes) -> Any:
    """The precision `Sampling` of a text column: sampled texts tokenized on the driver."""
    from sparkonnx.spark_api.precision import Sampling

    return Sampling((spec.column,), partial(sample_feeds, spec, tokenizer_json))


#: Output names preferred for an embedding, in order (sentence-transformers, Hugging Face).
EMBEDDING_OUTPUTS = ("sentence_embedding", "last_hidden_state", "token_embeddings")


def embedding_output(model: OnnxModel, asked: str | None) -> TensorSpec:
    """The output an embedding comes from: `asked`, else a known name, else the only float
    output of rank 3 (token vectors, pooled by the stage), else the only one of rank 2."""
    if asked is not None:
        spec = model.output(asked)
    else:
        by_name = {s.name: s for s in model.outputs}
        floats = [s for s in model.outputs if s.dtype.kind == "f"]
        known = [by_name[n] for n in EMBEDDING_OUTPUTS if n in by_name]
        tokens = [s for s in floats if s.rank == 3]
        pooled = [s for s in floats if s.rank == 2]
        picks = (
            known or (tokens if len(tokens) == 1 else []) or (pooled if len(pooled) == 1 else [])
        )
        if not picks:
            raise ValueError(
                f"cannot tell which model output is the embedding ({model.describe()}); set "
                "modelOutput to the name of its [batch, seq, dim] (pooled here) or [batch, dim] "
                "output"
            )
        spec = picks[0]
    if spec.dtype.kind != "f" or spec.rank not in (2, 3):
        raise ValueError(
            f"model output {spec.describe()} cannot be an embedding: it needs float values of "
            "shape [batch, seq, dim] (pooled here) or [batch, dim]"
        )
    return spec
