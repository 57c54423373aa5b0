"""The `sparkonnx` command's exit codes, and which one each kind of failure gets."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1  # unexpected failure (a bug: please report it with --verbose output)
EXIT_USAGE = 2  # bad arguments or option values
EXIT_SOURCE = 3  # the model source is missing or not a form sparkonnx recognizes
EXIT_CONVERSION = 4  # conversion failed (unsupported ops, unsafe model, bad signature, ...)
EXIT_PARITY = 5  # converted, but ONNX Runtime's numbers differ from the source's
EXIT_DEPENDENCY = 6  # an optional extra is missing (pip install 'sparkonnx[convert]')
EXIT_DEVICE = 7  # a requested device (doctor --device cuda) cannot be used on any executor
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0  success                       4  conversion failed (ops, unsafe model, signature)
  1  unexpected error (a bug)      5  parity check failed (numbers differ beyond tolerance)
  2  bad arguments or data         6  missing extra: pip install 'sparkonnx[convert]'
  3  source missing/unrecognized   7  requested device not usable on any executor
     (invalid model, zoo weights    130 interrupted
     not found)"""


def exit_code_for(exc: BaseException) -> int:
    """The exit code that names the kind of failure."""
    from sparkonnx.converters.errors import ConversionError, ParityError, UnsupportedSourceError
    from sparkonnx.converters.gate import GateError
    from sparkonnx.engine.model import InvalidModelError
    from sparkonnx.engine.providers import DeviceError
    from sparkonnx.model_zoo.build import ZooWeightsError

    if isinstance(exc, ParityError | GateError):
        return EXIT_PARITY
    if isinstance(
        exc, FileNotFoundError | UnsupportedSourceError | InvalidModelError | ZooWeightsError
    ):
        return EXIT_SOURCE
    if isinstance(exc, DeviceError):
        return EXIT_DEVICE
    if isinstance(exc, ConversionError):
        return EXIT_CONVERSION
    if isinstance(exc, ImportError):
        return EXIT_DEPENDENCY
    if isinstance(exc, ValueError | TypeError):
        return EXIT_USAGE
    return EXIT_ERROR
