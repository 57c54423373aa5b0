"""One error family: every sparkonnx error is a SparkOnnxError, and one bad value raises one type.

A value outside the allowed ones raises `InvalidParamError` (a ValueError) from the Param
setter, the stage constructor, the engine, the converters and the SQL function alike; a value
of the wrong type raises TypeError. Messages say what was given, what is allowed, the fix.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import sparkonnx
from sparkonnx import (
    DeepImageFeaturizer,
    DeepImagePredictor,
    ImageTransformer,
    InvalidParamError,
    KerasTransformer,
    ONNXTransformer,
    SparkOnnxError,
    testing,
)
from sparkonnx.cli import EXIT_USAGE, build_parser, exit_code_for
from sparkonnx.converters.options import ConversionOptions
from sparkonnx.converters.precisions import ALIASES, PRECISIONS, accepted_spellings
from sparkonnx.converters.precisions import validate_precision as precision_of
from sparkonnx.converters.quantize import normalize_mode, quantize
from sparkonnx.engine.providers import DeviceError, plan_providers, validate_device
from sparkonnx.engine.sessions import run_batched

CPU_BUILD = ["CPUExecutionProvider"]
STAGES_WITH_DEVICE = (ONNXTransformer, ImageTransformer, KerasTransformer, DeepImageFeaturizer)

# each error and the builtin base callers already catch it by
BUILTIN_BASES = {
    "InvalidParamError": ValueError,
    "DeviceError": RuntimeError,
    "InvalidModelError": ValueError,
    "UnknownTensorError": ValueError,
    "TensorConversionError": ValueError,
    "ImageDecodeError": ValueError,
    "ConversionError": RuntimeError,
    "UnsupportedSourceError": TypeError,
    "SignatureError": KeyError,
    "CalibrationError": ValueError,
    "ZooWeightsError": RuntimeError,
    "TrainingDataTooLargeError": ValueError,
    "TrainingDependencyError": ImportError,
    "KerasTrainingError": RuntimeError,
    "ImageLoadingError": ValueError,
    "ParquetTableError": ValueError,
    "ModelNotRunnableError": ValueError,
    "UntrustedCodeError": ValueError,
    "InvalidStageError": ValueError,
}


def _every_error_class() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(sparkonnx.__path__, "sparkonnx."):
        if info.name.endswith(".__main__"):  # runs the CLI when imported
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and issubclass(obj, BaseException)
                and obj.__module__.startswith("sparkonnx")
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def test_every_error_class_in_the_package_is_a_sparkonnx_error() -> None:
    classes = _every_error_class()
    assert len(classes) >= 25, sorted(classes)
    outside = [name for name, cls in classes.items() if not issubclass(cls, SparkOnnxError)]
    assert outside == []
    by_name = {cls.__name__: cls for cls in classes.values()}
    for name, base in BUILTIN_BASES.items():
        assert issubclass(by_name[name], base), f"{name} lost its builtin base {base.__name__}"


def test_every_error_is_exported_and_catchable_as_the_family() -> None:
    exported = {n: getattr(sparkonnx, n) for n in sparkonnx.__all__ if n.endswith("Error")}
    assert set(BUILTIN_BASES) <= set(exported)
    unexported = [
        name for name, cls in _every_error_class().items() if exported.get(cls.__name__) is not cls
    ]
    assert unexported == [], "export these from sparkonnx (_EXPORTS in sparkonnx/__init__.py)"
    for name, cls in exported.items():
        assert issubclass(cls, SparkOnnxError), name
    with pytest.raises(SparkOnnxError):
        raise sparkonnx.TrainingDependencyError("Keras is missing on host h")
    with pytest.raises(ImportError):
        raise sparkonnx.TrainingDependencyError("Keras is missing on host h")


def _device_message_is_complete(exc: BaseException) -> None:
    text = str(exc)
    assert "got 'tpu'" in text.lower()  # what was given
    assert "'auto', 'cpu', 'cuda'" in text  # what is allowed
    assert "Use 'auto'" in text and "onnxruntime-gpu" in text  # the fix


def test_a_bad_device_is_the_same_error_from_setter_constructor_and_engine() -> None:
    raised: list[BaseException] = []
    for stage in STAGES_WITH_DEVICE:
        with pytest.raises(InvalidParamError) as info:
            stage(device="tpu")
        raised.append(info.value)
        with pytest.raises(InvalidParamError) as info:
            stage().setDevice("tpu")
        raised.append(info.value)
    with pytest.raises(InvalidParamError) as info:
        plan_providers("tpu", available=CPU_BUILD)
    raised.append(info.value)
    with pytest.raises(InvalidParamError) as info:
        validate_device("TPU")
    raised.append(info.value)
    assert {type(e) for e in raised} == {InvalidParamError}
    for exc in raised:
        _device_message_is_complete(exc)
    assert ONNXTransformer(device="CPU").getDevice() == validate_device("CPU") == "cpu"


def test_a_wrong_type_is_a_type_error_everywhere() -> None:
    with pytest.raises(TypeError, match="device must be a string, one of 'auto'"):
        ONNXTransformer(device=3)
    with pytest.raises(TypeError, match="device must be a string, one of 'auto'"):
        plan_providers(3, available=CPU_BUILD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="precision must be a string"):
        ONNXTransformer(precision=8)
    with pytest.raises(TypeError, match="mode must be a string"):
        normalize_mode(8)  # type: ignore[arg-type]


def test_device_id_and_batch_size_are_checked_once_for_all_layers() -> None:
    for call in (
        lambda: ONNXTransformer(deviceId=-1),
        lambda: ONNXTransformer().setDeviceId(-1),
        lambda: plan_providers("cuda", -1, available=CPU_BUILD),
    ):
        with pytest.raises(InvalidParamError, match=r"deviceId must be .*got -1\. Use the GPU"):
            call()
    session = ort.InferenceSession(testing.mlp((4, 2)).SerializeToString(), providers=CPU_BUILD)
    x = np.ones((2, 4), np.float32)
    for call in (
        lambda: ONNXTransformer(batchSize=0),
        lambda: ImageTransformer().setBatchSize(-4),
        lambda: run_batched(session, {"x": x}, 0, ["y"]),
    ):
        with pytest.raises(InvalidParamError, match=r"batchSize must be a positive integer; got"):
            call()
    assert ONNXTransformer(deviceId=1, batchSize=7).getDeviceId() == 1
    assert run_batched(session, {"x": x}, 1, ["y"])["y"].shape == (2, 2)


@pytest.mark.parametrize(
    ("name", "bad", "rule", "call"),
    [
        ("maxPixels", 0, "a positive integer", lambda v: ImageTransformer(maxPixels=v)),
        ("maxPixels", -1, "a positive integer", lambda v: ImageTransformer().setMaxPixels(v)),
        ("topK", 0, "a positive integer", lambda v: DeepImagePredictor(topK=v)),
        ("calibrationRows", 1, "an integer >= 2", lambda v: ONNXTransformer(calibrationRows=v)),
        (
            "batch_size",
            0,
            "a positive integer",
            lambda v: quantize(testing.mlp((4, 2)), "fp16", batch_size=v),
        ),
        ("sample_batch", 0, "a positive integer", lambda v: ConversionOptions(sample_batch=v)),
    ],
)
def test_every_count_is_checked_by_one_rule(name: str, bad: int, rule: str, call: Any) -> None:
    """Counts (rows, pixels, bytes) share `check_int`: a value too small is InvalidParamError
    naming the Param, the rule and what was given; a non-integer is a TypeError."""
    with pytest.raises(InvalidParamError, match=rf"^{name} must be {rule}; got {bad}"):
        call(bad)
    with pytest.raises(TypeError, match=name):
        call("many")


def test_an_unknown_zoo_model_is_an_invalid_param_with_the_known_names() -> None:
    with pytest.raises(InvalidParamError, match=r"unknown model 'ResNet51'; known models: .*Res"):
        DeepImageFeaturizer(modelName="ResNet51")


def test_register_udf_refuses_a_bad_device_with_the_same_error(spark) -> None:
    from sparkonnx import register_udf

    with pytest.raises(InvalidParamError) as info:
        register_udf(spark, "bad_device", testing.mlp((4, 2)), device="tpu")
    _device_message_is_complete(info.value)
    with pytest.raises(InvalidParamError, match="batchSize must be a positive integer"):
        register_udf(spark, "bad_batch", testing.mlp((4, 2)), batchSize=0)


@pytest.mark.parametrize("spelling", [*PRECISIONS, *ALIASES, "FP16", "Dynamic"])
def test_precision_spellings_mean_the_same_everywhere(spelling: str) -> None:
    canonical = precision_of(spelling)
    assert ONNXTransformer(precision=spelling).getPrecision() == canonical
    assert ImageTransformer().setPrecision(spelling).getPrecision() == canonical
    if canonical == "fp32":  # quantize makes lower precisions only, and says so
        with pytest.raises(InvalidParamError, match="fp32 is the model as it is"):
            normalize_mode(spelling)
        return
    assert normalize_mode(spelling) == canonical
    cli = build_parser().parse_args(["convert", "m.onnx", "-o", "o.onnx", "--quantize", spelling])
    assert normalize_mode(cli.quantize) == canonical


def test_an_unknown_precision_is_refused_alike_with_the_choices_and_the_fix() -> None:
    raised = []
    for call in (
        lambda: ONNXTransformer(precision="int4"),
        lambda: ONNXTransformer().setPrecision("int4"),
        lambda: quantize(testing.mlp((4, 2)), mode="int4"),
    ):
        with pytest.raises(InvalidParamError) as info:
            call()
        raised.append(info.value)
    for exc in raised:
        text = str(exc)
        assert "got 'int4'" in text and "'int8', 'int8-static', 'int8-dynamic', 'fp16'" in text
        assert "'dynamic' = 'int8-dynamic'" in text  # aliases are listed
        assert "chosen from the graph" in text and "for GPUs" in text  # which to pick
        assert exit_code_for(exc) == EXIT_USAGE
    assert set(accepted_spellings(lower_only=True)) == {
        s for s in (*PRECISIONS, *ALIASES) if precision_of(s) != "fp32"
    }


def test_device_errors_keep_their_runtime_meaning() -> None:
    with pytest.raises(DeviceError, match=r"no CUDAExecutionProvider.*Install 'onnxruntime-gpu'"):
        plan_providers("cuda", available=CPU_BUILD)
    assert issubclass(DeviceError, SparkOnnxError) and not issubclass(DeviceError, ValueError)
