"""Muting native libraries (TF's absl logs, onnxruntime's provider prints) at the fd level."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def silenced(stdout: bool = True, stderr: bool = True) -> Iterator[None]:
    """Point fds 1 / 2 at /dev/null meanwhile (C/C++ writes bypass Python's sys.stdout)."""
    fds = [fd for fd, on in ((1, stdout), (2, stderr)) if on]
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in fds}
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
