"""`sparkonnx convert --quantize ...`: int8 / dynamic / fp16 from the command line, gated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from sparkonnx import cli, testing
from sparkonnx.cli import exit_codes
from sparkonnx.converters import metadata
from sparkonnx.converters.quantize import quantization_of
from sparkonnx.testing import as_nchw, small_classifier, smooth_images, write_images


@pytest.fixture()
def cnn_file(tmp_path: Path) -> Path:
    path = tmp_path / "cnn.onnx"
    onnx.save(small_classifier(), path)
    return path


def _meta(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(path).metadata_props}


def test_onnx_source_int8_with_image_folder(
    tmp_path: Path, cnn_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_images(tmp_path / "imgs", smooth_images(64))
    out = tmp_path / "cnn.int8.onnx"
    code = cli.main(
        [
            *("convert", str(cnn_file), "-o", str(out), "--quantize", "int8"),
            *("--calibration", str(folder), "--json", "--no-progress", "--min-speedup", "0"),
        ]
    )
    assert code == exit_codes.EXIT_OK
    payload = json.loads(capsys.readouterr().out)
    assert payload["output"] == str(out)
    gate = payload["quantization"]
    assert gate["passed"] and gate["mode"] == "int8" and gate["rows"] == 16
    assert gate["outputs"]["probabilities"]["metric"] == "top1"
    assert _meta(out)[metadata.PRECISION] == "int8"
    assert quantization_of(onnx.load(out))["gate"] == gate  # type: ignore[index]


def test_gate_refusal_exits_5_with_the_figures(
    tmp_path: Path, cnn_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    real = as_nchw(smooth_images(32, seed=1))
    np.save(tmp_path / "zeros.npy", np.zeros_like(real))
    np.save(tmp_path / "real.npy", real)
    out = tmp_path / "bad.onnx"
    code = cli.main(
        [
            *("convert", str(cnn_file), "-o", str(out), "--quantize", "int8"),
            *("--calibration", str(tmp_path / "zeros.npy")),
            *("--validation", str(tmp_path / "real.npy")),
        ]
    )
    assert code == exit_codes.EXIT_PARITY == 5
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("sparkonnx convert: error:")]
    assert "top-1 agreement 0." in line and "< 0.99 required" in line and "refused" in line
    assert not out.exists()


def test_dynamic_and_fp16_modes_and_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mlp = tmp_path / "mlp.onnx"
    onnx.save(testing.mlp(), mlp)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((32, 256), np.float32))
    for mode, precision in (("dynamic", "int8-dynamic"), ("fp16", "fp16")):
        out = tmp_path / f"mlp.{mode}.onnx"
        args = ["convert", str(mlp), "-o", str(out), "--quantize", mode]
        args += ["--calibration", str(tmp_path / "x.npy"), "--min-cosine", "0.995"]
        assert cli.main(args) == exit_codes.EXIT_OK
        assert _meta(out)[metadata.PRECISION] == precision
        record = quantization_of(onnx.load(out))
        assert record is not None and record["tolerance"]["cosine"] == 0.995
    assert "accuracy gate passed" in capsys.readouterr().out


def test_calibration_without_quantize_is_a_usage_error(
    tmp_path: Path, cnn_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["convert", str(cnn_file), "-o", "x.onnx", "--calibration", str(tmp_path)])
    assert code == exit_codes.EXIT_USAGE
    assert "--calibration / --validation need --quantize" in capsys.readouterr().err


def test_help_shows_the_precision_flags() -> None:
    text = cli.build_parser()._subparsers._group_actions[0].choices["convert"].format_help()  # type: ignore[union-attr]
    for flag in ("--quantize", "--calibration", "--min-top1", "--gate-metric", "--validation"):
        assert flag in text
    assert "--quantize int8 --calibration images/" in text


def test_keras_to_int8_end_to_end(tmp_path: Path) -> None:
    """A Keras file converted, quantized and gated by the installed `sparkonnx` command."""
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Rescaling(1 / 255),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.save(tmp_path / "small.keras")
    folder = write_images(tmp_path / "imgs", smooth_images(64))
    out = tmp_path / "small.int8.onnx"
    script = Path(sys.executable).parent / "sparkonnx"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "sparkonnx.cli"]
    done = subprocess.run(
        [
            *(*command, "convert", str(tmp_path / "small.keras"), "-o", str(out)),
            *("--quantize", "int8", "--calibration", str(folder), "--min-top1", "0.9"),
            *("--min-speedup", "0", "--no-search"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "fp32 parity passed" in done.stdout and "int8 accuracy gate passed" in done.stdout
    meta = _meta(out)
    assert meta[metadata.PRECISION] == "int8" and meta[metadata.SOURCE_FRAMEWORK] == "keras"
    assert json.loads(meta[metadata.PARITY])["passed"]  # the fp32 conversion record is kept
