"""The CPU features that decide how fast int8 runs: AVX2, AVX-512, VNNI, AMX (x86), dot
product / i8mm (Arm).

Read from `/proc/cpuinfo` on Linux; elsewhere (macOS, Windows) from `platform` only, with
`source` saying so. Spark-free and cheap: executors call it to report the machine that times
a model. `sparkonnx doctor` shows the same record.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["CpuFeatures", "cpu_features", "parse_cpuinfo"]

#: (label, flags any of which means the feature) in the order reports show them.
_FEATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AVX2", ("avx2",)),
    ("AVX-512", ("avx512f",)),
    ("AVX512-VNNI", ("avx512_vnni", "avx512vnni")),
    ("AVX-VNNI", ("avx_vnni",)),
    ("AMX-INT8", ("amx_int8",)),
    ("ARM-DOTPROD", ("asimddp",)),
    ("ARM-I8MM", ("i8mm",)),
)
_INT8_FAST = ("AVX512-VNNI", "AVX-VNNI", "AMX-INT8", "ARM-DOTPROD", "ARM-I8MM")


@dataclass(frozen=True)
class CpuFeatures:
    """What the CPU offers int8 kernels, and where that was read from."""

    model: str
    machine: str
    features: tuple[str, ...]  # labels of `_FEATURES` present
    source: str  # "/proc/cpuinfo" or "platform (flags unavailable)"
    flags: frozenset[str] = field(default_factory=frozenset, repr=False)

    @property
    def int8_dot_product(self) -> bool:
        """True when the CPU has an int8 dot-product instruction (VNNI, AMX, Arm dotprod)."""
        return any(f in self.features for f in _INT8_FAST)

    @property
    def int8_overflow_risk(self) -> bool:
        """True on x86 without VNNI / AMX, where ONNX Runtime's u8 x s8 kernels (VPMADDUBSW)
        saturate with 8-bit weights: 7-bit weights (`reduce_range`) are tried first there."""
        x86 = self.machine.lower() in ("x86_64", "amd64", "i686", "x86")
        return x86 and self.source == "/proc/cpuinfo" and not self.int8_dot_product

    def summary(self) -> str:
        """One line, e.g. 'AMD EPYC (x86_64): AVX2; no int8 dot product (VNNI / AMX)'."""
        shown = ", ".join(self.features) or "none of AVX2 / AVX-512 / VNNI / AMX"
        if self.source != "/proc/cpuinfo":
            shown = f"unknown ({self.source})"
        elif not self.int8_dot_product:
            shown += "; no int8 dot product (VNNI / AMX)"
        return f"{self.model} ({self.machine}): {shown}"

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON values (without the raw flags)."""
        return {
            "model": self.model,
            "machine": self.machine,
            "features": list(self.features),
            "int8_dot_product": self.int8_dot_product,
            "source": self.source,
        }


def parse_cpuinfo(text: str, machine: str = "") -> CpuFeatures:
    """The features listed in the text of a `/proc/cpuinfo` (first processor's block)."""
    flags: set[str] = set()
    model = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key in ("model name", "cpu model", "hardware") and not model:
            model = value.strip()
    present = tuple(label for label, names in _FEATURES if flags.intersection(names))
    return CpuFeatures(
        model or "unknown CPU",
        machine or platform.machine(),
        present,
        "/proc/cpuinfo",
        frozenset(flags),
    )


@lru_cache(maxsize=1)
def cpu_features(cpuinfo: str = "/proc/cpuinfo") -> CpuFeatures:
    """The CPU features of this machine (cached per process)."""
    path = Path(cpuinfo)
    try:
        return parse_cpuinfo(path.read_text(errors="replace"))
    except OSError:
        name = platform.processor() or platform.machine() or "unknown CPU"
        return CpuFeatures(name, platform.machine(), (), "platform (flags unavailable)")
