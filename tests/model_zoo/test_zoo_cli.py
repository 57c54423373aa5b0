"""`sparkonnx zoo list | build | export` end to end in a subprocess (import: test_transfer.py)."""

import os
import subprocess
import sys

import onnx
import pytest

pytest.importorskip("tensorflow")


def run(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "sparkonnx.cli", "zoo", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_zoo_list_build_export(zoo_cache, tmp_path):
    env = dict(os.environ, SPARKONNX_CACHE=str(zoo_cache))
    listing = run("list", env=env)
    assert listing.returncode == 0, listing.stderr
    assert "ResNet50" in listing.stdout and "2048" in listing.stdout
    built = run("build", "MobileNetV3Small", "--weights", "none", env=env)
    assert built.returncode == 0, built.stderr
    assert "random-seed0" in run("list", env=env).stdout
    target = tmp_path / "out" / "m.onnx"
    exported = run("export", "mobilenetv3small", str(target), "--weights", "none", env=env)
    assert exported.returncode == 0, exported.stderr
    names = [o.name for o in onnx.load(str(target)).graph.output]
    assert names == ["features", "probabilities"]
    bad = run("build", "ResNet51", env=env)
    assert bad.returncode == 2 and "unknown model 'ResNet51'" in bad.stderr
