"""A module an attacker names in edited stage metadata: importing it already does harm.

It appends to `MARKER` when imported and each time its function runs (on executors too); the
tests assert the marker never appears because the module is never imported unless trusted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

MARKER = Path(tempfile.gettempdir()) / f"sparkonnx-evil-marker-{os.getuid()}.txt"


def _plant(what: str) -> None:
    with MARKER.open("a") as f:
        f.write(what + "\n")


_plant("imported")


def plant_marker(uri: str) -> np.ndarray:
    """Looks like an imageLoader; proves it ran by writing the marker."""
    _plant(f"ran on {uri}")
    return np.zeros((8, 8, 3), np.float32)
