"""What the text stages run on executors: strings -> tokens -> ONNX Runtime in length buckets ->
pooled embeddings (TextEmbedder) or per-text outputs (TextTransformer).

Tokenization is one Hugging Face `tokenizers` call per Arrow batch (`encode_batch_fast`, Rust,
padded to the batch's longest row); the only Python over rows is reading the encodings' id
lists into numpy. Length bucketing: the batch's rows are sorted by token count and ONNX Runtime
runs on `batchSize` rows at a time, each run padded only to its own longest row; results are
written back in the original order. Null strings (and texts with no tokens) give null outputs.

Plugs into `executor.InferencePlan` as its `prepare` hook (`prepare_text`) and `run` hook
(`run_text`), so the Arrow UDF / mapInArrow paths, the session cache and the null handling are
the tensor stages' own. Imports no pyspark.ml, no converters, no torch, no TensorFlow.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sparkonnx.engine.sessions import ModelSession
from sparkonnx.errors import SparkOnnxError
from sparkonnx.spark_api.runtime.executor import PreparedBatch, RowPlace
from sparkonnx.spark_api.runtime.model_ref import ModelRef

logger = logging.getLogger(__name__)

POOLINGS: tuple[str, ...] = ("mean", "cls", "max")
#: The three inputs a text model may take, fed by name.
ROLES: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
#: Feed key of the attention mask the run hook reads (the model may not take one).
MASK_KEY = "__sparkonnx_attention_mask__"
#: Feed key of each feed row's position in its Arrow batch (to name a row in errors).
ROWS_KEY = "__sparkonnx_batch_rows__"
_HOOK_KEYS = (MASK_KEY, ROWS_KEY)


class TextModelError(SparkOnnxError, RuntimeError):
    """ONNX Runtime failed on a text: the message names the row and its token count."""


@dataclass(frozen=True)
class TextSpec:
    """Plain values a task needs: the tokenizer reference, the feeds and what to do with outputs.

    ``feeds``: (role in ROLES, model input name, numpy dtype name) for each input the model
    takes. ``pooling``: None keeps the outputs as they are (per-text outputs); else how a
    token-level output [batch, seq, dim] becomes one vector ([batch, dim] outputs pass).
    """

    tokenizer: ModelRef
    column: str
    max_length: int
    feeds: tuple[tuple[str, str, str], ...]
    pooling: str | None = None
    normalize: bool = False
    bucket: bool = True


@dataclass(frozen=True)
class Tokens:
    """A batch of texts as padded token arrays (right padding to the longest row)."""

    ids: np.ndarray  # int64 [n, L]
    mask: np.ndarray  # int64 [n, L]
    type_ids: np.ndarray | None  # int64 [n, L], when asked for
    truncated: int  # rows cut to max_length

    @property
    def lengths(self) -> np.ndarray:
        return self.mask.sum(axis=1)


_tokenizers: dict[tuple[str, int], Any] = {}
_tokenizers_lock = threading.Lock()


def tokenizer_from(data: bytes | str, max_length: int) -> Any:
    """A `tokenizers.Tokenizer` from tokenizer.json bytes or a path, truncating to `max_length`
    and padding to each call's longest row (its own pad token, else [PAD] / <pad>, else 0)."""
    from tokenizers import Tokenizer

    if isinstance(data, bytes):
        tokenizer = Tokenizer.from_str(data.decode("utf-8"))
    else:
        tokenizer = Tokenizer.from_file(data)
    padding = tokenizer.padding or {}
    pad_token = padding.get("pad_token")
    pad_id = padding.get("pad_id")
    if pad_id is None:
        pad_token, pad_id = _pad_token(tokenizer)
    tokenizer.enable_padding(pad_id=int(pad_id), pad_token=pad_token or "[PAD]")
    tokenizer.enable_truncation(max_length)
    return tokenizer


