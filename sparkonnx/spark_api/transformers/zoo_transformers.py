"""DeepImageFeaturizer and DeepImagePredictor: named zoo models on an image column in one line.

The model is built (or read from the disk cache) on the driver by `sparkonnx.model_zoo` and run
by `ImageTransformer`; its graph already holds the resize, BGR -> RGB and the model's own
normalisation. Saved stages hold only their Params: the weights are rebuilt from the cache
(`$SPARKONNX_CACHE/zoo`; a build made elsewhere gets there with `sparkonnx zoo import`, no
TensorFlow needed) or from Keras' weights on the machine that loads them.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import DataFrame
from typing_extensions import Self

from sparkonnx.engine.model import OnnxModel
from sparkonnx.errors import InvalidParamError
from sparkonnx.model_zoo.registry import MODELS, get_model
from sparkonnx.spark_api.params import (
    HasInputCol,
    HasOutputCol,
    HasOutputFormat,
    HasPrecision,
    HasRuntimeOptions,
    HasSeed,
    int_at_least,
    set_given,
)
from sparkonnx.spark_api.persistence import OnnxStagePersistence
from sparkonnx.spark_api.session import sql_functions
from sparkonnx.spark_api.transformers.image_params import HasMaxPixels
from sparkonnx.spark_api.transformers.image_transformer import ImageTransformer
from sparkonnx.spark_api.transformers.stage_cache import STAGE_CACHE, stage_key


def _to_model_name(value: Any) -> str:
    return get_model(TypeConverters.toString(value)).name


#: sparkdl's scaleHint values (Java AWT scaling hints, as its Scala featurizer resized with)
#: -> the Pillow filter that resizes the same way: AWT's area averaging (SCALE_AREA_AVERAGING,
#: SCALE_SMOOTH) is a box filter, its replicate filter (SCALE_DEFAULT, SCALE_FAST,
#: SCALE_REPLICATE) nearest neighbour.
SCALE_HINTS: dict[str, str] = {
    "SCALE_AREA_AVERAGING": "box",
    "SCALE_SMOOTH": "box",
    "SCALE_DEFAULT": "nearest",
    "SCALE_FAST": "nearest",
    "SCALE_REPLICATE": "nearest",
}


def _to_scale_hint(value: Any) -> str:
    text = TypeConverters.toString(value).upper()
    if text not in SCALE_HINTS:
        raise InvalidParamError(
            f"scaleHint must be one of {', '.join(SCALE_HINTS)}; got {value!r}. Use "
            "SCALE_AREA_AVERAGING / SCALE_SMOOTH (box filter) or SCALE_FAST (nearest)"
        )
    return text


class _ZooStage(
    Transformer,
    HasInputCol,
    HasOutputCol,
    HasSeed,
    HasRuntimeOptions,
    HasOutputFormat,
    HasPrecision,
    HasMaxPixels,
    OnnxStagePersistence,
):
    """Params and model resolution shared by the two zoo transformers.

    ``seed`` seeds the random weights of ``weights=None`` (or 'none'). ``maxPixels`` (default
    50 M): a bigger image gets a null output, never resized.

    ``scaleHint`` (sparkdl's) picks the resize filter: see `SCALE_HINTS`; unset, images are
    resized bilinearly, as the zoo models are checked.

    ``precision='int8'`` calibrates the zoo graph once on ``calibrationRows`` images sampled
    from the DataFrame being transformed (or ``calibrationPath``), gates it against fp32 (mean
    cosine of the features, top-1 agreement of the predictions) and caches it on disk.
    """

    modelName: Param[str] = Param(
        Params._dummy(), "modelName", f"one of {', '.join(MODELS)}", _to_model_name
    )
    weights: Param[str] = Param(
        Params._dummy(),
        "weights",
        "'imagenet' (Keras' cache), 'none' (random, seeded) or a Keras weights file path",
        TypeConverters.toString,
    )
    scaleHint: Param[str] = Param(
        Params._dummy(),
        "scaleHint",
        "sparkdl's resize hint: SCALE_AREA_AVERAGING / SCALE_SMOOTH (box filter) or "
        "SCALE_DEFAULT / SCALE_FAST / SCALE_REPLICATE (nearest); unset: bilinear, the resize "
        "the zoo models are checked with",
        _to_scale_hint,
    )

    _input_kwargs: dict[str, Any]  # set by pyspark's @keyword_only
    _output_tensor = "features"

    def __init__(self) -> None:
        super().__init__()
        self._setDefault(weights="imagenet", seed=0, batchSize=32, device="auto")

    def _set_params(self) -> None:
        kwargs = dict(self._input_kwargs)
        if "weights" in kwargs:  # None means random weights, not "unset"
            kwargs["weights"] = "none" if kwargs["weights"] is None else str(kwargs["weights"])
        set_given(self, kwargs)

    def getModelName(self) -> str:
        return self.getOrDefault(self.modelName)

    def setModelName(self, value: str) -> Self:
        return self._set(modelName=value)

    def getWeights(self) -> str:
        return self.getOrDefault(self.weights)

    def setWeights(self, value: str | None) -> Self:
        """'imagenet', a Keras weights file, or None / 'none' for random (seeded) weights."""
        return self._set(weights="none" if value is None else value)

    def getScaleHint(self) -> str | None:
        return self.getOrDefault(self.scaleHint) if self.isDefined(self.scaleHint) else None

    def setScaleHint(self, value: str) -> Self:
        return self._set(scaleHint=value)

    def getModel(self) -> OnnxModel:
        """The built ONNX graph (from the disk cache when it is there)."""
        from sparkonnx.model_zoo.build import build_model

        if not self.isDefined(self.modelName):
            raise ValueError(f"set modelName to one of {', '.join(MODELS)}")
        weights: str | None = self.getWeights()
        if weights is not None and weights.lower() in ("none", "random"):
            weights = None
        return build_model(self.getModelName(), weights, seed=self.getSeed())

    def _model_for_saving(self) -> OnnxModel | None:
        return None  # the cache rebuilds it: no second copy of the weights in saved pipelines

    def _set_loaded_model(self, model: OnnxModel) -> None:  # pragma: no cover - never saved
        raise AssertionError("zoo stages are saved without their model")

    def _image_transformer(self, output_col: str, output_format: str) -> ImageTransformer:
        """The ImageTransformer running this stage's model, made once per Param values.

        Reusing it (from the stage cache) keeps the model, read from the disk cache, and a
        lower-precision build in memory across transforms; copies share it while their Params
        are equal.
        """
        settings = sorted((p.name, repr(v)) for p, v in self.extractParamMap().items())
        key = stage_key(self, "zoo-inner", output_col, output_format, tuple(settings))
        return STAGE_CACHE.get_or_build(key, partial(self._new_inner, output_col, output_format))

    def _new_inner(self, output_col: str, output_format: str) -> ImageTransformer:
        hint = self.getScaleHint()
        return ImageTransformer(
            resample=SCALE_HINTS[hint] if hint else None,
            inputCol=self.getInputCol(),
            outputCol=output_col,
            model=self.getModel(),
            outputTensor=self._output_tensor,
            batchSize=self.getBatchSize(),
            device=self.getDevice(),
            deviceId=self.getDeviceId(),
            outputFormat=output_format,
            precision=self.getPrecision(),
            calibrationPath=self.getCalibrationPath(),
            calibrationRows=self.getCalibrationRows(),
            calibrationSeed=self.getCalibrationSeed(),
            precisionTolerance=self.getPrecisionTolerance(),
            maxPixels=self.getMaxPixels(),
        )


class DeepImageFeaturizer(_ZooStage):
    """Penultimate-layer features of a zoo model as a Spark ML vector (``outputFormat='vector'``).

    Feature widths: InceptionV3 / Xception / ResNet50 2048, VGG16 / VGG19 4096, MobileNetV2 1280,
    MobileNetV3Small 1024, MobileNetV3Large 1280, EfficientNetB0 1280. A null or undecodable
    image gets a null vector; every row is kept.
    """

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        modelName: str | None = None,
        weights: str | None = "imagenet",
        seed: int = 0,
        scaleHint: str | None = None,
        batchSize: int = 32,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "vector",
        precision: str = "fp32",
        calibrationPath: str | None = None,
        calibrationRows: int = 128,
        calibrationSeed: int = 0,
        precisionTolerance: dict[str, float] | None = None,
        maxPixels: int | None = None,
    ) -> None:
        super().__init__()
        self._setDefault(outputFormat="vector")
        self._set_params()

    def _transform(self, dataset: DataFrame) -> DataFrame:
        inner = self._image_transformer(self.getOutputCol(), self.getOutputFormat())
        return inner.transform(dataset)


class DeepImagePredictor(_ZooStage):
    """ImageNet predictions of a zoo model: the probability vector, or with ``decodePredictions``
    an array of ``topK`` struct(class, description, probability), most probable first."""

    decodePredictions: Param[bool] = Param(
        Params._dummy(),
        "decodePredictions",
        "output the topK classes as struct(class, description, probability)",
        TypeConverters.toBoolean,
    )
    topK: Param[int] = Param(
        Params._dummy(),
        "topK",
        "how many classes decodePredictions keeps (1 to 1000)",
        int_at_least("topK", 1, fix="Keep 1 to 1000 of the ImageNet classes"),
    )
    _output_tensor = "probabilities"

    def getDecodePredictions(self) -> bool:
        return self.getOrDefault(self.decodePredictions)

    def setDecodePredictions(self, value: bool) -> Self:
        return self._set(decodePredictions=value)

    def getTopK(self) -> int:
        return self.getOrDefault(self.topK)

    def setTopK(self, value: int) -> Self:
        return self._set(topK=value)

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        modelName: str | None = None,
        decodePredictions: bool = False,
        topK: int = 5,
        weights: str | None = "imagenet",
        seed: int = 0,
        scaleHint: str | None = None,
        batchSize: int = 32,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "vector",
        precision: str = "fp32",
        calibrationPath: str | None = None,
        calibrationRows: int = 128,
        calibrationSeed: int = 0,
        precisionTolerance: dict[str, float] | None = None,
        maxPixels: int | None = None,
    ) -> None:
        super().__init__()
        self._setDefault(decodePredictions=False, topK=5, outputFormat="vector")
        self._set_params()

    def _transform(self, dataset: DataFrame) -> DataFrame:
        if not self.getDecodePredictions():
            inner = self._image_transformer(self.getOutputCol(), self.getOutputFormat())
            return inner.transform(dataset)
        top_k = self.getTopK()
        if not 1 <= top_k <= 1000:
            raise InvalidParamError(
                f"topK must be between 1 and 1000 (the ImageNet classes); got {top_k}"
            )
        from sparkonnx.model_zoo.labels import imagenet_labels

        out = self.getOutputCol()
        scores = f"__{self.uid}_probabilities"
        scored = self._image_transformer(scores, "array").transform(dataset)
        F = sql_functions(dataset)
        labels = imagenet_labels()
        ids, names = F.lit(list(labels.class_ids)), F.lit(list(labels.descriptions))
        # sort by (probability, -index) descending: ties keep the lower class index first
        ranked = F.sort_array(
            F.transform(scored[scores], lambda p, i: F.struct(p.alias("p"), (-i).alias("ni"))),
            asc=False,
        )
        top = F.transform(
            F.slice(ranked, 1, top_k),
            lambda e: F.struct(
                F.element_at(ids, 1 - e["ni"]).alias("class"),
                F.element_at(names, 1 - e["ni"]).alias("description"),
                e["p"].alias("probability"),
            ),
        )
        return scored.withColumn(out, top).drop(scores)
