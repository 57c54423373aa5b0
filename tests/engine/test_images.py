"""engine/images, image_decode, image_batch: struct fields, decoding, struct <-> numpy batches."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from sparkonnx.engine import image_decode
from sparkonnx.engine import images as E
from sparkonnx.engine.image_batch import batch_to_image_structs, image_structs_to_batch
from sparkonnx.engine.image_decode import (
    array_to_pil,
    decode_file_batches,
    decode_image,
    decode_image_fields,
    pil_to_array,
)
from sparkonnx.engine.images import (
    IMAGE_ARROW_TYPE,
    ImageDecodeError,
    array_to_struct_fields,
    mode_to_dtype_channels,
    ocv_mode,
    struct_fields_to_array,
)

RNG = np.random.default_rng(7)


# --------------------------------------------------------------------------- helpers


def encode(img: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def rgb_image(h: int = 6, w: int = 5) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def png16_color(arr: np.ndarray) -> bytes:
    """A 16-bit RGB / RGBA PNG written by hand (Pillow cannot write one)."""
    h, w, c = arr.shape
    raw = b"".join(b"\x00" + arr[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", w, h, 16, {3: 2, 4: 6}[c], 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def structs_of(arrays: list[np.ndarray | None]) -> pa.StructArray:
    """An image StructArray from arrays (None -> null struct), built row by row."""
    rows = []
    for i, a in enumerate(arrays):
        if a is None:
            rows.append(None)
        else:
            f = array_to_struct_fields(a)
            rows.append({"origin": f"img{i}", **f._asdict()})
    return pa.array(rows, IMAGE_ARROW_TYPE)


# --------------------------------------------------------------------------- modes


def test_mode_codes_follow_opencv() -> None:
    assert E.OCV_TYPES["CV_8UC1"] == 0
    assert E.OCV_TYPES["CV_8UC3"] == 16
    assert E.OCV_TYPES["CV_8UC4"] == 24
    assert E.OCV_TYPES["CV_16UC1"] == 2
    assert E.OCV_TYPES["CV_16UC3"] == 18
    assert E.OCV_TYPES["CV_16UC4"] == 26
    assert E.OCV_TYPES["CV_32FC3"] == 21
    assert E.OCV_TYPES["Undefined"] == -1
    assert ocv_mode(np.uint8, 3) == 16
    assert ocv_mode(np.uint16, 4) == 26
    assert ocv_mode(np.float32, 1) == 5
    assert mode_to_dtype_channels(18) == (np.dtype("<u2"), 3)
    assert mode_to_dtype_channels(24) == (np.dtype(np.uint8), 4)


@pytest.mark.parametrize("mode", [-1, 1, 8, 7, 40])
def test_unsupported_mode_is_named(mode: int) -> None:
    with pytest.raises(ValueError, match=f"unsupported image mode {mode}"):
        mode_to_dtype_channels(mode)


def test_ocv_mode_rejects_bad_dtype_and_channels() -> None:
    with pytest.raises(ValueError, match=r"uint8, uint16 or float32, got float64.*astype"):
        ocv_mode(np.float64, 3)
    with pytest.raises(ValueError, match=r"1, 3 or 4 channels.*got 2"):
        ocv_mode(np.uint8, 2)


# --------------------------------------------------------------------------- real photos


def _skimage_file(name: str) -> Path:
    skdata = pytest.importorskip("skimage.data")
    path = Path(skdata.__path__[0]) / name
    if not path.exists():
        pytest.skip(f"{name} is not in this scikit-image wheel")
    return path


@pytest.mark.parametrize("name", ["chelsea", "coffee", "astronaut", "rocket"])
def test_wheel_photos_decode_to_bgr(name: str) -> None:
    skdata = pytest.importorskip("skimage.data")
    file = _skimage_file(f"{name}.jpg" if name == "rocket" else f"{name}.png")
    expected_rgb = getattr(skdata, name)()
    got = decode_image(file.read_bytes())
    assert got.dtype == np.uint8
    assert got.shape == expected_rgb.shape
    np.testing.assert_array_equal(got, expected_rgb[..., ::-1])


def test_wheel_grayscale_photo() -> None:
    skdata = pytest.importorskip("skimage.data")
    fields = decode_image_fields(_skimage_file("camera.png").read_bytes())
    assert (fields.nChannels, fields.mode) == (1, 0)
    got = struct_fields_to_array(*fields)
    np.testing.assert_array_equal(got[:, :, 0], skdata.camera())


def test_sklearn_sample_images() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    images = datasets.load_sample_images()
    folder = Path(datasets.__file__).parent / "images"
    for fname, expected in zip(images.filenames, images.images):
        got = decode_image((folder / Path(fname).name).read_bytes())
        np.testing.assert_array_equal(got, expected[..., ::-1])


# --------------------------------------------------------------------------- generated files


def test_known_pixel_is_stored_bgr() -> None:
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[1, 2] = (200, 100, 50)  # R, G, B
    fields = decode_image_fields(encode(Image.fromarray(rgb), "PNG"))
    assert (fields.height, fields.width, fields.nChannels, fields.mode) == (3, 4, 3, 16)
    offset = (1 * 4 + 2) * 3
    assert fields.data[offset : offset + 3] == bytes([50, 100, 200])
    assert len(fields.data) == 3 * 4 * 3


def test_jpeg_decodes_close_to_source() -> None:
    rgb = np.full((16, 16, 3), (10, 120, 240), np.uint8)
    got = decode_image(encode(Image.fromarray(rgb), "JPEG", quality=95))
    assert got.shape == (16, 16, 3)
    assert np.abs(got.astype(int) - [240, 120, 10]).max() <= 3


def test_grayscale_is_one_channel() -> None:
    gray = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    fields = decode_image_fields(encode(Image.fromarray(gray, "L"), "PNG"))
    assert (fields.nChannels, fields.mode) == (1, 0)
    np.testing.assert_array_equal(struct_fields_to_array(*fields)[:, :, 0], gray)


def test_rgba_keeps_alpha_as_bgra() -> None:
    rgba = RNG.integers(0, 256, (4, 3, 4), dtype=np.uint8)
    fields = decode_image_fields(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert (fields.nChannels, fields.mode) == (4, 24)
    np.testing.assert_array_equal(struct_fields_to_array(*fields), rgba[..., [2, 1, 0, 3]])


def test_gray_alpha_and_palettes() -> None:
    la = Image.fromarray(RNG.integers(0, 256, (3, 3, 2), dtype=np.uint8), "LA")
    got = decode_image(encode(la, "PNG"))
    assert got.shape == (3, 3, 4)
    np.testing.assert_array_equal(got[..., 3], np.asarray(la)[..., 1])
    np.testing.assert_array_equal(got[..., 0], np.asarray(la)[..., 0])

    rgb = rgb_image()
    opaque = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    got = decode_image(encode(opaque, "PNG"))
    np.testing.assert_array_equal(got, np.asarray(opaque.convert("RGB"))[..., ::-1])

    transparent = opaque.copy()
    transparent.info["transparency"] = 0
    got = decode_image(encode(transparent, "PNG"))
    assert got.shape[-1] == 4
    expected = np.asarray(transparent.convert("RGBA"))[..., [2, 1, 0, 3]]
    np.testing.assert_array_equal(got, expected)


def test_bilevel_image_is_gray_0_255() -> None:
    bits = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    got = decode_image(encode(bits, "PNG"))
    np.testing.assert_array_equal(got[:, :, 0], [[0, 255], [255, 0]])


def test_16bit_grayscale_stays_16bit() -> None:
    values = np.array([[0, 1, 258], [40000, 65535, 12345]], np.uint16)
    fields = decode_image_fields(encode(Image.fromarray(values), "PNG"))
    assert (fields.nChannels, fields.mode) == (1, 2)
    got = struct_fields_to_array(*fields)
    assert got.dtype == np.dtype("<u2")
    np.testing.assert_array_equal(got[:, :, 0], values)
    assert fields.data[:4] == b"\x00\x00\x01\x00"  # little-endian


def test_16bit_color_png_is_reduced_to_its_high_byte() -> None:
    # Pillow has no 16-bit colour mode: documented, CV_8UC3 with the high bytes.
    rgb16 = np.array([[[0x1234, 0xABCD, 0xFF00]]], np.uint16)
    fields = decode_image_fields(png16_color(rgb16))
    assert fields.mode == 16
    np.testing.assert_array_equal(struct_fields_to_array(*fields)[0, 0], [0xFF, 0xAB, 0x12])


def test_float_image_is_float32() -> None:
    values = np.array([[0.5, -1.25], [3.0, 1e6]], np.float32)
    fields = decode_image_fields(encode(Image.fromarray(values, "F"), "TIFF"))
    assert fields.mode == 5
    np.testing.assert_array_equal(struct_fields_to_array(*fields)[:, :, 0], values)


def test_cmyk_becomes_bgr() -> None:
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))  # pure red
    got = decode_image(encode(cmyk, "TIFF"))
    np.testing.assert_array_equal(got[0, 0], [0, 0, 255])
    got_jpeg = decode_image(encode(Image.new("CMYK", (8, 8), (255, 0, 255, 0)), "JPEG"))
    assert got_jpeg.shape == (8, 8, 3)
    assert np.abs(got_jpeg[0, 0].astype(int) - [0, 255, 0]).max() <= 3  # green


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_applied(fmt: str) -> None:
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:, :8] = (255, 0, 0)  # left half red
    rgb[:, 8:] = (0, 0, 255)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    got = decode_image(encode(Image.fromarray(rgb), fmt, exif=exif.tobytes()))
    assert got.shape == (16, 8, 3)
    assert np.abs(got[0, 0].astype(int) - [0, 0, 255]).max() <= 3  # top is red (BGR)
    assert np.abs(got[-1, -1].astype(int) - [255, 0, 0]).max() <= 3  # bottom is blue


# --------------------------------------------------------------------------- broken files


def _truncated(fmt: str) -> bytes:
    data = encode(Image.fromarray(rgb_image(64, 64)), fmt)
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"this is plain text, not an image", "cannot identify image file"),
        (b"\x89PNG\r\n\x1a\n", "cannot identify image file"),
        (_truncated("JPEG"), "truncated image file"),
        (_truncated("PNG"), "truncated image file"),
        (_truncated("GIF"), "truncated image file"),
    ],
)
def test_broken_files_give_a_short_reason(content: bytes, reason: str) -> None:
    with pytest.raises(ImageDecodeError) as info:
        decode_image(content)
    assert str(info.value).startswith(reason)
    assert "BytesIO" not in str(info.value)


# --------------------------------------------------------------------------- fields <-> arrays


@pytest.mark.parametrize(
    ("dtype", "channels", "mode"),
    [
        (np.uint8, 1, 0),
        (np.uint8, 3, 16),
        (np.uint8, 4, 24),
        (np.uint16, 3, 18),
        (np.float32, 4, 29),
    ],
)
def test_fields_roundtrip(dtype: type, channels: int, mode: int) -> None:
    arr = (RNG.random((3, 5, channels)) * 200).astype(dtype)
    fields = array_to_struct_fields(arr)
    assert (fields.height, fields.width, fields.nChannels, fields.mode) == (3, 5, channels, mode)
    np.testing.assert_array_equal(struct_fields_to_array(*fields), arr)


def test_two_dimensional_array_is_gray() -> None:
    fields = array_to_struct_fields(np.arange(6, dtype=np.uint8).reshape(2, 3))
    assert (fields.nChannels, fields.mode, fields.data) == (1, 0, bytes(range(6)))


def test_fields_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match=r"shape \(height, width\).*got shape \(2,\)"):
        array_to_struct_fields(np.zeros(2, np.uint8))
    with pytest.raises(TypeError, match=r"numpy\.ndarray, got list"):
        array_to_struct_fields([[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="has 5 bytes, expected 6"):
        struct_fields_to_array(1, 2, 3, 16, b"\x00" * 5)
    with pytest.raises(ValueError, match="nChannels=1 but mode 16 has 3"):
        struct_fields_to_array(1, 2, 1, 16, b"\x00" * 6)
    with pytest.raises(ImageDecodeError, match="undefined image"):
        struct_fields_to_array(-1, -1, -1, -1, b"")


def test_pil_conversions_swap_channels() -> None:
    bgr = rgb_image()
    img = array_to_pil(bgr)
    assert img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(img), bgr[..., ::-1])
    np.testing.assert_array_equal(pil_to_array(img), bgr)
    bgra = RNG.integers(0, 256, (2, 2, 4), dtype=np.uint8)
    assert array_to_pil(bgra).mode == "RGBA"
    np.testing.assert_array_equal(pil_to_array(array_to_pil(bgra)), bgra)
    gray16 = np.array([[1, 60000]], np.uint16)
    assert array_to_pil(gray16).mode == "I;16"
    np.testing.assert_array_equal(pil_to_array(array_to_pil(gray16))[:, :, 0], gray16)
    with pytest.raises(ValueError, match="no mode for 3-channel uint16"):
        array_to_pil(np.zeros((2, 2, 3), np.uint16))


# --------------------------------------------------------------------------- files -> structs


def _file_batch(items: list[tuple[str, bytes]]) -> pa.RecordBatch:
    paths, contents = zip(*items)
    return pa.record_batch({"path": pa.array(paths), "content": pa.array(contents, pa.binary())})


def test_decode_file_batches_keeps_every_row() -> None:
    good = encode(Image.fromarray(rgb_image()), "PNG")
    items = [("a.png", good), ("empty.png", b""), ("text.jpg", b"hello"), ("b.png", good)]
    out = pa.Table.from_batches(list(decode_file_batches([_file_batch(items)])))
    assert out.schema == image_decode.DECODED_BATCH_SCHEMA
    assert out.column("path").to_pylist() == [p for p, _ in items]
    errors = out.column("error").to_pylist()
    assert errors[0] is None and errors[3] is None
    assert errors[1] == "empty file"
    assert errors[2].startswith("cannot identify image file")
    images = out.column("image").to_pylist()
    assert images[1] is None and images[2] is None
    assert images[0]["origin"] == "a.png"
    assert images[0]["mode"] == 16


def test_unexpected_decoder_failures_become_row_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(content: bytes, max_pixels: int | None = None) -> E.ImageFields:
        raise MemoryError("out of memory")

    monkeypatch.setattr(image_decode, "decode_image_fields", explode)
    batch = _file_batch([("huge.png", b"data")])
    out = pa.Table.from_batches(list(decode_file_batches([batch])))
    assert out.column("error").to_pylist() == ["cannot decode image (MemoryError: out of memory)"]
    with pytest.raises(ImageDecodeError, match=r"huge\.png: cannot decode image \(MemoryError"):
        list(decode_file_batches([batch], strict=True))


def test_decode_file_batches_strict_names_the_file() -> None:
    good = encode(Image.fromarray(rgb_image()), "PNG")
    batch = _file_batch([("ok.png", good), ("s3://bucket/broken.jpg", _truncated("JPEG"))])
    with pytest.raises(ImageDecodeError, match=r"s3://bucket/broken\.jpg: truncated image file"):
        list(decode_file_batches([batch], strict=True))


def test_decode_file_batches_flushes_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_decode, "_FLUSH_ROWS", 2)
    good = encode(Image.fromarray(rgb_image()), "PNG")
    batch = _file_batch([(f"{i}.png", good) for i in range(6)])
    outs = list(decode_file_batches([batch.slice(1, 5)]))
    assert [b.num_rows for b in outs] == [2, 2, 1]
    paths = [p for b in outs for p in b.column("path").to_pylist()]
    assert paths == [f"{i}.png" for i in range(1, 6)]


def test_custom_decoder_results_and_failures() -> None:
    def decoder(content: bytes) -> np.ndarray | None:
        if content == b"none":
            return None
        if content == b"boom":
            raise RuntimeError("no luck")
        if content == b"bad":
            return np.zeros((2, 2, 2), np.uint8)
        return np.frombuffer(content, np.uint8).reshape(1, -1)

    batch = _file_batch(
        [("a", b"\x01\x02"), ("b", b"none"), ("c", b"boom"), ("d", b"bad"), ("e", b"")]
    )
    out = pa.Table.from_batches(list(decode_file_batches([batch], decoder=decoder)))
    errors = out.column("error").to_pylist()
    assert errors[0] is None
    assert out.column("image").to_pylist()[0]["data"] == b"\x01\x02"
    assert errors[1] == "decode_f returned None"
    assert errors[2] == "decode_f raised RuntimeError: no luck"
    assert errors[3].startswith("decode_f returned an unusable array: images have 1, 3 or 4")
    assert errors[4] == "empty file"


# --------------------------------------------------------------------------- structs -> batch


def test_uniform_batch_is_a_zero_copy_view() -> None:
    arrays = [rgb_image(4, 5) for _ in range(6)]
    structs = structs_of(arrays)
    batch = image_structs_to_batch(structs)
    assert batch.array.shape == (6, 4, 5, 3)
    np.testing.assert_array_equal(batch.array, np.stack(arrays))
    values = np.frombuffer(structs.field("data").buffers()[2], np.uint8)
    assert np.shares_memory(batch.array, values)
    assert not batch.array.flags.writeable
    assert batch.valid.all() and batch.errors == {}


def test_null_and_undefined_rows_are_reported() -> None:
    arrays = [rgb_image(2, 2), None, rgb_image(2, 2)]
    rows = structs_of(arrays).to_pylist()
    undefined = {"origin": "x", "height": -1, "width": -1, "nChannels": -1, "mode": -1, "data": b""}
    rows.insert(0, undefined)  # what spark.read.format("image") writes for a bad file
    batch = image_structs_to_batch(pa.array(rows, IMAGE_ARROW_TYPE))
    np.testing.assert_array_equal(batch.valid, [False, True, False, True])
    np.testing.assert_array_equal(batch.rows, [1, 3])
    assert batch.errors[0].startswith("undefined image (mode -1)")
    assert batch.errors[2] == "null image"
    np.testing.assert_array_equal(batch.array, np.stack([arrays[0], arrays[2]]))


def test_sliced_and_large_binary_structs() -> None:
    arrays = [rgb_image(3, 3) for _ in range(5)]
    structs = structs_of(arrays)
    sliced = image_structs_to_batch(structs.slice(2, 2))
    np.testing.assert_array_equal(sliced.array, np.stack(arrays[2:4]))
    large_type = pa.struct(
        [f if f.name != "data" else pa.field("data", pa.large_binary()) for f in IMAGE_ARROW_TYPE]
    )
    large = image_structs_to_batch(structs.cast(large_type))
    np.testing.assert_array_equal(large.array, np.stack(arrays))
    chunked = image_structs_to_batch(pa.chunked_array([structs.slice(0, 2), structs.slice(2)]))
    np.testing.assert_array_equal(chunked.array, np.stack(arrays))


def test_different_sizes_need_a_target_size() -> None:
    arrays = [rgb_image(4, 6), rgb_image(8, 3)]
    structs = structs_of(arrays)
    with pytest.raises(ValueError, match=r"different sizes.*4x6.*8x3.*size=\(height, width\)"):
        image_structs_to_batch(structs)
    batch = image_structs_to_batch(structs, size=(5, 7))
    assert batch.array.shape == (2, 5, 7, 3)
    for got, src in zip(batch.array, arrays):
        expected = Image.fromarray(src).resize((7, 5), Image.Resampling.BILINEAR)
        np.testing.assert_array_equal(got, np.asarray(expected))


def test_channel_conversions() -> None:
    gray = RNG.integers(0, 256, (3, 3, 1), dtype=np.uint8)
    bgra = RNG.integers(0, 256, (3, 3, 4), dtype=np.uint8)
    bgr = rgb_image(3, 3)
    structs = structs_of([gray, bgra, bgr])
    with pytest.raises(ValueError, match=r"different channel counts \[1, 3, 4\].*channels="):
        image_structs_to_batch(structs)
    out = image_structs_to_batch(structs, channels=3).array
    np.testing.assert_array_equal(out[0], np.repeat(gray, 3, axis=-1))
    np.testing.assert_array_equal(out[1], bgra[..., :3])
    np.testing.assert_array_equal(out[2], bgr)
    lum = image_structs_to_batch(structs_of([bgr]), channels=1).array[0, :, :, 0]
    pillow_l = np.asarray(Image.fromarray(bgr[..., ::-1]).convert("L")).astype(int)
    assert np.abs(lum.astype(int) - pillow_l).max() <= 1
    with_alpha = image_structs_to_batch(structs_of([bgr]), channels=4).array[0]
    np.testing.assert_array_equal(with_alpha[..., 3], 255)


def test_dtype_conversions_and_16bit_resize() -> None:
    eight = rgb_image(2, 2)
    sixteen = eight.astype(np.uint16) * 257
    structs = structs_of([eight, sixteen])
    with pytest.raises(ValueError, match=r"different sample types.*uint16.*uint8.*dtype="):
        image_structs_to_batch(structs)
    as8 = image_structs_to_batch(structs, dtype="uint8").array
    np.testing.assert_array_equal(as8[0], eight)
    np.testing.assert_array_equal(as8[1], eight)
    as16 = image_structs_to_batch(structs, dtype="uint16").array
    assert as16.dtype == np.uint16
    np.testing.assert_array_equal(as16[0], sixteen)
    big16 = np.full((4, 4, 1), 60000, np.uint16)
    resized = image_structs_to_batch(structs_of([big16]), size=(2, 2)).array
    assert resized.dtype == np.uint16
    np.testing.assert_array_equal(resized, 60000)
    floats = image_structs_to_batch(structs_of([eight]), dtype="float32").array
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats[0], eight.astype(np.float32))
    with pytest.raises(ValueError, match="float32 images to uint8"):
        image_structs_to_batch(structs_of([eight.astype(np.float32)]), dtype="uint8")


def test_malformed_structs_are_rejected_with_the_row() -> None:
    rows = structs_of([rgb_image(2, 2), rgb_image(2, 2)]).to_pylist()
    rows[1]["data"] = rows[1]["data"][:-1]
    with pytest.raises(ValueError, match=r"row 1: image data has 11 bytes, expected 12"):
        image_structs_to_batch(pa.array(rows, IMAGE_ARROW_TYPE))
    not_image = pa.array([{"a": 1}], pa.struct([("a", pa.int32())]))
    with pytest.raises(ValueError, match="field 'height' missing"):
        image_structs_to_batch(not_image)
    with pytest.raises(ValueError, match="resample='cubic' is not one of"):
        image_structs_to_batch(structs_of([rgb_image()]), resample="cubic")


def test_all_invalid_batch_is_empty() -> None:
    batch = image_structs_to_batch(structs_of([None, None]), size=(3, 4))
    assert batch.array.shape == (0, 3, 4, 3)
    assert batch.errors == {0: "null image", 1: "null image"}


# --------------------------------------------------------------------------- batch -> structs


def test_batch_to_structs_roundtrip_with_nulls() -> None:
    arr = RNG.integers(0, 256, (2, 3, 4, 3), dtype=np.uint8)
    valid = np.array([True, False, True])
    structs = batch_to_image_structs(arr, valid=valid, origins=["a", "b", "c"])
    assert structs.type == IMAGE_ARROW_TYPE
    rows = structs.to_pylist()
    assert rows[1] is None
    assert rows[0]["origin"] == "a" and rows[2]["mode"] == 16
    assert rows[2]["data"] == arr[1].tobytes()
    back = image_structs_to_batch(structs)
    np.testing.assert_array_equal(back.array, arr)
    np.testing.assert_array_equal(back.valid, valid)


def test_batch_to_structs_modes_and_errors() -> None:
    floats = batch_to_image_structs(np.zeros((1, 2, 2, 3), np.float64)).to_pylist()[0]
    assert floats["mode"] == 21 and len(floats["data"]) == 2 * 2 * 3 * 4
    gray16 = batch_to_image_structs(np.zeros((2, 2, 2), np.uint16)).to_pylist()[0]
    assert (gray16["nChannels"], gray16["mode"], gray16["origin"]) == (1, 2, "")
    with pytest.raises(ValueError, match=r"shape \(n, height, width\[, channels\]\)"):
        batch_to_image_structs(np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="valid marks 1 rows but the batch has 2"):
        batch_to_image_structs(np.zeros((2, 1, 1, 3), np.uint8), valid=np.array([True, False]))
    with pytest.raises(ValueError, match="uint8, uint16 or float32, got int64"):
        batch_to_image_structs(np.zeros((1, 1, 1, 3), np.int64))
