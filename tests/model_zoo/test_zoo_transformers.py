"""DeepImageFeaturizer / DeepImagePredictor on Spark, and the seed's transfer-learning example."""

import json

import numpy as np
import pytest
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator

from sparkonnx import DeepImageFeaturizer, DeepImagePredictor, read_images
from sparkonnx.model_zoo.labels import imagenet_labels

pytest.importorskip("tensorflow")
MODEL = "MobileNetV3Small"


@pytest.fixture(scope="module")
def two_class_images(tmp_path_factory, spark):
    """Two classes of generated photos: warm stripes vs cool checkers, varied sizes."""
    folder = tmp_path_factory.mktemp("two-classes")
    rng = np.random.default_rng(0)
    labels = {}
    for i in range(24):
        label = i % 2
        h, w = int(rng.integers(90, 160)), int(rng.integers(90, 160))
        yy, xx = np.mgrid[0:h, 0:w]
        if label == 0:
            base = np.stack([200 + 0 * xx, 80 + 60 * ((xx // 8) % 2), 40 + 0 * xx], -1)
        else:
            base = np.stack(
                [30 + 0 * xx, 90 + 0 * xx, 190 + 50 * (((xx // 10) + (yy // 10)) % 2)], -1
            )
        noisy = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        name = f"img{i:02d}.png"
        Image.fromarray(noisy).save(folder / name)
        labels[name] = float(label)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    df = read_images(str(folder), spark=spark)
    label_df = spark.createDataFrame(list(labels.items()), "file string, label double")
    df = df.withColumn("file", df["path"].substr(len(f"file:{folder}/") + 1, 100))
    return df.join(label_df, "file", "left").cache()


def test_transfer_learning_fit_evaluate_save_reload(spark, zoo_cache, two_class_images, workdir):
    train = two_class_images.where("label IS NOT NULL")
    featurizer = DeepImageFeaturizer(
        inputCol="image", outputCol="features", modelName=MODEL, weights=None
    )
    lr = LogisticRegression(maxIter=50, regParam=0.01, labelCol="label")
    model = Pipeline(stages=[featurizer, lr]).fit(train)
    predictions = model.transform(train)
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(predictions)
    assert accuracy >= 0.9, accuracy
    path = str(workdir / "transfer")
    model.save(path)
    (featurizer_dir,) = (workdir / "transfer" / "stages").glob("0_*")
    assert not (featurizer_dir / "model").exists(), "the zoo weights were embedded"
    reloaded = PipelineModel.load(path)
    before = sorted((r.file, r.prediction) for r in predictions.collect())
    after = sorted((r.file, r.prediction) for r in reloaded.transform(train).collect())
    assert before == after


def test_featurizer_keeps_broken_rows_and_width(spark, zoo_cache, two_class_images):
    out = DeepImageFeaturizer(
        inputCol="image", outputCol="f", modelName=MODEL, weights="none"
    ).transform(two_class_images)
    rows = {r.file: r for r in out.collect()}
    assert len(rows) == 25
    assert rows["broken.png"].f is None and rows["broken.png"].error
    assert rows["img00.png"].f.size == 1024


def test_decode_predictions_structure_and_order(spark, zoo_cache, two_class_images):
    good = two_class_images.where("error IS NULL").limit(4)
    probs = DeepImagePredictor(
        inputCol="image", outputCol="p", modelName=MODEL, weights=None, outputFormat="array"
    ).transform(good)
    decoded = DeepImagePredictor(
        inputCol="image",
        outputCol="top",
        modelName=MODEL,
        weights=None,
        decodePredictions=True,
        topK=3,
    ).transform(good)
    assert [f.name for f in decoded.schema["top"].dataType.elementType.fields] == [
        "class",
        "description",
        "probability",
    ]
    by_file = {r.file: np.array(r.p) for r in probs.collect()}
    labels = imagenet_labels()
    for row in decoded.collect():
        p = by_file[row.file]
        assert len(row.top) == 3
        expected = np.argsort(-p, kind="stable")[:3]
        assert [t["class"] for t in row.top] == [labels.class_ids[i] for i in expected]
        assert [t["description"] for t in row.top] == [labels.descriptions[i] for i in expected]
        got = [t["probability"] for t in row.top]
        assert got == sorted(got, reverse=True)
        np.testing.assert_allclose(got, p[expected], rtol=1e-6)
        assert abs(p.sum() - 1) < 1e-4


def test_params_persist_without_the_model(spark, workdir):
    stage = DeepImagePredictor(
        inputCol="image", outputCol="top", modelName="resnet50", decodePredictions=True, topK=2
    )
    assert stage.getModelName() == "ResNet50"
    stage.save(str(workdir / "pred"))
    metadata = json.loads((next((workdir / "pred" / "metadata").glob("part-*"))).read_text())
    assert metadata["paramMap"]["modelName"] == "ResNet50"
    assert not (workdir / "pred" / "model").exists()
    loaded = DeepImagePredictor.load(str(workdir / "pred"))
    assert loaded.getOrDefault(loaded.topK) == 2 and loaded.getWeights() == "imagenet"
    with pytest.raises(ValueError, match="unknown model 'ResNet51'"):
        DeepImageFeaturizer(inputCol="image", outputCol="f", modelName="ResNet51")


def test_int8_featurizer_calibrates_on_the_dataframe_and_passes_the_gate(
    spark, zoo_cache, two_class_images, caplog
):
    import logging

    from sparkonnx.converters.quantize import quantization_of
    from sparkonnx.engine.model import OnnxModel

    caplog.set_level(logging.INFO, logger="sparkonnx")
    params = dict(inputCol="image", outputCol="f", modelName=MODEL, weights=None)
    fp32_rows = DeepImageFeaturizer(**params).transform(two_class_images).collect()
    fp32 = {r.file: r.f for r in fp32_rows}
    stage = DeepImageFeaturizer(
        **params,
        precision="int8",
        calibrationRows=25,
        # the gate on the features, speed is tested in test_int8_search.py; a budget this small
        # tries only the first configuration in this CPU's order (7-bit weights first on x86
        # without VNNI, where 8-bit ones overflow: cosine 0.965 seen on an AVX2-only EPYC)
        precisionTolerance={"min_rows": 6, "min_speedup": 0, "search_seconds": 1e-9},
    )
    int8 = {r.file: r.f for r in stage.transform(two_class_images).collect()}

    assert "int8 accuracy gate passed" in caplog.text and "cosine" in caplog.text
    assert int8["broken.png"] is None and len(int8) == 25
    a = np.array([fp32[k].toArray() for k in sorted(fp32) if fp32[k] is not None])
    b = np.array([int8[k].toArray() for k in sorted(int8) if int8[k] is not None])
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() >= 0.98 and np.abs(a - b).max() > 0, cosine
    (cached,) = (zoo_cache / "precision").glob("*.onnx")
    record = quantization_of(OnnxModel.from_path(cached))
    assert record["calibration"]["rows"] == 18 and record["gate"]["rows"] == 6
    outputs = record["gate"]["outputs"]  # only the features: the classifier head was cut off
    assert list(outputs) == ["features"]
    assert outputs["features"]["metric"] == "cosine" and outputs["features"]["value"] >= 0.99
    print(f"\n{MODEL} int8 featurizer: {record['gate']}")


def test_precision_params_persist_on_zoo_stages(spark, workdir):
    stage = DeepImageFeaturizer(
        inputCol="image", outputCol="f", modelName=MODEL, precision="int8", calibrationRows=64
    )
    stage.save(str(workdir / "int8-featurizer"))
    loaded = DeepImageFeaturizer.load(str(workdir / "int8-featurizer"))
    assert loaded.getPrecision() == "int8" and loaded.getCalibrationRows() == 64


def test_a_stage_reads_its_model_once_across_transforms_and_threads(
    spark, zoo_cache, two_class_images, monkeypatch
):
    import threading

    from sparkonnx.model_zoo import build

    calls = []
    real = build.build_model
    monkeypatch.setattr(build, "build_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    stage = DeepImageFeaturizer(inputCol="image", outputCol="f", modelName=MODEL, weights=None)
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.append(stage.transform(two_class_images).count()))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts == [25, 25]
    assert len(calls) == 1  # one inner stage for both threads, not re-read from the disk cache
    assert stage.copy().transform(two_class_images).count() == 25
    assert len(calls) == 1  # a plain copy shares it
    renamed = stage.copy({stage.outputCol: "g"})  # other Params: another inner stage
    assert "g" in renamed.transform(two_class_images).columns and len(calls) == 2
    stage.setOutputCol("h")
    assert "h" in stage.transform(two_class_images).columns and len(calls) == 3
