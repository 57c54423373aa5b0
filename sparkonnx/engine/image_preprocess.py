"""Image preprocessing for image models: image structs -> model input tensor, and back. Spark-free.

An :class:`ImagePreprocessing` says what a model wants: input ``size`` (height, width), colour
``channel_order`` ('RGB', 'BGR', 'RGBA', 'BGRA' or 'L' for one gray channel), ``layout`` ('NHWC',
'NCHW', or 'NHW' for rank-3 gray inputs), input ``dtype``, and scaling
``y = (x * scale - mean) / std`` with ``mean`` / ``std`` per channel in the model's channel order
(or one value for all). Image structs are BGR(A) (Spark's convention), so the default 'RGB'
swaps channels.

The same spec is stored by the converters as JSON in the ONNX metadata entry
``sparkonnx.preprocessing``: its keys, presets and aliases are described in
:mod:`sparkonnx.engine.image_spec`. :func:`resolve_preprocessing` combines that stored spec,
the user's parameters and what the model input's shape says.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from sparkonnx.engine.image_batch import ImageBatch, as_image_batch, image_structs_to_batch
from sparkonnx.engine.image_pixels import RESAMPLE, swap_red_blue
from sparkonnx.engine.image_spec import check_choice, floats, image_size, spec_from_metadata
from sparkonnx.engine.images import mode_to_dtype_channels
from sparkonnx.engine.model import Dim, TensorSpec

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNEL_ORDERS",
    "LAYOUTS",
    "RESAMPLES",
    "ImagePreprocessing",
    "images_from_tensor",
    "infer_layout",
    "resolve_preprocessing",
]

#: channel order -> number of channels
CHANNEL_ORDERS: dict[str, int] = {"RGB": 3, "BGR": 3, "RGBA": 4, "BGRA": 4, "L": 1}
LAYOUTS = ("NHWC", "NCHW", "NHW")
RESAMPLES = tuple(RESAMPLE)
_INPUT_DTYPES = ("float32", "float16", "float64", "uint8", "int8", "uint16", "int16", "int32")


@dataclass(frozen=True)
class ImagePreprocessing:
    """How image structs become a model's input tensor (see the module docstring)."""

    size: tuple[int, int] | None = None  # None: keep the images' own (uniform) size
    channel_order: str = "RGB"
    layout: str = "NHWC"
    dtype: str = "float32"
    scale: float = 1.0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    resample: str = "bilinear"

    def __post_init__(self) -> None:
        check_choice("channel_order", self.channel_order, CHANNEL_ORDERS)
        check_choice("layout", self.layout, LAYOUTS)
        check_choice("dtype", self.dtype, _INPUT_DTYPES)
        check_choice("resample", self.resample, RESAMPLES)
        if self.layout == "NHW" and self.channel_order != "L":
            raise ValueError(
                f"layout 'NHW' (no channel axis) needs channel_order 'L', got "
                f"{self.channel_order!r}"
            )
        if self.size is not None:
            object.__setattr__(self, "size", image_size(self.size, "size"))
        if not isinstance(self.scale, int | float) or not np.isfinite(self.scale):
            raise ValueError(f"scale must be a finite number, got {self.scale!r}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if values is None:
                continue
            numbers = floats(values, name)
            if len(numbers) not in (1, self.channels):
                raise ValueError(
                    f"{name} has {len(numbers)} values; expected 1 or {self.channels} (one per "
                    f"channel of {self.channel_order!r})"
                )
            if name == "std" and any(v == 0 for v in numbers):
                raise ValueError(f"std must not contain 0, got {list(numbers)}")
            object.__setattr__(self, name, numbers)

    @property
    def channels(self) -> int:
        """Number of channels the model takes."""
        return CHANNEL_ORDERS[self.channel_order]

    @property
    def scales_values(self) -> bool:
        """True when scale, mean or std change the pixel values."""
        return self.scale != 1.0 or self.mean is not None or self.std is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the metadata format)."""
        out = dataclasses.asdict(self)
        for key in ("size", "mean", "std"):
            if out[key] is not None:
                out[key] = list(out[key])
        return {k: v for k, v in out.items() if v is not None}

    # ----------------------------------------------------------------------- structs -> tensor

    def structs_to_tensor(
        self, structs: pa.Array | pa.ChunkedArray
    ) -> tuple[np.ndarray, ImageBatch]:
        """The model input tensor for the valid images of ``structs`` and the batch they came
        from (``batch.valid`` marks the rows in the tensor, ``batch.errors`` the others).

        Integer images are brought to the 8-bit range 0..255 (16-bit ones divided by 257) when
        a batch mixes 8- and 16-bit images; float32 images keep their values.
        """
        batch = image_structs_to_batch(
            structs,
            size=self.size,
            channels=self.channels,
            dtype=_common_depth(structs),
            resample=self.resample,
        )
        return self.batch_to_tensor(batch.array), batch

    def batch_to_tensor(self, images: np.ndarray) -> np.ndarray:
        """(n, h, w, c) BGR(A)/gray images (already resized) -> the model's input tensor."""
        if images.ndim != 4 or images.shape[-1] != self.channels:
            raise ValueError(
                f"expected images of shape (n, height, width, {self.channels}), got {images.shape}"
            )
        x = images
        if self.channel_order in ("RGB", "RGBA"):
            x = swap_red_blue(x)
        target = np.dtype(self.dtype)
        if self.scales_values:
            x = x.astype(np.float32)  # a fresh array: scale in place
            if self.scale != 1.0:
                x *= np.float32(self.scale)
            if self.mean is not None:
                x -= np.asarray(self.mean, np.float32)
            if self.std is not None:
                x /= np.asarray(self.std, np.float32)
        if x.dtype != target:
            if target.kind in "iu" and x.dtype.kind == "f":
                info = np.iinfo(target)
                x = np.clip(np.rint(x), info.min, info.max)
            x = x.astype(target)
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        elif self.layout == "NHW":
            x = x[..., 0]
        return np.ascontiguousarray(x)