def _pad_token(tokenizer: Any) -> tuple[str, int]:
    for token in ("[PAD]", "<pad>", "<|padding|>", "<PAD>"):
        token_id = tokenizer.token_to_id(token)
        if token_id is not None:
            return token, int(token_id)
    return "[PAD]", 0


def cached_tokenizer(ref: ModelRef, max_length: int) -> Any:
    """This worker's tokenizer for `ref` (loaded once per process, like the ORT sessions)."""
    key = (ref.sha256, max_length)
    with _tokenizers_lock:
        tokenizer = _tokenizers.get(key)
        if tokenizer is None:
            tokenizer = tokenizer_from(ref.load(), max_length)
            _tokenizers[key] = tokenizer
        return tokenizer


def encode(tokenizer: Any, texts: Sequence[str], type_ids: bool = False) -> Tokens:
    """`texts` through the tokenizer in one batched call, as padded numpy arrays."""
    batch_call = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    encodings = batch_call(list(texts))
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    types = np.array([e.type_ids for e in encodings], dtype=np.int64) if type_ids else None
    truncated = sum(1 for e in encodings if e.overflowing)
    if ids.ndim != 2:  # no texts at all
        ids = mask = np.zeros((len(encodings), 0), np.int64)
        types = ids if type_ids else None
    return Tokens(ids, mask, types, truncated)


def model_feeds(spec: TextSpec, tokens: Tokens) -> dict[str, np.ndarray]:
    """The model's inputs by name, in the dtypes it declares."""
    arrays = {"input_ids": tokens.ids, "attention_mask": tokens.mask}
    if tokens.type_ids is not None:
        arrays["token_type_ids"] = tokens.type_ids
    return {name: arrays[role].astype(dtype, copy=False) for role, name, dtype in spec.feeds}


