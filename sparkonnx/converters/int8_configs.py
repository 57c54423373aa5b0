"""Which int8 to try: the mode chosen from the graph, and the ordered configurations searched.

A graph with a convolution gets static int8 (calibrated activations: where int8 convolutions
pay); a MatMul / Gemm graph without one (MLPs, transformers) gets dynamic int8 (weights only,
activations quantized at run time). The search then tries, in order, the configurations most
likely to pass the gate and be fast: MinMax, Percentile and Entropy calibration with per-channel
weights; the same with the first convolution and the last MatMul / Gemm left in fp32 (the
layers that lose most accuracy); for static int8, the QOperator format beside QDQ (its
fused kernels are faster on some CPUs); and 7-bit weights (`reduce_range`), which avoid the
overflow of ONNX Runtime's u8 x s8 kernels on x86 CPUs without VNNI (measured on an AVX2-only
EPYC: EfficientNet-Lite0 logits cosine 0.90 with 8-bit weights, 0.98 with 7-bit). On such
CPUs the 7-bit configurations are tried first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import onnx

from sparkonnx.converters.int8 import Int8Options

__all__ = ["SearchConfig", "candidates", "choose_int8_mode", "end_layers"]

_CONV = ("Conv", "ConvTranspose")
_MATMUL = ("MatMul", "Gemm")


@dataclass(frozen=True)
class SearchConfig:
    """One configuration of the search: a name for reports and the ONNX Runtime options."""

    name: str
    options: Int8Options
    excludes_ends: bool = False

    def describe(self) -> str:
        """e.g. 'Percentile, per-channel, QDQ, first Conv / last MatMul in fp32'."""
        o = self.options
        parts = ["dynamic" if o.dynamic else o.calibration]
        parts.append("per-channel" if o.per_channel else "per-tensor")
        if not o.dynamic:
            parts.append(o.quant_format)
        if o.reduce_range:
            parts.append("7-bit weights")
        if self.excludes_ends:
            parts.append("first Conv / last MatMul-Gemm in fp32")
        return ", ".join(parts)


def choose_int8_mode(proto: onnx.ModelProto) -> tuple[str, str]:
    """('int8' or 'int8-dynamic', why) for a model: static for convolutional graphs, dynamic
    for MatMul / Gemm graphs without a convolution, static otherwise."""
    ops = [n.op_type for n in proto.graph.node]
    convs = sum(op in _CONV for op in ops)
    matmuls = sum(op in _MATMUL for op in ops)
    if convs:
        return "int8", f"static: the graph has {convs} convolution(s)"
    if matmuls:
        return "int8-dynamic", f"dynamic: {matmuls} MatMul / Gemm and no convolution"
    return "int8", "static: the graph has neither convolutions nor MatMul / Gemm"


def end_layers(proto: onnx.ModelProto) -> tuple[str, ...]:
    """The names of the first convolution and the last MatMul / Gemm (those present)."""
    nodes = list(proto.graph.node)
    first_conv = next((n for n in nodes if n.op_type in _CONV), None)
    last_matmul = next((n for n in reversed(nodes) if n.op_type in _MATMUL), None)
    return tuple(n.name for n in (first_conv, last_matmul) if n is not None and n.name)


def candidates(
    mode: str,
    base: Int8Options,
    ends: Sequence[str],
    search: bool = True,
    seven_bit_first: bool = False,
) -> list[SearchConfig]:
    """The configurations to try, in order (`search=False`: `base` alone).

    `seven_bit_first`: try the `reduce_range` (7-bit weight) configurations first, as on x86
    CPUs without an int8 dot product (VNNI), where 8-bit weights can overflow.
    """
    if not search:
        return [SearchConfig(_name(base, False), base)]
    ends = tuple(n for n in ends if n not in base.nodes_to_exclude)
    with_ends = base.nodes_to_exclude + ends

    def config(excludes: bool = False, **changes: object) -> SearchConfig:
        options = replace(base, **changes)  # type: ignore[arg-type]
        if excludes:
            options = replace(options, nodes_to_exclude=with_ends)
        return SearchConfig(_name(options, excludes), options, excludes)

    if mode == "int8-dynamic":
        eight = [config(dynamic=True), config(dynamic=True, per_channel=not base.per_channel)]
        eight += [config(True, dynamic=True)] if ends else []
        seven = [config(dynamic=True, reduce_range=True)]
    else:
        static: dict[str, Any] = {"dynamic": False, "quant_format": "QDQ"}
        eight = [config(calibration=m, **static) for m in ("MinMax", "Percentile", "Entropy")]
        if ends:
            eight += [config(True, calibration=m, **static) for m in ("MinMax", "Percentile")]
        eight.append(config(calibration="MinMax", dynamic=False, quant_format="QOperator"))
        seven = [
            config(calibration=m, reduce_range=True, **static) for m in ("MinMax", "Percentile")
        ]
        if ends:
            seven.append(config(True, calibration="Percentile", reduce_range=True, **static))
    ordered = seven + eight if seven_bit_first else eight + seven
    unique: dict[str, SearchConfig] = {}
    for c in ordered:  # the user's reduce_range=True makes both lists one
        unique.setdefault(c.name, c)
    return list(unique.values())


def _name(options: Int8Options, excludes_ends: bool) -> str:
    if options.dynamic:
        name = "dynamic"
    else:
        name = f"{options.calibration.lower()}-{options.quant_format.lower()}"
    name += "-pc" if options.per_channel else "-pt"
    name += "-7bit" if options.reduce_range else ""
    return name + ("-ends-fp32" if excludes_ends else "")
