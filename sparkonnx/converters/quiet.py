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
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed below; Python-level prints too
    redirects = contextlib.ExitStack()
    try:
        for fd in fds:
            os.dup2(devnull, fd)
        if stdout:
            redirects.enter_context(contextlib.redirect_stdout(sink))
        if stderr:
            redirects.enter_context(contextlib.redirect_stderr(sink))
        with redirects:
            yield
    finally:
        sink.close()
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)
