"""Packaging promises: light import, lazy public names, the console script."""

import subprocess
import sys

import sparkonnx

HEAVY = ("tensorflow", "keras", "tf2onnx", "pyspark", "py4j")


def _modules_loaded_after(statements: str) -> list[str]:
    code = f"import sys\n{statements}\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_import_is_light():
    assert _modules_loaded_after("import sparkonnx") == []


def test_engine_never_imports_pyspark_or_tensorflow():
    statements = "\n".join(
        [
            "import importlib, pkgutil",
            "import sparkonnx.engine as engine",
            "for m in pkgutil.iter_modules(engine.__path__):",
            "    importlib.import_module(f'sparkonnx.engine.{m.name}')",
        ]
    )
    assert _modules_loaded_after(statements) == []


def test_public_names_resolve():
    for name in sparkonnx.__all__:
        assert getattr(sparkonnx, name) is not None, name
    assert "ONNXTransformer" in dir(sparkonnx)
