"""Building a zoo model: keras.applications network + fused preprocessing -> ONNX, cached on disk.

The ONNX graph takes what Spark's image struct holds, uint8 BGR images [N, H, W, 3] of any size,
and does everything else inside: resize to the network's input size (bilinear), BGR -> RGB, the
model's own normalisation. Its outputs are `features` (the featurizer's vector) and
`probabilities` (the ImageNet classifier). Executors run that one graph and nothing else.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkonnx.converters.progress import progress_bar
from sparkonnx.converters.quiet import quietly
from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import SparkOnnxError
from sparkonnx.model_zoo import cache
from sparkonnx.model_zoo.labels import imagenet_labels
from sparkonnx.model_zoo.registry import ZooModel, get_model

logger = logging.getLogger(__name__)

INPUT_NAME = "image"
FEATURES = "features"
PROBABILITIES = "probabilities"
DEFAULT_SEED = 0
ZOO_TOLERANCE = 1e-3
#: The opset every zoo graph is converted at (part of its cache key).
ZOO_OPSET = 15
Weights = str | os.PathLike[str] | None


class ZooWeightsError(SparkOnnxError, RuntimeError):
    """ImageNet weights could not be loaded; the message says where to put the file."""


@dataclass(frozen=True)
class WeightsChoice:
    """A resolved `weights` argument: what to pass to Keras and its identity for the cache."""

    keras_arg: str | None
    identity: str


def resolve_weights(spec: ZooModel, weights: Weights, seed: int = DEFAULT_SEED) -> WeightsChoice:
    """Interpret 'imagenet', a weights file path, or None (random, seeded)."""
    if weights is None or (isinstance(weights, str) and weights.lower() in ("none", "random")):
        return WeightsChoice(None, f"random-seed{seed}")
    if isinstance(weights, str) and weights.lower() == "imagenet":
        return WeightsChoice("imagenet", "imagenet")
    path = Path(weights)
    if not path.is_file():
        raise ZooWeightsError(
            f"weights file {path} for {spec.name} not found; pass weights='imagenet', None "
            "(random, for tests) or the path of a Keras weights file"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return WeightsChoice(str(path), f"file-{digest}")


def keras_weights_path(spec: ZooModel) -> Path:
    """Where Keras looks for (and caches) the ImageNet weights of `spec`."""
    home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    return home / "models" / spec.weights_file


def _build_keras(spec: ZooModel, choice: WeightsChoice, seed: int) -> Any:
    from sparkonnx.converters import _deps

    keras = _deps.keras()  # ImportError naming the [convert] extra when missing

    constructor = getattr(keras.applications, spec.constructor)
    kwargs = dict(spec.constructor_kwargs)
    if choice.keras_arg is None:
        keras.utils.set_random_seed(seed)
        return constructor(weights=None, **kwargs)
    try:
        return constructor(weights=choice.keras_arg, **kwargs)
    except Exception as exc:
        if choice.keras_arg != "imagenet":
            raise ZooWeightsError(
                f"could not load weights {choice.keras_arg} into {spec.name}: {exc}"
            ) from exc
        raise ZooWeightsError(
            f"could not load the ImageNet weights of {spec.name} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else exc!r}). Download {spec.weights_url} on "
            f"a machine with internet access and put it at {keras_weights_path(spec)} (Keras' "
            "cache; set KERAS_HOME to move it), or pass weights='/path/to/weights.h5', or "
            "weights=None for random weights"
        ) from exc


def _two_output_model(spec: ZooModel, network: Any) -> Any:
    import keras

    if spec.feature_layer == "<pre-dropout>":
        dropout = [layer for layer in network.layers if isinstance(layer, keras.layers.Dropout)][-1]
        features = keras.layers.Flatten(name="zoo_features")(dropout.input)
    elif spec.feature_layer == "<classifier-input>":
        features = network.get_layer("predictions").input
    else:
        features = network.get_layer(spec.feature_layer).output
    return keras.Model(network.inputs, [features, network.output], name=f"{spec.name}_zoo")


def fused_function(spec: ZooModel, network: Any) -> Any:
    """A tf.function: uint8 BGR [N, H, W, 3] -> {features, probabilities}, preprocessing inside."""
    import keras
    import tensorflow as tf

    model = _two_output_model(spec, network)
    preprocess = getattr(keras.applications, spec.preprocess_module).preprocess_input
    height, width = spec.input_size

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME)])
    def serve(image: Any) -> dict[str, Any]:
        x = tf.cast(image, tf.float32)
        x = tf.reverse(x, axis=[-1])  # Spark's image struct is BGR; keras.applications want RGB
        x = tf.image.resize(x, (height, width), method="bilinear", antialias=False)
        x = preprocess(x)
        features, probabilities = model(x, training=False)
        return {FEATURES: features, PROBABILITIES: probabilities}

    return serve


def preprocessing_spec(spec: ZooModel) -> dict[str, Any]:
    """What the image API must feed: raw BGR uint8 NHWC, any size (the graph does the rest)."""
    return {
        "fused": True,
        "layout": "NHWC",
        "channel_order": "BGR",
        "dtype": "uint8",
        "input_size": list(spec.input_size),
        "resize": "bilinear",
        "normalisation": spec.preprocessing,
    }


def graph_identity(spec: ZooModel, weights_identity: str) -> dict[str, Any]:
    """What defines the ONNX graph of `spec` with these weights; known without TensorFlow.

    Random weights ('random-seedN') are the same only for the same Keras initializers: tests
    and offline demos use them, real work uses 'imagenet' or a weights file (its sha256).
    """
    return {
        "model": spec.name,
        "constructor": spec.constructor,
        "constructor_kwargs": [list(kv) for kv in spec.constructor_kwargs],
        "feature_layer": spec.feature_layer,
        "weights": weights_identity,
        "weights_file": spec.weights_file if weights_identity == "imagenet" else None,
        "preprocessing": preprocessing_spec(spec),
        "outputs": [FEATURES, PROBABILITIES],
        "opset": ZOO_OPSET,
    }


def cached_path(spec: ZooModel, weights_identity: str) -> Path:
    """The cache file for `spec` with these weights (it may not exist yet)."""
    key = cache.graph_key(graph_identity(spec, weights_identity))
    return cache.model_path(spec.name, weights_identity, key)


def build_model(
    name: str,
    weights: Weights = "imagenet",
    *,
    seed: int = DEFAULT_SEED,
    progress: bool | None = None,
) -> OnnxModel:
    """Build (or load from the disk cache) the ONNX graph of zoo model `name`.

    `progress`: a tqdm bar over the build; None shows it on a terminal or in a notebook.
    """
    spec = get_model(name)
    choice = resolve_weights(spec, weights, seed)
    path = cached_path(spec, choice.identity)
    if path.is_file():
        logger.info("zoo model %s (%s) from cache %s", spec.name, choice.identity, path)
        return OnnxModel.from_path(path)
    try:
        return _build_and_cache(spec, choice, seed, path, progress)
    except ImportError as exc:
        raise ImportError(
            f"zoo model {spec.name} ({choice.identity}) is not in the cache {path.parent} "
            f"(looked for {path.name}) and building it needs TensorFlow: {exc}. Or build it "
            f"on a machine that has TensorFlow, 'sparkonnx zoo export {spec.name} FILE.onnx' "
            "there and 'sparkonnx zoo import FILE.onnx' here"
        ) from exc


@quietly
def _build_and_cache(
    spec: ZooModel, choice: WeightsChoice, seed: int, path: Path, progress: bool | None
) -> OnnxModel:
    import numpy as np

    from sparkonnx.converters import _deps, from_function

    _deps.keras()  # TensorFlow and Keras imported without their start-up banners
    steps = progress_bar(3, f"building {spec.name}", progress, unit="step")
    start = time.perf_counter()
    steps.set_postfix_str("keras model")
    network = _build_keras(spec, choice, seed)
    steps.update()
    steps.set_postfix_str("convert + parity")
    rng = np.random.default_rng(seed)
    sample = rng.integers(
        0, 256, size=(2, spec.input_size[0] + 32, spec.input_size[1] + 48, 3), dtype=np.uint8
    )
    result = from_function(
        fused_function(spec, network),
        sample_input={INPUT_NAME: sample},
        tolerance=ZOO_TOLERANCE,
        preprocessing=preprocessing_spec(spec),
        labels=tuple(imagenet_labels().descriptions),
        opset=ZOO_OPSET,
        extra={
            cache.MODEL: spec.name,
            cache.WEIGHTS: choice.identity,
            cache.FEATURE_WIDTH: str(spec.feature_width),
            cache.GRAPH_KEY: cache.graph_key(graph_identity(spec, choice.identity)),
            cache.BUILD_VERSIONS: json.dumps(cache.build_versions(), sort_keys=True),
        },
    )
    steps.update()
    steps.set_postfix_str("save")
    cache.save_atomically(result.proto.SerializeToString(), path)
    steps.update()
    steps.close()
    logger.info(
        "built %s (%s) in %.1f s, parity %s, cached at %s",
        spec.name,
        choice.identity,
        time.perf_counter() - start,
        result.parity.summary() if result.parity else "not checked",
        path,
    )
    return OnnxModel.from_path(path)
