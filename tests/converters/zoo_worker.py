"""Convert one keras.applications model (weights=None) and print its figures as JSON.

Run in a fresh process (`python -m tests.converters.zoo_worker ResNet50`) so that peak RSS
belongs to that model alone.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _calibrate_batchnorm(keras, model, size: int) -> None:  # type: ignore[no-untyped-def]
    """Set BatchNorm moving statistics from one random batch. With weights=None the activations
    of MobileNetV2 otherwise shrink to ~1e-11, and any parity check on them passes vacuously."""
    import numpy as np

    layers = [
        la for la in model._flatten_layers() if isinstance(la, keras.layers.BatchNormalization)
    ]
    momenta = [la.momentum for la in layers]
    for layer in layers:
        layer.momentum = 0.0
    x = np.random.default_rng(2).uniform(-1, 1, (4, size, size, 3)).astype(np.float32)
    model(x, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


def main(name: str) -> dict[str, object]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import numpy as np
    import onnxruntime as ort

    import sparkonnx

    keras.utils.set_random_seed(0)
    # logits, not softmax probabilities: errors are then measured on O(1) numbers
    model = getattr(keras.applications, name)(weights=None, classifier_activation=None)
    size = int(model.inputs[0].shape[1])
    _calibrate_batchnorm(keras, model, size)
    before = _peak_mb()
    start = time.perf_counter()
    result = sparkonnx.convert(model, progress=False)
    seconds = time.perf_counter() - start
    session = ort.InferenceSession(result.model.model_bytes, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-1, 1, (1, size, size, 3)).astype(np.float32)
    (y,) = session.run(None, {result.signature.inputs[0].name: x})
    want = model(x, training=False).numpy()
    direct = float(np.abs(y - want).max())
    assert result.parity is not None
    return {
        "model": name,
        "params": int(model.count_params()),
        "onnx_mb": round(result.model.size_bytes / 1e6, 1),
        "convert_s": round(seconds, 1),
        "timings": result.timings,
        "peak_rss_before_mb": round(before),
        "peak_rss_mb": round(_peak_mb()),
        "parity_passed": result.parity.passed,
        "max_abs_error": result.parity.max_abs_error,
        "max_rel_error": result.parity.max_rel_error,
        "batch1_max_abs_error": direct,
        "output_shape": list(y.shape),
        "output_std": float(want.std()),
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
