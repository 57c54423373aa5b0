"""ConversionOptions, lazy imports and the missing-extra message (no TensorFlow needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sparkonnx.converters import _deps
from sparkonnx.converters.options import ConversionOptions, max_opset, resolve_options


def test_defaults_are_documented_values() -> None:
    options = ConversionOptions()
    assert options.opset == 15
    assert options.check is True
    assert options.dynamic_batch is True
    assert options.signature == "serving_default"
    assert options.tf2onnx_opset == 15
    assert options.tolerance == 1e-3 and options.fp16_tolerance == 1e-2


def test_opset_above_18_is_converted_at_18() -> None:
    assert ConversionOptions(opset=20).tf2onnx_opset == 18


@pytest.mark.parametrize("opset", [0, 8, 999, "15"])
def test_bad_opset_names_the_allowed_range(opset: object) -> None:
    with pytest.raises(ValueError, match=rf"opset={opset!r} is not supported.*9 to {max_opset()}"):
        ConversionOptions(opset=opset)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["tolerance", "fp16_tolerance"])
def test_tolerance_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} must be a positive number, got -1"):
        ConversionOptions(**{field: -1})


def test_names_are_tuples_and_unique() -> None:
    assert ConversionOptions(input_names=["a", "b"]).input_names == ("a", "b")
    assert ConversionOptions(output_names="y").output_names == ("y",)
    with pytest.raises(ValueError, match=r"output_names must be unique, got \['y', 'y'\]"):
        ConversionOptions(output_names=["y", "y"])


def test_input_shapes_normalized_and_frozen() -> None:
    options = ConversionOptions(input_shapes={"x": [-1, 224, None, 3]})
    assert options.input_shapes == {"x": (None, 224, None, 3)}
    with pytest.raises(TypeError):
        options.input_shapes["y"] = (1,)  # type: ignore[index]
    with pytest.raises(ValueError, match=r"input_shapes\['x'\] = \(0, 3\)"):
        ConversionOptions(input_shapes={"x": [0, 3]})


def test_preprocessing_must_be_json() -> None:
    spec = {"size": [224, 224], "mean": [0.5, 0.5, 0.5], "channel_order": "RGB"}
    assert dict(ConversionOptions(preprocessing=spec).preprocessing or {}) == spec
    with pytest.raises(ValueError, match="preprocessing must be JSON-serializable"):
        ConversionOptions(preprocessing={"fn": object()})


def test_options_are_frozen() -> None:
    with pytest.raises(AttributeError):
        ConversionOptions().opset = 17  # type: ignore[misc]


def test_replace_and_resolve() -> None:
    base = ConversionOptions(opset=17)
    assert resolve_options(base, {"fp16": True}) == ConversionOptions(opset=17, fp16=True)
    assert resolve_options(None, {}) == ConversionOptions()
    with pytest.raises(TypeError, match=r"unknown conversion option\(s\) \['opsett'\].*opset"):
        resolve_options(None, {"opsett": 17})
    with pytest.raises(TypeError, match="options must be a ConversionOptions, got dict"):
        resolve_options({"opset": 15}, {})  # type: ignore[arg-type]


def test_importing_converters_does_not_import_tensorflow() -> None:
    code = (
        "import sys, sparkonnx, sparkonnx.converters as c, sparkonnx.cli;"
        "c.ConversionOptions(); c.ConversionResult; c.inspect_model; sparkonnx.convert;"
        "bad = [m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_converters_all_matches_exports() -> None:
    import sparkonnx.converters as c

    assert sorted(c.__all__) == sorted(c._EXPORTS)
    for name in c.__all__:
        assert getattr(c, name) is not None


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # makes `import tf2onnx` fail
    monkeypatch.setattr(_deps, "tensorflow", lambda: None)
    with pytest.raises(ImportError, match=r"pip install 'sparkonnx\[convert\]'"):
        _deps.tf2onnx()
