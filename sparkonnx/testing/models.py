"""Small ONNX models and images built in code (no download, no TensorFlow): tests, benchmarks."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _model(graph: onnx.GraphProto, opset: int = OPSET) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="sparkonnx.testing"
    )
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model)
    return model


def mlp(
    widths: Sequence[int] = (256, 512, 512, 16),
    seed: int = 0,
    input_name: str = "x",
    output_name: str = "y",
) -> onnx.ModelProto:
    """A float32 MLP [N, widths[0]] -> [N, widths[-1]] with ReLU between Gemm layers."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    current = input_name
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        b = (rng.standard_normal(fan_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(widths) - 2
        out = output_name if last else f"h{i}"
        nodes.append(
            helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [out if last else f"g{i}"])
        )
        if not last:
            nodes.append(helper.make_node("Relu", [f"g{i}"], [out]))
        current = out
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["N", widths[0]])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", widths[-1]])],
        inits,
    )
    return _model(graph)


def two_in_two_out(width: int = 4) -> onnx.ModelProto:
    """Inputs a: float32[N, width], b: float32[N, width]; outputs sum = a + b, prod = a * b."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("Mul", ["a", "b"], ["prod"]),
        ],
        "two_in_two_out",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", width]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["N", width]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N", width]),
            helper.make_tensor_value_info("prod", TensorProto.FLOAT, ["N", width]),
        ],
    )
    return _model(graph)


def tiny_cnn(channels: int = 3, size: int = 8, classes: int = 5, seed: int = 0) -> onnx.ModelProto:
    """NCHW float32[N, channels, size, size] -> Conv 3x3 -> ReLU -> global pool -> [N, classes]."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((classes, channels, 3, 3)).astype(np.float32) * 0.2
    b = rng.standard_normal(classes).astype(np.float32) * 0.1
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["r"]),
            helper.make_node("GlobalAveragePool", ["r"], ["p"]),
            helper.make_node("Flatten", ["p"], ["scores"], axis=1),
        ],
        "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return _model(graph)


def scale_model(dtype: int = TensorProto.DOUBLE, factor: float = 2.0) -> onnx.ModelProto:
    """x: [N] of `dtype` -> y = x * factor (a rank-1, scalar-per-row model)."""
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", dtype, ["N"])],
        [helper.make_tensor_value_info("y", dtype, ["N"])],
        [numpy_helper.from_array(np.array(factor, dtype=np_dtype), "k")],
    )
    return _model(graph)


def image_identity(
    layout: str = "NHWC",
    channels: int = 3,
    size: tuple[int, int] | None = (8, 8),
    dtype: int = TensorProto.FLOAT,
) -> onnx.ModelProto:
    """Identity on an image batch: input 'image' -> output 'out', same shape and type.

    ``layout`` 'NHWC' or 'NCHW'; ``size`` None gives dynamic height and width.
    """
    h, w = size if size is not None else ("H", "W")
    shape = ["N", h, w, channels] if layout == "NHWC" else ["N", channels, h, w]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["out"])],
        "image_identity",
        [helper.make_tensor_value_info("image", dtype, shape)],
        [helper.make_tensor_value_info("out", dtype, shape)],
    )
    return _model(graph)


def tiny_cnn_nhwc(size: int = 8, classes: int = 5, seed: int = 0) -> onnx.ModelProto:
    """NHWC float32[N, size, size, 3] -> the `tiny_cnn` network (same weights) -> [N, classes]."""
    nchw = tiny_cnn(3, size, classes, seed)
    nodes = [helper.make_node("Transpose", ["pixels"], ["image"], perm=[0, 3, 1, 2])]
    graph = helper.make_graph(
        nodes + list(nchw.graph.node),
        "tiny_cnn_nhwc",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", size, size, 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", classes])],
        list(nchw.graph.initializer),
    )
    return _model(graph)


