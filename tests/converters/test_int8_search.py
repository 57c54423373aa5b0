"""The int8 search behind the gate: configuration order, the classifier rule, the speed check
(refusal with figures and CPU features), the time budget, the mode chosen from the graph."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest

from sparkonnx import testing
from sparkonnx.converters.calibration import CalibrationSet
from sparkonnx.converters.gate import GateError, GateTolerance, judge, metric_rule
from sparkonnx.converters.int8 import Int8Options
from sparkonnx.converters.int8_configs import candidates, choose_int8_mode, end_layers
from sparkonnx.converters.int8_search import Int8SpeedError, Timing
from sparkonnx.converters.quantize import normalize_mode, quantization_of, quantize
from sparkonnx.engine.cpu_features import cpu_features, parse_cpuinfo
from sparkonnx.engine.timing import time_models
from sparkonnx.testing import as_nchw, small_classifier, smooth_images

ANY_SPEED = {"min_speedup": 0}


def _images(n: int = 64, seed: int = 0) -> np.ndarray:
    return as_nchw(smooth_images(n, seed=seed))


def _mlp_rows(n: int = 64) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 256)).astype(np.float32)


# ------------------------------------------------------------------ configurations


def test_static_configurations_in_order_with_the_end_layers() -> None:
    base = Int8Options(nodes_to_exclude=("mine",))
    configs = candidates("int8", base, ("conv0", "fc"))
    assert [c.name for c in configs] == [
        "minmax-qdq-pc",
        "percentile-qdq-pc",
        "entropy-qdq-pc",
        "minmax-qdq-pc-ends-fp32",
        "percentile-qdq-pc-ends-fp32",
        "minmax-qoperator-pc",
        "minmax-qdq-pc-7bit",
        "percentile-qdq-pc-7bit",
        "percentile-qdq-pc-7bit-ends-fp32",
    ]
    assert all("mine" in c.options.nodes_to_exclude for c in configs)  # the user's stay out
    assert configs[3].options.nodes_to_exclude == ("mine", "conv0", "fc")
    assert configs[1].options.calibration == "Percentile" and not configs[1].options.dynamic
    assert configs[5].options.quant_format == "QOperator"
    assert configs[-1].options.reduce_range and configs[-1].excludes_ends
    first = candidates("int8", base, ("conv0", "fc"), seven_bit_first=True)  # x86 without VNNI
    assert [c.name for c in first[:3]] == [c.name for c in configs[-3:]]
    assert {c.name for c in first} == {c.name for c in configs}
    already = candidates("int8", Int8Options(reduce_range=True), ())
    assert [c.name for c in already] == [
        "minmax-qdq-pc-7bit",
        "percentile-qdq-pc-7bit",
        "entropy-qdq-pc-7bit",
        "minmax-qoperator-pc-7bit",
    ]
    assert (
        configs[4].describe()
    ) == "Percentile, per-channel, QDQ, first Conv / last MatMul-Gemm in fp32"
    assert [c.name for c in candidates("int8", base, ("conv0",), search=False)] == ["minmax-qdq-pc"]
    assert [c.name for c in candidates("int8", base, ())][3] == "minmax-qoperator-pc"


def test_dynamic_configurations() -> None:
    configs = candidates("int8-dynamic", Int8Options(dynamic=True), ("fc",))
    assert [c.name for c in configs] == [
        "dynamic-pc",
        "dynamic-pt",
        "dynamic-pc-ends-fp32",
        "dynamic-pc-7bit",
    ]
    assert all(c.options.dynamic for c in configs) and configs[3].options.reduce_range
    assert configs[2].options.nodes_to_exclude == ("fc",)


def test_end_layers_and_mode_from_the_graph() -> None:
    cnn, mlp = small_classifier(), testing.mlp()
    assert choose_int8_mode(cnn)[0] == "int8" and "convolution" in choose_int8_mode(cnn)[1]
    mode, why = choose_int8_mode(mlp)
    assert mode == "int8-dynamic" and "MatMul / Gemm and no convolution" in why
    named = onnx.ModelProto()
    named.CopyFrom(cnn)
    for i, node in enumerate(named.graph.node):
        node.name = f"n{i}"
    first, last = end_layers(named)
    ops = {n.name: n.op_type for n in named.graph.node}
    assert ops[first] == "Conv" and ops[last] in ("MatMul", "Gemm")
    assert normalize_mode("static") == "int8-static" and normalize_mode("int8") == "int8"


def test_mode_int8_is_dynamic_for_an_mlp_and_static_for_a_cnn() -> None:
    mlp = quantize(testing.mlp(), _mlp_rows(), search=False, tolerance=ANY_SPEED)
    assert mlp.mode == "int8-dynamic" and mlp.gate.calibration_rows == 0
    assert mlp.search is not None and "no convolution" in mlp.search.mode_reason
    cnn = quantize(small_classifier(), _images(), search=False, tolerance=ANY_SPEED)
    assert cnn.mode == "int8" and cnn.gate.calibration_rows == 48
    forced = quantize(
        testing.mlp(), _mlp_rows(), mode="int8-static", search=False, tolerance=ANY_SPEED
    )
    assert forced.mode == "int8" and forced.gate.calibration_rows == 48


# ------------------------------------------------------------------ classifier outputs


def test_classifier_rule_names_why() -> None:
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 1000)).astype(np.float32)
    assert metric_rule(logits, False, name="logits") == (
        "top1",
        "named 'logits', 1000 wide (ImageNet-1k)",
    )
    assert metric_rule(logits, False, name="Predictions/Scores")[0] == "top1"
    background = np.concatenate([logits, logits[:, :1]], axis=1)  # 1001: with background
    assert metric_rule(background, False, name="class_probs")[1] == (
        "named 'class_probs', 1001 wide (ImageNet-1k with a background class)"
    )
    assert metric_rule(logits, False, name="features")[0] == "cosine"  # not a classifier name
    odd = rng.standard_normal((4, 7)).astype(np.float32)
    assert metric_rule(odd, False, name="logits") == (
        "cosine",
        "float rows of several values (features)",
    )  # 7 classes: no known label set
    assert metric_rule(odd, True, name="y")[1] == "class labels of width 7 in the model's metadata"
    softmax = np.full((4, 7), 1 / 7, np.float32)
    assert metric_rule(softmax, False, name="y") == ("top1", "rows are probability distributions")
    assert metric_rule(logits, False, "cosine", name="logits") == ("cosine", "asked for ('cosine')")


def test_top1_report_puts_cosine_beside_it_and_says_the_rule() -> None:
    rng = np.random.default_rng(1)
    fp32 = rng.standard_normal((20, 1000)).astype(np.float32)
    int8 = fp32 + 0.01 * rng.standard_normal(fp32.shape).astype(np.float32)
    report = judge("int8", ["logits"], [fp32], [int8], GateTolerance())
    (out,) = report.outputs
    assert out.metric == "top1" and out.rule == "named 'logits', 1000 wide (ImageNet-1k)"
    text = report.summary()
    assert f"mean cosine {out.mean_cosine:.4f}" in text
    assert "[top-1: named 'logits', 1000 wide (ImageNet-1k)]" in text
    assert report.to_dict()["outputs"]["logits"]["rule"] == out.rule


# ------------------------------------------------------------------ the search


def test_search_reports_every_configuration_and_keeps_the_fastest() -> None:
    result = quantize(small_classifier(), _images(), holdout=16, tolerance=ANY_SPEED)
    found = result.search
    assert found is not None and found.timing is not None
    passed = [t for t in found.trials if t.status == "passed"]
    assert len(found.trials) == 9 and passed
    seven_bit_first = cpu_features().int8_overflow_risk  # this CPU decides the order
    assert found.trials[0].config.endswith("-7bit") == seven_bit_first
    assert all(t.speedup is not None and t.speedup > 0 for t in passed)
    assert found.chosen == max(passed, key=lambda t: t.speedup or 0).config
    assert all(t.seconds > 0 and t.figures() for t in found.trials)
    table = found.table()
    assert all(t.config in table for t in found.trials) and "<- kept" in table
    assert found.timing.where == "this process" and found.timing.rows == 8
    assert found.timing.cpu["summary"] == cpu_features().summary()
    record = quantization_of(result.proto)
    assert record is not None and record["search"]["chosen"] == found.chosen
    assert len(record["search"]["trials"]) == 9 and record["search"]["timing"]["cpu"]
    chosen = next(t for t in found.trials if t.config == found.chosen)
    assert record["calibration_method"] in chosen.description


def test_int8_is_refused_with_the_figures_when_not_fast_enough() -> None:
    with pytest.raises(Int8SpeedError) as info:
        quantize(
            small_classifier(),
            _images(),
            holdout=16,
            search=False,
            tolerance={"min_speedup": 1000},  # no int8 is 1000x fp32: refused on every CPU
        )
    message = str(info.value)
    assert "int8 passed the accuracy gate but is not fast enough" in message
    assert "(at least 1000x required), timed on 8 rows in this process on " in message
    assert cpu_features().summary() in message
    assert "Keep precision 'fp32'" in message and "tolerance={'min_speedup': " in message
    assert "minmax-qdq-pc: passed" in message  # the configuration table
    (trial,) = info.value.report.trials
    assert trial.speedup is not None and f"ran {trial.speedup:.2f}x fp32" in message


def test_the_budget_bounds_the_search() -> None:
    result = quantize(
        small_classifier(),
        _images(),
        holdout=16,
        search_seconds=1e-9,  # the first configuration is always tried
        tolerance={"min_speedup": 0, "top1": 0.9},  # the first configuration passes
    )
    assert result.search is not None
    statuses = [t.status for t in result.search.trials]
    assert statuses[0] == "passed" and set(statuses[1:]) == {"skipped (time budget)"}
    assert result.search.chosen == result.search.trials[0].config
    assert "skipped (time budget)" in result.search.table()


def test_search_false_is_one_untimed_try() -> None:
    for off in ({"search": False}, {"search_seconds": 0}):
        result = quantize(small_classifier(), _images(), tolerance=ANY_SPEED, **off)
        assert result.search is not None and result.search.timing is None
        assert [t.config for t in result.search.trials] == ["minmax-qdq-pc"]


def test_a_given_timer_decides_which_passing_configuration_is_kept() -> None:
    """The Timer is how stages time on an executor; this one reports fixed figures, so the
    choice among passing configurations is deterministic: the fastest (3rd) is kept."""
    calls: list[int] = []

    def timer(
        fp32: onnx.ModelProto, models: Sequence[onnx.ModelProto], rows: CalibrationSet, batch: int
    ) -> Timing:
        calls.append(len(models))
        seconds = [1.0] + [1.0 / (2 + (i == 2)) for i in range(len(models))]
        return Timing(tuple(seconds), rows.rows, "a fixed timer", {"summary": "test CPU"})

    result = quantize(testing.mlp(), _mlp_rows(), timer=timer, tolerance={"min_speedup": 1.5})
    assert result.search is not None and calls == [4]
    assert result.search.chosen == result.search.trials[2].config
    assert [t.speedup for t in result.search.trials] == [2.0, 2.0, 3.0, 2.0]
    assert result.search.cpu_summary() == "test CPU"


def test_search_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    quantize(small_classifier(), _images(), tolerance=ANY_SPEED)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ engine helpers


def test_cpu_features_from_cpuinfo_text() -> None:
    text = (
        "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n"
        "flags\t\t: fpu sse2 avx2 avx512f avx512_vnni amx_int8 amx_tile\n\n"
        "processor\t: 1\nflags\t\t: fpu\n"
    )
    xeon = parse_cpuinfo(text, "x86_64")
    assert xeon.features == ("AVX2", "AVX-512", "AVX512-VNNI", "AMX-INT8")
    assert xeon.int8_dot_product and "no int8 dot product" not in xeon.summary()
    old = parse_cpuinfo("model name : AMD EPYC\nflags : fpu avx avx2\n", "x86_64")
    assert old.features == ("AVX2",) and not old.int8_dot_product
    assert old.summary() == "AMD EPYC (x86_64): AVX2; no int8 dot product (VNNI / AMX)"
    arm = parse_cpuinfo("Features : fp asimd asimddp i8mm\n", "aarch64")
    assert arm.features == ("ARM-DOTPROD", "ARM-I8MM") and arm.int8_dot_product
    here = cpu_features()
    assert here.to_dict()["features"] == list(here.features)


def test_cpu_features_fall_back_without_proc(tmp_path: Path) -> None:
    cpu = cpu_features.__wrapped__(str(tmp_path / "no-cpuinfo"))
    assert cpu.features == () and cpu.source == "platform (flags unavailable)"
    assert "unknown (platform (flags unavailable))" in cpu.summary()


def test_time_models_measures_each_model() -> None:
    model = testing.mlp().SerializeToString()
    feeds = [{"x": _mlp_rows(8)}]
    seconds = time_models([model, model], feeds, seconds=0.1, min_rounds=2)
    assert len(seconds) == 2 and all(0 < s < 5 for s in seconds)
    with pytest.raises(ValueError, match="at least one model and one feed"):
        time_models([], feeds)


def test_when_no_configuration_passes_the_refusal_lists_them_all() -> None:
    real = _images(32, seed=1)
    with pytest.raises(GateError) as info:
        quantize(small_classifier(), np.zeros_like(real), validation=real, search_seconds=30)
    found = info.value.search
    assert found is not None and found.chosen is None
    tried = [t for t in found.trials if t.status != "skipped (time budget)"]
    assert tried and all(t.status in ("refused by the gate", "failed") for t in tried)
    message = str(info.value)
    assert "int8 search (static: the graph has 2 convolution(s))" in message
    assert all(f"{t.config}: " in message for t in found.trials)
