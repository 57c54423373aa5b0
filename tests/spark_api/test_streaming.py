"""Structured Streaming: the stages and SQL functions on files arriving in a folder, written to
parquet with a checkpoint. ONNX Runtime sessions stay warm across micro-batches (one per Python
worker), and a query stopped mid-stream and restarted from its checkpoint writes every input
row exactly once, with the values ONNX Runtime gives directly."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sparkonnx import (
    ImageTransformer,
    OnnxModel,
    ONNXTransformer,
    decode_images,
    read_image_stream,
    register_udf,
    testing,
)
from sparkonnx.spark_api.images.streams import BINARY_FILE_SCHEMA
from sparkonnx.spark_api.runtime.executor import session_stats

pytestmark = pytest.mark.timeout(240)
WIDTH = 8
ROWS_PER_FILE = 25
SCHEMA = "id long, features array<float>"


def ort_run(proto, feeds):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def features(ids: np.ndarray) -> np.ndarray:
    """The input row of each id (the same whichever file it arrives in)."""
    return np.stack([np.random.default_rng(int(i)).standard_normal(WIDTH) for i in ids]).astype(
        np.float32
    )


def arrive(folder: Path, index: int) -> None:
    """File `index` of the stream: written under a hidden name, then moved in whole."""
    ids = np.arange(index * ROWS_PER_FILE, (index + 1) * ROWS_PER_FILE, dtype=np.int64)
    table = pa.table(
        {"id": ids, "features": pa.array(features(ids).tolist(), pa.list_(pa.float32()))}
    )
    hidden = folder / f".part-{index:03d}.parquet"
    pq.write_table(table, hidden)
    hidden.rename(folder / f"part-{index:03d}.parquet")


def sessions_built(spark, sha256: str) -> dict[int, int]:
    """{Python worker pid: ONNX Runtime sessions it built for `sha256`}, read on the workers."""
    stats = (
        spark.range(0, 16, numPartitions=4)
        .mapInArrow(session_stats, "pid long, model_sha256 string, sessions_built long")
        .where(f"model_sha256 = '{sha256}'")
        .collect()
    )
    return {r.pid: r.sessions_built for r in stats}


def wait_for_batches(query, batches: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(1 for p in query.recentProgress if p["numInputRows"] > 0) < batches:
        assert query.exception() is None, query.exception()
        assert time.monotonic() < deadline, f"no {batches} batches: {query.recentProgress}"
        time.sleep(0.2)


def test_tensor_stream_stopped_and_restarted_from_its_checkpoint(spark, workdir):
    """ONNXTransformer and a SQL function of one model in one query, 1 file per micro-batch."""
    proto = testing.mlp((WIDTH, 16, 3), seed=2026)
    sha = OnnxModel.load(proto).sha256
    incoming, out, checkpoint = workdir / "in", str(workdir / "out"), str(workdir / "checkpoint")
    incoming.mkdir()
    for index in range(4):
        arrive(incoming, index)
    register_udf(spark, "stream_mlp", proto, batchSize=8)
    transformer = ONNXTransformer(model=proto, inputCol="features", outputCol="pred")

    def start(**trigger):
        stream = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1)
        scored = transformer.transform(stream.parquet(str(incoming)))
        scored = scored.selectExpr("*", "stream_mlp(features) AS sql_pred")
        writer = scored.writeStream.format("parquet").option("checkpointLocation", checkpoint)
        return writer.trigger(**trigger).start(out)

    first = start(processingTime="0 seconds")
    wait_for_batches(first, 1)
    first.stop()  # mid-stream: files are left, a micro-batch may be cut off
    assert first.exception() is None
    done_before = sum(p["numInputRows"] for p in first.recentProgress)
    assert done_before < 4 * ROWS_PER_FILE, "the first run read every file: not mid-stream"
    arrive(incoming, 4)
    second = start(availableNow=True)
    second.awaitTermination(180)
    assert second.exception() is None
    batches = sum(1 for q in (first, second) for p in q.recentProgress if p["numInputRows"] > 0)

    rows = sorted(spark.read.parquet(out).collect(), key=lambda r: r.id)
    assert [r.id for r in rows] == list(range(5 * ROWS_PER_FILE))  # every row exactly once
    (expected,) = ort_run(proto, {"x": features(np.array([r.id for r in rows]))})
    np.testing.assert_allclose([r.pred for r in rows], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r.sql_pred for r in rows], expected, rtol=1e-5, atol=1e-6)

    per_worker = sessions_built(spark, sha)
    assert per_worker, "no Python worker reported the model's session"
    assert all(count == 1 for count in per_worker.values()), per_worker  # warm, not per batch
    assert batches >= 5 and sum(per_worker.values()) < batches, (batches, per_worker)


def test_image_stream_through_the_image_stage(spark, workdir):
    """`read_image_stream` -> ImageTransformer -> parquet: the stage's values and error rows."""
    proto = testing.tiny_cnn_nhwc(size=8, seed=7)
    rgb = testing.smooth_images(4, seed=3, size=8)
    incoming = workdir / "images"
    testing.write_images(incoming, rgb)
    (incoming / "broken.png").write_bytes(b"\x89PNG not really")
    stream = read_image_stream(str(incoming), maxFilesPerTrigger=2, spark=spark)
    assert stream.isStreaming and stream.columns == ["image", "path", "error"]
    scored = ImageTransformer(
        model=proto, inputCol="image", outputCol="scores", scale=1 / 255, errorCol="why"
    ).transform(stream)
    query = (
        scored.select("path", "error", "why", "scores")
        .writeStream.format("parquet")
        .option("checkpointLocation", str(workdir / "checkpoint"))
        .trigger(availableNow=True)
        .start(str(workdir / "out"))
    )
    query.awaitTermination(180)
    assert query.exception() is None
    with pytest.raises(ValueError, match=r"found binary.*sparkonnx\.decode_images\(df\)"):
        ImageTransformer(model=proto, inputCol="content", outputCol="s").transform(
            spark.readStream.format("binaryFile").schema(BINARY_FILE_SCHEMA).load(str(incoming))
        )
    rows = {Path(r.path).name: r for r in spark.read.parquet(str(workdir / "out")).collect()}
    assert sorted(rows) == ["broken.png"] + [f"img{i:03d}.png" for i in range(4)]
    assert rows["broken.png"].scores is None and "cannot identify image" in rows["broken.png"].error
    (expected,) = ort_run(proto, {"pixels": rgb.astype(np.float32) / 255})
    got = [rows[f"img{i:03d}.png"].scores for i in range(4)]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_decode_images_names_missing_columns(spark):
    files = spark.createDataFrame([("a.png", bytearray(b"x"))], "file string, bytes binary")
    with pytest.raises(ValueError, match=r"pathCol='path' is not a column.*\['file', 'bytes'\]"):
        decode_images(files)
    decoded = decode_images(files, pathCol="file", contentCol="bytes").collect()
    assert decoded[0].image is None and "cannot identify image" in decoded[0].error
    with pytest.raises(ValueError, match="maxFilesPerTrigger must be a positive int"):
        read_image_stream("/tmp", maxFilesPerTrigger=0, spark=spark)


def test_int8_on_a_stream_is_refused_until_the_stage_has_its_model(spark, workdir, monkeypatch):
    monkeypatch.setenv("SPARKONNX_CACHE", str(workdir / "cache"))
    incoming = workdir / "in"
    incoming.mkdir()
    arrive(incoming, 0)
    stream = spark.readStream.schema(SCHEMA).parquet(str(incoming))
    stage = ONNXTransformer(
        model=testing.mlp((WIDTH, 16, 3), seed=9),
        inputCol="features",
        outputCol="pred",
        precision="int8-dynamic",
        precisionTolerance={
            **{"top1": 0.0, "cosine": 0.5, "max_rel": 1.0, "min_rows": 2},
            **testing.GATE_ONLY,  # about the refusal, not the speed
        },
    )
    with pytest.raises(ValueError) as info:
        stage.transform(stream)
    message = str(info.value)
    assert "precision='int8-dynamic'" in message and "streaming DataFrame" in message
    assert "Transform a batch DataFrame of the same columns with this stage first" in message
    stage.transform(spark.read.parquet(str(incoming)))  # calibrates and gates once
    assert stage.transform(stream).isStreaming  # then the stream runs the gated model
