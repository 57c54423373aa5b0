"""The int8 search behind the gate: try configurations in order, keep the fastest that passes.

Each configuration of `int8_configs.candidates` is built and judged by the accuracy gate on
the held-out rows, until every one was tried or the time budget (`DEFAULT_SEARCH_SECONDS`) is
spent (the first is always tried). The ones that pass are then timed against fp32 on a few
calibration rows, on the machine that will run them (`Timer`: this process for `quantize`,
one executor task for Spark stages), and the fastest is kept, unless even it is less than
`min_speedup` times as fast as fp32: then int8 is refused with the figures and the CPU
features that explain them. `SearchReport` lists every configuration tried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import onnx

from sparkonnx.converters.calibration import CalibrationSet
from sparkonnx.converters.errors import ConversionError
from sparkonnx.converters.gate import GateError, GateReport, refusal
from sparkonnx.converters.int8 import Int8Options
from sparkonnx.converters.int8_configs import SearchConfig

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SEARCH_SECONDS",
    "Int8SpeedError",
    "SearchReport",
    "Timing",
    "Trial",
    "local_timer",
    "run_search",
]

#: Wall-clock budget of a search: no configuration is started after it (the first always is).
DEFAULT_SEARCH_SECONDS = 120.0
#: Calibration rows the speed check times fp32 and the int8 candidates on.
TIMING_ROWS = 8


@dataclass(frozen=True)
class Timing:
    """Seconds per pass over the timing rows: fp32 first, then each timed candidate."""

    seconds: tuple[float, ...]
    rows: int
    where: str  # "this process" or "one executor task"
    cpu: dict[str, Any] = field(default_factory=dict)  # CpuFeatures.to_dict() + "summary"


#: (fp32 model, candidates, timing rows, batch) -> Timing
Timer = Callable[[onnx.ModelProto, Sequence[onnx.ModelProto], CalibrationSet, int], Timing]


def local_timer(
    fp32: onnx.ModelProto, models: Sequence[onnx.ModelProto], rows: CalibrationSet, batch: int
) -> Timing:
    """Time the models in this process, one ONNX Runtime thread each (as one Spark core)."""
    from sparkonnx.engine.cpu_features import cpu_features
    from sparkonnx.engine.timing import time_models

    blobs = [m.SerializeToString() for m in (fp32, *models)]
    seconds = time_models(blobs, list(rows.batches(batch)), threads=1)
    cpu = cpu_features()
    return Timing(
        tuple(seconds), rows.rows, "this process", cpu.to_dict() | {"summary": cpu.summary()}
    )


@dataclass(frozen=True)
class Trial:
    """One configuration tried: its gate figures (or why it has none), time and speed-up."""

    config: str
    description: str
    status: str  # "passed", "refused by the gate", "failed", "skipped (time budget)"
    seconds: float = 0.0  # to build and judge it
    gate: GateReport | None = None
    error: str | None = None
    speedup: float | None = None  # fp32 seconds / its seconds, when timed

    def figures(self) -> str:
        """The gate's figure per output, e.g. 'probabilities top1 1.0000 (cosine 0.9981)'."""
        if self.gate is None:
            return self.error or "-"
        parts = []
        for o in self.gate.outputs:
            text = f"{o.name} {o.metric} {o.value:.4f}"
            if o.metric == "top1" and o.mean_cosine is not None:
                text += f" (cosine {o.mean_cosine:.4f})"
            parts.append(text)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "description": self.description,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "figures": self.figures(),
            "speedup": None if self.speedup is None else round(self.speedup, 3),
        }


@dataclass(frozen=True)
class SearchReport:
    """Every configuration tried, which one was kept, and the timing that decided it."""

    mode: str
    mode_reason: str
    trials: tuple[Trial, ...]
    chosen: str | None
    min_speedup: float | None
    budget_seconds: float
    timing: Timing | None = None

    def table(self) -> str:
        """One line per configuration: name, status, gate figures, speed-up, seconds."""
        lines = []
        for t in self.trials:
            speed = "" if t.speedup is None else f", {t.speedup:.2f}x fp32"
            mark = " <- kept" if t.config == self.chosen else ""
            lines.append(f"  {t.config}: {t.status}, {t.figures()}{speed}, {t.seconds:.1f} s{mark}")
        return "\n".join(lines)

    def cpu_summary(self) -> str:
        return "" if self.timing is None else str(self.timing.cpu.get("summary", ""))

    def to_dict(self) -> dict[str, Any]:
        timing = None
        if self.timing is not None:
            t = self.timing
            timing = {"rows": t.rows, "where": t.where, "fp32_seconds": t.seconds[0], "cpu": t.cpu}
        return {
            "mode": self.mode,
            "mode_reason": self.mode_reason,
            "chosen": self.chosen,
            "min_speedup": self.min_speedup,
            "budget_seconds": self.budget_seconds,
            "trials": [t.to_dict() for t in self.trials],
            "timing": timing,
        }


