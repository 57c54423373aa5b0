"""ImageTransformer on image-struct columns: preprocessing parity, image output, invalid rows."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.linalg import DenseVector

import sparkonnx
from sparkonnx import ImageTransformer, TFImageTransformer, testing
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.images.reading import ImageSchema, read_images
from sparkonnx.spark_api.images.structs import imageArrayToStruct, imageStructToArray

RNG = np.random.default_rng(3)
SIZES = [(8, 8), (13, 9), (6, 11), (20, 20), (8, 8)]


def bgr_images():
    return [RNG.integers(0, 256, (h, w, 3)).astype(np.uint8) for h, w in SIZES]


def image_df(spark, images, partitions=2, extra_null=False):
    rows = [(i, imageArrayToStruct(img, f"mem://{i}")) for i, img in enumerate(images)]
    if extra_null:
        rows.append((len(images), None))
    schema = "id int, image " + ImageSchema.columnSchema.simpleString()
    return spark.createDataFrame(rows, schema).repartition(partitions)


def pillow_reference(img_bgr, size=(8, 8)):
    """What the model should see: Pillow bilinear resize of the RGB image, float32 HWC."""
    rgb = Image.fromarray(np.ascontiguousarray(img_bgr[:, :, ::-1]), "RGB")
    return np.asarray(rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR), np.float32)


def ort_run(proto, x):
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def with_preprocessing(proto, spec):
    onnx.helper.set_model_props(proto, {"sparkonnx.preprocessing": json.dumps(spec)})
    return proto


def by_id(df):
    return sorted(df.collect(), key=lambda r: r.id)


def test_resize_and_nchw_layout_match_a_pillow_reference(any_spark):
    images = bgr_images()
    identity = testing.image_identity("NCHW", size=(8, 8))
    out = ImageTransformer(
        inputCol="image", outputCol="x", model=identity, scale=1 / 255, mean=[0.5], std=[0.25]
    ).transform(image_df(any_spark, images))
    assert out.columns == ["id", "image", "x"]
    rows = by_id(out)
    for row, img in zip(rows, images):
        ref = (pillow_reference(img) / 255 - 0.5) / 0.25
        got = np.array(row.x, np.float32).reshape(3, 8, 8)  # 'vector': flattened NCHW tensor
        np.testing.assert_allclose(got, ref.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)


def test_cnn_scores_equal_onnxruntime_on_the_reference_batch(spark):
    images = bgr_images()
    cnn = testing.tiny_cnn_nhwc()
    out = ImageTransformer(inputCol="image", outputCol="scores", model=cnn, batchSize=2)
    rows = by_id(out.transform(image_df(spark, images)))
    expected = ort_run(cnn, np.stack([pillow_reference(img) for img in images]))
    np.testing.assert_allclose(np.array([r.scores for r in rows]), expected, rtol=1e-4, atol=1e-5)


def test_image_output_round_trips_pixels_and_origin(any_spark):
    images = [RNG.integers(0, 256, (5, 7, 3)).astype(np.uint8) for _ in range(3)]
    float_identity = testing.image_identity("NHWC", size=None)  # RGB in, RGB out
    df = image_df(any_spark, images, extra_null=True)
    out = ImageTransformer(
        inputCol="image", outputCol="out", model=float_identity, outputMode="image"
    ).transform(df)
    rows = by_id(out)
    assert rows[-1].out is None  # the null image row is kept, with a null image out
    for i, (row, img) in enumerate(zip(rows, images)):
        assert row.out.origin == f"mem://{i}" and row.out.mode == 21  # CV_32FC3
        np.testing.assert_array_equal(imageStructToArray(row.out), img.astype(np.float32))
    uint8_identity = testing.image_identity("NCHW", size=None, dtype=onnx.TensorProto.UINT8)
    rows = by_id(
        ImageTransformer(
            inputCol="image", outputCol="out", model=uint8_identity, outputMode="image"
        ).transform(df)
    )
    assert [bytes(r.out.data) for r in rows[:-1]] == [img.tobytes() for img in images]
    assert {r.out.mode for r in rows[:-1]} == {16}


def test_spark_image_source_with_a_corrupt_file(any_spark, workdir):
    images = bgr_images()[:3]
    for i, img in enumerate(images):
        Image.fromarray(img[:, :, ::-1]).save(workdir / f"img{i}.png")
    (workdir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    df = any_spark.read.format("image").load(str(workdir))
    out = ImageTransformer(
        inputCol="image", outputCol="x", model=testing.image_identity("NHWC"), errorCol="why"
    ).transform(df)
    rows = {r.image.origin.rsplit("/", 1)[-1]: r for r in out.collect()}
    assert sorted(rows) == ["broken.png", "img0.png", "img1.png", "img2.png"]
    assert rows["broken.png"].x is None and "mode -1" in rows["broken.png"].why
    for i, img in enumerate(images):
        row = rows[f"img{i}.png"]
        assert row.why is None
        np.testing.assert_allclose(np.array(row.x).reshape(8, 8, 3), pillow_reference(img))


def test_read_images_null_row_keeps_its_error_and_gets_a_null_vector(spark, workdir):
    img = bgr_images()[1]
    Image.fromarray(img[:, :, ::-1]).save(workdir / "good.png")
    (workdir / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    df = read_images(str(workdir), spark=spark)
    out = ImageTransformer(
        inputCol="image", outputCol="v", model=testing.tiny_cnn(), outputFormat="vector"
    ).transform(df)
    assert out.columns == ["image", "path", "error", "v"]
    rows = {r.path.rsplit("/", 1)[-1]: r for r in out.collect()}
    assert rows["bad.jpg"].v is None and rows["bad.jpg"].error  # read_images' reason kept
    assert isinstance(rows["good.png"].v, DenseVector) and len(rows["good.png"].v) == 5
    reference = ort_run(testing.tiny_cnn(), pillow_reference(img)[np.newaxis].transpose(0, 3, 1, 2))
    np.testing.assert_allclose(rows["good.png"].v.toArray(), reference[0], rtol=1e-4)


def test_handle_invalid_error_fails_naming_the_row(spark):
    df = image_df(spark, bgr_images()[:2], partitions=1, extra_null=True)
    t = ImageTransformer(
        inputCol="image", outputCol="x", model=testing.tiny_cnn(), handleInvalid="error"
    )
    with pytest.raises(Exception, match=r"column 'image', row \d+ of partition \d+: null image"):
        t.transform(df).collect()


def test_metadata_preprocessing_is_used_and_parameters_win(spark):
    img = bgr_images()[0]  # 8x8: no resize
    model = with_preprocessing(
        testing.image_identity("NHWC", size=None), {"channel_order": "BGR", "scale": 2.0}
    )
    df = image_df(spark, [img], partitions=1)
    (row,) = ImageTransformer(inputCol="image", outputCol="x", model=model).transform(df).collect()
    np.testing.assert_array_equal(np.array(row.x).reshape(8, 8, 3), img * 2.0)
    t = ImageTransformer(inputCol="image", outputCol="x", model=model, channelOrder="RGB")
    assert t.preprocessing().channel_order == "RGB" and t.preprocessing().scale == 2.0
    (row,) = t.transform(df).collect()
    np.testing.assert_array_equal(np.array(row.x).reshape(8, 8, 3), img[:, :, ::-1] * 2.0)


def test_a_model_of_any_size_gets_each_image_at_its_own_size(any_spark):
    images = bgr_images()  # 4 sizes, all in one batch, plus a null image
    df = image_df(any_spark, images, partitions=1, extra_null=True)
    dynamic = testing.image_identity("NHWC", size=None)
    t = ImageTransformer(inputCol="image", outputCol="x", model=dynamic, errorCol="why")
    rows = by_id(t.transform(df))
    for row, img in zip(rows, images):  # in row order, each its own size, RGB
        np.testing.assert_array_equal(np.array(row.x), img[:, :, ::-1].reshape(-1))
    assert rows[-1].x is None and rows[-1].why == "null image"
    image_out = t.copy().setOutputMode("image").transform(df)
    got = {r.id: r.x for r in image_out.collect()}
    assert [(got[i].height, got[i].width) for i in range(len(images))] == SIZES
    sized = t.setInputSize([4, 6]).transform(df).where("x IS NOT NULL").collect()
    assert {len(r.x) for r in sized} == {4 * 6 * 3}


def test_driver_side_errors_name_the_problem(spark):
    df = image_df(spark, bgr_images()[:1])
    cnn = testing.tiny_cnn()
    with pytest.raises(ValueError, match="column 'id' is not an image struct"):
        ImageTransformer(inputCol="id", outputCol="x", model=cnn).transform(df)
    with pytest.raises(ValueError, match="output column 'id' already exists"):
        ImageTransformer(inputCol="image", outputCol="id", model=cnn).transform(df)
    with pytest.raises(ValueError, match="outputMode='image' needs an image output"):
        ImageTransformer(inputCol="image", outputCol="o", model=cnn, outputMode="image").transform(
            df
        )
    with pytest.raises(ValueError, match=r"size \[9, 9\].*takes images of 8x8"):
        ImageTransformer(inputCol="image", outputCol="o", model=cnn, inputSize=[9, 9]).transform(df)
    two = testing.two_in_two_out()
    with pytest.raises(ValueError, match=r"the model has 2 inputs.*Use ONNXTransformer"):
        ImageTransformer(inputCol="image", outputCol="o", model=two, inputTensor="a").transform(df)
    with pytest.raises(ValueError, match=r"input x: float32\[N, 8\] is not an image batch"):
        ImageTransformer(inputCol="image", outputCol="o", model=testing.mlp((8, 2))).transform(df)
    with pytest.raises(InvalidParamError, match="outputMode must be one of"):
        ImageTransformer(outputMode="tensor")


def test_save_load_in_a_pipeline_and_the_sparkdl_name(spark, workdir):
    assert issubclass(TFImageTransformer, ImageTransformer)
    assert sparkonnx.TFImageTransformer is TFImageTransformer
    df = image_df(spark, bgr_images())
    t = TFImageTransformer(
        inputCol="image", outputCol="x", model=testing.tiny_cnn(), mean=[10.0], errorCol="err"
    )
    expected = by_id(t.transform(df))
    Pipeline(stages=[t]).fit(df).write().overwrite().save(str(workdir / "p"))
    loaded = PipelineModel.load(str(workdir / "p"))
    stage = loaded.stages[0]
    assert isinstance(stage, ImageTransformer) and stage.getOrDefault("mean") == [10.0]
    assert by_id(loaded.transform(df)) == expected
