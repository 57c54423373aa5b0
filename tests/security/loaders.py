"""Loaders the security tests save in stages (importable on executors; numpy and Pillow only)."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

SIZE = 8


def load_small(uri: str) -> np.ndarray:
    """A benign imageLoader: the photo as RGB floats in [0, 1], resized to 8 x 8."""
    img = Image.open(uri).convert("RGB").resize((SIZE, SIZE))
    return np.asarray(img, np.float32) / 255.0


def load_dark(uri: str) -> np.ndarray:
    """Another benign imageLoader (half as bright), for the trusted= case."""
    return load_small(uri) / 2.0


__all__ = ["load_dark", "load_small", "os"]  # `os` is reachable as loaders.os on purpose
