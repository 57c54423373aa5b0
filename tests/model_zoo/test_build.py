"""Zoo builds: ONNX (with fused preprocessing) against Keras on the same images."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkonnx.model_zoo import build as zoo_build
from sparkonnx.model_zoo.labels import imagenet_labels
from sparkonnx.model_zoo.registry import MODELS, get_model

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from tests.model_zoo.zoo_check import check_against_keras  # noqa: E402 - after the skips

FAST_MODEL = "MobileNetV3Small"


def test_fast_model_matches_keras_with_fused_preprocessing(zoo_cache):
    check_against_keras(FAST_MODEL)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.huge) if n.startswith("VGG") else n
        for n in MODELS
        if n != FAST_MODEL
    ],
)
def test_every_zoo_model_matches_keras(zoo_cache, name):
    """Each build in its own process: converting VGG / ResNet50 peaks at several GB of RAM."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, SPARKONNX_CACHE=str(zoo_cache), PYTHONPATH=str(root))
    done = subprocess.run(
        [sys.executable, "-m", "tests.model_zoo.zoo_check", name],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_second_build_comes_from_the_cache(zoo_cache, monkeypatch):
    first = zoo_build.build_model(FAST_MODEL, weights=None, progress=False)

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt although the model is cached")

    monkeypatch.setattr(zoo_build, "_build_and_cache", no_build)
    again = zoo_build.build_model(FAST_MODEL.lower(), weights="none", progress=False)
    assert again.sha256 == first.sha256
    assert len(json.loads(first.metadata["sparkonnx.labels"])) == 1000


def test_missing_imagenet_weights_say_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    spec = get_model("MobileNetV3Small")

    def offline(*args, **kwargs):
        raise OSError("URL fetch failure: no route to host")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline, raising=False)
    with pytest.raises(zoo_build.ZooWeightsError) as info:
        zoo_build._build_keras(spec, zoo_build.WeightsChoice("imagenet", "imagenet"), seed=0)
    message = str(info.value)
    assert spec.weights_url in message
    assert str(tmp_path / "keras-home" / "models" / spec.weights_file) in message


def test_bad_weights_arguments():
    with pytest.raises(zoo_build.ZooWeightsError, match=r"nowhere\.h5.*not found"):
        zoo_build.resolve_weights(get_model("ResNet50"), "/nowhere.h5")
    with pytest.raises(ValueError, match=r"unknown model 'ResNet51'; known models: InceptionV3"):
        get_model("ResNet51")


def test_imagenet_labels_ship_with_the_package():
    labels = imagenet_labels()
    assert len(labels.class_ids) == len(labels.descriptions) == 1000
    assert labels.class_ids[0] == "n01440764" and labels.descriptions[0] == "tench"
