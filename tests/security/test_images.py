"""Issue 14.4-14.6: read_images loses no file and doubles none (directory links, loops,
dangling links, names Hadoop rejects, FIFOs), and huge images are refused before decoding."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sparkonnx import ImageTransformer, read_images, readImagesWithCustomFn
from sparkonnx.engine.image_decode import decode_image, decode_image_fields
from sparkonnx.engine.images import ImageDecodeError
from sparkonnx.spark_api.images.structs import imageStructToArray
from tests.security.models import tiny_image_stage

SKIMAGE = ("chelsea.png", "coffee.png", "rocket.jpg", "camera.png")


def _photos() -> Path:
    return Path(pytest.importorskip("skimage.data").__path__[0])


@pytest.fixture()
def tree(workdir: Path) -> Path:
    """root/{chelsea,coffee}.png and root/sub/{rocket.jpg,camera.png}, plus links: sub/loop ->
    root (a loop), again -> sub (the same folder twice), gone.png -> nothing (dangling),
    self.png -> self.png (a link loop), and a FIFO that would block a reader forever."""
    root = workdir / "tree"
    (root / "sub").mkdir(parents=True)
    for i, name in enumerate(SKIMAGE):
        shutil.copy(_photos() / name, (root if i < 2 else root / "sub") / name)
    (root / "sub" / "loop").symlink_to(root)
    (root / "again").symlink_to(root / "sub")
    (root / "gone.png").symlink_to(root / "nowhere.png")
    (root / "self.png").symlink_to(root / "self.png")
    os.mkfifo(root / "pipe.png")
    return root


def _rows(df: Any) -> dict[str, Any]:
    rows = df.collect()
    names = [r.path.removeprefix("file:") for r in rows]
    assert len(names) == len(set(names)), "a path appears twice"
    return dict(zip(names, rows, strict=True))


def test_each_real_file_once_and_every_bad_link_a_row(any_spark, tree):
    rows = _rows(read_images(str(tree), recursive=True, spark=any_spark))
    good = {p: r for p, r in rows.items() if r.error is None}
    assert sorted(Path(p).name for p in good) == sorted(SKIMAGE)  # 4 files, 4 rows
    assert all(r.image is not None for r in good.values())
    assert not any("/again/" in p or "/loop/" in p for p in good)  # the real paths are kept
    errors = {Path(p).name: r.error for p, r in rows.items() if r.error is not None}
    assert sorted(errors) == ["gone.png", "loop", "pipe.png", "self.png"]
    assert errors["loop"].startswith(f"a symbolic link loop: it points to {tree}")
    assert errors["gone.png"].startswith("a dangling symbolic link (-> ")
    assert errors["self.png"].startswith("a symbolic link loop (-> ")
    assert errors["pipe.png"].startswith("not a regular file")


def test_strict_fails_on_a_bad_link_naming_it(spark, workdir):
    folder = workdir / "strict"
    folder.mkdir()
    shutil.copy(_photos() / "chelsea.png", folder / "cat.png")
    (folder / "gone.png").symlink_to(folder / "nowhere.png")
    with pytest.raises(Exception, match=r"gone\.png: a dangling symbolic link"):
        read_images(str(folder), strict=True, spark=spark).collect()


@pytest.mark.parametrize("names", [("a:b.png", "100%.png", "what?#.png", "ünï côde.png")])
def test_names_hadoop_rejects_are_read(any_spark, workdir, names):
    folder = workdir / "names"
    folder.mkdir()
    for name, photo in zip(names, SKIMAGE, strict=False):
        shutil.copy(_photos() / photo, folder / name)
    shutil.copy(_photos() / "chelsea.png", folder / "plain.png")
    rows = _rows(read_images(str(folder), spark=any_spark))
    assert sorted(Path(p).name for p in rows) == sorted((*names, "plain.png"))
    for path, row in rows.items():
        assert row.error is None, (path, row.error)
        want = decode_image(Path(path).read_bytes())
        np.testing.assert_array_equal(imageStructToArray(row.image), want)


def test_globs_braces_and_missing_paths(spark, tree):
    rows = _rows(read_images(f"{tree}/sub/*.{{png,jpg}}", spark=spark))
    assert sorted(Path(p).name for p in rows) == ["camera.png", "rocket.jpg"]
    rows = _rows(read_images(str(tree), pathGlobFilter="c*.png", recursive=True, spark=spark))
    names = ["camera.png", "chelsea.png", "coffee.png", "loop"]  # a folder loop is always told
    assert sorted(Path(p).name for p in rows) == names
    with pytest.raises(FileNotFoundError, match=r"path does not exist: .*/tree/nope"):
        read_images(str(tree / "nope"), spark=spark)


def _huge_png(path: Path) -> Path:
    """A 12000 x 12000 1-bit PNG: ~20 KB on disk, 144 M pixels (0.4 GB as BGR)."""
    Image.new("1", (12000, 12000)).save(path, optimize=True)
    return path


def test_huge_images_are_refused_from_their_header(any_spark, workdir):
    folder = workdir / "huge"
    folder.mkdir()
    huge = _huge_png(folder / "bomb.png")
    assert huge.stat().st_size < 100_000
    shutil.copy(_photos() / "chelsea.png", folder / "cat.png")
    rows = {Path(p).name: r for p, r in _rows(read_images(str(folder), spark=any_spark)).items()}
    assert rows["bomb.png"].image is None
    assert rows["bomb.png"].error == (
        "image is 12000x12000 = 144.0 M pixels, more than maxPixels=50000000: refused before "
        "decoding; raise maxPixels to read it"
    )
    assert rows["cat.png"].error is None
    small = _rows(read_images(str(folder / "cat.png"), maxPixels=100_000, spark=any_spark))
    assert next(iter(small.values())).error.startswith("image is 451x300 = 0.1 M pixels")


def test_the_limit_is_checked_before_pillow_decodes(workdir):
    data = _huge_png(workdir / "bomb.png").read_bytes()
    with pytest.raises(ImageDecodeError, match="more than maxPixels=50000000"):
        decode_image_fields(data, max_pixels=50_000_000)


def test_custom_decoders_get_the_limit_on_their_result(spark, workdir):
    folder = workdir / "custom"
    folder.mkdir()
    shutil.copy(_photos() / "chelsea.png", folder / "cat.png")

    def decode(content: bytes) -> np.ndarray:
        return np.zeros((400, 400, 3), np.uint8)

    row = readImagesWithCustomFn(str(folder), decode, maxPixels=1000, spark=spark).head()
    assert row.error.startswith("image is 400x400 = 0.2 M pixels, more than maxPixels=1000")


def test_image_stages_refuse_images_over_max_pixels(spark, workdir):
    folder = workdir / "stage"
    folder.mkdir()
    for name in ("chelsea.png", "camera.png"):
        shutil.copy(_photos() / name, folder / name)
    images = read_images(str(folder), spark=spark)
    # chelsea 451x300 = 135 k pixels passes, camera 512x512 = 262 k does not
    stage = tiny_image_stage(errorCol="why", maxPixels=200_000)
    rows = {Path(r.path).name: r for r in stage.transform(images).collect()}
    assert rows["chelsea.png"].out is not None and rows["chelsea.png"].why is None
    assert rows["camera.png"].out is None
    assert rows["camera.png"].why == (
        "image is 512x512 = 0.3 M pixels, more than maxPixels=200000: refused before resizing; "
        "raise maxPixels to read it"
    )
    assert stage.getMaxPixels() == 200_000 and ImageTransformer().getMaxPixels() == 50_000_000
