"""Shared Params for sparkonnx stages, camelCase as in pyspark.ml (one definition each)."""

from __future__ import annotations

from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters

from sparkonnx.engine.providers import DEVICES


def _to_str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TypeError(f"expected a dict of str -> str, got {value!r}")
    return dict(value)


def _to_device(value: Any) -> str:
    text = TypeConverters.toString(value).lower()
    if text not in DEVICES:
        raise TypeError(f"device must be one of {', '.join(map(repr, DEVICES))}; got {value!r}")
    return text


def _to_output_format(value: Any) -> str:
    text = TypeConverters.toString(value).lower()
    if text not in ("array", "vector"):
        raise TypeError(f"outputFormat must be 'array' or 'vector'; got {value!r}")
    return text


def _to_positive_int(value: Any) -> int:
    number = TypeConverters.toInt(value)
    if number <= 0:
        raise TypeError(f"batchSize must be a positive integer; got {value!r}")
    return number


class HasModelFile(Params):
    modelFile: Param[str] = Param(
        Params._dummy(), "modelFile", "path to an ONNX model file", TypeConverters.toString
    )

    def getModelFile(self) -> str:
        return self.getOrDefault(self.modelFile)

    def setModelFile(self, value: str) -> Any:
        return self._set(modelFile=value)


class HasTensorMappings(Params):
    inputMapping: Param[dict[str, str]] = Param(
        Params._dummy(), "inputMapping", "{input column: model input name}", _to_str_dict
    )
    outputMapping: Param[dict[str, str]] = Param(
        Params._dummy(), "outputMapping", "{model output name: output column}", _to_str_dict
    )

    def getInputMapping(self) -> dict[str, str]:
        return self.getOrDefault(self.inputMapping)

    def setInputMapping(self, value: dict[str, str]) -> Any:
        return self._set(inputMapping=value)

    def getOutputMapping(self) -> dict[str, str]:
        return self.getOrDefault(self.outputMapping)

    def setOutputMapping(self, value: dict[str, str]) -> Any:
        return self._set(outputMapping=value)


class HasRuntimeOptions(Params):
    """batchSize, device, deviceId: how executors run the model."""

    batchSize: Param[int] = Param(
        Params._dummy(), "batchSize", "rows per ONNX Runtime call", _to_positive_int
    )
    device: Param[str] = Param(
        Params._dummy(),
        "device",
        "'auto' (CUDA when usable, else CPU), 'cpu' or 'cuda'",
        _to_device,
    )
    deviceId: Param[int] = Param(
        Params._dummy(),
        "deviceId",
        "GPU ordinal; unset: the task's GPU resource if any, else 0",
        TypeConverters.toInt,
    )

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def setBatchSize(self, value: int) -> Any:
        return self._set(batchSize=value)

    def getDevice(self) -> str:
        return self.getOrDefault(self.device)

    def setDevice(self, value: str) -> Any:
        return self._set(device=value)

    def getDeviceId(self) -> int | None:
        return self.getOrDefault(self.deviceId) if self.isDefined(self.deviceId) else None

    def setDeviceId(self, value: int) -> Any:
        return self._set(deviceId=value)


class HasOutputFormat(Params):
    outputFormat: Param[str] = Param(
        Params._dummy(),
        "outputFormat",
        "'array' (default) or 'vector' (Spark ML DenseVector; rank-2 outputs only)",
        _to_output_format,
    )

    def getOutputFormat(self) -> str:
        return self.getOrDefault(self.outputFormat)

    def setOutputFormat(self, value: str) -> Any:
        return self._set(outputFormat=value)


class HasTensorOutputOptions(HasOutputFormat):
    allowCast: Param[bool] = Param(
        Params._dummy(),
        "allowCast",
        "allow lossy casts of input columns to the model's input types (e.g. double -> float)",
        TypeConverters.toBoolean,
    )

    def getAllowCast(self) -> bool:
        return self.getOrDefault(self.allowCast)

    def setAllowCast(self, value: bool) -> Any:
        return self._set(allowCast=value)
