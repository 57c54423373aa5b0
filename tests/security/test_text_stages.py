"""Issue 16 on the hardening rules: the text stages get the driver-side ONNX Runtime check, name
a failing row by partition, position and rowIdCol, and load through the trusted path (a saved
text stage holds data only: Params, the model and the tokenizer.json, no code names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkonnx import InvalidStageError, TextEmbedder, TextTransformer, register_udf, testing
from sparkonnx.engine.runnable import ModelNotRunnableError
from tests.security.saved import edit_metadata, metadata_file

WORDS = ["spark", "text", "onnx", "rare"]  # ids 4..7 after the four specials


def _tokenizer_file(workdir: Path, words: list[str] = WORDS) -> str:
    path = workdir / "tokenizer.json"
    testing.word_tokenizer(words).save(str(path))
    return str(path)


def _evil(proto: Any, op_type: str) -> Any:
    """``proto`` with its first ``op_type`` node turned into an operator of an unknown domain."""
    node = next(node for node in proto.graph.node if node.op_type == op_type)
    node.op_type, node.domain, node.name = "EvilOp", "com.evil", "n_evil"
    proto.opset_import.add(domain="com.evil", version=1)
    return proto


def _unchecked_encoder(rows: int) -> Any:
    """An encoder whose embedding table the driver cannot see (ids go through an Add first),
    so a token id past its `rows` rows fails in ONNX Runtime, on the executor."""
    from onnx import helper, numpy_helper

    proto = testing.text_encoder(rows, token_type_ids=False)
    graph = proto.graph
    gather = next(node for node in graph.node if node.op_type == "Gather")
    gather.input[1] = "ids_plus_zero"
    zero = numpy_helper.from_array(np.zeros((), np.int64), "zero")
    graph.initializer.append(zero)
    graph.node.insert(0, helper.make_node("Add", ["input_ids", "zero"], ["ids_plus_zero"]))
    return proto


def test_a_text_model_onnx_runtime_cannot_run_is_refused_before_any_job(spark, workdir):
    tokenizer = _tokenizer_file(workdir)
    df = spark.createDataFrame([("spark text",)], "text string")
    encoder = _evil(testing.text_encoder(len(WORDS) + 4, token_type_ids=False), "Tanh")
    classifier = _evil(testing.text_classifier(len(WORDS) + 4), "MatMul")
    stages = [
        TextEmbedder(inputCol="text", outputCol="e", model=encoder, tokenizerFile=tokenizer),
        TextTransformer(inputCol="text", outputCol="y", model=classifier, tokenizerFile=tokenizer),
    ]
    spark.sparkContext.setJobGroup("h16-evil", "driver check")
    try:
        for stage in stages:
            with pytest.raises(
                ModelNotRunnableError, match=r"'EvilOp' of domain 'com\.evil' \(node 'n_evil'"
            ):
                stage.transform(df)
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert list(spark.sparkContext.statusTracker().getJobIdsForGroup("h16-evil")) == []
    with pytest.raises(ModelNotRunnableError, match="EvilOp"):
        register_udf(spark, "evil_text", encoder, tokenizerFile=tokenizer)


def test_a_failing_text_is_named_by_partition_position_and_row_id(spark, workdir):
    tokenizer = _tokenizer_file(workdir)
    texts = [(i, f"k{i}", "spark text onnx" if i != 7 else "spark rare") for i in range(10)]
    df = spark.createDataFrame(texts, "id int, key string, text string").coalesce(1)
    stage = TextEmbedder(
        inputCol="text",
        outputCol="e",
        model=_unchecked_encoder(len(WORDS) + 3),  # no row for 'rare' (id 7)
        tokenizerFile=tokenizer,
        batchSize=4,
    )
    with pytest.raises(
        Exception,
        match=r"column 'text', row 7 of partition 0 \(4 tokens, largest token id 7\).*"
        r"not this model's",
    ):
        stage.transform(df).collect()
    stage.setRowIdCol("key")
    with pytest.raises(Exception, match=r"row 7 of partition 0 \(key='k7'\) \(4 tokens"):
        stage.transform(df).collect()
    with pytest.raises(ValueError, match=r"rowIdCol 'nope' is not a column of the DataFrame"):
        stage.copy({stage.rowIdCol: "nope"}).transform(df)


@pytest.fixture()
def saved_embedder(spark, workdir) -> Path:
    stage = TextEmbedder(
        inputCol="text",
        outputCol="e",
        model=testing.text_encoder(len(WORDS) + 4),
        tokenizerFile=_tokenizer_file(workdir),
        rowIdCol="id",
    )
    stage.save(str(workdir / "embedder"))
    return workdir / "embedder"


def test_a_saved_text_stage_holds_data_only(spark, saved_embedder):
    metadata = json.loads(metadata_file(saved_embedder).read_text())
    assert metadata["artifacts"].keys() == {"tokenizer"}
    values = {**metadata["defaultParamMap"], **metadata["paramMap"]}
    assert not [v for v in values.values() if isinstance(v, str) and ":" in v and "/" not in v]
    assert TextEmbedder._CODE_PARAMS == ()  # nothing a load would import
    table = pq.read_table(saved_embedder / "tokenizer")
    json.loads(table.column("model")[0].as_py())  # the tokenizer is JSON, not a pickle
    loaded = TextEmbedder.load(str(saved_embedder))
    assert loaded.getRowIdCol() == "id" and b'"rare"' in loaded.getTokenizerBytes()


def test_a_saved_artifact_outside_the_stage_is_refused(spark, saved_embedder):
    def add(metadata: dict[str, Any]) -> None:
        metadata["artifacts"]["../../elsewhere"] = "0" * 64

    edit_metadata(saved_embedder, add)
    with pytest.raises(
        InvalidStageError,
        match=r"lists artifacts \['\.\./\.\./elsewhere'\], which TextEmbedder does not save; "
        r"it saves \['tokenizer'\]",
    ):
        TextEmbedder.load(str(saved_embedder))


def test_a_saved_tokenizer_that_is_not_one_is_refused(spark, saved_embedder):
    import hashlib

    junk = b"\x80\x04 not a tokenizer"
    folder = saved_embedder / "tokenizer"
    for part in folder.glob("*.parquet"):
        sha = hashlib.sha256(junk).hexdigest()
        schema = pq.read_schema(part)
        pq.write_table(pa.table({"sha256": [sha], "model": [junk]}, schema=schema), part)
    edit_metadata(saved_embedder, lambda m: m["artifacts"].__setitem__("tokenizer", sha))
    with pytest.raises(
        InvalidStageError, match=r"the tokenizer saved under .*tokenizer is refused: .*tokenizer"
    ):
        TextEmbedder.load(str(saved_embedder))
    edit_metadata(saved_embedder, lambda m: m["artifacts"].__setitem__("tokenizer", "0" * 64))
    with pytest.raises(InvalidStageError, match=r"does not match the sha256 recorded"):
        TextEmbedder.load(str(saved_embedder))


def test_a_tokenizer_with_python_components_cannot_be_given():
    from tokenizers import pre_tokenizers

    class Splitter:
        def pre_tokenize(self, pretok: Any) -> None:
            pass

    tokenizer = testing.word_tokenizer(WORDS)
    tokenizer.pre_tokenizer = pre_tokenizers.PreTokenizer.custom(Splitter())
    with pytest.raises(ValueError, match=r"cannot be written as tokenizer\.json.*never Python"):
        TextEmbedder(tokenizer=tokenizer)
