from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sparkonnx.converters import metadata
from sparkonnx.converters.quantize import quantization_of
from sparkonnx.engine.model import OnnxModel


@pytest.fixture()
def precision_cache(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $SPARKONNX_CACHE for one test; returns the folder int8 / fp16 builds go to."""
    monkeypatch.setenv("SPARKONNX_CACHE", str(workdir / "cache"))
    return workdir / "cache" / "precision"


@pytest.fixture()
def int8_record(precision_cache: Path) -> Callable[..., dict[str, Any]]:
    """A check of the one int8 model cached in `precision_cache`: it passed its gate with
    `calibration_rows` and `gate_rows`; the check returns its quantization record."""

    def check(calibration_rows: int, gate_rows: int) -> dict[str, Any]:
        (cached,) = precision_cache.glob("*.onnx")
        model = OnnxModel.from_path(cached)
        assert model.metadata[metadata.PRECISION] == "int8"
        record = quantization_of(model)
        assert record is not None and record["gate"]["passed"]
        rows = (record["calibration"]["rows"], record["gate"]["rows"])
        assert rows == (calibration_rows, gate_rows)
        return record

    return check
