"""One zoo model's ONNX build against Keras on the same images: used by test_build.py, and run in
its own process for zoo-size models (their builds use GBs of RAM).

python -m tests.model_zoo.zoo_check MODEL_NAME     # exit 0 when ONNX matches Keras
"""

import sys

import numpy as np
import onnxruntime as ort

from sparkonnx.model_zoo import build as zoo_build
from sparkonnx.model_zoo.registry import get_model


def keras_reference(name: str, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras' own path: BGR -> RGB, tf bilinear resize, preprocess_input, the network."""
    import keras
    import tensorflow as tf

    spec = get_model(name)
    network = zoo_build._build_keras(spec, zoo_build.WeightsChoice(None, "random"), seed=0)
    model = zoo_build._two_output_model(spec, network)
    preprocess = getattr(keras.applications, spec.preprocess_module).preprocess_input
    rgb = tf.convert_to_tensor(bgr[..., ::-1].astype(np.float32))
    x = preprocess(tf.image.resize(rgb, spec.input_size, method="bilinear"))
    features, probabilities = model(x, training=False)
    return np.asarray(features), np.asarray(probabilities)


def onnx_outputs(model, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(model.model_bytes, providers=["CPUExecutionProvider"])
    return tuple(session.run(["features", "probabilities"], {"image": bgr}))


def check_against_keras(name: str) -> None:
    model = zoo_build.build_model(name, weights=None, progress=False)
    bgr = np.random.default_rng(7).integers(0, 256, size=(2, 250, 310, 3), dtype=np.uint8)
    ours_f, ours_p = onnx_outputs(model, bgr)
    ref_f, ref_p = keras_reference(name, bgr)
    spec = get_model(name)
    assert ours_f.shape == (2, spec.feature_width) and ours_p.shape == (2, 1000)
    # random weights can give tiny activations (MobileNetV3: ~1e-10): compare relative to scale,
    # and make sure the features vary, so the comparison is not vacuous
    scale = float(np.abs(ref_f).max())
    assert scale > 0 and ref_f.std() > 1e-3 * scale
    np.testing.assert_allclose(ours_f / scale, ref_f / scale, atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(ours_p, ref_p, atol=1e-5, rtol=1e-3)
    assert model.metadata["sparkonnx.zoo.model"] == spec.name
    assert model.metadata["sparkonnx.zoo.weights"] == "random-seed0"


if __name__ == "__main__":
    check_against_keras(sys.argv[1])
    print(f"{sys.argv[1]}: ONNX matches Keras")
