"""Models kept on disk (graph + external data) on Spark: shipped as their files, assembled in
the executors' disk cache (folder from `spark.sparkonnx.modelCacheDir`), loaded from the path;
ONNXTransformer, the image stages and SQL functions; the driver check's size limit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sparkonnx import ImageTransformer, ONNXTransformer, register_udf, testing
from sparkonnx.engine import model as model_module
from sparkonnx.engine.model import ModelOnDiskError, OnnxModel
from sparkonnx.engine.model_cache import CACHE_CONF
from sparkonnx.engine.runnable import ModelNotRunnableError
from sparkonnx.spark_api.images.structs import imageArrayToStruct
from sparkonnx.spark_api.runtime.model_ref import ModelFilesRef
from sparkonnx.spark_api.shipping import DRIVER_CHECK_CONF, DRIVER_CHECK_MAX_CONF, ship_model
from tests.security.models import evil_on_disk

WIDTHS = (8, 16, 3)


@pytest.fixture()
def cache(request: pytest.FixtureRequest, workdir: Path):
    """A fresh executor model cache for this test, set through the Spark conf of the test's
    session (`any_spark` or `spark`)."""
    name = "any_spark" if "any_spark" in request.fixturenames else "spark"
    session = request.getfixturevalue(name)
    folder = workdir / "model-cache"
    session.conf.set(CACHE_CONF, str(folder))
    yield folder
    session.conf.unset(CACHE_CONF)


def mlp_on_disk(folder: Path, seed: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return testing.save_with_external_data(testing.mlp(WIDTHS, seed=seed), folder / "m.onnx")


def reference(seed: int, x: np.ndarray) -> np.ndarray:
    proto = testing.mlp(WIDTHS, seed=seed).SerializeToString()
    return ort.InferenceSession(proto, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def features(spark, n: int = 50):
    x = np.random.default_rng(0).standard_normal((n, WIDTHS[0])).astype(np.float32)
    rows = [(i, x[i].tolist()) for i in range(n)]
    return spark.createDataFrame(rows, "id int, features array<float>").repartition(2), x


def test_onnx_transformer_ships_the_files_and_executors_cache_them(
    any_spark, cache, workdir, monkeypatch
):
    monkeypatch.setattr(model_module, "ON_DISK_BYTES", 0)  # this small model counts as big
    path = mlp_on_disk(workdir / "model", seed=3)
    stage = ONNXTransformer(modelFile=str(path), inputCol="features", outputCol="y")
    model = stage.getModel()
    assert model.on_disk
    ref = ship_model(any_spark, model)
    assert isinstance(ref, ModelFilesRef) and ref.cache_dir == str(cache)
    assert [member for member, _ in ref.members] == ["", "weights.bin"]
    df, x = features(any_spark)
    rows = sorted(stage.transform(df).collect(), key=lambda r: r.id)
    np.testing.assert_allclose([r.y for r in rows], reference(3, x), rtol=1e-5, atol=1e-6)
    entry = cache / model.sha256
    assert sorted(p.name for p in entry.iterdir()) == ["m.onnx", "weights.bin"]
    assert (entry / "weights.bin").read_bytes() == (path.parent / "weights.bin").read_bytes()


def test_sql_function_and_image_stage_run_models_on_disk(spark, cache, workdir):
    mlp = OnnxModel.from_path(mlp_on_disk(workdir / "mlp", seed=4), keep_on_disk=True)
    df, x = features(spark, 20)
    df.createOrReplaceTempView("points_on_disk")
    register_udf(spark, "mlp_on_disk", mlp, batchSize=8)
    rows = spark.sql("SELECT id, mlp_on_disk(features) AS y FROM points_on_disk").collect()
    got = [r.y for r in sorted(rows, key=lambda r: r.id)]
    np.testing.assert_allclose(got, reference(4, x), rtol=1e-5, atol=1e-6)

    (workdir / "cnn").mkdir()
    cnn_path = workdir / "cnn" / "cnn.onnx"
    testing.save_with_external_data(testing.tiny_cnn_nhwc(size=8), cnn_path)
    cnn = OnnxModel.from_path(cnn_path, keep_on_disk=True)
    images = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3)).astype(np.uint8)
    schema = "id int, image struct<origin:string,height:int,width:int,nChannels:int,"
    schema += "mode:int,data:binary>"
    image_rows = [(i, imageArrayToStruct(img, f"mem://{i}")) for i, img in enumerate(images)]
    out = ImageTransformer(inputCol="image", outputCol="scores", model=cnn).transform(
        spark.createDataFrame(image_rows, schema)
    )
    scores = np.array([r.scores for r in sorted(out.collect(), key=lambda r: r.id)])
    session = ort.InferenceSession(testing.tiny_cnn_nhwc(size=8).SerializeToString())
    rgb = images[:, :, :, ::-1].astype(np.float32)  # structs are BGR, the model takes RGB
    np.testing.assert_allclose(scores, session.run(None, {"pixels": rgb})[0], rtol=1e-4)
    assert {p.name for p in cache.iterdir()} == {mlp.sha256, cnn.sha256}


def test_over_the_size_limit_the_driver_checks_operators_only(spark, workdir):
    evil = OnnxModel.from_path(evil_on_disk(workdir), keep_on_disk=True)
    spark.conf.set(DRIVER_CHECK_MAX_CONF, "0")
    try:
        with pytest.raises(ModelNotRunnableError, match=r"domains ONNX Runtime does not know"):
            ship_model(spark, evil)
        spark.conf.set(DRIVER_CHECK_MAX_CONF, "lots")
        with pytest.raises(ValueError, match=r"maxBytes must be a number of bytes .* 'lots'"):
            ship_model(spark, evil)
    finally:
        spark.conf.unset(DRIVER_CHECK_MAX_CONF)
    with pytest.raises(ModelNotRunnableError, match=r"operator 'EvilOp' of domain 'com\.evil'"):
        ship_model(spark, evil)  # under the limit: a CPU session, built from the path
    spark.conf.set(DRIVER_CHECK_CONF, "false")
    try:
        assert isinstance(ship_model(spark, evil), ModelFilesRef)  # the documented skip
    finally:
        spark.conf.unset(DRIVER_CHECK_CONF)


def test_saving_or_quantizing_a_model_on_disk_says_why_not(spark, workdir):
    model = OnnxModel.from_path(mlp_on_disk(workdir / "m"), keep_on_disk=True)
    stage = ONNXTransformer(model=model, inputCol="features", outputCol="y")
    with pytest.raises(ModelOnDiskError, match=r"cannot save ONNXTransformer .* modelFile="):
        stage.save(str(workdir / "stage"))
    int8 = ONNXTransformer(model=model, inputCol="features", outputCol="y", precision="int8")
    with pytest.raises(ModelOnDiskError, match=r"precision='int8' needs the model in memory"):
        int8.transform(features(spark, 4)[0])
