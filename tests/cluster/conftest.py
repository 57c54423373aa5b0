"""Fixtures of the `cluster` tests: a real standalone master + two workers on 127.0.0.1, started
once per test session from the pip pyspark, whose executors run a second venv holding only the
base install of this tree (no TensorFlow). Drivers run as their own processes
(`driver_jobs.py`), so a second driver can load what the first saved, and the pytest process
keeps whatever SparkSession the other tests use.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.executor_venv import executor_python
from tests.cluster.standalone import StandaloneCluster

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("driver_jobs.py")


@pytest.fixture(scope="session")
def executor_venv_python() -> Path:
    """The executors' Python: the cached base-install venv (built on first use, minutes)."""
    return executor_python(REPO)


@pytest.fixture(scope="session")
def standalone_cluster(
    tmp_path_factory: pytest.TempPathFactory, executor_venv_python: Path
) -> Iterator[StandaloneCluster]:
    """Master + two workers (2 cores, 2 fake GPUs each); stopped, leaving nothing, at the end."""
    cluster = StandaloneCluster(tmp_path_factory.mktemp("standalone"), executor_venv_python)
    try:
        cluster.start()
        yield cluster
    finally:
        leftovers = cluster.stop()
    assert not leftovers, f"processes still running after the cluster was stopped: {leftovers}"


class SectionResults(dict):
    """Driver results by section; reading a section that raised fails with its traceback."""

    def __getitem__(self, name: str) -> dict:
        result = super().__getitem__(name)
        if "error" in result:
            pytest.fail(f"driver section {name!r} failed:\n{result['error']}")
        return result


class DriverRun:
    """Runs `driver_jobs.py` sections as one driver process; returns their results by name."""

    def __init__(self, cluster: StandaloneCluster, out: Path) -> None:
        self.cluster = cluster
        self.out = out

    def env(self) -> dict[str, str]:
        """The environment of a driver process of this cluster (also for `sparkonnx` CLIs)."""
        env = {k: v for k, v in os.environ.items() if k != "PYSPARK_DRIVER_PYTHON"}
        env.update(
            PYTHONPATH=str(REPO),  # the driver imports this tree; executors use their venv
            PYSPARK_PYTHON=str(self.cluster.executor_python),
            SPARK_LOCAL_IP="127.0.0.1",
        )
        return env

    def __call__(self, *sections: str, timeout: float = 600) -> SectionResults:
        """Run ``sections`` in one new driver process; their results by name."""
        env = self.env()
        args = [sys.executable, str(DRIVER), self.cluster.url, str(self.out), *sections]
        proc = subprocess.Popen(
            args,
            env=env,
            cwd=self.out,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its JVM too can be killed as one group on a time-out
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            pytest.fail(f"driver {sections} ran over {timeout:.0f} s:\n{output[-4000:]}")
        results = SectionResults()
        for name in sections:
            path = self.out / f"{name}.json"
            if not path.exists():
                pytest.fail(f"driver section {name!r} wrote nothing:\n{output[-4000:]}")
            dict.__setitem__(results, name, json.loads(path.read_text()))
        return results


@pytest.fixture(scope="session")
def driver_run(
    standalone_cluster: StandaloneCluster, tmp_path_factory: pytest.TempPathFactory
) -> DriverRun:
    """Runs driver sections against the cluster, all writing to one shared folder."""
    return DriverRun(standalone_cluster, tmp_path_factory.mktemp("drivers"))


@pytest.fixture(scope="session")
def first_driver(driver_run: DriverRun) -> SectionResults:
    """One driver: scores with a file-shipped model, saves an image pipeline, kills an executor."""
    return driver_run("ship", "save", "kill")


@pytest.fixture(scope="session")
def second_driver(driver_run: DriverRun, first_driver: SectionResults) -> SectionResults:
    """Another driver process: loads the first one's pipeline, then (GPU executors, no task
    GPUs by default) runs the ResourceProfile example."""
    return driver_run("load", "profile")