def strings_of(column: pa.Array, label: str) -> tuple[list[str], np.ndarray]:
    """(the non-null strings, a mask of the rows holding them) of a string column."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise TypeError(
            f"column {label!r} holds {column.type}, not strings; cast it first "
            f"(col({label!r}).cast('string'))"
        )
    valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    texts = column.filter(pa.array(valid)).to_pylist() if not valid.all() else column.to_pylist()
    return texts, valid


def prepare_text(
    spec: TextSpec, batch: pa.RecordBatch, place: RowPlace | None = None
) -> PreparedBatch:
    """The `InferencePlan.prepare` hook: a string column -> padded token feeds.

    Rows that are null, or whose text has no tokens at all, are left out (null outputs).
    ``place`` (where the batch's rows are) is the run hook's business: see `run_text`.
    """
    texts, valid = strings_of(batch.column(spec.column), spec.column)
    if not texts:
        return PreparedBatch({}, valid)
    tokenizer = cached_tokenizer(spec.tokenizer, spec.max_length)
    tokens = encode(tokenizer, texts, any(role == "token_type_ids" for role, _, _ in spec.feeds))
    if tokens.truncated:
        logger.warning(
            "column %r: %d of %d texts were longer than maxLength=%d tokens and were truncated",
            spec.column,
            tokens.truncated,
            len(texts),
            spec.max_length,
        )
    nonempty = tokens.lengths > 0
    feeds = model_feeds(spec, tokens)
    feeds[MASK_KEY] = tokens.mask
    feeds[ROWS_KEY] = np.flatnonzero(valid)
    if not nonempty.all():
        feeds = {name: array[nonempty] for name, array in feeds.items()}
        valid = valid.copy()
        valid[valid] = nonempty
    return PreparedBatch(feeds, valid)


def run_text(
    spec: TextSpec,
    session: ModelSession,
    feeds: dict[str, np.ndarray],
    batch_size: int,
    output_names: list[str],
    place: RowPlace | None = None,
) -> dict[str, np.ndarray]:
    """The `InferencePlan.run` hook: ORT on runs of `batch_size` rows, each padded only to its
    own longest row (rows sorted by length first when `spec.bucket`), outputs in row order.

    When ONNX Runtime fails on a run, its rows are run one by one and the first that fails
    alone is named (partition, position, ``rowIdCol`` value from ``place``) in a
    `TextModelError`."""
    mask = feeds[MASK_KEY]
    inputs = {name: array for name, array in feeds.items() if name not in _HOOK_KEYS}
    lengths = mask.sum(axis=1)
    n = len(lengths)
    order = np.argsort(lengths, kind="stable") if spec.bucket else np.arange(n)
    results: dict[str, np.ndarray] = {}
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        width = int(lengths[rows].max())
        chunk = {name: np.ascontiguousarray(array[rows, :width]) for name, array in inputs.items()}
        try:
            outputs = session.session.run(output_names, chunk)
        except Exception as exc:  # onnxruntime's own exception classes
            raise _run_failure(spec, session, inputs, lengths, rows, feeds, place, exc) from exc
        for name, value in zip(output_names, outputs, strict=True):
            value = finish(spec, name, np.asarray(value), mask[rows, :width])
            if name not in results:
                results[name] = np.empty((n, *value.shape[1:]), value.dtype)
            results[name][rows] = value
    return results


def _run_failure(
    spec: TextSpec,
    session: ModelSession,
    inputs: dict[str, np.ndarray],
    lengths: np.ndarray,
    rows: np.ndarray,
    feeds: dict[str, np.ndarray],
    place: RowPlace | None,
    exc: Exception,
) -> TextModelError:
    """The error for a failed run: its rows one by one, naming the first that fails alone."""
    from sparkonnx.engine.runnable import ort_message

    culprit, message = None, ort_message(exc)
    for row in rows:
        width = int(lengths[row])
        one = {name: np.ascontiguousarray(a[row : row + 1, :width]) for name, a in inputs.items()}
        try:
            session.session.run(None, one)
        except Exception as alone:
            culprit, message = int(row), ort_message(alone)
            break
    place = place or RowPlace()
    positions = feeds.get(ROWS_KEY, np.arange(len(lengths)))
    if culprit is None:
        named = ", ".join(place.label(int(positions[r])) for r in rows[:3])
        return TextModelError(
            f"ONNX Runtime failed on {len(rows)} texts of column {spec.column!r} run together "
            f"({named}{', ...' if len(rows) > 3 else ''}), though each runs alone: {message}. "
            "Lower batchSize (attention memory grows with rows x tokens^2)"
        )
    ids = inputs.get(next(n for r, n, _ in spec.feeds if r == "input_ids"))
    top = int(ids[culprit, : int(lengths[culprit])].max()) if ids is not None else -1
    return TextModelError(
        f"ONNX Runtime failed on the text in column {spec.column!r}, "
        f"{place.label(int(positions[culprit]))} ({int(lengths[culprit])} tokens, largest token "
        f"id {top}): {message}. If the message is about indices out of range, the tokenizer is "
        "not this model's: give the tokenizer.json exported with it"
    )


def finish(spec: TextSpec, name: str, value: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One run's output as the stage returns it: pooled and normalized for an embedder."""
    if spec.pooling is None:
        return value
    if value.ndim == 3:
        value = pool(value, mask, spec.pooling)
    elif value.ndim != 2:
        raise ValueError(
            f"model output {name!r} has shape {list(value.shape)}; an embedding needs "
            "[batch, seq, dim] (pooled here) or [batch, dim]"
        )
    return l2_normalize(value) if spec.normalize else value


def pool(hidden: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """[n, seq, dim] token vectors -> [n, dim]: attention-masked mean or max, or the first token."""
    if how == "cls":
        return hidden[:, 0]
    hidden = hidden.astype(np.float32, copy=False)
    keep = mask[..., np.newaxis].astype(bool)
    if how == "max":
        return np.where(keep, hidden, -np.inf).max(axis=1)
    if how == "mean":
        total = np.where(keep, hidden, 0.0).sum(axis=1)
        return total / np.maximum(keep.sum(axis=1), 1).astype(np.float32)
    raise ValueError(f"pooling must be one of {POOLINGS}; got {how!r}")


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
