"""A model over protobuf's 2 GiB limit (a MatMul whose weight is 2.15 GB, zeros but a few
entries, in an external data file) scored by ONNXTransformer on local[2] in two Spark
applications (the second finds it in the executors' disk cache), with the driver's memory far
below the model's size; `sparkonnx inspect` on it. Marker `large` (deselected by default: run
with `-m large`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkonnx import testing

pytestmark = pytest.mark.large


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """A scratch folder (the model and the cache: ~4.3 GB once filled), deleted afterwards."""
    path = Path(tempfile.mkdtemp(prefix="sparkonnx-large-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_job(model: Path, cache: Path) -> dict[str, object]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.spark_api.large_model_job", str(model), str(cache)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_model_over_2_gib_runs_from_its_files(folder):
    model = testing.write_big_matmul(folder / "model")
    assert (folder / "model" / "w.bin").stat().st_size > 2**31
    cache = folder / "cache"
    figures = run_job(model, cache)
    print("large model:", json.dumps(figures))
    first, second = figures["first"], figures["second"]
    assert first["application"] != second["application"]
    for run in (first, second):
        assert run["on_disk"] and run["rows"] == 4 and run["max_abs_error"] < 1e-5
        assert run["worker_python_peak_mib"] < 3072, run  # one copy of the weights: no prepack
    assert figures["driver_python_peak_mib"] < 512, figures  # the model is 2053 MiB
    cached = cache / str(first["sha256"]) / "w.bin"
    assert cached.stat().st_size == (folder / "model" / "w.bin").stat().st_size
    assert figures["cache_entry_kept"]  # the second application did not copy it again
    staged = Path(tempfile.gettempdir()) / "sparkonnx-ship"
    for copy in staged.glob(f"sparkonnx-{first['sha256']}-*"):  # the driver's staged copy
        copy.unlink()


def test_inspect_reads_a_model_over_2_gib(folder):
    model = folder / "model" / "big.onnx"
    if not model.exists():
        testing.write_big_matmul(folder / "model")
    script = Path(sys.executable).parent / "sparkonnx"
    command = [str(script)] if script.is_file() else [sys.executable, "-m", "sparkonnx.cli"]
    done = subprocess.run(
        [*command, "inspect", str(model), "--json"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["size_bytes"] > 2**31
    assert report["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["N", 23200]}]
    assert report["providers"]["CPUExecutionProvider"] is True
