"""A module an attacker names in edited stage metadata: importing it already does harm.

It appends to `MARKER` when imported and each time its function runs (on executors too); the
tests assert the marker never appears because the module is never imported unless trusted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

#: One marker per test run (two runs on one machine must not see each other's): the pytest
#: process sets the variable when it collects this module, before Spark starts, so the Python
#: workers Spark forks later inherit it and name the same file.
_DEFAULT = Path(tempfile.gettempdir()) / f"sparkonnx-evil-marker-{os.getpid()}.txt"
MARKER = Path(os.environ.setdefault("SPARKONNX_EVIL_MARKER", str(_DEFAULT)))


def _plant(what: str) -> None:
    with MARKER.open("a") as f:
        f.write(what + "\n")


_plant("imported")


def plant_marker(uri: str) -> np.ndarray:
    """Looks like an imageLoader; proves it ran by writing the marker."""
    _plant(f"ran on {uri}")
    return np.zeros((8, 8, 3), np.float32)
