"""Zoo-size conversions (keras.applications, weights=None), each in its own process so that
time and peak RSS are measured per model. Marked slow: CI runs them when the budget allows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tensorflow")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", ["MobileNetV2", "InceptionV3", "ResNet50"])
def test_zoo_model_parity_time_and_memory(
    name: str, record_property: pytest.RecordProperty
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "tests.converters.zoo_worker", name],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    for key, value in figures.items():
        record_property(key, value)
    print(json.dumps(figures))
    assert figures["parity_passed"] is True
    assert figures["max_rel_error"] < 1e-3
    assert figures["batch1_max_abs_error"] < 1e-3 * max(1.0, figures["output_std"])
    assert figures["output_shape"] == [1, 1000]
    assert figures["output_std"] > 1e-2  # live activations: the comparison is not vacuous
