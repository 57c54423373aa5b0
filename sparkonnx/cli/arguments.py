"""Reading the values of command-line options: tensor names with shapes, label files, JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_SHAPED = re.compile(r"^(?P<name>[^\[\]]+)(\[(?P<shape>[^\]]*)\])?$")


def parse_tensor_args(values: Sequence[str] | None) -> tuple[list[str] | None, dict[str, Any]]:
    """`NAME` or `NAME[d0,d1,...]` (-1 or ? for a dynamic dim) -> names and shape overrides."""
    if not values:
        return None, {}
    names: list[str] = []
    shapes: dict[str, tuple[int | None, ...]] = {}
    for value in values:
        match = _SHAPED.match(value.strip())
        if match is None:
            raise ValueError(f"--inputs {value!r}: expected NAME or NAME[d0,d1,...], e.g. x[-1,4]")
        name = match["name"]
        names.append(name)
        if match["shape"] is not None:
            shapes[name] = _dims(match["shape"], value)
    return names, shapes


def _dims(text: str, value: str) -> tuple[int | None, ...]:
    dims: list[int | None] = []
    for dim in filter(None, (d.strip() for d in text.split(","))):
        if dim in ("-1", "?", "None"):
            dims.append(None)
        elif dim.isdigit() and int(dim) > 0:
            dims.append(int(dim))
        else:
            raise ValueError(f"--inputs {value!r}: dim {dim!r} must be a positive int or -1 / ?")
    return tuple(dims)


def read_labels(path: str | None) -> list[str] | None:
    """The non-empty lines of a labels file, stripped; None without a file."""
    if path is None:
        return None
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def read_json_arg(value: str | None, flag: str) -> Any:
    """A JSON option value, given inline or as @file.json; ValueError naming `flag`."""
    if value is None:
        return None
    text = Path(value[1:]).read_text(encoding="utf-8") if value.startswith("@") else value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{flag}: not valid JSON ({exc}); give a JSON object or @file.json"
        ) from exc