def photo_crops(n: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """uint8 BGR [n, size, size, 3]: random crops (random flips) of real photos shipped in the
    scikit-image and scikit-learn wheels (the `test` extra), resized with Pillow. No download."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    photos += list(load_sample_images().images)
    rng = np.random.default_rng(seed)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w, _ = photo.shape
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[y : y + side, x : x + side]).resize((size, size))
        rgb = np.asarray(crop)
        out[i] = (rgb[:, ::-1] if rng.random() < 0.5 else rgb)[..., ::-1]
    return out


def linear_model(
    opset: int = 15, scale_to: tuple[int, int] | None = None, hidden: int = 3
) -> onnx.ModelProto:
    """y = relu(x @ W + b) for x: float32[batch, 4]; `scale_to` adds a Resize output 'big' with
    float `scales` (what the opset and fp16 tools must handle)."""
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.normal(size=(4, hidden)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(size=(hidden,)).astype(np.float32), "b")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("Add", ["xw", "b"], ["z"]),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    inits = [weights, bias]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", hidden])]
    if scale_to is not None:
        inits.append(numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "scales"))
        nodes.append(helper.make_node("Resize", ["y", "", "scales"], ["big"], mode="nearest"))
        outputs.append(
            helper.make_tensor_value_info("big", TensorProto.FLOAT, ["batch", 2 * hidden])
        )
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        outputs,
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def linear_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """What `linear_model`'s output 'y' is for `x`, computed with numpy from its weights."""
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return np.maximum(x @ weights["W"] + weights["b"], 0)


#: classes and input size of `small_classifier`
CLASSIFIER_CLASSES = 10
CLASSIFIER_SIZE = 32


def small_classifier(seed: int = 4) -> onnx.ModelProto:
    """NCHW float32[N, 3, 32, 32] -> Conv-ReLU, Conv(stride 2)-ReLU, GAP, Gemm, Softmax.

    Random weights. On 64 `smooth_images` seed 4 predicts 3 classes and keeps top-1 on all 16
    held-out rows in int8; seeds 0 and 2 flip 1-2 near-tie rows and are refused by the gate;
    seeds 3 and 5 predict a single class (a top-1 gate would prove little there). Its metadata
    says pixels are scaled to [0, 1], so image folders calibrate it as `as_nchw` feeds it.
    """
    import json

    from sparkonnx.converters import metadata

    rng = np.random.default_rng(seed)

    def init(name: str, *shape: int, scale: float) -> onnx.TensorProto:
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name
        )

    size, classes = CLASSIFIER_SIZE, CLASSIFIER_CLASSES
    nodes = [
        helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "small_classifier",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes])],
        [
            init("w1", 16, 3, 3, 3, scale=0.3),
            init("b1", 16, scale=0.1),
            init("w2", 32, 16, 3, 3, scale=0.15),
            init("b2", 32, scale=0.1),
            init("w3", 32, classes, scale=2.0),
            init("b3", classes, scale=0.1),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    metadata.write(model, {metadata.PREPROCESSING: json.dumps({"mean": 0.0, "std": 255.0})})
    return model


def smooth_images(n: int, seed: int = 0, size: int = CLASSIFIER_SIZE) -> np.ndarray:
    """uint8 [n, size, size, 3] RGB images: colour fields of random tint and brightness."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        tint = rng.uniform(0.1, 1.0, 3)
        coarse = (rng.integers(0, 256, (4, 4, 3)) * tint).astype(np.uint8)
        img = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        noisy = np.asarray(img, np.float32) + rng.normal(0, 8, (size, size, 3))
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return np.stack(out)


def as_nchw(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW in [0, 1] (what an image folder feeds `small_classifier`)."""
    return (images.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)


def write_images(folder: Path, images: np.ndarray) -> Path:
    """`images` (uint8 NHWC RGB) as PNG files img000.png, ... in `folder` (created); `folder`."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"img{i:03d}.png")
    return folder
