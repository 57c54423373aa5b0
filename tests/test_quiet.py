"""Quiet by default: converting a Keras model prints nothing from TensorFlow, absl or tf2onnx
unless asked (`-v`, or logging at DEBUG for `sparkonnx`); progress bars only where seen.

The conversion tests run a real tiny Keras model in fresh interpreters and read everything they
wrote to stdout and stderr (TensorFlow's banners come from C++, past Python's sys.stderr).
"""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkonnx.converters import progress, quiet

CHATTER = ("absl", "I0000", "oneDNN", "cpu_feature_guard", "tensorflow", "tf2onnx", "Instructions")
TF_LOG = "TF_CPP_MIN_LOG_LEVEL"


def _run(args: list[str], env: dict[str, str] | None = None) -> list[str]:
    environment = {k: v for k, v in os.environ.items() if k != TF_LOG} | (env or {})
    done = subprocess.run(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
        env=environment,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout
    return done.stdout.splitlines()


def _python(code: str, *args: str) -> list[str]:
    return _run([sys.executable, "-c", textwrap.dedent(code), *args])


def _chatter(lines: list[str]) -> list[str]:
    return [line for line in lines if any(marker in line for marker in CHATTER)]


@pytest.fixture(scope="module")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("quiet") / "tiny.keras"
    _python(
        """
        import sys, keras
        dense = keras.layers.Dense
        model = keras.Sequential([keras.Input((4,)), dense(3, activation="relu"), dense(2)])
        model.save(sys.argv[1])
        """,
        str(path),
    )
    return path


CONVERT = """
import logging, os, sys
if sys.argv[2] == "debug":
    logging.basicConfig(level=logging.DEBUG)
from sparkonnx import KerasTransformer
print("env before:", os.environ.get("TF_CPP_MIN_LOG_LEVEL"), flush=True)
model = KerasTransformer(inputCol="x", outputCol="y", modelFile=sys.argv[1]).getModel()
print("converted:", [s.name for s in model.inputs], flush=True)
print("env after:", os.environ.get("TF_CPP_MIN_LOG_LEVEL"), flush=True)
"""


def test_a_keras_transformer_prints_nothing_but_what_the_user_prints(keras_file: Path) -> None:
    lines = _python(CONVERT, str(keras_file), "quiet")
    assert lines == ["env before: None", "converted: ['input_layer']", "env after: None"]


def test_logging_at_debug_for_sparkonnx_lets_the_libraries_speak(keras_file: Path) -> None:
    lines = _python(CONVERT, str(keras_file), "debug")
    assert "converted: ['input_layer']" in lines
    assert len(_chatter(lines)) >= 5, lines  # TF's banners, tf2onnx's own log lines
    assert any(line.startswith("INFO:sparkonnx.converters.pipeline:") for line in lines)


def _sparkonnx(*args: str) -> list[str]:
    return _run([sys.executable, "-m", "sparkonnx.cli", *args])  # this tree's sparkonnx


def test_sparkonnx_convert_prints_only_its_report_unless_verbose(
    keras_file: Path, tmp_path: Path
) -> None:
    out = str(tmp_path / "tiny.onnx")
    lines = _sparkonnx("convert", str(keras_file), "-o", out)
    assert lines[0].startswith(f"wrote {out}") and len(lines) == 4, lines
    assert all(line.startswith("  ") for line in lines[1:]), lines
    verbose = _sparkonnx("convert", str(keras_file), "-o", out, "-v")
    assert len(_chatter(verbose)) >= 5, verbose
    assert any(line.startswith("INFO tf2onnx") for line in verbose)


# ------------------------------------------------------------------ no TensorFlow needed


@pytest.fixture()
def noisy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module that, on import, writes past Python (fd 2), prints, logs and sets TF's variable."""
    name = "sparkonnx_test_noisy"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            f"""
            import logging, os
            SEEN = os.environ.get({TF_LOG!r})
            os.write(2, b"I0000 native banner\\n")
            print("python banner")
            logging.getLogger("tensorflow").warning("deprecated call")
            os.environ[{TF_LOG!r}] = "3"
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_import_quietly_mutes_a_module_and_leaves_the_environment_as_it_was(
    noisy_module: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TF_LOG, raising=False)
    module = quiet.import_quietly(noisy_module)
    assert module.SEEN == "2"  # TensorFlow's C++ log level raised for the import only
    assert TF_LOG not in os.environ
    assert capfd.readouterr() == ("", "")
    assert quiet.import_quietly(noisy_module) is module  # already imported: returned as is
    print("after")
    assert capfd.readouterr().out == "after\n"  # the streams are back


def test_a_users_own_tf_log_level_is_kept(
    noisy_module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TF_LOG, "1")
    assert quiet.import_quietly(noisy_module).SEEN == "1"
    assert os.environ[TF_LOG] == "1"


def test_debug_logging_for_sparkonnx_lets_an_import_print(
    noisy_module: str, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TF_LOG, raising=False)  # undone at the end: also what the module sets
    logging.getLogger("sparkonnx").setLevel(logging.DEBUG)
    try:
        assert quiet.verbose()
        assert quiet.import_quietly(noisy_module).SEEN is None
    finally:
        logging.getLogger("sparkonnx").setLevel(logging.NOTSET)
    captured = capfd.readouterr()
    assert "I0000 native banner" in captured.err and "python banner" in captured.out


def _levels() -> dict[str, int]:
    return {name: logging.getLogger(name).level for name in quiet.LIBRARY_LOGGERS}


def test_library_loggers_are_held_while_any_block_runs_and_restored_after() -> None:
    logging.getLogger("tf2onnx").setLevel(logging.INFO)  # a user's own setting
    before = _levels()
    inside: list[int] = []
    entered, release = threading.Event(), threading.Event()

    def other_thread() -> None:
        with quiet.library_logs_quiet():
            entered.set()
            release.wait(10)

    worker = threading.Thread(target=other_thread)
    try:
        worker.start()
        entered.wait(10)
        with quiet.library_logs_quiet(), quiet.library_logs_quiet():  # nested
            inside.append(logging.getLogger("tf2onnx").getEffectiveLevel())
        inside.append(logging.getLogger("tensorflow").getEffectiveLevel())  # other still in
        release.set()
        worker.join(10)
        assert inside == [logging.CRITICAL, logging.ERROR]
        assert _levels() == before
    finally:
        logging.getLogger("tf2onnx").setLevel(logging.NOTSET)


def test_nothing_changes_at_import() -> None:
    lines = _python(
        """
        import logging, os
        names = ("tensorflow", "absl", "tf2onnx", "h5py", "sparkonnx")
        state = lambda: (dict(os.environ), [logging.getLogger(n).level for n in names])
        before = state()
        import sparkonnx, sparkonnx.converters.quiet, sparkonnx.converters._deps, sparkonnx.cli
        print(before == state(), logging.getLogger().handlers == [])
        """
    )
    assert lines == ["True True"]


def test_progress_bars_show_on_a_terminal_and_hide_in_pipes(capsys) -> None:
    assert not progress.attended()  # pytest captures stderr: not a terminal, not a notebook
    assert progress.progress_bar(3, "hidden").disable
    bar = progress.progress_bar(3, "asked for", show=True)
    bar.update(3)
    bar.close()
    assert "asked for" in capsys.readouterr().err
    code = "from sparkonnx.converters import progress\nbar = progress.progress_bar(3, 'seen')"
    code += "\nbar.update(3)"
    piped = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert piped.returncode == 0 and "seen" not in piped.stderr
    assert b"seen" in _stderr_on_a_terminal(code)  # stderr is a terminal: the bar is drawn


def _stderr_on_a_terminal(code: str) -> bytes:
    """What `code` writes to stderr when stderr is an 80-column pseudo-terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        child = subprocess.Popen([sys.executable, "-c", code], stderr=follower)
        os.close(follower)
        follower = -1
        written = b""
        while select.select([leader], [], [], 30)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            written += chunk
        assert child.wait(60) == 0
        return written
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
