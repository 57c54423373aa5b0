"""The text stages' own Params: how they tokenize (tokenizerFile, maxLength) and how
TextEmbedder turns token vectors into one embedding (pooling, normalize, modelOutput)."""

from __future__ import annotations

from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from typing_extensions import Self

from sparkonnx.errors import check_one_of
from sparkonnx.spark_api.params import int_at_least
from sparkonnx.spark_api.runtime.text import POOLINGS

_to_max_length = int_at_least(
    "maxLength",
    2,
    fix="it counts the tokens per text, special tokens included (longer texts are truncated)",
)


def _to_pooling(value: Any) -> str:
    return check_one_of(
        "pooling",
        value,
        POOLINGS,
        fix="'mean': attention-masked mean of the token vectors, as sentence-transformers; "
        "'cls': the first token's; 'max': per-dimension max over the tokens",
    )


class HasTextOptions(Params):
    """tokenizerFile and maxLength: how the text stages tokenize."""

    tokenizerFile: Param[str] = Param(
        Params._dummy(),
        "tokenizerFile",
        "path to the model's Hugging Face tokenizer.json (saved with the stage)",
        TypeConverters.toString,
    )
    maxLength: Param[int] = Param(
        Params._dummy(),
        "maxLength",
        "tokens per text, special tokens included; longer texts are truncated (unset: the "
        "tokenizer's truncation length, else the model's limit)",
        _to_max_length,
    )

    def getTokenizerFile(self) -> str:
        return self.getOrDefault(self.tokenizerFile)

    def setTokenizerFile(self, value: str) -> Self:
        return self._set(tokenizerFile=value)

    def getMaxLength(self) -> int | None:
        return self.getOrDefault(self.maxLength) if self.isDefined(self.maxLength) else None

    def setMaxLength(self, value: int) -> Self:
        return self._set(maxLength=value)


class HasEmbeddingOptions(Params):
    """pooling, normalize, modelOutput: how TextEmbedder makes one vector per text."""

    pooling: Param[str] = Param(
        Params._dummy(),
        "pooling",
        "how token vectors become one: 'mean' (default, over the attention mask), 'cls' or 'max'",
        _to_pooling,
    )
    normalize: Param[bool] = Param(
        Params._dummy(), "normalize", "scale embeddings to unit L2 norm", TypeConverters.toBoolean
    )
    modelOutput: Param[str] = Param(
        Params._dummy(),
        "modelOutput",
        "the model output to embed from; unset: sentence_embedding, last_hidden_state, "
        "token_embeddings, or the only float output of rank 3 (or else 2)",
        TypeConverters.toString,
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(pooling="mean", normalize=True)

    def getPooling(self) -> str:
        return self.getOrDefault(self.pooling)

    def setPooling(self, value: str) -> Self:
        return self._set(pooling=value)

    def getNormalize(self) -> bool:
        return self.getOrDefault(self.normalize)

    def setNormalize(self, value: bool) -> Self:
        return self._set(normalize=value)

    def getModelOutput(self) -> str | None:
        return self.getOrDefault(self.modelOutput) if self.isDefined(self.modelOutput) else None

    def setModelOutput(self, value: str) -> Self:
        return self._set(modelOutput=value)
