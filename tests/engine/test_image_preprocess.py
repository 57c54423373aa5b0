"""Image structs -> model tensors (and back) against numpy / Pillow references; no Spark."""

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sparkonnx.engine.image_preprocess import (
    ImagePreprocessing,
    images_from_tensor,
    infer_layout,
    resolve_preprocessing,
)
from sparkonnx.engine.image_spec import spec_from_metadata
from sparkonnx.engine.images import IMAGE_ARROW_TYPE, array_to_struct_fields
from sparkonnx.engine.model import TensorSpec

RNG = np.random.default_rng(7)


def structs(*images, origins=None):
    """An image StructArray of BGR arrays; None entries become null structs."""
    rows = []
    for i, img in enumerate(images):
        if img is None:
            rows.append(None)
            continue
        f = array_to_struct_fields(img)
        origin = origins[i] if origins else f"img{i}"
        rows.append(dict(origin=origin, **f._asdict()))
    return pa.array(rows, IMAGE_ARROW_TYPE)


def bgr(h, w, c=3, dtype=np.uint8):
    if dtype == np.uint16:
        return RNG.integers(0, 65536, (h, w, c)).astype(np.uint16)
    return RNG.integers(0, 256, (h, w, c)).astype(dtype)


def pil_reference(img_bgr, size, resample=Image.Resampling.BILINEAR):
    """Pillow's resize of the RGB image: (height, width, 3) uint8 RGB."""
    rgb = Image.fromarray(np.ascontiguousarray(img_bgr[:, :, ::-1]), "RGB")
    return np.asarray(rgb.resize((size[1], size[0]), resample))


def spec(shape, dtype="float32", name="x"):
    return TensorSpec(name, np.dtype(dtype), tuple(shape))


def test_resize_order_layout_and_scaling_match_pillow_and_numpy():
    images = [bgr(20, 30), bgr(9, 7), bgr(8, 8)]
    pre = ImagePreprocessing(
        size=(8, 8), layout="NCHW", scale=1 / 255, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5)
    )
    tensor, batch = pre.structs_to_tensor(structs(*images))
    assert tensor.shape == (3, 3, 8, 8) and tensor.dtype == np.float32
    assert tensor.flags.c_contiguous and batch.valid.all()
    for got, img in zip(tensor, images):
        ref = pil_reference(img, (8, 8)).astype(np.float32)
        ref = (ref / 255 - np.array([0.5, 0.4, 0.3])) / np.array([0.2, 0.25, 0.5])
        np.testing.assert_allclose(got, ref.transpose(2, 0, 1), rtol=1e-5, atol=1e-5)


def test_uniform_images_are_not_resized_and_bgr_order_is_kept_when_asked():
    images = [bgr(6, 5), bgr(6, 5)]
    tensor, _ = ImagePreprocessing(channel_order="BGR").structs_to_tensor(structs(*images))
    np.testing.assert_array_equal(tensor, np.stack(images).astype(np.float32))
    rgb, _ = ImagePreprocessing().structs_to_tensor(structs(*images))
    np.testing.assert_array_equal(rgb, np.stack(images)[..., ::-1].astype(np.float32))


def test_nearest_resample_and_uint8_model_input():
    img = bgr(12, 10)
    pre = ImagePreprocessing(size=(4, 5), dtype="uint8", resample="nearest")
    tensor, _ = pre.structs_to_tensor(structs(img))
    assert tensor.dtype == np.uint8
    np.testing.assert_array_equal(tensor[0], pil_reference(img, (4, 5), Image.Resampling.NEAREST))


def test_scaled_values_are_rounded_and_clipped_for_integer_inputs():
    images = np.array([[[[0, 100, 250]]]], np.uint8)  # one 1x1 BGR pixel
    pre = ImagePreprocessing(dtype="uint8", channel_order="BGR", scale=2.0)
    out = pre.batch_to_tensor(images)
    np.testing.assert_array_equal(out.reshape(-1), [0, 200, 255])


def test_invalid_rows_are_left_out_and_reported():
    s = structs(bgr(4, 4), None, bgr(4, 4))
    undefined = {
        "origin": "bad.jpg",
        "height": -1,
        "width": -1,
        "nChannels": -1,
        "mode": -1,
        "data": b"",
    }
    s = pa.concat_arrays([s, pa.array([undefined], IMAGE_ARROW_TYPE)])
    tensor, batch = ImagePreprocessing(size=(4, 4)).structs_to_tensor(s)
    assert tensor.shape == (2, 4, 4, 3)
    assert batch.valid.tolist() == [True, False, True, False]
    assert batch.errors[1] == "null image" and "mode -1" in batch.errors[3]


def test_gray_and_bgra_images_become_the_channels_the_model_takes():
    gray = bgr(4, 4, 1)
    bgra = bgr(4, 4, 4)
    tensor, _ = ImagePreprocessing().structs_to_tensor(structs(gray, bgra))
    np.testing.assert_array_equal(tensor[0], np.repeat(gray, 3, axis=-1).astype(np.float32))
    np.testing.assert_array_equal(tensor[1], bgra[..., 2::-1].astype(np.float32))
    one, _ = ImagePreprocessing(channel_order="L", layout="NHW").structs_to_tensor(structs(gray))
    np.testing.assert_array_equal(one, gray[np.newaxis, ..., 0].astype(np.float32))