def _common_depth(structs: pa.Array | pa.ChunkedArray) -> str | None:
    """The dtype argument of image_structs_to_batch for this batch's mix of sample types."""
    if isinstance(structs, pa.ChunkedArray):
        structs = structs.combine_chunks()
    if not pa.types.is_struct(structs.type) or structs.type.get_field_index("mode") < 0:
        return None  # image_structs_to_batch reports the wrong type
    modes = structs.field("mode").drop_null().unique().to_pylist()
    kinds = set()
    for mode in modes:
        if mode is None or mode < 0:
            continue
        try:
            kinds.add(mode_to_dtype_channels(int(mode))[0].name)
        except ValueError:
            return None  # image_structs_to_batch reports the unsupported mode with its row
    if "float32" in kinds and len(kinds) > 1:
        return "float32"
    if "uint16" in kinds and "uint8" in kinds:
        return "uint8"
    return None


# --------------------------------------------------------------------------- tensor -> images


def images_from_tensor(tensor: np.ndarray, layout: str, channel_order: str) -> np.ndarray:
    """A model output (n, h, w, c) / (n, c, h, w) / (n, h, w) as (n, h, w, c) BGR(A) images.

    Channels are swapped back to BGR(A) when ``channel_order`` is RGB(A); float16 / float64
    become float32; uint8, uint16 and float32 are kept. Other dtypes raise ValueError.
    """
    x = np.asarray(tensor)
    if x.ndim == 4 and layout == "NCHW":
        x = x.transpose(0, 2, 3, 1)
    x = as_image_batch(
        x,
        "an image output has shape (n, height, width[, channels]) or (n, channels, height, width)",
    )
    c = x.shape[-1]
    if c not in (1, 3, 4):
        raise ValueError(
            f"an image output has 1, 3 or 4 channels (layout {layout}); got shape {tensor.shape}"
        )
    if channel_order.startswith("RGB") and c in (3, 4):
        x = swap_red_blue(x)
    if x.dtype not in (np.uint8, np.uint16, np.float32):
        raise ValueError(
            f"image outputs must be uint8, uint16 or floats, got {x.dtype}; use outputMode "
            "'vector' for this model"
        )
    return np.ascontiguousarray(x)


# --------------------------------------------------------------------------- resolving a spec


def infer_layout(spec: TensorSpec) -> str | None:
    """'NHWC' / 'NCHW' / 'NHW' from a model input's shape, or None when it cannot tell."""
    if spec.rank == 3:
        return "NHW"
    if spec.rank != 4 or spec.shape is None:
        return None
    c_first, c_last = spec.shape[1], spec.shape[3]
    first = isinstance(c_first, int) and c_first in (1, 3, 4)
    last = isinstance(c_last, int) and c_last in (1, 3, 4)
    if first and not last:
        return "NCHW"
    if last and not first:
        return "NHWC"
    return None


