"""Can ONNX Runtime run this model? One CPU session per model (by sha256), built on the driver.

`onnx.checker` accepts operators from domains it does not know (``com.evil:EvilOp``) and
types ONNX Runtime has no kernel for; without this check such a model would pass every
driver-side check and fail inside a Spark task with ONNX Runtime's raw message.
:func:`check_runnable` builds a CPU session once per model and process and raises
:class:`ModelNotRunnableError` naming the operator, its domain and the node.
"""

from __future__ import annotations

import logging
import re
import threading

from sparkonnx.engine.model import InvalidModelError, OnnxModel

logger = logging.getLogger(__name__)

__all__ = ["ModelNotRunnableError", "check_operators", "check_runnable", "explain_session_error"]

#: Operator domains ONNX Runtime's CPU build knows.
ORT_DOMAINS = frozenset(
    {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "com.microsoft.nchwc", "ai.onnx.training"}
)

_checked: set[str] = set()
_lock = threading.Lock()
_UNREGISTERED = re.compile(
    r"(?P<domain>[\w.]*):(?P<op>\w+)\((?P<version>-?\d+)\) is not a registered"
)
_NO_KERNEL = re.compile(r"Could not find an implementation for (?P<op>\w+)\((?P<version>\d+)\)")
_PREFIX = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ")
_SOURCE = re.compile(r"/onnxruntime_src/\S+:\d+ [^(]*\((?:[^()]|\([^()]*\))*\) ")


class ModelNotRunnableError(InvalidModelError):
    """ONNX Runtime cannot build a session for the model (unknown operator, missing kernel)."""


def ort_message(exc: BaseException) -> str:
    """ONNX Runtime's error without its code prefix and C++ source location, on one line."""
    text = " ".join(str(exc).split())
    return _SOURCE.sub("", _PREFIX.sub("", text)) or type(exc).__name__


def _unknown_domain_ops(model: OnnxModel) -> list[str]:
    """'node n0: com.evil:EvilOp' for nodes (in subgraphs too) of domains ORT does not know."""
    found: list[str] = []
    stack = [model.proto.graph]
    functions = {(f.domain, f.name) for f in model.proto.functions}
    while stack:
        graph = stack.pop()
        for node in graph.node:
            if node.domain not in ORT_DOMAINS and (node.domain, node.op_type) not in functions:
                found.append(f"node {node.name or '(unnamed)'!r}: {node.domain}:{node.op_type}")
            stack.extend(a.g for a in node.attribute if a.HasField("g"))
            stack.extend(a.graphs[i] for a in node.attribute for i in range(len(a.graphs)))
    return found


def explain_session_error(model: OnnxModel, exc: BaseException, provider: str = "CPU") -> str:
    """Why ONNX Runtime refused ``model``: the operator / domain / node when it is one."""
    message = ort_message(exc)
    unregistered = _UNREGISTERED.search(message)
    no_kernel = _NO_KERNEL.search(message)
    if unregistered:
        domain = unregistered["domain"] or "ai.onnx"
        nodes = [n for n in _unknown_domain_ops(model) if n.endswith(f":{unregistered['op']}")]
        where = f" ({', '.join(nodes[:3])})" if nodes else ""
        return (
            f"operator {unregistered['op']!r} of domain {domain!r}{where} is not known to ONNX "
            f"Runtime's {provider} provider; ONNX Runtime knows the domains "
            f"{sorted(d for d in ORT_DOMAINS if d)} plus the default one. Replace the node, or "
            "register the custom-op library that implements it"
        )
    if no_kernel:
        return (
            f"ONNX Runtime's {provider} provider has no kernel for operator {no_kernel['op']!r} "
            f"(opset {no_kernel['version']}) with these input types: {message}"
        )
    unknown = _unknown_domain_ops(model)
    extra = (
        f" (operators from domains ONNX Runtime does not know: {unknown[:3]})" if unknown else ""
    )
    return f"ONNX Runtime's {provider} provider cannot load it: {message}{extra}"


def check_runnable(model: OnnxModel, hint: str = "") -> None:
    """Build a CPU session for ``model`` once per process (cached by sha256); raise
    ModelNotRunnableError naming the operator and domain when ONNX Runtime refuses it
    (``hint`` is appended to the message)."""
    with _lock:
        if model.sha256 in _checked:
            return
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.add_session_config_entry("session.disable_prepacking", "1")  # no 2nd weight copy
    try:
        ort.InferenceSession(model.ort_model(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail / InvalidGraph / NotImplemented types
        raise ModelNotRunnableError(
            f"{model.source}: {explain_session_error(model, exc)}{hint}"
        ) from None
    with _lock:
        _checked.add(model.sha256)
    logger.debug("model %s loads in ONNX Runtime (CPU)", model.sha256[:12])


def check_operators(model: OnnxModel, hint: str = "") -> None:
    """The part of `check_runnable` that needs no session (nor the weights): ModelNotRunnableError
    when a node's operator domain is one ONNX Runtime does not know."""
    unknown = _unknown_domain_ops(model)
    if unknown:
        raise ModelNotRunnableError(
            f"{model.source}: operators from domains ONNX Runtime does not know: "
            f"{', '.join(unknown[:3])}; ONNX Runtime knows the domains "
            f"{sorted(d for d in ORT_DOMAINS if d)} plus the default one. Replace the node, or "
            f"register the custom-op library that implements it{hint}"
        )
