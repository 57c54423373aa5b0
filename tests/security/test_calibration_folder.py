"""Issue 14.7: a calibration image folder is read only up to the rows needed, spread evenly
over the folder, instead of being decoded whole on the driver."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from sparkonnx import testing
from sparkonnx.converters.calibration import image_files, load_calibration
from sparkonnx.engine.model import OnnxModel


def _folder(root: Path) -> Path:
    """40 PNGs of different sizes in two class folders: a/ all red, b/ all blue."""
    for cls, color in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        (root / cls).mkdir(parents=True)
        for i in range(20):
            Image.new("RGB", (64 + i, 48), color).save(root / cls / f"{i:02d}.png")
    return root


def test_only_the_rows_needed_are_read_spread_over_the_folder(workdir, caplog):
    folder = _folder(workdir / "calib")
    caplog.set_level(logging.INFO, logger="sparkonnx")
    model = OnnxModel.load(testing.tiny_cnn(size=8))
    cal = load_calibration(folder, model, limit=10)
    assert cal.rows == 10
    assert "calibration: 10 of the 40 images under" in caplog.text
    red = cal.arrays["image"][:, 0].mean(axis=(1, 2))  # the model's RGB input, channel R
    assert (red > 0.5).sum() == 5 and (red < 0.5).sum() == 5  # both classes, evenly
    picked = image_files(folder, 10)
    assert {p.parent.name for p in picked} == {"a", "b"} and len(picked) == 10
    assert np.all(np.diff([int(p.stem) + 20 * (p.parent.name == "b") for p in picked]) > 0)


def test_a_huge_calibration_image_is_skipped_not_decoded(workdir, caplog):
    folder = workdir / "huge"
    folder.mkdir()
    Image.new("1", (12000, 12000)).save(folder / "bomb.png")
    Image.new("RGB", (16, 16), (0, 255, 0)).save(folder / "ok.png")
    cal = load_calibration(folder, OnnxModel.load(testing.tiny_cnn(size=8)))
    assert cal.rows == 1
    assert "skipping" in caplog.text and "more than maxPixels" in caplog.text
