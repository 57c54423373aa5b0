"""The text stages' executor side without Spark: tokenizing, length buckets, pooling, nulls.

Real `tokenizers` and real ONNX Runtime on models built in code (`sparkonnx.testing`).
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import pyarrow as pa
import pytest
from onnx import TensorProto

from sparkonnx import testing
from sparkonnx.engine.model import OnnxModel
from sparkonnx.engine.providers import plan_providers
from sparkonnx.engine.sessions import SESSION_CACHE, ModelSession
from sparkonnx.spark_api.runtime import text
from sparkonnx.spark_api.runtime.executor import (
    InferencePlan,
    OutputColumn,
    RowPlace,
    infer_columns,
)
from sparkonnx.spark_api.runtime.model_ref import ModelRef

WORDS = [f"w{i}" for i in range(40)]
FEEDS = (
    ("input_ids", "input_ids", "int64"),
    ("attention_mask", "attention_mask", "int64"),
    ("token_type_ids", "token_type_ids", "int64"),
)


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(1, 30)))) for _ in range(n)]


def _setup(pooling="mean", normalize=True, bucket=True, max_length=64, **model_kw):
    tokenizer_json = testing.word_tokenizer(WORDS).to_str().encode()
    model = OnnxModel.load(testing.text_encoder(len(WORDS) + 4, **model_kw))
    feeds = tuple((r, n, dt) for r, n, dt in FEEDS if n in {s.name for s in model.inputs})
    feeds = tuple((r, n, model.input(n).dtype.name) for r, n, _ in feeds)
    spec = text.TextSpec(
        ModelRef("tok-" + model.sha256[:8], inline=tokenizer_json),
        "text",
        max_length,
        feeds,
        pooling,
        normalize,
        bucket,
    )
    plan = InferencePlan(
        ModelRef(model.sha256, inline=model.model_bytes),
        (("text", model.input("input_ids")),),
        (OutputColumn("last_hidden_state", "emb", "float32", 2),),
        batch_size=4,
        prepare=partial(text.prepare_text, spec),
        run=partial(text.run_text, spec),
    )
    session = SESSION_CACHE.get(model.sha256, plan.model.load, plan_providers("cpu", None))
    return spec, plan, session


def _embed(plan, session, texts) -> list:
    batch = pa.RecordBatch.from_arrays([pa.array(texts, pa.string())], names=["text"])
    ((name, values),) = infer_columns(plan, session, batch)
    assert name == "emb"
    return values.to_pylist()


class Recording:
    """A real ORT session that records the shape of every feed it was run on."""

    def __init__(self, session: ModelSession) -> None:
        self.inner, self.shapes = session.session, []

    def run(self, names, feeds):
        self.shapes.append(feeds["input_ids"].shape)
        return self.inner.run(names, feeds)


def test_buckets_pad_each_run_to_its_own_longest_row_and_keep_row_order():
    _spec, plan, session = _setup()
    texts = _texts(23)
    recording = Recording(session)
    wrapped = ModelSession(recording, session.device, session.input_names, session.output_names)
    bucketed = np.array(_embed(plan, wrapped, texts))
    one_by_one = np.array([_embed(plan, session, [t])[0] for t in texts])
    np.testing.assert_allclose(bucketed, one_by_one, atol=1e-6)
    lengths = [len(t.split()) + 2 for t in texts]
    assert [s[0] for s in recording.shapes] == [4, 4, 4, 4, 4, 3]
    widths = [s[1] for s in recording.shapes]
    assert widths == sorted(widths) and widths[-1] == max(lengths)
    assert sum(w * r for r, w in recording.shapes) < len(texts) * max(lengths) * 0.75

    naive_spec, naive_plan, _ = _setup(bucket=False)
    assert not naive_spec.bucket
    np.testing.assert_allclose(np.array(_embed(naive_plan, session, texts)), bucketed, atol=1e-6)


@pytest.mark.parametrize("how", ["mean", "cls", "max"])
def test_pooling_matches_numpy_over_the_real_tokens(how):
    _spec, plan, session = _setup(pooling=how, normalize=False)
    texts = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10"]
    got = np.array(_embed(plan, session, texts))
    tokenizer = testing.word_tokenizer(WORDS)
    for text_, row in zip(texts, got):
        enc = tokenizer.encode(text_)
        ids = np.array([enc.ids])
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": 0 * ids}
        hidden = session.session.run(None, feeds)[0][0]
        expected = {"mean": hidden.mean(0), "cls": hidden[0], "max": hidden.max(0)}[how]
        np.testing.assert_allclose(row, expected, atol=1e-6)


def test_null_rows_get_null_and_texts_without_tokens_too():
    tokenizer = testing.word_tokenizer(WORDS)
    spec, plan, session = _setup()
    bare = pa.RecordBatch.from_arrays([pa.array([None, "w1", "", None])], names=["text"])
    prepared = text.prepare_text(spec, bare)
    assert prepared.rows.tolist() == [False, True, True, False]  # "" is [CLS] [SEP]
    tokenizer.post_processor = None  # no specials: "" has no tokens at all
    no_specials = ModelRef("no-specials", inline=tokenizer.to_str().encode())
    plain = text.TextSpec(no_specials, "text", 64, FEEDS, "mean", True)
    assert text.prepare_text(plain, bare).rows.tolist() == [False, True, False, False]
    result = _embed(plan, session, [None, "w1 w2", None])
    assert result[0] is None and result[2] is None and len(result[1]) == 8
    assert _embed(plan, session, [None, None]) == [None, None]


def test_long_texts_are_truncated_and_counted(caplog: pytest.LogCaptureFixture):
    _spec, plan, session = _setup(max_length=16)
    caplog.set_level(logging.WARNING, logger="sparkonnx")
    long_text = " ".join(WORDS * 10)
    got = _embed(plan, session, [long_text, "w1", long_text])
    first = " ".join(long_text.split()[:14])  # 16 tokens with [CLS] and [SEP]
    np.testing.assert_allclose(got[0], _embed(plan, session, [first])[0], atol=1e-6)
    assert "2 of 3 texts were longer than maxLength=16 tokens" in caplog.text


def test_int32_inputs_are_fed_as_the_model_declares():
    spec, plan, session = _setup(id_type=TensorProto.INT32, token_type_ids=False)
    assert [dtype for _, _, dtype in spec.feeds] == ["int32", "int32"]
    assert len(_embed(plan, session, ["w1 w2"])[0]) == 8


def test_a_column_that_is_not_strings_is_refused_with_its_type():
    spec, _, _ = _setup()
    batch = pa.RecordBatch.from_arrays([pa.array([1, 2])], names=["text"])
    with pytest.raises(TypeError, match=r"column 'text' holds int64, not strings.*cast"):
        text.prepare_text(spec, batch)


def test_a_run_that_fails_names_the_text_that_fails_alone():
    _spec, plan, _ = _setup(token_type_ids=False)
    small = OnnxModel.load(testing.text_encoder(len(WORDS) + 2, token_type_ids=False))
    session = SESSION_CACHE.get(
        small.sha256, lambda: small.model_bytes, plan_providers("cpu", None)
    )
    texts = ["w1 w2", None, "w3", "w39 w1", "w2"]  # w39 is id 43, past the 42-row table
    batch = pa.RecordBatch.from_arrays([pa.array(texts, pa.string())], names=["text"])
    place = RowPlace(partition=3, offset=500, id_column="key", ids=pa.array(list("abcde")))
    with pytest.raises(
        text.TextModelError,
        match=r"column 'text', row 503 of partition 3 \(key='d'\) \(4 tokens, largest token id "
        r"43\): .*indices.*not this model's: give the tokenizer\.json exported with it",
    ):
        infer_columns(plan, session, batch, place)
