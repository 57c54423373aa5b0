"""Shared fixtures: one classic `local[2]` session and one Spark Connect session per test run.

The Connect server is a separate JVM started from the pyspark package's own script, on a free
loopback port, so both kinds of session can live in one pytest process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SPARK_TEST_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.task.maxFailures": "1",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "2g",
    "spark.sql.execution.pyspark.udf.faulthandler.enabled": "true",
}


@pytest.fixture(scope="session")
def spark():
    """The classic local[2] session shared by every Spark test."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("sparkonnx-tests")
    for key, value in SPARK_TEST_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The running test Connect server: its "url" and its "log_dir" (the server's stdout / stderr).
CONNECT_SERVER: dict[str, object] = {}


@pytest.fixture(scope="session")
def connect_spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A Spark Connect session against a local server started for this test run."""
    pytest.importorskip("grpc", reason="Spark Connect client needs pyspark[connect]")
    import pyspark
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    home = Path(pyspark.__file__).parent
    port = _free_port()
    run_dir = tmp_path_factory.mktemp("connect-server")
    env = dict(
        os.environ,
        SPARK_HOME=str(home),
        SPARK_LOG_DIR=str(run_dir),
        SPARK_PID_DIR=str(run_dir),
        SPARK_IDENT_STRING=f"sparkonnx-{port}",
    )
    conf = {
        **SPARK_TEST_CONF,
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
    }
    args = [str(home / "sbin" / "start-connect-server.sh"), "--master", "local[2]"]
    for key, value in conf.items():
        args += ["--conf", f"{key}={value}"]
    subprocess.run(args, env=env, check=True, capture_output=True)
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    logs = "\n".join(p.read_text()[-2000:] for p in run_dir.glob("*.out"))
                    pytest.fail(f"Spark Connect server did not start on port {port}:\n{logs}")
                time.sleep(0.3)
        session = ConnectSession.builder.remote(f"sc://127.0.0.1:{port}").getOrCreate()
        CONNECT_SERVER.update(url=f"sc://127.0.0.1:{port}", log_dir=run_dir)
        yield session
        session.stop()
    finally:
        subprocess.run(
            [str(home / "sbin" / "stop-connect-server.sh")], env=env, capture_output=True
        )


@pytest.fixture(scope="session", params=["classic", "connect"])
def any_spark(request: pytest.FixtureRequest):
    """Parametrizes a test over classic Spark and Spark Connect."""
    if request.param == "classic":
        return request.getfixturevalue("spark")
    return request.getfixturevalue("connect_spark")


@pytest.fixture()
def workdir() -> Iterator[Path]:
    """A fresh temporary directory (also readable by the Spark JVMs on this machine)."""
    with tempfile.TemporaryDirectory(prefix="sparkonnx-test-") as d:
        yield Path(d)
