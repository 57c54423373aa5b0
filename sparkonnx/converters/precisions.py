"""The precision names every layer accepts (stages' `precision`, `quantize(mode=)`, the CLI).

One vocabulary, one check: the same spelling is accepted, or refused with the same
`InvalidParamError`, wherever it is given. Needs nothing but the standard library.
"""

from __future__ import annotations

from typing import Any

from sparkonnx.errors import check_one_of

PRECISIONS: tuple[str, ...] = ("fp32", "int8", "int8-static", "int8-dynamic", "fp16")
#: what quantize makes ('int8': static or dynamic, chosen from the graph)
LOWER_PRECISIONS: tuple[str, ...] = ("int8", "int8-static", "int8-dynamic", "fp16")
ALIASES: dict[str, str] = {
    "float32": "fp32",
    "static": "int8-static",
    "dynamic": "int8-dynamic",
    "float16": "fp16",
}
_FIX = (
    "'int8': chosen from the graph (static, calibrated, for convolutions; dynamic for MatMul "
    "graphs) and used only where it is faster; 'int8-static' / 'int8-dynamic' (int8 weights "
    "only: MLPs, transformers) force one; 'fp16': for GPUs (no speed-up on CPU)"
)


def validate_precision(value: Any, *, name: str = "precision", lower_only: bool = False) -> str:
    """The canonical precision for `value` or an alias; InvalidParamError naming the allowed.

    `lower_only`: refuse 'fp32' too (quantize's `mode`: fp32 is the model as it is).
    """
    allowed = LOWER_PRECISIONS if lower_only else PRECISIONS
    aliases = {a: c for a, c in ALIASES.items() if c in allowed}
    fix = _FIX + ("; fp32 is the model as it is: nothing to quantize" if lower_only else "")
    return check_one_of(name, value, allowed, aliases=aliases, fix=fix)


def accepted_spellings(lower_only: bool = False) -> list[str]:
    """Every spelling `validate_precision` accepts, canonical names first (CLI choices)."""
    allowed = LOWER_PRECISIONS if lower_only else PRECISIONS
    return [*allowed, *(a for a, c in ALIASES.items() if c in allowed)]
