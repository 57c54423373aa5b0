"""A real Spark standalone cluster on 127.0.0.1: one master and two workers, started with the
pip pyspark's `sbin/spark-daemon.sh`, each worker offering two cores and two fake GPUs.

Every port is a free one (several test runs can share a machine), every daemon writes its logs,
pid files and executor folders under one run folder, and `stop()` leaves no process behind:
it stops the daemons, then kills (-9) whatever still runs from the run folder, and reports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

MASTER = "org.apache.spark.deploy.master.Master"
WORKER = "org.apache.spark.deploy.worker.Worker"

#: The GPU addresses every worker's discovery script reports (there is no real GPU here).
FAKE_GPUS = ("0", "1")


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_home() -> Path:
    """The installed pyspark package folder, which is a Spark distribution (jars, sbin)."""
    import pyspark

    return Path(pyspark.__file__).parent


def write_gpu_discovery_script(path: Path, addresses: tuple[str, ...] = FAKE_GPUS) -> Path:
    """A resource discovery script (Spark's format) that reports fake GPU ``addresses``."""
    payload = json.dumps({"name": "gpu", "addresses": list(addresses)})
    path.write_text(f"#!/usr/bin/env bash\necho '{payload}'\n")
    path.chmod(0o755)
    return path


@dataclass
class StandaloneCluster:
    """Master + two workers under ``run_dir``; executors run ``executor_python``."""

    run_dir: Path
    executor_python: Path
    cores_per_worker: int = 2
    master_port: int = field(default_factory=free_port)
    master_ui_port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.master_port}"

    @property
    def work_dir(self) -> Path:
        return self.run_dir / "work"

    def env(self) -> dict[str, str]:
        """The daemons' environment: nothing of the test process's PYTHONPATH or venv."""
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        conf_dir = self.run_dir / "conf"
        conf_dir.mkdir(parents=True, exist_ok=True)
        env.update(
            SPARK_HOME=str(spark_home()),
            SPARK_CONF_DIR=str(conf_dir),
            SPARK_LOG_DIR=str(self.run_dir / "logs"),
            SPARK_PID_DIR=str(self.run_dir / "pids"),
            SPARK_WORKER_DIR=str(self.work_dir),
            SPARK_IDENT_STRING=f"sparkonnx-{self.master_port}",
            SPARK_LOCAL_IP="127.0.0.1",
            PYSPARK_PYTHON=str(self.executor_python),
        )
        return env

    def _daemon(self, action: str, cls: str, instance: int, *args: str) -> None:
        script = spark_home() / "sbin" / "spark-daemon.sh"
        cmd = ["bash", str(script), action, cls, str(instance), *args]
        subprocess.run(
            cmd, env=self.env(), cwd=self.run_dir, check=True, capture_output=True, timeout=60
        )

    def _worker_properties(self, instance: int) -> Path:
        script = write_gpu_discovery_script(self.run_dir / "gpu-discovery.sh")
        path = self.run_dir / f"worker-{instance}.properties"
        path.write_text(
            f"spark.worker.resource.gpu.amount {len(FAKE_GPUS)}\n"
            f"spark.worker.resource.gpu.discoveryScript {script}\n"
        )
        return path

    def start(self, timeout: float = 90) -> None:
        """Start the master and both workers; return once both workers are registered."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._daemon(
            "start", MASTER, 1, "--host", "127.0.0.1", "--port", str(self.master_port),
            "--webui-port", str(self.master_ui_port),
        )  # fmt: skip
        for instance in (1, 2):
            self._daemon(
                "start", WORKER, instance, "--host", "127.0.0.1",
                "--port", str(free_port()), "--webui-port", str(free_port()),
                "--cores", str(self.cores_per_worker), "--memory", "3g",
                "--work-dir", str(self.work_dir),
                "--properties-file", str(self._worker_properties(instance)), self.url,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while len(self.alive_workers()) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the standalone workers did not register with {self.url} within "
                    f"{timeout:.0f} s; logs:\n{self.log_tail()}"
                )
            time.sleep(0.5)

    def master_state(self) -> dict:
        """The master's JSON status page (workers, applications), {} while it is not up."""
        url = f"http://127.0.0.1:{self.master_ui_port}/json/"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.loads(response.read())
        except OSError:
            return {}

    def alive_workers(self) -> list[dict]:
        return [w for w in self.master_state().get("workers", []) if w.get("state") == "ALIVE"]

    def log_tail(self, chars: int = 3000) -> str:
        logs = sorted((self.run_dir / "logs").glob("*.out"))
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-chars:]}" for p in logs)

    def executor_pids(self) -> list[int]:
        """Executor JVMs (CoarseGrainedExecutorBackend) started by this cluster's workers."""
        return [
            pid for pid, cmd in self.processes().items() if "CoarseGrainedExecutorBackend" in cmd
        ]

    def processes(self) -> dict[int, str]:
        """{pid: command line} of every process of this cluster: the daemons (pid files) and
        anything running in its run folder (executors and their Python workers)."""
        found: dict[int, str] = {}
        daemon_pids = set()
        for pid_file in (self.run_dir / "pids").glob("*.pid"):
            text = pid_file.read_text().strip()
            if text.isdigit():
                daemon_pids.add(int(text))
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                cwd = os.readlink(entry / "cwd")
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if pid in daemon_pids or cwd.startswith(str(self.run_dir)):
                found[pid] = cmd
        return found

    def stop(self, timeout: float = 30) -> dict[int, str]:
        """Stop the workers and the master; kill -9 what is left. Returns what had to be killed."""
        for cls, instance in ((WORKER, 2), (WORKER, 1), (MASTER, 1)):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._daemon("stop", cls, instance)
        deadline = time.monotonic() + timeout
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.5)
        leftovers = self.processes()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return leftovers
