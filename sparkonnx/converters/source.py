"""`PreparedSource`: what every loader hands to the conversion core."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkonnx.converters.result import SourceInfo

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class InputInfo:
    """One source input: the name tf2onnx will give it, its numpy dtype and shape."""

    name: str
    dtype: np.dtype
    shape: Shape | None


@dataclass
class PreparedSource:
    """A loaded model reduced to two callables: one converts it, one runs it for parity.

    `to_onnx(opset, handlers, large_model)` returns an ONNX ModelProto whose inputs are
    `inputs[i].name` and whose outputs include `output_names`. `run(list of arrays in input
    order)` returns the source's outputs as arrays in `output_names` order.
    """

    info: SourceInfo
    inputs: list[InputInfo]
    output_names: list[str]
    to_onnx: Callable[[int, dict[str, Any], bool], Any]
    run: Callable[[list[np.ndarray]], list[np.ndarray]]
    weights_bytes: int = 0
    keep_alive: list[Any] = field(default_factory=list)  # objects the callables need

    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]


def sanitize_tf_name(name: str, used: Sequence[str]) -> str:
    """A TF op name made from `name` (letters, digits, '_', '.', '-'), unique among `used`."""
    cleaned = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name.split(":")[0])
    if not cleaned or not (cleaned[0].isalnum() or cleaned[0] == "."):
        cleaned = f"input_{cleaned}".rstrip("_")
    candidate, n = cleaned, 1
    while candidate in used:
        candidate = f"{cleaned}_{n}"
        n += 1
    return candidate
