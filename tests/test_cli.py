"""The `sparkonnx` command line: help, parsing, exit codes, convert and inspect end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sparkonnx import cli
from sparkonnx.cli import arguments, convert, exit_codes, inspect
from sparkonnx.converters import metadata
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.result import SourceInfo
from sparkonnx.testing import linear_model


def _command() -> list[str]:
    script = Path(sys.executable).parent / "sparkonnx"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sparkonnx.cli"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_command(), *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _one_line_error(stderr: str, command: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith(f"sparkonnx {command}:")]
    assert len(errors) == 1, stderr
    return errors[0]


@pytest.fixture()
def onnx_file(tmp_path: Path) -> Path:
    model = linear_model()
    options = ConversionOptions(labels=["a", "b", "c"])
    info = SourceInfo("keras", "3.15.1", "keras-file", "lin.keras")
    metadata.write(model, metadata.build(info, options, None, None))
    path = tmp_path / "lin.onnx"
    path.write_bytes(model.SerializeToString())
    return path


# ------------------------------------------------------------------ no TensorFlow needed


def test_help_lists_commands_examples_and_exit_codes() -> None:
    top = _cli("--help")
    assert top.returncode == 0
    assert "convert" in top.stdout and "inspect" in top.stdout and "exit codes" in top.stdout
    sub = _cli("convert", "--help")
    assert sub.returncode == 0
    for text in ("examples:", "sparkonnx convert model.keras -o model.onnx", "--allow-unsafe"):
        assert text in sub.stdout
    assert "5  parity check failed" in sub.stdout


def test_no_command_prints_help_and_returns_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == exit_codes.EXIT_USAGE
    assert "usage: sparkonnx" in capsys.readouterr().out


def test_python_dash_m_runs_the_same_command() -> None:
    import sparkonnx

    done = subprocess.run(
        [sys.executable, "-m", "sparkonnx.cli", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == f"sparkonnx {sparkonnx.__version__}"
    bad = subprocess.run(
        [sys.executable, "-m", "sparkonnx.cli", "inspect", "missing.onnx"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == exit_codes.EXIT_SOURCE
    _one_line_error(bad.stderr, "inspect")


def test_subcommands_register_from_functions() -> None:
    parser = cli.build_parser()
    assert {"convert", "inspect"} <= set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert convert.add_parser in cli.SUBCOMMANDS and inspect.add_parser in cli.SUBCOMMANDS


def test_parse_tensor_args() -> None:
    names, shapes = arguments.parse_tensor_args(["images:0[-1,224,224,3]", "mask[?, 7]", "plain"])
    assert names == ["images:0", "mask", "plain"]
    assert shapes == {"images:0": (None, 224, 224, 3), "mask": (None, 7)}
    assert arguments.parse_tensor_args(None) == (None, {})
    with pytest.raises(ValueError, match=r"dim 'x' must be a positive int or -1"):
        arguments.parse_tensor_args(["a[1,x]"])
    with pytest.raises(ValueError, match=r"expected NAME or NAME\[d0,d1,...\]"):
        arguments.parse_tensor_args(["a[1]]"])


def test_exit_codes_by_error_kind() -> None:
    from sparkonnx.converters import errors
    from sparkonnx.converters.result import ParityReport

    report = ParityReport("fp32", 1e-4, (), {}, "random")
    assert exit_codes.exit_code_for(errors.ParityError("x", report)) == 5
    assert exit_codes.exit_code_for(errors.UnsupportedOpsError("x", {})) == 4
    assert exit_codes.exit_code_for(errors.UnsafeModelError("x")) == 4
    assert exit_codes.exit_code_for(errors.UnsupportedSourceError("x")) == 3
    assert exit_codes.exit_code_for(FileNotFoundError("x")) == 3
    assert exit_codes.exit_code_for(ImportError("x")) == 6
    assert exit_codes.exit_code_for(ValueError("x")) == 2
    assert exit_codes.exit_code_for(RuntimeError("x")) == 1


def test_inspect_text_and_json(onnx_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["inspect", str(onnx_file)]) == 0
    text = capsys.readouterr().out
    assert "x: float32[batch, 4]" in text and "opset     15" in text
    assert "sparkonnx.labels" in text and "CPUExecutionProvider" in text
    assert "parity    no record" in text
    assert cli.main(["inspect", str(onnx_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}]
    assert report["providers"]["CPUExecutionProvider"] is True
    assert report["metadata"]["sparkonnx.source.framework"] == "keras"
    assert report["size_bytes"] == onnx_file.stat().st_size


def test_inspect_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    missing = _cli("inspect", str(tmp_path / "nope.onnx"))
    assert missing.returncode == exit_codes.EXIT_SOURCE
    assert "ONNX model file not found" in _one_line_error(missing.stderr, "inspect")
    (tmp_path / "junk.onnx").write_bytes(b"\x00garbage")
    junk = _cli("inspect", str(tmp_path / "junk.onnx"))
    assert junk.returncode == exit_codes.EXIT_SOURCE
    assert "not a readable ONNX model" in _one_line_error(junk.stderr, "inspect")


def test_convert_missing_source_fails_fast(tmp_path: Path) -> None:
    result = _cli("convert", str(tmp_path / "nope.keras"), "-o", str(tmp_path / "o.onnx"))
    assert result.returncode == exit_codes.EXIT_SOURCE
    assert "model source not found" in _one_line_error(result.stderr, "convert")
    bad = _cli("convert", "x.keras", "-o", "o.onnx", "--inputs", "a[0]")
    assert bad.returncode == exit_codes.EXIT_USAGE


# ------------------------------------------------------------------ end to end with TensorFlow


@pytest.fixture(scope="module")
def keras_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("tensorflow")
    keras = pytest.importorskip("keras")
    root = tmp_path_factory.mktemp("cli-models")
    keras.utils.set_random_seed(0)
    dense = keras.Sequential(
        [keras.Input((4,), name="features"), keras.layers.Dense(3, activation="gelu", name="y")]
    )
    dense.save(root / "dense.keras")
    lam = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda t: t + 1.0)])
    lam.save(root / "lambda.keras")
    area = keras.Sequential(
        [keras.Input((16, 16, 3)), keras.layers.Resizing(6, 6, interpolation="area")]
    )
    area.save(root / "area.keras")
    (root / "labels.txt").write_text("cat\ndog\n\nbird\n")
    return {
        "root": root,
        "dense": root / "dense.keras",
        "lambda": root / "lambda.keras",
        "area": root / "area.keras",
    }


def test_convert_then_inspect_end_to_end(keras_files: dict[str, Path]) -> None:
    keras = pytest.importorskip("keras")
    root = keras_files["root"]
    out = root / "dense.onnx"
    result = _cli(
        "convert", str(keras_files["dense"]), "-o", str(out), "--opset", "17",
        "--labels", str(root / "labels.txt"),
        "--preprocessing", '{"scale": 0.5}',
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout and "fp32 parity passed" in result.stdout
    assert "Traceback" not in result.stderr and "oneDNN" not in result.stderr

    model = keras.saving.load_model(keras_files["dense"])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"features": x})
    np.testing.assert_allclose(y, model(x).numpy(), atol=1e-5)

    shown = _cli("inspect", str(out), "--json", "--no-providers")
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["opset"] == 17
    assert report["parity"]["passed"] is True and report["parity"]["max_abs_error"] < 1e-5
    assert json.loads(report["metadata"]["sparkonnx.labels"]) == ["cat", "dog", "bird"]
    assert json.loads(report["metadata"]["sparkonnx.preprocessing"]) == {"scale": 0.5}
    assert report["metadata"]["sparkonnx.source.form"] == "keras-file"


def test_convert_json_renames_and_no_check(keras_files: dict[str, Path]) -> None:
    out = keras_files["root"] / "renamed.onnx"
    result = _cli(
        "convert", str(keras_files["dense"]), "-o", str(out), "--inputs", "x[-1,4]",
        "--outputs", "scores", "--no-check", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["inputs"] == ["x: float32[batch, 4]"] and payload["parity"] is None
    assert payload["outputs"][0].startswith("scores: float32")
    assert payload["timings"]["tf2onnx"] > 0 and payload["peak_rss_bytes"] > 0


def test_convert_errors_have_meaningful_exit_codes(keras_files: dict[str, Path]) -> None:
    root = keras_files["root"]
    unsafe = _cli("convert", str(keras_files["lambda"]), "-o", str(root / "l.onnx"))
    assert unsafe.returncode == exit_codes.EXIT_CONVERSION
    assert "--allow-unsafe" in _one_line_error(unsafe.stderr, "convert")
    assert not (root / "l.onnx").exists()

    parity = _cli("convert", str(keras_files["area"]), "-o", str(root / "a.onnx"))
    assert parity.returncode == exit_codes.EXIT_PARITY
    line = _one_line_error(parity.stderr, "convert")
    assert "fp32 parity FAILED" in line and "max abs error" in line and "--tolerance" in line

    verbose = _cli("convert", str(keras_files["lambda"]), "-o", str(root / "l.onnx"), "--verbose")
    assert verbose.returncode == exit_codes.EXIT_CONVERSION
    assert "Traceback" in verbose.stderr

    allowed = _cli(
        "convert", str(keras_files["lambda"]), "-o", str(root / "l.onnx"), "--allow-unsafe"
    )
    assert allowed.returncode == 0, allowed.stderr
    assert (root / "l.onnx").is_file()


def test_convert_graph_def_and_saved_model_signature(tmp_path: Path) -> None:
    tf = pytest.importorskip("tensorflow")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.identity(tf.reduce_sum(x, axis=1, keepdims=True) * 2.0, name="total")
    (tmp_path / "frozen.pb").write_bytes(graph.as_graph_def().SerializeToString())
    pb = _cli(
        "convert", str(tmp_path / "frozen.pb"), "-o", str(tmp_path / "pb.onnx"),
        "--inputs", "x:0[-1,4]", "--outputs", "total:0",
    )  # fmt: skip
    assert pb.returncode == 0, pb.stderr
    session = ort.InferenceSession(str(tmp_path / "pb.onnx"), providers=["CPUExecutionProvider"])
    (total,) = session.run(None, {"x": np.ones((3, 4), np.float32)})
    np.testing.assert_allclose(total, np.full((3, 1), 8.0))
    no_outputs = _cli("convert", str(tmp_path / "frozen.pb"), "-o", str(tmp_path / "n.onnx"))
    assert no_outputs.returncode == exit_codes.EXIT_CONVERSION
    assert "output_names" in _one_line_error(no_outputs.stderr, "convert")

    class Halver(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="v")])
        def half(self, v):  # type: ignore[no-untyped-def]
            return {"half": v / 2.0}

    module = Halver()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"halve": module.half})
    missing = _cli("convert", str(tmp_path / "sm"), "-o", str(tmp_path / "sm.onnx"))
    assert missing.returncode == exit_codes.EXIT_CONVERSION
    assert "['halve']" in _one_line_error(missing.stderr, "convert")
    chosen = _cli(
        "convert", str(tmp_path / "sm"), "-o", str(tmp_path / "sm.onnx"), "--signature", "halve"
    )
    assert chosen.returncode == 0, chosen.stderr
    assert "outputs [half: float32" in chosen.stdout
