"""The one error family: every error sparkonnx raises on purpose is a `SparkOnnxError`.

Each subclass keeps the builtin base that callers already catch (`DeviceError` is still a
`RuntimeError`, `InvalidModelError` a `ValueError`, ...), so `except SparkOnnxError` catches
them all and `except ValueError` keeps working. A value outside the allowed ones (a Param, a
keyword argument, a CLI flag) raises `InvalidParamError` from every layer, built by
`check_one_of` (a choice) or `check_int` (a count) so the messages read the same: what was
given, what is allowed, the fix.

Imports nothing but the standard library: the executor side (`sparkonnx.engine`) uses it too.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any


class SparkOnnxError(Exception):
    """Base of every error sparkonnx raises on purpose; `except SparkOnnxError` catches them all."""


class InvalidParamError(SparkOnnxError, ValueError):
    """A Param or argument value outside the allowed ones; the message lists them and the fix.

    A `ValueError` (not a `TypeError`) so that it reaches the caller as itself through
    pyspark's Param setters, which turn every TypeError into a plain one. A value of the wrong
    type (e.g. `device=3`) still raises TypeError.
    """


def check_one_of(
    name: str,
    value: Any,
    allowed: Sequence[str],
    *,
    aliases: Mapping[str, str] | None = None,
    fix: str = "",
) -> str:
    """`value` lower-cased, aliases resolved, if among `allowed`; else InvalidParamError.

    A non-string `value` raises TypeError (as pyspark's TypeConverters.toString would).
    """
    listed = ", ".join(map(repr, allowed))
    if aliases:
        listed += " (aliases: " + ", ".join(f"{a!r} = {c!r}" for a, c in aliases.items()) + ")"
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, one of {listed}; got {type(value).__name__}")
    text = value.lower()
    text = (aliases or {}).get(text, text)
    if text not in allowed:
        raise InvalidParamError(
            f"{name} must be one of {listed}; got {value!r}" + (f". {fix}" if fix else "")
        )
    return text


def _int_rule(minimum: int, or_none: bool) -> str:
    rule = {0: "a non-negative integer", 1: "a positive integer"}.get(
        minimum, f"an integer >= {minimum}"
    )
    return rule + (" or None" if or_none else "")


def check_int(name: str, value: Any, *, minimum: int, fix: str = "", or_none: bool = False) -> int:
    """`value` as an int if it is an integer >= `minimum`; else InvalidParamError.

    A non-integer (bools included) raises TypeError. `or_none` only adds "or None" to the
    messages, for arguments whose caller lets None through (see `check_optional_int`).
    """
    rule = _int_rule(minimum, or_none)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {rule}; got {type(value).__name__} {value!r}")
    if value < minimum:
        ending = f". {fix}" if fix else ""
        raise InvalidParamError(f"{name} must be {rule}; got {value!r}{ending}")
    return int(value)


def check_optional_int(name: str, value: Any, *, minimum: int, fix: str = "") -> int | None:
    """None, or `value` checked by `check_int`."""
    return None if value is None else check_int(name, value, minimum=minimum, fix=fix, or_none=True)
