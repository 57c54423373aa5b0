"""Text test helpers: a BERT-shaped word-level tokenizer and encoder / classifier models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sparkonnx.testing.models import _model


def word_tokenizer(words: Sequence[str], max_length: int | None = None) -> Any:
    """A `tokenizers` WordLevel tokenizer shaped like BERT's: ids [PAD]=0, [UNK]=1, [CLS]=2,
    [SEP]=3, then `words`; lower-cases, splits on whitespace and punctuation, wraps each text in
    [CLS] ... [SEP] and truncates to `max_length` when given."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {token: i for i, token in enumerate([*specials, *words])}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    if max_length is not None:
        tokenizer.enable_truncation(max_length)
    return tokenizer


def text_encoder(
    vocab: int,
    dim: int = 8,
    seed: int = 0,
    *,
    token_type_ids: bool = True,
    id_type: int = TensorProto.INT64,
    output_name: str = "last_hidden_state",
    positions: int | None = None,
) -> onnx.ModelProto:
    """A model with the inputs and output of a Hugging Face encoder export: input_ids,
    attention_mask (and token_type_ids) [batch_size, sequence_length] of `id_type` ->
    `output_name` float32 [batch_size, sequence_length, dim] = tanh(token embedding (+ type
    embedding)) * mask. `positions` adds a position table of that many rows (the length limit)."""
    rng = np.random.default_rng(seed)
    seq = ["batch_size", "sequence_length"]
    inits = [numpy_helper.from_array(rng.standard_normal((vocab, dim)).astype(np.float32), "emb")]
    nodes = [
        helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "last_axis"], ["mask3"]),
    ]
    inits.append(numpy_helper.from_array(np.array([-1], np.int64), "last_axis"))
    inputs = [
        helper.make_tensor_value_info("input_ids", id_type, seq),
        helper.make_tensor_value_info("attention_mask", id_type, seq),
    ]
    summed = "tok"
    if token_type_ids:
        types = rng.standard_normal((2, dim)).astype(np.float32)
        inits.append(numpy_helper.from_array(types, "type_emb"))
        nodes += [
            helper.make_node("Gather", ["type_emb", "token_type_ids"], ["typ"]),
            helper.make_node("Add", ["tok", "typ"], ["summed"]),
        ]
        inputs.append(helper.make_tensor_value_info("token_type_ids", id_type, seq))
        summed = "summed"
    if positions is not None:
        table = rng.standard_normal((positions, dim)).astype(np.float32) * 0.1
        inits.append(numpy_helper.from_array(table, "embeddings.position_embeddings.weight"))
    nodes += [
        helper.make_node("Tanh", [summed], ["act"]),
        helper.make_node("Mul", ["act", "mask3"], [output_name]),
    ]
    out = helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [*seq, dim])
    return _model(helper.make_graph(nodes, "text_encoder", inputs, [out], inits))


def text_classifier(vocab: int, classes: int = 3, dim: int = 8, seed: int = 0) -> onnx.ModelProto:
    """`text_encoder` + a linear layer on the first ([CLS]) token's vector: input_ids,
    attention_mask, token_type_ids -> logits float32 [batch_size, classes]."""
    encoder = text_encoder(vocab, dim, seed, output_name="hidden")
    rng = np.random.default_rng(seed + 1)
    w = numpy_helper.from_array(rng.standard_normal((dim, classes)).astype(np.float32), "w")
    graph = encoder.graph
    nodes = [
        *graph.node,
        helper.make_node("Gather", ["hidden", "first"], ["cls"], axis=1),
        helper.make_node("MatMul", ["cls", "w"], ["logits"]),
    ]
    first = numpy_helper.from_array(np.array(0, np.int64), "first")
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch_size", classes])
    new = helper.make_graph(
        nodes, "text_classifier", list(graph.input), [logits], [*graph.initializer, w, first]
    )
    return _model(new)
