"""The accuracy gate: a lower-precision model against its fp32 source on held-out inputs.

Each output is judged by one metric: top-1 agreement for classifiers, mean cosine similarity for
other float outputs with several values per row (features, embeddings), and the largest error
relative to the output's range otherwise. Every applicable figure is measured and reported, and
each output's `rule` says why its metric was chosen. A 2-D float output of width >= 2 is a
classifier when its rows are probability distributions, when the model stores class labels of
its width, or when it is named like logits / scores / probabilities and its width is that of a
known label set (`KNOWN_LABEL_SETS`: a 1000-wide `logits` is ImageNet's).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparkonnx.converters.errors import ConversionError

METRICS = ("top1", "cosine", "max_rel")
#: The gate refuses to judge on fewer held-out rows than this unless told `min_rows=`: one
#: agreeing row proves nothing (3-row calibration sets used to pass on 1 row).
MIN_GATE_ROWS = 16
#: int8 is refused unless it runs at least this many times as fast as fp32 (tunable).
DEFAULT_MIN_SPEEDUP = 1.2
_ALIASES = {"auto": "auto", "top1": "top1", "top-1": "top1", "cosine": "cosine"}
_ALIASES |= {"max_rel": "max_rel", "max_abs": "max_rel", "max-abs": "max_rel", "error": "max_rel"}
#: Widths of well-known label sets: a classifier-named output of one of these widths is judged
#: by top-1 even without labels in the model's metadata.
KNOWN_LABEL_SETS = {
    1000: "ImageNet-1k",
    1001: "ImageNet-1k with a background class",
    21843: "ImageNet-21k",
    100: "CIFAR-100",
    10: "CIFAR-10",
}
_CLASSIFIER_NAME = re.compile(r"logit|score|prob|softmax|predict|class", re.IGNORECASE)


@dataclass(frozen=True)
class GateTolerance:
    """Thresholds of the gate: minimum top-1 agreement and mean cosine, maximum relative error."""

    top1: float = 0.99
    """Minimum fraction of held-out rows whose arg-max class matches fp32's."""
    cosine: float = 0.99
    """Minimum mean cosine similarity between the model's and fp32's rows."""
    max_rel: float = 0.05
    """Maximum of |output - fp32| over max |fp32| (for outputs judged by error)."""
    min_rows: int = MIN_GATE_ROWS
    """Fewest held-out rows the gate may judge on; lower it explicitly for tiny sets."""
    min_speedup: float = DEFAULT_MIN_SPEEDUP
    """int8 only: how many times as fast as fp32 it must run where it is timed (0: any)."""

    def __post_init__(self) -> None:
        for name in ("top1", "cosine"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
                raise ValueError(f"tolerance {name}={value!r}: give a number from 0 to 1")
        if not isinstance(self.max_rel, int | float) or not self.max_rel > 0:
            raise ValueError(f"tolerance max_rel={self.max_rel!r}: give a positive number")
        rows = self.min_rows
        if isinstance(rows, bool) or not isinstance(rows, int | float) or rows < 1 or rows % 1:
            raise ValueError(f"tolerance min_rows={rows!r}: give a whole number of rows >= 1")
        object.__setattr__(self, "min_rows", int(rows))
        speed = self.min_speedup
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not speed >= 0:
            raise ValueError(
                f"tolerance min_speedup={speed!r}: give a number >= 0 (0 accepts int8 at any speed)"
            )

    @classmethod
    def of(cls, value: GateTolerance | Mapping[str, float] | float | None) -> GateTolerance:
        """None: defaults; a number: the minimum for top-1 agreement and cosine; a dict: fields."""
        if value is None:
            return cls()
        if isinstance(value, GateTolerance):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return cls(top1=float(value), cosine=float(value))
        if isinstance(value, Mapping):
            known = {f.name for f in dataclasses.fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise ValueError(
                    f"unknown tolerance key(s) {unknown}; allowed: {sorted(known)}, e.g. "
                    "{'top1': 0.98, 'cosine': 0.995, 'max_rel': 0.05, 'min_rows': 16, "
                    "'min_speedup': 1.2}"
                )
            return cls(**{k: float(v) for k, v in value.items()})  # type: ignore[arg-type]
        raise TypeError(
            f"tolerance must be None, a number (minimum agreement), a dict or a GateTolerance; "
            f"got {type(value).__name__}"
        )

    def threshold(self, metric: str) -> float:
        return float(getattr(self, metric))


@dataclass(frozen=True)
class OutputGate:
    """One output's figures and verdict."""

    name: str
    metric: str  # "top1", "cosine" or "max_rel"
    value: float
    threshold: float
    passed: bool
    top1_agreement: float | None
    top1_margin_median: float | None  # fp32's median gap between its two best classes
    top1_classes: int | None  # distinct fp32 top-1 classes on the rows (1: agreement is weak)
    mean_cosine: float | None
    min_cosine: float | None
    max_abs_error: float
    max_rel_error: float
    rule: str = ""  # why `metric` was chosen, e.g. "named 'logits', 1000 wide (ImageNet-1k)"

    def describe(self, rows: int) -> str:
        if self.metric == "top1":
            agree = round((self.top1_agreement or 0.0) * rows)
            beside = "" if self.mean_cosine is None else f", mean cosine {self.mean_cosine:.4f}"
            why = f" [top-1: {self.rule}]" if self.rule else ""
            return (
                f"output {self.name!r} top-1 agreement {self.value:.4f} ({agree}/{rows} rows, "
                f"{self.top1_classes} fp32 classes) {'>=' if self.passed else '<'} "
                f"{self.threshold:g} required{beside}{why}"
            )
        if self.metric == "cosine":
            return (
                f"output {self.name!r} mean cosine similarity {self.value:.4f} "
                f"(min {self.min_cosine:.4f}) {'>=' if self.passed else '<'} "
                f"{self.threshold:g} required"
            )
        return (
            f"output {self.name!r} max error {self.max_abs_error:.4g} = {self.value:.4f} of the "
            f"output's range {'<=' if self.passed else '>'} {self.threshold:g} allowed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class GateReport:
    """The gate's figures for a lower-precision model, with the samples they were measured on."""

    mode: str
    outputs: tuple[OutputGate, ...]
    rows: int  # held-out rows compared
    sample: str  # where the held-out rows came from
    calibration_rows: int = 0
    nan_rows: int = 0  # held-out rows on which the fp32 model's outputs are not finite

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs)

    def summary(self) -> str:
        verdict = "passed" if self.passed else "REFUSED"
        figures = "; ".join(o.describe(self.rows) for o in self.outputs)
        if self.nan_rows:
            figures += (
                f"; fp32 itself gives NaN / inf on {self.nan_rows} of the {self.rows} rows "
                "(look at those inputs)"
            )
        calibrated = ""
        if self.calibration_rows:
            calibrated = f", calibrated on {self.calibration_rows} rows"
        return (
            f"{self.mode} accuracy gate {verdict}: {figures} "
            f"(vs fp32 on {self.rows} held-out rows of {self.sample}{calibrated})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "passed": self.passed,
            "rows": self.rows,
            "sample": self.sample,
            "calibration_rows": self.calibration_rows,
            "nan_rows": self.nan_rows,
            "outputs": {o.name: o.to_dict() for o in self.outputs},
        }


class GateError(ConversionError):
    """The lower-precision model fell below the gate's thresholds; `report` has the figures."""

    def __init__(self, message: str, report: GateReport, search: Any = None) -> None:
        super().__init__(message)
        self.report = report
        self.search = search  # int8: the SearchReport of every configuration tried


def is_distribution(values: np.ndarray) -> bool:
    """True when every row is non-negative and sums to 1 (a softmax output)."""
    if values.ndim < 2 or values.shape[-1] < 2 or values.dtype.kind != "f":
        return False
    rows = values.reshape(-1, values.shape[-1]).astype(np.float64)
    return bool((rows >= -1e-6).all() and np.allclose(rows.sum(axis=1), 1.0, atol=1e-3))


def choose_metric(values: np.ndarray, has_labels: bool, asked: str = "auto", name: str = "") -> str:
    """The metric an output is judged by (see the module docstring)."""
    return metric_rule(values, has_labels, asked, name)[0]


def metric_rule(
    values: np.ndarray, has_labels: bool, asked: str = "auto", name: str = ""
) -> tuple[str, str]:
    """(metric, the rule that chose it) for an output named `name` (see the module docstring)."""
    metric = _ALIASES.get(asked)
    if metric is None:
        raise ValueError(f"metric {asked!r} is not known; use 'auto', {', '.join(METRICS)}")
    classifier_shape = values.ndim >= 2 and values.shape[-1] >= 2
    if metric == "top1" and not classifier_shape:
        raise ValueError(
            f"metric 'top1' needs an output with classes on its last axis; got shape "
            f"{list(values.shape)}; use 'cosine' or 'max_rel'"
        )
    if metric != "auto":
        return metric, f"asked for ({asked!r})"
    width = values.shape[-1] if values.ndim else 0
    if classifier_shape and is_distribution(values):
        return "top1", "rows are probability distributions"
    if classifier_shape and has_labels and values.ndim == 2:
        return "top1", f"class labels of width {width} in the model's metadata"
    known = KNOWN_LABEL_SETS.get(width)
    if classifier_shape and values.ndim == 2 and known and _CLASSIFIER_NAME.search(name):
        return "top1", f"named {name!r}, {width} wide ({known})"
    if values.dtype.kind == "f" and values.ndim >= 2 and values[0].size >= 2:
        return "cosine", "float rows of several values (features)"
    return "max_rel", "one value per row"


def _cosines(e: np.ndarray, a: np.ndarray) -> np.ndarray:
    e2 = e.reshape(len(e), -1)
    a2 = a.reshape(len(a), -1)
    dot = (e2 * a2).sum(axis=1)
    norms = np.linalg.norm(e2, axis=1) * np.linalg.norm(a2, axis=1)
    both_zero = (np.linalg.norm(e2, axis=1) == 0) & (np.linalg.norm(a2, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    return np.where(both_zero, 1.0, cos)


def judge_output(
    name: str,
    expected: np.ndarray,
    actual: np.ndarray,
    metric: str,
    tolerance: GateTolerance,
    rule: str = "",
) -> OutputGate:
    """Every applicable figure for one output, and the verdict on `metric`."""
    e = np.asarray(expected).astype(np.float64)
    a = np.asarray(actual).astype(np.float64)
    if e.shape != a.shape:
        raise ConversionError(
            f"output {name!r}: the lower-precision model gives shape {list(a.shape)}, fp32 gives "
            f"{list(e.shape)}; the quantized graph is broken, please report it"
        )
    finite = np.isfinite(a).all()
    diff = np.abs(a - e)
    max_abs = float(diff.max()) if finite and diff.size else (0.0 if finite else float("inf"))
    scale = float(np.abs(e).max()) if e.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    top1 = margin = mean_cos = min_cos = classes = None
    if e.ndim >= 2 and e.shape[-1] >= 2 and e.size:
        e_rows = e.reshape(-1, e.shape[-1])
        a_rows = a.reshape(-1, a.shape[-1])
        top1 = float((e_rows.argmax(axis=1) == a_rows.argmax(axis=1)).mean())
        classes = len(np.unique(e_rows.argmax(axis=1)))
        best_two = np.sort(e_rows, axis=1)[:, -2:]
        margin = float(np.median(best_two[:, 1] - best_two[:, 0]))
    if e.ndim >= 1 and e.size and e[0].size >= 2:
        cos = _cosines(e, a) if finite else np.zeros(len(e))
        mean_cos, min_cos = float(cos.mean()), float(cos.min())
    value = {"top1": top1, "cosine": mean_cos, "max_rel": max_rel}[metric]
    if value is None:
        raise ValueError(f"metric {metric!r} does not apply to output {name!r} {list(e.shape)}")
    threshold = tolerance.threshold(metric)
    passed = value <= threshold if metric == "max_rel" else value >= threshold
    return OutputGate(
        name=name,
        metric=metric,
        value=float(value),
        threshold=threshold,
        passed=bool(passed and finite),
        top1_agreement=top1,
        top1_margin_median=margin,
        top1_classes=classes,
        mean_cosine=mean_cos,
        min_cosine=min_cos,
        max_abs_error=max_abs,
        max_rel_error=max_rel,
        rule=rule,
    )


def judge(
    mode: str,
    names: Sequence[str],
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    tolerance: GateTolerance,
    *,
    metric: str | Mapping[str, str] = "auto",
    has_labels: bool = False,
    label_count: int | None = None,
    sample: str = "<sample>",
    calibration_rows: int = 0,
) -> GateReport:
    """The gate's report over every output (metric: one name, or {output: name}).

    `has_labels`: the model stores class labels; with `label_count`, only outputs with that
    many values per row count as labelled (a featurizer output beside them does not).
    """
    outputs = []
    for name, e, a in zip(names, expected, actual):
        asked = metric.get(name, "auto") if isinstance(metric, Mapping) else metric
        values = np.asarray(e)
        labelled = has_labels and (
            label_count is None or (values.ndim >= 1 and values.shape[-1] == label_count)
        )
        chosen, rule = metric_rule(values, labelled, asked, name)
        outputs.append(judge_output(name, e, a, chosen, tolerance, rule))
    rows = int(np.asarray(expected[0]).shape[0]) if expected and np.ndim(expected[0]) else 1
    nan_rows = 0
    if expected and np.ndim(expected[0]) and rows:
        bad = np.zeros(rows, bool)
        for e in expected:
            values = np.asarray(e, np.float64).reshape(rows, -1)
            bad |= ~np.isfinite(values).all(axis=1)
        nan_rows = int(bad.sum())
    return GateReport(mode, tuple(outputs), rows, sample, calibration_rows, nan_rows)


def require_gate_rows(name: str, rows: Any, limits: GateTolerance, where: str) -> None:
    """CalibrationError when the gate would judge on fewer rows than ``limits.min_rows``
    (``rows``: the gate's CalibrationSet; ``where``: how those rows were chosen)."""
    if rows.rows >= limits.min_rows:
        return
    from sparkonnx.converters.calibration import CalibrationError

    raise CalibrationError(
        f"{name}: the accuracy gate would judge the model on {rows.rows} row(s) ({where}) of "
        f"{rows.source}, fewer than the {limits.min_rows} it needs to mean anything; give more "
        f"sample rows (with holdout 0.25, {4 * limits.min_rows} rows hold out "
        f"{limits.min_rows}), a larger holdout or validation set, or lower the minimum "
        f"explicitly: tolerance={{'min_rows': {rows.rows}}} (CLI: --min-gate-rows)"
    )


def refusal(report: GateReport, model_name: str) -> GateError:
    """The GateError for a failed report: the measured figures, then what to do."""
    fixes = {
        "int8": "calibrate on more, representative inputs (real data, not zeros or noise); "
        "keep per_channel=True; try mode='int8-dynamic' or exclude sensitive layers with "
        "nodes_to_exclude=[...]",
        "int8-dynamic": "try static mode='int8' with a representative calibration set, or "
        "exclude sensitive layers with nodes_to_exclude=[...]",
        "fp16": "values probably overflow float16 (keep fp32 for this model)",
    }[report.mode]
    failed = [o for o in report.outputs if not o.passed]
    loosen = ", ".join(f"'{o.metric}': <lower bar>" for o in failed)
    return GateError(
        f"{model_name}: {report.summary()}. The {report.mode} model was refused: {fixes}; or, "
        f"if this accuracy is acceptable, pass tolerance={{{loosen}}}; or keep precision 'fp32'",
        report,
    )
