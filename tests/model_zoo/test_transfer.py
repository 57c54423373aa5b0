"""Zoo builds move between machines: looked up by what defines the graph, not by the versions of
the converter stack; `export_model` / `import_model` (and `sparkonnx zoo export | import`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from sparkonnx import testing
from sparkonnx.converters import metadata
from sparkonnx.model_zoo import build as zoo_build
from sparkonnx.model_zoo import cache
from sparkonnx.model_zoo.registry import get_model
from sparkonnx.model_zoo.transfer import ZooImportError, export_model, import_model

ROOT = Path(__file__).resolve().parents[2]
MODEL = "MobileNetV3Small"
# Loaded first by every Python started with this folder on PYTHONPATH (Spark's workers too):
# the converter stack cannot be imported at all.
NO_TF_SITECUSTOMIZE = """import sys
for name in ("tensorflow", "keras", "tf2onnx", "tf_keras"):
    sys.modules[name] = None
"""


def fake_zoo_build(path: Path, name: str = MODEL, weights: str = "random-seed0", key=None) -> Path:
    """A tiny graph with a zoo build's signature and metadata (no TensorFlow needed)."""
    nodes = [
        helper.make_node("Cast", ["image"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["features"], axes=[1, 2], keepdims=0),
        helper.make_node("Softmax", ["features"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "fake_zoo",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", "H", "W", 3])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
        ],
    )
    proto = testing.models._model(graph)
    spec = get_model(name)
    expected = cache.graph_key(zoo_build.graph_identity(spec, weights))
    metadata.write(
        proto,
        {
            cache.MODEL: spec.name,
            cache.WEIGHTS: weights,
            cache.GRAPH_KEY: expected if key is None else key,
            cache.BUILD_VERSIONS: json.dumps({"tensorflow": "2.99.0", "keras": "3.99.0"}),
        },
    )
    path.write_bytes(proto.SerializeToString())
    return path


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SPARKONNX_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "zoo"


def test_lookup_does_not_depend_on_the_converter_versions(monkeypatch):
    spec = get_model(MODEL)
    before = zoo_build.cached_path(spec, "imagenet")
    monkeypatch.setattr(cache, "_version", lambda package: "0.0-elsewhere")
    assert zoo_build.cached_path(spec, "imagenet") == before
    assert cache.build_versions()["keras"] == "0.0-elsewhere"  # kept, in the file only
    assert zoo_build.cached_path(spec, "random-seed0") != before
    assert zoo_build.cached_path(get_model("ResNet50"), "imagenet") != before
    assert cache.parse_name(before) == (spec.name, "imagenet", before.stem.rpartition("-")[2])


def test_an_imported_build_is_found_without_building(tmp_path, empty_cache, monkeypatch):
    source = fake_zoo_build(tmp_path / "exported.onnx")
    placed = import_model(source)
    assert placed.parent == empty_cache and placed.is_file()
    assert import_model(source) == placed  # importing twice is harmless

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although an imported build is cached")

    monkeypatch.setattr(zoo_build, "_build_and_cache", no_build)
    found = zoo_build.build_model(MODEL.lower(), weights=None, progress=False)
    assert Path(found.source) == placed
    assert json.loads(found.metadata[cache.BUILD_VERSIONS])["tensorflow"] == "2.99.0"
    again = export_model(MODEL, tmp_path / "out" / "again.onnx", weights="none")
    assert again.read_bytes() == source.read_bytes()


def test_import_refuses_a_build_for_another_graph(tmp_path, empty_cache):
    source = fake_zoo_build(tmp_path / "old.onnx", key="0123456789abcdef")
    expected = cache.parse_name(zoo_build.cached_path(get_model(MODEL), "random-seed0"))
    with pytest.raises(ZooImportError) as info:
        import_model(source)
    message = str(info.value)
    assert "graph key 0123456789abcdef" in message and f"graph key {expected.key}" in message
    assert "tensorflow 2.99.0" in message and "Export it again" in message
    assert not empty_cache.exists() or not list(empty_cache.iterdir())


def test_import_refuses_files_that_are_not_zoo_builds(tmp_path, empty_cache):
    plain = tmp_path / "mlp.onnx"
    plain.write_bytes(testing.mlp((4, 3)).SerializeToString())
    with pytest.raises(ZooImportError, match=r"mlp\.onnx is not a sparkonnx zoo build.*lacks"):
        import_model(plain)
    unknown = fake_zoo_build(tmp_path / "unknown.onnx")
    proto = onnx.load(str(unknown))
    metadata.write(proto, {cache.MODEL: "ResNet51"})
    unknown.write_bytes(proto.SerializeToString())
    with pytest.raises(ZooImportError, match=r"unknown\.onnx: unknown model 'ResNet51'"):
        import_model(unknown)
    with pytest.raises(FileNotFoundError, match=r"nowhere\.onnx"):
        import_model(tmp_path / "nowhere.onnx")


def test_missing_build_without_tensorflow_says_how_to_import(empty_cache, monkeypatch):
    def no_tensorflow(*args, **kwargs):
        raise ImportError("converting needs the 'tensorflow' package, which is not installed")

    monkeypatch.setattr(zoo_build, "_build_keras", no_tensorflow)
    with pytest.raises(ImportError) as info:
        zoo_build.build_model(MODEL, weights=None, progress=False)
    message = str(info.value)
    assert f"zoo model {MODEL} (random-seed0) is not in the cache {empty_cache}" in message
    assert f"sparkonnx zoo export {MODEL} FILE.onnx" in message
    assert "sparkonnx zoo import FILE.onnx" in message


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparkonnx.cli", "zoo", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


@pytest.mark.timeout(300)
def test_export_then_import_on_a_driver_without_tensorflow(zoo_cache, tmp_path):
    """Built here (TensorFlow), exported, imported into an empty cache by a process that cannot
    import TensorFlow, where DeepImageFeaturizer finds the build and runs it on Spark."""
    pytest.importorskip("tensorflow")
    exported = tmp_path / "moved" / "mobilenet.onnx"
    env = dict(os.environ, SPARKONNX_CACHE=str(zoo_cache), PYTHONPATH=str(ROOT))
    done = cli("export", MODEL, str(exported), "--weights", "none", env=env)
    assert done.returncode == 0, done.stderr
    built = onnx.load(str(exported))
    meta = {p.key: p.value for p in built.metadata_props}
    versions = json.loads(meta[cache.BUILD_VERSIONS])
    assert {"keras", "tf2onnx", "onnx"} <= set(versions)
    assert "tensorflow" in versions or "tensorflow-cpu" in versions
    assert meta[cache.GRAPH_KEY] in zoo_build.cached_path(get_model(MODEL), "random-seed0").name

    shim = tmp_path / "no-tensorflow"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(NO_TF_SITECUSTOMIZE)
    images = testing.write_images(tmp_path / "images", testing.smooth_images(3, size=224))
    elsewhere = dict(
        os.environ,
        SPARKONNX_CACHE=str(tmp_path / "empty-cache"),
        PYTHONPATH=os.pathsep.join([str(shim), str(ROOT)]),
        PYSPARK_PYTHON=sys.executable,
    )
    no_build = cli("build", MODEL, "--weights", "none", env=elsewhere)
    assert no_build.returncode == 6, no_build.stderr
    assert "sparkonnx zoo import FILE.onnx" in no_build.stderr
    imported = cli("import", str(exported), env=elsewhere)
    assert imported.returncode == 0, imported.stderr
    assert str(tmp_path / "empty-cache" / "zoo") in imported.stdout
    out = tmp_path / "features.json"
    run = subprocess.run(
        [sys.executable, "-m", "tests.model_zoo.no_tf_featurize", str(images), str(out)],
        capture_output=True,
        text=True,
        env=elsewhere,
        cwd=ROOT,
        timeout=240,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(out.read_text())
    features = {Path(k).name: np.array(v, np.float32) for k, v in rows.items()}

    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    for i, rgb in enumerate(testing.smooth_images(3, size=224)):
        (expected,) = session.run(["features"], {"image": rgb[None, ..., ::-1].copy()})
        got = features[f"img{i:03d}.png"]
        scale = float(np.abs(expected).max())
        assert got.shape == (1024,) and scale > 0
        np.testing.assert_allclose(got / scale, expected[0] / scale, atol=1e-5)
