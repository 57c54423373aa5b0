"""Functions named by a ``'package.module:function'`` string: which ones may be imported and run.

A saved stage names its user code (``imageLoader``) by such a string, and loading it must never
import and call a name the user did not approve. Two rules:

- everywhere (driver and executors): a name from the standard library or builtins is refused
  outright, dunder attributes are refused, and the object found must really be the function
  of that name (its ``__module__`` and ``__qualname__``), so ``'mypkg:os.system'`` cannot reach
  ``os.system`` through ``mypkg``'s imports;
- on the driver, when a stage is loaded: the name must be trusted, i.e. registered in this
  process (:func:`register_image_loader`, or given to a stage here, as a function or a name)
  or passed in ``trusted=`` to ``load``. Nothing is imported before both checks pass.
"""

from __future__ import annotations

import importlib
import keyword
import logging
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sparkonnx.errors import SparkOnnxError

logger = logging.getLogger(__name__)

__all__ = [
    "UntrustedCodeError",
    "check_code_name",
    "code_name_of",
    "is_trusted",
    "register_image_loader",
    "require_trusted",
    "resolve_code_name",
    "trust_code_name",
]

F = TypeVar("F", bound=Callable[..., Any])

_trusted: set[str] = set()
_lock = threading.Lock()


class UntrustedCodeError(SparkOnnxError, ValueError):
    """A code name (e.g. a saved ``imageLoader``) that is refused: not trusted, or forbidden."""


def _valid_dotted(text: str) -> bool:
    parts = text.split(".")
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in parts)


def check_code_name(name: str, what: str = "imageLoader") -> tuple[str, str]:
    """(module, qualname) of ``'module:qualname'``; UntrustedCodeError if it is malformed,
    names the standard library / builtins, or passes through a dunder attribute."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise UntrustedCodeError(f"{what} {name!r} is not an import path 'package.module:function'")
    module, _, qualname = name.partition(":")
    if not (_valid_dotted(module) and _valid_dotted(qualname)):
        raise UntrustedCodeError(
            f"{what} {name!r} is not an import path 'package.module:function' (dotted Python "
            "identifiers on both sides of one ':')"
        )
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top == "builtins":
        raise UntrustedCodeError(
            f"{what} {name!r} names the standard library module {top!r}: such names are "
            "refused outright (a saved stage could otherwise run e.g. os:system or os:remove "
            "on every URI). Use a function from your own package"
        )
    if any(p.startswith("__") for p in qualname.split(".")):
        raise UntrustedCodeError(
            f"{what} {name!r} goes through a dunder attribute; only plain functions defined "
            "at a module's top level (or in a class) can be named"
        )
    return module, qualname


def trust_code_name(name: str, what: str = "imageLoader") -> None:
    """Trust ``'module:qualname'`` in this process (checked by :func:`check_code_name` first)."""
    check_code_name(name, what)
    with _lock:
        _trusted.add(name)


def code_name_of(function: Callable[..., Any]) -> str | None:
    """``'module:qualname'`` of a function importable by that name, else None (no import)."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        return None
    return f"{module}:{qualname}"


def register_image_loader(loader: F | str) -> F | str:
    """Trust an ``imageLoader`` (a function, or its ``'module:function'`` path) in this process,
    so that saved stages naming it load; returns it (usable as a decorator).

    Register loaders before ``PipelineModel.load`` / ``CrossValidatorModel.load``; a stage's
    own ``load(path, trusted=[...])`` takes the names directly.
    """
    name = loader if isinstance(loader, str) else code_name_of(loader)
    if name is None:
        raise UntrustedCodeError(
            f"cannot register imageLoader {loader!r}: only functions importable by name "
            "(defined at a module's top level) can be named in a saved stage"
        )
    trust_code_name(name)
    return loader


def remember_trusted_function(function: Callable[..., Any]) -> None:
    """A function the user handed to a stage in this process: its name counts as trusted."""
    name = code_name_of(function)
    if name is None:
        return
    try:
        check_code_name(name)
    except UntrustedCodeError:
        return  # a stdlib function given directly runs, but a saved name of it never loads
    with _lock:
        _trusted.add(name)


def is_trusted(name: str, trusted: Iterable[str] = ()) -> bool:
    """Whether ``name`` is registered in this process or listed in ``trusted``."""
    with _lock:
        return name in _trusted or name in set(trusted)


def require_trusted(
    name: str, where: str, trusted: Iterable[str] = (), what: str = "imageLoader"
) -> None:
    """UntrustedCodeError naming ``where`` unless ``name`` passes the checks and is trusted."""
    try:
        check_code_name(name, what)
    except UntrustedCodeError as exc:
        raise UntrustedCodeError(f"refusing to load {where}: {exc}") from None
    if is_trusted(name, trusted):
        return
    raise UntrustedCodeError(
        f"refusing to load {where}: its {what} is {name!r}, which was not registered in this "
        "process. Loading a saved stage never imports code you did not approve: if you trust "
        f"this function, call sparkonnx.register_image_loader({name!r}) (or pass "
        f"trusted=[{name!r}] to the stage's load) before loading"
    )


def resolve_code_name(name: str, what: str = "imageLoader") -> Callable[..., Any]:
    """The function ``'module:qualname'`` names (imported), after :func:`check_code_name`; the
    object found must be that very function. Runs on executors too."""
    module_name, qualname = check_code_name(name, what)
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    found = (getattr(obj, "__module__", None), getattr(obj, "__qualname__", None))
    if found != (module_name, qualname) or not callable(obj):
        raise UntrustedCodeError(
            f"{what} {name!r} resolves to {obj!r}, which is not the function of that name "
            f"(it is {found[0]}:{found[1]}); name the function where it is defined"
        )
    return obj