def _model_size_channels(
    spec: TensorSpec, layout: str
) -> tuple[tuple[int, int] | None, int | None]:
    assert spec.shape is not None
    h: Dim
    w: Dim
    c: Dim
    if layout == "NHW":
        h, w, c = spec.shape[1], spec.shape[2], 1
    elif layout == "NCHW":
        c, h, w = spec.shape[1], spec.shape[2], spec.shape[3]
    else:
        h, w, c = spec.shape[1], spec.shape[2], spec.shape[3]
    size = (h, w) if isinstance(h, int) and isinstance(w, int) else None
    return size, c if isinstance(c, int) else None


def resolve_preprocessing(
    input_spec: TensorSpec,
    metadata: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ImagePreprocessing:
    """The preprocessing for a model input: ``overrides`` (user parameters) win over
    ``metadata`` (the stored spec), which wins over what the input's shape says, then defaults.

    Raises ValueError naming the input when the three disagree (e.g. a size other than the
    model's static one) or the input is not an image (rank 3 or 4).
    """
    name = input_spec.describe()
    _check_image_input(input_spec, name)
    merged: dict[str, Any] = {
        **spec_from_metadata(metadata),
        **spec_from_metadata(overrides, "parameters"),
    }
    layout = merged.get("layout") or infer_layout(input_spec) or "NHWC"
    if (input_spec.rank == 3) != (layout == "NHW"):
        raise ValueError(
            f"layout {layout!r} does not fit model input {name} (rank {input_spec.rank}); rank-4 "
            "inputs take 'NHWC' or 'NCHW', rank-3 inputs 'NHW'"
        )
    model_size, model_channels = _model_size_channels(input_spec, layout)
    size = merged.get("size")
    if size is not None and model_size is not None and tuple(size) != model_size:
        raise ValueError(
            f"size {list(size)} was asked but model input {name} ({layout}) takes images of "
            f"{model_size[0]}x{model_size[1]}; leave the size unset to use the model's"
        )
    order = _channel_order(merged.get("channel_order"), model_channels, name, layout)
    dtype = merged.get("dtype", input_spec.dtype.name)
    if dtype != input_spec.dtype.name:
        raise ValueError(
            f"dtype {dtype!r} was asked but model input {name} takes {input_spec.dtype.name}"
        )
    return ImagePreprocessing(
        size=size if size is not None else model_size,
        channel_order=order,
        layout=layout,
        dtype=dtype,
        scale=merged.get("scale", 1.0),
        mean=merged.get("mean"),
        std=merged.get("std"),
        resample=merged.get("resample", "bilinear"),
    )


def _check_image_input(input_spec: TensorSpec, name: str) -> None:
    """Refuse a model input that cannot take images (rank other than 3 / 4, or its type)."""
    if input_spec.rank not in (3, 4):
        raise ValueError(
            f"model input {name} is not an image batch: expected rank 4 (NHWC or NCHW) or rank 3 "
            "(NHW, gray); choose the image input with inputTensor"
        )
    if input_spec.dtype.name not in _INPUT_DTYPES:
        raise ValueError(
            f"model input {name} has type {input_spec.dtype.name}; image inputs must be one of "
            f"{', '.join(_INPUT_DTYPES)}"
        )


def _channel_order(order: str | None, model_channels: int | None, name: str, layout: str) -> str:
    """The asked channel order, checked against the model's channel count, or the default."""
    if order is None:
        order = {1: "L", 4: "RGBA"}.get(model_channels or 3, "RGB")
    if model_channels is not None and CHANNEL_ORDERS.get(order, model_channels) != model_channels:
        raise ValueError(
            f"channel order {order!r} has {CHANNEL_ORDERS[order]} channels but model input {name} "
            f"({layout}) takes {model_channels}"
        )
    if model_channels is not None and model_channels not in (1, 3, 4):
        raise ValueError(
            f"model input {name} has {model_channels} channels in layout {layout}; images have "
            "1, 3 or 4. If the layout is wrong, set it ('NHWC' or 'NCHW')"
        )
    return order
