"""read_images / readImagesWithCustomFn on classic Spark and Spark Connect."""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparkonnx.engine.image_batch import image_structs_to_batch
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.images.reading import (
    READ_IMAGES_SCHEMA,
    read_images,
    readImagesWithCustomFn,
    require_image_column,
)
from sparkonnx.spark_api.images.structs import imageStructToArray

RNG = np.random.default_rng(11)
KNOWN_RGB = (200, 100, 50)  # at row 1, column 2 of known.png (3 x 4)


def _save(img: Image.Image, path: Path, fmt: str, **kwargs: Any) -> None:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    path.write_bytes(buf.getvalue())


def _write_images(root: Path) -> dict[str, str | None]:
    """Write the test files; returns file name -> expected error prefix (None: decodes)."""
    expected: dict[str, str | None] = {}
    skdata = Path(pytest.importorskip("skimage.data").__path__[0])
    for name in ("chelsea.png", "rocket.jpg"):
        shutil.copy(skdata / name, root / name)
        expected[name] = None
    sk_images = Path(pytest.importorskip("sklearn.datasets").__file__).parent / "images"
    shutil.copy(sk_images / "china.jpg", root / "china.jpg")
    expected["china.jpg"] = None

    known = np.zeros((3, 4, 3), np.uint8)
    known[1, 2] = KNOWN_RGB
    _save(Image.fromarray(known), root / "known.png", "PNG")
    _save(Image.fromarray(RNG.integers(0, 256, (20, 30, 3), np.uint8)), root / "photo.jpg", "JPEG")
    _save(Image.fromarray(RNG.integers(0, 256, (5, 6), np.uint8), "L"), root / "gray.png", "PNG")
    rgba = RNG.integers(0, 256, (4, 4, 4), np.uint8)
    _save(Image.fromarray(rgba, "RGBA"), root / "rgba.png", "PNG")
    gray16 = np.array([[1, 300], [40000, 65535]], np.uint16)
    _save(Image.fromarray(gray16), root / "gray16.png", "PNG")
    _save(Image.fromarray(known), root / "with space.png", "PNG")
    expected.update(
        {n: None for n in ("known.png", "photo.jpg", "gray.png", "rgba.png", "gray16.png")}
    )
    expected["with space.png"] = None

    (root / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    jpeg = (root / "photo.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    png = (skdata / "chelsea.png").read_bytes()
    (root / "truncated.png").write_bytes(png[: len(png) // 3])
    expected.update(
        {
            "empty.png": "empty file",
            "notes.txt": "cannot identify image file",
            "truncated.jpg": "truncated image file",
            "truncated.png": "truncated image file",
        }
    )
    (root / "sub").mkdir()
    _save(Image.fromarray(known), root / "sub" / "deep.png", "PNG")
    return expected


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    root = tmp_path_factory.mktemp("read-images")
    return root, _write_images(root)


@pytest.fixture(scope="module")
def rows(any_spark: Any, image_dir: tuple[Path, dict[str, str | None]]) -> dict[str, Any]:
    """read_images(root) collected once per session kind, by file name."""
    df = read_images(str(image_dir[0]), spark=any_spark)
    return {Path(r.path).name: r for r in df.collect()}


def test_every_file_becomes_a_row(rows: dict[str, Any], image_dir: Any) -> None:
    _, expected = image_dir
    assert sorted(rows) == sorted(expected)  # deep.png only with recursive=True
    for name, reason in expected.items():
        row = rows[name]
        if reason is None:
            assert row.error is None, (name, row.error)
            assert row.image is not None and row.image.origin == row.path
        else:
            assert row.image is None, name
            assert row.error.startswith(reason), (name, row.error)
            assert row.path.endswith(name)


def test_schema(any_spark: Any, image_dir: Any) -> None:
    df = read_images(str(image_dir[0] / "known.png"), spark=any_spark)
    assert df.schema.simpleString() == READ_IMAGES_SCHEMA.simpleString()
    require_image_column(df, "image")


def test_known_pixel_is_bgr(rows: dict[str, Any]) -> None:
    image = rows["known.png"].image
    assert (image.height, image.width, image.nChannels, image.mode) == (3, 4, 3, 16)
    offset = (1 * 4 + 2) * 3
    assert bytes(image.data[offset : offset + 3]) == bytes(reversed(KNOWN_RGB))
    assert bytes(image.data[:3]) == b"\x00\x00\x00"
    assert rows["with space.png"].image.data == image.data


def test_real_photos_match_their_loaders(rows: dict[str, Any]) -> None:
    skdata = pytest.importorskip("skimage.data")
    datasets = pytest.importorskip("sklearn.datasets")
    for name, rgb in (
        ("chelsea.png", skdata.chelsea()),
        ("rocket.jpg", skdata.rocket()),
        ("china.jpg", datasets.load_sample_image("china.jpg")),
    ):
        np.testing.assert_array_equal(imageStructToArray(rows[name].image), rgb[..., ::-1])


def test_gray_rgba_and_16bit(rows: dict[str, Any]) -> None:
    gray, rgba, gray16 = rows["gray.png"].image, rows["rgba.png"].image, rows["gray16.png"].image
    assert (gray.nChannels, gray.mode) == (1, 0)
    assert (rgba.nChannels, rgba.mode) == (4, 24)
    assert (gray16.nChannels, gray16.mode) == (1, 2)
    np.testing.assert_array_equal(imageStructToArray(gray16)[:, :, 0], [[1, 300], [40000, 65535]])


def test_same_pixels_as_spark_image_source(any_spark: Any, image_dir: Any) -> None:
    root = str(image_dir[0])
    theirs = any_spark.read.format("image").option("pathGlobFilter", "*.png").load(root)
    require_image_column(theirs, "image")  # Spark's own image columns are accepted
    by_name = {Path(r.image.origin).name: r.image for r in theirs.collect()}
    ours = read_images(root, pathGlobFilter="*.png", spark=any_spark)
    both = ours.select("image").unionByName(theirs.select("image"))  # same struct type
    assert both.schema == ours.select("image").schema
    ours_by_name = {Path(r.path).name: r.image for r in ours.collect()}
    for name in ("chelsea.png", "known.png", "rgba.png", "gray.png"):
        mine, spark_img = ours_by_name[name], by_name[name]
        assert (mine.height, mine.width, mine.nChannels, mine.mode) == (
            spark_img.height,
            spark_img.width,
            spark_img.nChannels,
            spark_img.mode,
        )
        assert bytes(mine.data) == bytes(spark_img.data), name
    assert by_name["truncated.png"].mode == -1  # Spark's "undefined" row for a bad file
    assert ours_by_name["truncated.png"] is None and ours_by_name["empty.png"] is None

    # the executor-side batch builder takes Spark's image-source structs as they are
    table = theirs.toArrow()
    batch = image_structs_to_batch(table.column("image"), size=(8, 8), channels=3)
    origins = [
        Path(o).name for o in table.column("image").combine_chunks().field("origin").to_pylist()
    ]
    bad = {origins[i] for i in batch.errors}
    assert bad == {"truncated.png"}
    assert batch.array.shape == (len(origins) - 1, 8, 8, 3)


def test_recursive(any_spark: Any, image_dir: Any) -> None:
    df = read_images(str(image_dir[0]), recursive=True, pathGlobFilter="*.png", spark=any_spark)
    names = {Path(r.path).name for r in df.select("path").collect()}
    assert "deep.png" in names and "known.png" in names and "empty.png" in names


def test_num_partitions_spreads_decoding(any_spark: Any, image_dir: Any) -> None:
    df = read_images(str(image_dir[0]), numPartitions=3, spark=any_spark)
    parts = df.selectExpr("spark_partition_id() AS p", "path").collect()
    assert len({r.p for r in parts}) == 3
    assert len(parts) == len(image_dir[1])


def test_sample_ratio_is_seeded(any_spark: Any, image_dir: Any) -> None:
    def sample(seed: int) -> list[str]:
        df = read_images(str(image_dir[0]), sampleRatio=0.5, seed=seed, spark=any_spark)
        return sorted(r.path for r in df.select("path").collect())

    first = sample(3)
    assert first == sample(3)
    assert 0 < len(first) < len(image_dir[1])


def test_strict_fails_with_the_path(any_spark: Any, tmp_path_factory: Any) -> None:
    root = tmp_path_factory.mktemp("strict")
    _save(Image.new("RGB", (2, 2)), root / "fine.png", "PNG")
    (root / "broken-file.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    df = read_images(str(root), strict=True, spark=any_spark)
    with pytest.raises(Exception, match=r"broken-file\.jpg: truncated image file.*strict=True"):
        df.collect()
    lenient = read_images(str(root), spark=any_spark).collect()
    assert sorted(r.error is None for r in lenient) == [False, True]


def test_custom_decoder(any_spark: Any, image_dir: Any) -> None:
    def inverted_gray(content: bytes) -> np.ndarray:
        # runs on executors: imports inside, captures nothing
        import io as _io

        import numpy as _np
        from PIL import Image as _Image

        img = _Image.open(_io.BytesIO(content)).convert("L")
        if img.size[0] > 100:
            raise ValueError("too big for this decoder")
        return 255 - _np.asarray(img)

    root = str(image_dir[0])
    df = readImagesWithCustomFn(root, decode_f=inverted_gray, numPartition=2, spark=any_spark)
    got = {Path(r.path).name: r for r in df.collect()}
    assert sorted(got) == sorted(image_dir[1])
    known = got["known.png"].image
    assert (known.nChannels, known.mode) == (1, 0)
    luma = round(0.299 * KNOWN_RGB[0] + 0.587 * KNOWN_RGB[1] + 0.114 * KNOWN_RGB[2])
    assert imageStructToArray(known)[1, 2, 0] == 255 - luma
    assert got["chelsea.png"].error == "decode_f raised ValueError: too big for this decoder"
    assert got["empty.png"].error == "empty file"
    assert got["notes.txt"].error.startswith("decode_f raised UnidentifiedImageError")


def test_argument_errors(spark: Any, image_dir: Any) -> None:
    root = str(image_dir[0])
    with pytest.raises(ValueError, match=r"sampleRatio must be in \(0, 1\], got 0"):
        read_images(root, sampleRatio=0, spark=spark)
    with pytest.raises(
        InvalidParamError, match="numPartitions must be a positive integer or None; got 0"
    ):
        read_images(root, numPartitions=0, spark=spark)
    with pytest.raises(InvalidParamError, match="maxPixels must be a positive integer or None"):
        read_images(root, maxPixels=-5, spark=spark)
    with pytest.raises(ValueError, match="path is empty"):
        read_images([], spark=spark)
    with pytest.raises(TypeError, match="decode_f must be a function"):
        readImagesWithCustomFn(root, decode_f="PIL")  # type: ignore[arg-type]


def test_require_image_column_errors(spark: Any) -> None:
    df = spark.createDataFrame([("a", 1)], "image string, n int")
    with pytest.raises(ValueError, match=r"image column 'img' not found; .*\['image', 'n'\]"):
        require_image_column(df, "img")
    with pytest.raises(
        ValueError,
        match=r"column 'image' is not an image struct: expected struct<origin:string,.*"
        r"found string\. Load images with sparkonnx\.read_images",
    ):
        require_image_column(df.schema, "image")
