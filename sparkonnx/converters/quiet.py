"""Other libraries' chatter off while sparkonnx works, unless the user asks for it.

TensorFlow, absl, Keras and tf2onnx print start-up banners (C++ writes to fd 2), deprecation
notices and conversion details (Python logging). sparkonnx keeps all of that quiet unless the
user asks for it: logging at DEBUG for the `sparkonnx` logger (the CLI's `-v` does that).
Nothing here changes global state at import; every change is undone when its block ends.
(Our own progress: `sparkonnx.converters.progress`.)
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

# loggers of the conversion stack, and the level they are held at while sparkonnx works:
# tf2onnx logs every op it cannot convert at ERROR; sparkonnx reports those in one message.
LIBRARY_LOGGERS: dict[str, int] = {
    "tensorflow": logging.ERROR,
    "absl": logging.ERROR,
    "h5py": logging.ERROR,
    "tf2onnx": logging.CRITICAL,
}
_TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"  # read by TensorFlow's C++ once, when it loads


def verbose() -> bool:
    """True when the user asked for the libraries' own output: `sparkonnx` logging at DEBUG."""
    return logging.getLogger("sparkonnx").isEnabledFor(logging.DEBUG)


class _Counted:
    """A process-wide state entered by the first of any number of (nested, concurrent) blocks
    and left by the last one; `start` returns what `stop` needs to undo it."""

    def __init__(self, start: Callable[[], Any], stop: Callable[[Any], None]) -> None:
        self._start, self._stop = start, stop
        self._lock = threading.Lock()
        self._depth = 0
        self._undo: Any = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._undo = self._start()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._stop(self._undo)
                    self._undo = None


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


def _mute_fds() -> Any:
    _flush()
    try:
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except OSError:  # no fd 1 / 2 (a daemon): nothing to mute
        return None
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in saved:
        os.dup2(devnull, fd)
    sink = open(os.devnull, "w")  # noqa: SIM115 - closed in _unmute_fds
    streams = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = sink  # Python-level writes too (notebooks do not use fd 1 / 2)
    return saved, devnull, sink, streams


def _unmute_fds(state: Any) -> None:
    if state is None:
        return
    saved, devnull, sink, (stdout, stderr) = state
    _flush()  # what was written meanwhile goes to /dev/null, not out after the block
    sys.stdout, sys.stderr = stdout, stderr
    sink.close()
    for fd, copy in saved.items():
        os.dup2(copy, fd)
        os.close(copy)
    os.close(devnull)


def _hold_loggers() -> dict[str, int]:
    previous = {}
    for name, level in LIBRARY_LOGGERS.items():
        logger = logging.getLogger(name)
        previous[name] = logger.level
        if logger.getEffectiveLevel() < level:
            logger.setLevel(level)
    return previous


def _release_loggers(previous: dict[str, int]) -> None:
    for name, level in previous.items():
        logging.getLogger(name).setLevel(level)


_fds = _Counted(_mute_fds, _unmute_fds)
_loggers = _Counted(_hold_loggers, _release_loggers)
_import_lock = threading.Lock()


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """Point fds 1 / 2 (and sys.stdout / sys.stderr) at /dev/null meanwhile, whatever is asked.

    For C/C++ writes that bypass Python (TensorFlow's absl banners, ONNX Runtime's provider
    prints). Nested and concurrent blocks share one muting, undone when the last one ends.
    """
    with _fds.held():
        yield


@contextlib.contextmanager
def native_quiet() -> Iterator[None]:
    """`silenced()` unless `verbose()`: for native library calls that print."""
    if verbose():
        yield
        return
    with silenced():
        yield


@contextlib.contextmanager
def library_logs_quiet() -> Iterator[None]:
    """Hold the conversion stack's Python loggers at ERROR (tf2onnx: CRITICAL) meanwhile,
    unless `verbose()`; their levels are restored when the last such block ends."""
    if verbose():
        yield
        return
    with _loggers.held():
        yield


def quietly(function: F) -> F:
    """Decorator: run `function` inside `library_logs_quiet()`."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with library_logs_quiet():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def import_quietly(name: str) -> ModuleType:
    """Import `name` (tensorflow, keras, tf2onnx...) without its start-up output unless
    `verbose()`: fds muted, and TensorFlow's C++ log level raised for the import only (it is read
    once, at load). The environment is left as it was, also where the module sets it
    (tf2onnx.convert sets TF_CPP_MIN_LOG_LEVEL on import). Raises the module's ImportError."""
    module = sys.modules.get(name)
    if module is not None:
        return module
    if verbose():
        return importlib.import_module(name)
    with _import_lock:
        before = os.environ.get(_TF_LOG_ENV)
        if before is None:
            os.environ[_TF_LOG_ENV] = "2"
        try:
            with silenced(), library_logs_quiet():
                return importlib.import_module(name)
        finally:
            if before is None:
                os.environ.pop(_TF_LOG_ENV, None)
            else:
                os.environ[_TF_LOG_ENV] = before
