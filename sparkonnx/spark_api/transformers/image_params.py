"""The image stages' Params: output mode / invalid rows, and preprocessing overrides."""

from __future__ import annotations

from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from typing_extensions import Self

from sparkonnx.engine.image_decode import DEFAULT_MAX_PIXELS
from sparkonnx.engine.image_preprocess import CHANNEL_ORDERS, LAYOUTS, RESAMPLES
from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.params import HasOutputFormat, int_at_least

#: What an image stage's output column holds (sparkdl's outputMode, plus 'array').
OUTPUT_MODES = ("vector", "array", "image")


def _choice(name: str, allowed: tuple[str, ...], upper: bool = False) -> Any:
    def convert(value: Any) -> str:
        text = TypeConverters.toString(value)
        text = text.upper() if upper else text.lower()
        if text not in allowed:
            raise InvalidParamError(
                f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}"
            )
        return text

    return convert


def _to_size(value: Any) -> list[int]:
    size = TypeConverters.toListInt(value)
    if len(size) != 2 or min(size) <= 0:
        raise InvalidParamError(
            f"inputSize must be [height, width] with positive values; got {value!r}"
        )
    return size


class HasImageOutput(HasOutputFormat):
    """outputMode (with outputFormat), handleInvalid and errorCol: shared by the image stages.

    One rule for the output type, so the two Params never disagree: ``outputMode`` 'vector' is
    a Spark ML DenseVector per row (sparkdl's meaning), 'array' an ``array<float>``, 'image' an
    image struct; ``outputFormat`` ('vector' / 'array') is the same choice under the name the
    tensor stages use. Set either one and it decides; set both and they must agree (ValueError
    otherwise); set neither and the stage's default applies. (Stages saved before this rule,
    whose defaults were outputMode 'vector' with outputFormat 'array', still give arrays.)
    """

    outputMode: Param[str] = Param(
        Params._dummy(),
        "outputMode",
        "'vector' (a Spark ML DenseVector per row, the output flattened, as sparkdl), 'array' "
        "(the same values as array<float>) or 'image' (an image struct); outputFormat is the "
        "same choice for 'vector' / 'array': set one, or both equal",
        _choice("outputMode", OUTPUT_MODES),
    )
    handleInvalid: Param[str] = Param(
        Params._dummy(),
        "handleInvalid",
        "rows whose image is null or unreadable: 'keep' (default: null output) or 'error' "
        "(fail the task, naming the row)",
        _choice("handleInvalid", ("keep", "error")),
    )
    errorCol: Param[str] = Param(
        Params._dummy(),
        "errorCol",
        "optional column for the reason a row's output is null (null for good rows)",
        TypeConverters.toString,
    )

    def getOutputMode(self) -> str:
        """What the output column holds, 'vector', 'array' or 'image', by the class's rule."""
        mode, fmt = self.getOrDefault(self.outputMode), self.getOrDefault(self.outputFormat)
        mode_set, fmt_set = self.isSet(self.outputMode), self.isSet(self.outputFormat)
        if mode_set and fmt_set and mode != fmt:
            raise ValueError(
                f"outputMode={mode!r} and outputFormat={fmt!r} disagree: outputMode 'vector' is "
                "a Spark ML DenseVector, 'array' an array<float> column, 'image' an image "
                "struct, and outputFormat names the same 'vector' / 'array' choice. Set only "
                "outputMode (or make them equal)"
            )
        if fmt_set and not mode_set:
            return fmt
        if not mode_set and mode != "image" and mode != fmt:  # defaults saved before the rule
            return fmt
        return mode

    def getOutputFormat(self) -> str:
        """'vector' or 'array' (the same as getOutputMode() unless that is 'image')."""
        mode = self.getOutputMode()
        return mode if mode != "image" else self.getOrDefault(self.outputFormat)

    def _set(self, **kwargs: Any) -> Any:
        result = super()._set(**kwargs)
        both = self.isDefined(self.outputMode) and self.isDefined(self.outputFormat)
        if both and ("outputMode" in kwargs or "outputFormat" in kwargs):
            self.getOutputMode()  # two that disagree fail where they are set
        return result

    def setOutputMode(self, value: str) -> Self:
        return self._set(outputMode=value)

    def getHandleInvalid(self) -> str:
        return self.getOrDefault(self.handleInvalid)

    def setHandleInvalid(self, value: str) -> Self:
        return self._set(handleInvalid=value)

    def getErrorCol(self) -> str | None:
        return self.getOrDefault(self.errorCol) if self.isDefined(self.errorCol) else None

    def setErrorCol(self, value: str) -> Self:
        return self._set(errorCol=value)