def test_mixed_8_and_16_bit_images_share_the_8_bit_range():
    eight, sixteen = bgr(3, 3, 1), bgr(3, 3, 1, np.uint16)
    pre = ImagePreprocessing(channel_order="L", layout="NHWC")
    tensor, _ = pre.structs_to_tensor(structs(eight, sixteen))
    np.testing.assert_array_equal(tensor[0], eight.astype(np.float32))
    expected = (sixteen.astype(np.uint32) + 128) // 257
    np.testing.assert_array_equal(tensor[1], expected.astype(np.float32))


def test_images_from_tensor_undoes_layout_and_channel_order():
    images = bgr(5, 6)[np.newaxis].astype(np.float64)
    nchw = images[..., ::-1].transpose(0, 3, 1, 2)  # RGB, channels first
    back = images_from_tensor(nchw, "NCHW", "RGB")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, images.astype(np.float32))
    gray = images_from_tensor(np.zeros((2, 3, 4), np.uint8), "NHW", "L")
    assert gray.shape == (2, 3, 4, 1)
    with pytest.raises(ValueError, match="int64"):
        images_from_tensor(np.zeros((1, 2, 2, 3), np.int64), "NHWC", "RGB")
    with pytest.raises(ValueError, match="1, 3 or 4 channels"):
        images_from_tensor(np.zeros((1, 2, 2, 5), np.float32), "NHWC", "RGB")


def test_layout_is_read_from_the_input_shape():
    assert infer_layout(spec(["N", 3, 224, 224])) == "NCHW"
    assert infer_layout(spec(["N", 224, 224, 3])) == "NHWC"
    assert infer_layout(spec(["N", "H", "W", 3])) == "NHWC"
    assert infer_layout(spec(["N", "C", "H", "W"])) is None
    assert infer_layout(spec(["N", 28, 28])) == "NHW"


def test_resolve_reads_size_layout_channels_and_dtype_from_the_model():
    pre = resolve_preprocessing(spec(["N", 1, 28, 32], "uint8"))
    assert (pre.size, pre.layout, pre.channel_order, pre.dtype) == ((28, 32), "NCHW", "L", "uint8")
    dynamic = resolve_preprocessing(spec(["N", None, None, 3]))
    assert dynamic.size is None and dynamic.layout == "NHWC" and dynamic.channel_order == "RGB"


def test_parameters_win_over_metadata_which_wins_over_defaults():
    meta = {"size": [16, 16], "preset": "torch", "resample": "bicubic"}
    pre = resolve_preprocessing(spec(["N", None, None, 3]), meta)
    assert pre.size == (16, 16) and pre.resample == "bicubic"
    assert pre.scale == pytest.approx(1 / 255) and pre.std == (0.229, 0.224, 0.225)
    user = resolve_preprocessing(
        spec(["N", None, None, 3]), meta, {"size": [8, 8], "channel_order": "bgr", "std": [2.0]}
    )
    assert user.size == (8, 8) and user.channel_order == "BGR" and user.std == (2.0,)
    assert user.mean == (0.485, 0.456, 0.406)  # from the metadata's preset


def test_presets_match_keras_preprocess_input_formulas():
    x = RNG.integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)  # BGR
    rgb = x[..., ::-1].astype(np.float32)
    tf = ImagePreprocessing(**spec_from_metadata({"preset": "tf"}))
    np.testing.assert_allclose(tf.batch_to_tensor(x), rgb / 127.5 - 1, atol=1e-6)
    caffe = ImagePreprocessing(**spec_from_metadata({"preset": "caffe"}))
    np.testing.assert_allclose(
        caffe.batch_to_tensor(x), x.astype(np.float32) - [103.939, 116.779, 123.68], atol=1e-4
    )


def test_the_model_zoo_spelling_of_a_fused_spec_is_understood():
    zoo = {
        "fused": True,
        "layout": "NHWC",
        "channel_order": "BGR",
        "dtype": "uint8",
        "input_size": [299, 299],
        "resize": "bilinear",
        "normalisation": "tf",
    }
    pre = resolve_preprocessing(spec(["batch", None, None, 3], "uint8"), zoo)
    assert pre.size == (299, 299) and pre.channel_order == "BGR" and not pre.scales_values
    assert spec_from_metadata({"normalisation": "tf"})["scale"] == pytest.approx(1 / 127.5)


@pytest.mark.parametrize(
    ("shape", "meta", "overrides", "match"),
    [
        (["N", 3, 8, 8], None, {"size": [9, 9]}, r"size \[9, 9\].*takes images of 8x8"),
        (["N", 8, 8, 3], None, {"channel_order": "L"}, "'L' has 1 channels but"),
        (["N", 8], None, None, "not an image batch"),
        (["N", 8, 8, 3], {"preset": "yolo"}, None, "preset 'yolo'"),
        (["N", 8, 8, 3], None, {"layout": "NHW"}, "does not fit"),
        (["N", 8, 8, 3], {"dtype": "uint8"}, None, "takes float32"),
        (["N", 8, 8, 3], None, {"mean": [1, 2]}, "mean has 2 values; expected 1 or 3"),
        (["N", 8, 8, 3], None, {"std": [0]}, "std must not contain 0"),
    ],
)
def test_inconsistent_specs_are_refused_with_the_reason(shape, meta, overrides, match):
    with pytest.raises(ValueError, match=match):
        resolve_preprocessing(spec(shape), meta, overrides)


def test_unknown_metadata_keys_are_ignored():
    assert spec_from_metadata({"size": [4, 4], "future_key": 1}) == {"size": (4, 4)}
    assert ImagePreprocessing(size=[4, 4]).to_dict()["size"] == [4, 4]
