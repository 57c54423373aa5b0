from pathlib import Path

import pytest


@pytest.fixture()
def precision_cache(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $SPARKONNX_CACHE for one test; returns the folder int8 / fp16 builds go to."""
    monkeypatch.setenv("SPARKONNX_CACHE", str(workdir / "cache"))
    return workdir / "cache" / "precision"