class HasMaxPixels(Params):
    """maxPixels: the largest image (width x height) a stage accepts (default 50 M)."""

    maxPixels: Param[int] = Param(
        Params._dummy(),
        "maxPixels",
        f"images of more pixels (width x height) are invalid rows (null output, the reason in "
        f"errorCol), refused before any resizing; default {DEFAULT_MAX_PIXELS}",
        int_at_least("maxPixels", 1, fix="Raise it for larger images (it bounds memory)"),
    )

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(maxPixels=DEFAULT_MAX_PIXELS)

    def getMaxPixels(self) -> int:
        return self.getOrDefault(self.maxPixels)

    def setMaxPixels(self, value: int) -> Self:
        return self._set(maxPixels=value)


class HasImagePreprocessing(Params):
    """How images become the model's input; unset Params come from the model's metadata."""

    channelOrder: Param[str] = Param(
        Params._dummy(),
        "channelOrder",
        "colour order the model takes: 'RGB' (default for 3 channels), 'BGR', 'RGBA', 'BGRA', "
        "'L' (gray)",
        _choice("channelOrder", tuple(CHANNEL_ORDERS), upper=True),
    )
    layout: Param[str] = Param(
        Params._dummy(),
        "layout",
        "'NHWC' or 'NCHW' ('NHW' for rank-3 gray inputs); default: read from the input shape",
        _choice("layout", LAYOUTS, upper=True),
    )
    inputSize: Param[list[int]] = Param(
        Params._dummy(),
        "inputSize",
        "[height, width] images are resized to; default: the model's static size, or none",
        _to_size,
    )
    scale: Param[float] = Param(
        Params._dummy(), "scale", "pixel values are multiplied by this", TypeConverters.toFloat
    )
    mean: Param[list[float]] = Param(
        Params._dummy(),
        "mean",
        "subtracted after scaling (one value, or one per channel in the model's order)",
        TypeConverters.toListFloat,
    )
    std: Param[list[float]] = Param(
        Params._dummy(),
        "std",
        "divides after the mean (one value, or one per channel in the model's order)",
        TypeConverters.toListFloat,
    )
    resample: Param[str] = Param(
        Params._dummy(),
        "resample",
        f"Pillow resampling filter for resizing: {', '.join(RESAMPLES)} (default bilinear)",
        _choice("resample", RESAMPLES),
    )

    def getChannelOrder(self) -> str:
        return self.getOrDefault(self.channelOrder)

    def setChannelOrder(self, value: str) -> Self:
        return self._set(channelOrder=value)

    def getLayout(self) -> str:
        return self.getOrDefault(self.layout)

    def setLayout(self, value: str) -> Self:
        return self._set(layout=value)

    def getInputSize(self) -> list[int]:
        return self.getOrDefault(self.inputSize)

    def setInputSize(self, value: list[int]) -> Self:
        return self._set(inputSize=value)

    def getScale(self) -> float:
        return self.getOrDefault(self.scale)

    def setScale(self, value: float) -> Self:
        return self._set(scale=value)

    def getMean(self) -> list[float]:
        return self.getOrDefault(self.mean)

    def setMean(self, value: list[float]) -> Self:
        return self._set(mean=value)

    def getStd(self) -> list[float]:
        return self.getOrDefault(self.std)

    def setStd(self, value: list[float]) -> Self:
        return self._set(std=value)

    def getResample(self) -> str:
        return self.getOrDefault(self.resample)

    def setResample(self, value: str) -> Self:
        return self._set(resample=value)

    def preprocessingOverrides(self) -> dict[str, Any]:
        """The preprocessing keys set as Params (they win over the model's metadata)."""
        names = {
            "channelOrder": "channel_order",
            "layout": "layout",
            "inputSize": "size",
            "scale": "scale",
            "mean": "mean",
            "std": "std",
            "resample": "resample",
        }
        return {key: self.getOrDefault(p) for p, key in names.items() if self.isSet(p)}
