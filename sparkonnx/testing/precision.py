"""Stage precision settings for tests about the accuracy gate alone (not the int8 search)."""

from __future__ import annotations

#: The single MinMax try, int8 at any speed: tiny test models run slower in int8 than in fp32
#: on many CPUs, and the speed check (tests/converters/test_int8_search.py) would refuse them.
GATE_ONLY: dict[str, float] = {"min_speedup": 0.0, "search_seconds": 0.0}


def gate_only(params: dict[str, object]) -> dict[str, object]:
    """`params` (a stage's keyword arguments) with `GATE_ONLY` under any `precisionTolerance`
    they give, when they ask for a lower precision; changed in place and returned."""
    if params.get("precision", "fp32") != "fp32":
        given = params.get("precisionTolerance") or {}
        params["precisionTolerance"] = {**GATE_ONLY, **given}  # type: ignore[dict-item]
    return params
