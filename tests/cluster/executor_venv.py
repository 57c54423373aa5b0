"""The executors' virtualenv for the cluster tests: `pip install <wheel of this tree>`, no extras.

Built once per dependency set (constraints.txt, the `[project]` dependencies, the Python
version) under `cache_root()`, and reused across runs; only the sparkonnx wheel in it is
replaced, without touching its dependencies, when the package's files change. pip resolves from
the same index and cache as the main venv, so no TensorFlow (an extra) can come in.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

#: Where the cached venvs live (default: ~/.cache/sparkonnx/cluster-venvs).
CACHE_ENV = "SPARKONNX_CLUSTER_CACHE"
_DONE = ".sparkonnx-base-complete"
_SOURCES = ".sparkonnx-sources"


def cache_root() -> Path:
    """The folder holding the cached executor venvs."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "sparkonnx" / "cluster-venvs"


def dependencies_key(repo: Path) -> str:
    """A hash of what decides the venv's third-party packages."""
    pyproject = (repo / "pyproject.toml").read_text()
    project = pyproject.split("\n[project]\n", 1)[-1].split("\n[", 1)[0]  # name, dependencies
    digest = hashlib.sha256()
    digest.update((repo / "constraints.txt").read_bytes())
    digest.update(project.encode())
    digest.update(sys.version.encode())
    return digest.hexdigest()[:16]


def sources_key(repo: Path) -> str:
    """A hash of the files that go into the sparkonnx wheel."""
    digest = hashlib.sha256((repo / "pyproject.toml").read_bytes())
    for path in sorted((repo / "sparkonnx").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(repo)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (two test runs building the same venv wait for each other)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clean_env() -> dict[str, str]:
    """This environment without PYTHONPATH (a source tree on it makes pip think sparkonnx is
    installed already) or the main venv's activation."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    return {k: v for k, v in os.environ.items() if k not in drop}


def _run(cmd: list[str], what: str, timeout: float) -> None:
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=clean_env(), cwd="/"
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed: {' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )


def _pip(python: Path, *args: str) -> None:
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    _run(cmd, "building the executor venv", 900)


def build_wheel(repo: Path, out: Path) -> Path:
    """The sparkonnx wheel built from ``repo`` (no dependencies) into ``out``."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(repo)]
    _run(cmd, "building the sparkonnx wheel", 300)
    return next(out.glob("sparkonnx-*.whl"))


def _create(venv: Path, wheel: Path, repo: Path) -> None:
    """A fresh venv at ``venv`` with ``wheel`` and its (base) dependencies."""
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], "creating the executor venv", 300)
    python = venv / "bin" / "python"
    _pip(python, "-c", str(repo / "constraints.txt"), str(wheel))
    _run([str(python), "-c", "import sparkonnx, onnxruntime"], "checking the executor venv", 120)
    (venv / _DONE).write_text(wheel.name)


def _prune(root: Path, keep: Path) -> None:
    """Remove venvs built for other dependency sets (each is over 1 GB)."""
    for old in root.glob("venv-*"):
        if old != keep and old.is_dir():
            logger.info("removing stale executor venv %s", old)
            shutil.rmtree(old, ignore_errors=True)


def executor_python(repo: Path) -> Path:
    """The executors' Python: a cached venv holding only `pip install sparkonnx` of ``repo``."""
    repo = repo.resolve()
    root = cache_root()
    venv = root / f"venv-{dependencies_key(repo)}"
    sources = sources_key(repo)
    with _locked(root / f"{venv.name}.lock"):
        stamp = venv / _SOURCES
        if (venv / _DONE).exists() and stamp.exists() and stamp.read_text() == sources:
            return venv / "bin" / "python"
        with tempfile.TemporaryDirectory(prefix="sparkonnx-wheel-") as tmp:
            wheel = build_wheel(repo, Path(tmp))
            if not (venv / _DONE).exists():
                logger.info("building the executor venv %s (once per dependency set)", venv)
                _create(venv, wheel, repo)
                _prune(root, venv)
            else:
                _pip(venv / "bin" / "python", "--no-deps", "--force-reinstall", str(wheel))
        stamp.write_text(sources)
    return venv / "bin" / "python"
