"""The doctor's report: the driver's and every executor's `HostFacts`, the driver-vs-executor
mismatches, the requested device's verdict, as one table or as JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sparkonnx.engine.host_facts import VERSIONED, HostFacts

#: The `schema` field of `DoctorReport.to_dict`; bump when a field changes meaning.
SCHEMA = "sparkonnx.doctor/1"
_SHORT = {"CPUExecutionProvider": "CPU", "CUDAExecutionProvider": "CUDA"}


@dataclass(frozen=True)
class DoctorReport:
    """What the driver and each executor of a session can run (see `sparkonnx.doctor`)."""

    session: str  # e.g. "classic local[2]", "connect sc://host:15002"
    spark_version: str
    driver: HostFacts
    executors: list[HostFacts]
    device: str | None = None  # the device asked for ('cpu' / 'cuda'), if any
    notes: list[str] = field(default_factory=list)

    def usable_on(self, device: str) -> list[HostFacts]:
        """The executors where a session on `device` was really created and run."""
        return [f for f in self.executors if f.can_use(device)]

    @property
    def device_ok(self) -> bool | None:
        """Whether the requested device works on at least one executor (None: none asked)."""
        return None if self.device is None else bool(self.usable_on(self.device))

    @property
    def mismatches(self) -> list[str]:
        """Each executor's Python / package version that differs from the driver's."""
        found = []
        for facts in self.executors:
            for name, (mine, theirs) in _compared(self.driver, facts).items():
                if mine != theirs:
                    found.append(f"executor {facts.executor}: {name} {theirs}, driver has {mine}")
        return found

    @property
    def warnings(self) -> list[str]:
        """Problems other than version mismatches, e.g. two onnxruntime packages installed."""
        found = []
        for facts in [self.driver, *self.executors]:
            if len(facts.onnxruntime_packages) > 1:
                both = ", ".join(f"{k} {v}" for k, v in facts.onnxruntime_packages.items())
                found.append(
                    f"{facts.executor}: both {both} are installed and overwrite each other's "
                    "files; keep one (pip uninstall one, then pip install --force-reinstall "
                    "--no-deps the other)"
                )
        return found + list(self.notes)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-able values (`SCHEMA`)."""
        device = None
        if self.device is not None:
            usable = [f.executor for f in self.usable_on(self.device)]
            device = {"requested": self.device, "usable_on": usable, "ok": bool(usable)}
        return {
            "schema": SCHEMA,
            "session": self.session,
            "spark_version": self.spark_version,
            "driver": self.driver.to_dict(),
            "executors": [f.to_dict() for f in self.executors],
            "mismatches": self.mismatches,
            "warnings": self.warnings,
            "device": device,
        }

    def to_json(self) -> str:
        """`to_dict` as indented JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    def render(self) -> str:
        """One table (a row per executor, the driver first) and the findings under it."""
        lines = [f"sparkonnx doctor: {self.session}, Spark {self.spark_version}", ""]
        lines += _table([self.driver, *self.executors], self.driver)
        checks = [
            f"  {f.executor} {provider}: {why}"
            for f in self.executors
            for provider, why in f.provider_checks.items()
            if why is not None
        ]
        if checks:
            lines += ["", "providers listed but not usable:", *checks]
        if self.mismatches:
            lines += [
                "",
                "driver vs executor mismatches (*):",
                *(f"  {m}" for m in self.mismatches),
            ]
        if self.warnings:
            lines += ["", "warnings:", *(f"  {w}" for w in self.warnings)]
        if self.device is not None:
            usable = self.usable_on(self.device)
            verdict = "ok" if usable else "NOT USABLE ANYWHERE"
            count = f"{len(usable)} of {len(self.executors)} executors"
            lines += ["", f"device {self.device}: usable on {count} ({verdict})"]
        return "\n".join(lines)


def _compared(driver: HostFacts, facts: HostFacts) -> dict[str, tuple[str, str]]:
    pairs = {
        name: (driver.versions.get(name, "-"), facts.versions.get(name, "-")) for name in VERSIONED
    }
    pairs["python"] = (driver.python_version, facts.python_version)
    if "pyspark" in driver.extra:
        pairs["pyspark"] = (str(driver.extra["pyspark"]), str(facts.extra.get("pyspark", "-")))
    return pairs


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 2**30:.1f} GiB"


def _short(names: list[str]) -> str:
    return ",".join(_SHORT.get(n, n) for n in names) or "-"


def _providers(facts: HostFacts) -> str:
    """'CPU (not CUDA)': usable ones, then those listed whose session failed."""
    if not facts.provider_checks:
        return f"not tried (listed: {_short(facts.available_providers)})"
    failed = [name for name, why in facts.provider_checks.items() if why is not None]
    usable = _short(facts.usable_providers)
    return f"{usable} (not {_short(failed)})" if failed else usable


def _row(facts: HostFacts, driver: HostFacts) -> list[str]:
    differs = {k for k, (a, b) in _compared(driver, facts).items() if a != b}

    def mark(name: str, text: str) -> str:
        return f"{text}*" if name in differs else text

    ort = facts.versions.get("onnxruntime", "-")
    if "onnxruntime-gpu" in facts.onnxruntime_packages:
        ort += " (gpu)"
    features = "unknown" if facts.cpu_features is None else " ".join(facts.cpu_features) or "-"
    gpus = ",".join(facts.gpu_devices) or "none"
    if facts.extra.get("task_gpus"):  # what Spark's resource scheduling gave the probe task
        gpus += f" (task gpu {','.join(map(str, facts.extra['task_gpus']))})"
    return [
        facts.executor,
        mark("python", f"{facts.python_version} {facts.python_executable}"),
        mark("sparkonnx", facts.versions.get("sparkonnx", "-")),
        mark("onnxruntime", ort),
        mark("numpy", facts.versions.get("numpy", "-")),
        mark("pyarrow", facts.versions.get("pyarrow", "-")),
        _providers(facts),
        gpus,
        features,
        "yes" if facts.tensorflow and facts.keras else "no",
        f"{facts.model_cache_dir} ({_size(facts.model_cache_free_bytes)} free)",
    ]


_HEADER = [
    "executor",
    "python",
    "sparkonnx",
    "onnxruntime",
    "numpy",
    "pyarrow",
    "providers usable",
    "GPUs",
    "CPU features",
    "TF",
    "model cache",
]


def _table(rows: list[HostFacts], driver: HostFacts) -> list[str]:
    cells = [_HEADER, *(_row(f, driver) for f in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(_HEADER))]
    out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return out