class Int8SpeedError(ConversionError):
    """int8 passed the gate but is not `min_speedup` times as fast as fp32 here."""

    def __init__(self, message: str, report: SearchReport) -> None:
        super().__init__(message)
        self.report = report


Build = Callable[[Int8Options], onnx.ModelProto]
Judge = Callable[[onnx.ModelProto], GateReport]


def run_search(
    name: str,
    configs: Sequence[SearchConfig],
    build: Build,
    judge: Judge,
    *,
    mode: tuple[str, str],
    timing: tuple[Timer, CalibrationSet, int, onnx.ModelProto] | None,
    min_speedup: float | None,
    budget_seconds: float = DEFAULT_SEARCH_SECONDS,
) -> tuple[onnx.ModelProto, GateReport, SearchReport]:
    """(model, gate report, search report) of the fastest configuration that passes.

    `timing`: (timer, rows, batch, fp32 model), or None to keep the first that passes untimed.
    Raises GateError when none passes, Int8SpeedError when the fastest is too slow.
    """
    start = time.perf_counter()
    trials: list[Trial] = []
    passing: list[tuple[int, onnx.ModelProto, GateReport]] = []
    for config in configs:
        if trials and time.perf_counter() - start > budget_seconds:
            trials.append(Trial(config.name, config.describe(), "skipped (time budget)"))
            continue
        trial, built = _try(config, build, judge)
        trials.append(trial)
        logger.info("%s: int8 search %s: %s, %s", name, config.name, trial.status, trial.figures())
        if built is not None and trial.gate is not None and trial.gate.passed:
            passing.append((len(trials) - 1, built, trial.gate))
            if timing is None:
                break  # untimed: the first that passes is kept
    report = SearchReport(mode[0], mode[1], tuple(trials), None, min_speedup, budget_seconds)
    if not passing:
        raise _none_passed(name, report)
    if timing is None:
        index, proto, gate = passing[0]
        return proto, gate, _with(report, trials, index, None)
    timer, rows, batch, fp32 = timing
    measured = timer(fp32, [p for _, p, _ in passing], rows, batch)
    for (index, _, _), seconds in zip(passing, measured.seconds[1:]):
        trials[index] = _speed(trials[index], measured.seconds[0] / max(seconds, 1e-12))
    fastest = max(passing, key=lambda p: trials[p[0]].speedup or 0.0)
    final = _with(report, trials, fastest[0], measured)
    speedup = trials[fastest[0]].speedup or 0.0
    if min_speedup is not None and speedup < min_speedup:
        raise _too_slow(name, final, trials[fastest[0]], speedup, min_speedup)
    return fastest[1], fastest[2], final


def _try(config: SearchConfig, build: Build, judge: Judge) -> tuple[Trial, onnx.ModelProto | None]:
    began = time.perf_counter()
    try:
        proto = build(config.options)
        gate = judge(proto)
    except ConversionError as exc:
        error = str(exc).splitlines()[0]
        took = time.perf_counter() - began
        return Trial(config.name, config.describe(), "failed", took, error=error), None
    status = "passed" if gate.passed else "refused by the gate"
    took = time.perf_counter() - began
    return Trial(config.name, config.describe(), status, took, gate), proto


def _speed(trial: Trial, speedup: float) -> Trial:
    from dataclasses import replace

    return replace(trial, speedup=speedup)


def _with(
    report: SearchReport, trials: list[Trial], chosen: int, timing: Timing | None
) -> SearchReport:
    from dataclasses import replace

    return replace(report, trials=tuple(trials), chosen=trials[chosen].config, timing=timing)


def _none_passed(name: str, report: SearchReport) -> ConversionError:
    judged = [t for t in report.trials if t.gate is not None]
    tried = f"int8 search ({report.mode_reason}), {len(report.trials)} configuration(s):\n"
    if not judged:
        return ConversionError(
            f"{name}: no int8 configuration could be built; {tried}{report.table()}"
        )
    base = refusal(judged[0].gate, name)  # type: ignore[arg-type]
    return GateError(f"{base}\n{tried}{report.table()}", base.report, report)


def _too_slow(
    name: str, report: SearchReport, best: Trial, speedup: float, needed: float
) -> Int8SpeedError:
    assert report.timing is not None
    timing = report.timing
    return Int8SpeedError(
        f"{name}: int8 passed the accuracy gate but is not fast enough to be worth it here: "
        f"the fastest passing configuration {best.config!r} ran {speedup:.2f}x fp32 "
        f"(at least {needed:g}x required), timed on {timing.rows} rows in {timing.where} on "
        f"{report.cpu_summary()}. Keep precision 'fp32' (int8 pays on CPUs with VNNI / AMX), "
        f"or accept it with tolerance={{'min_speedup': {max(round(speedup, 2) - 0.01, 0):g}}}."
        f"\nconfigurations tried:\n{report.table()}",
        report,
    )
