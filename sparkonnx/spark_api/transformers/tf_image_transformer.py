"""TFImageTransformer: sparkdl's stage for a TF1 graph on an image column, on ONNX Runtime.

``graph`` (a ``tf.Graph``, e.g. ``strip_and_freeze_until(..., return_graph=True)``, or a frozen
``GraphDef``) is converted once, on the driver, between ``inputTensor`` and ``outputTensor``
(``tf.Tensor`` objects or names); executors run the ONNX model like any `ImageTransformer`.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark import keyword_only

from sparkonnx.compat.tf_graph import IMAGE_INPUT_PLACEHOLDER_NAME
from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.persistence import ModelLike
from sparkonnx.spark_api.transformers.image_transformer import ImageTransformer

logger = logging.getLogger(__name__)

__all__ = ["TFImageTransformer"]

#: sparkdl's default `inputTensor`: the placeholder `imageInputPlaceholder()` makes.
IMAGE_INPUT_TENSOR_NAME = f"{IMAGE_INPUT_PLACEHOLDER_NAME}:0"


def _graph_def(graph: Any) -> Any:
    """The GraphDef of a tf.Graph (or a GraphDef itself); TypeError for anything else."""
    if hasattr(graph, "as_graph_def"):
        return graph.as_graph_def(add_shapes=True)
    if type(graph).__name__ == "GraphDef":
        return graph
    raise TypeError(
        f"graph must be a tf.Graph (e.g. strip_and_freeze_until([output], graph, sess, "
        f"return_graph=True)) or a frozen GraphDef, got {type(graph).__name__}"
    )


class TFImageTransformer(ImageTransformer):
    """sparkdl's TFImageTransformer: a TensorFlow graph applied to an image-struct column.

    - ``graph``: the TF graph, frozen (``sparkonnx.graph.utils.strip_and_freeze_until``); it
      is converted to ONNX once, on the driver, at the first transform (executors need no
      TensorFlow). ``model=`` / ``modelFile=`` take an ONNX model instead, as `ImageTransformer`.
    - ``inputTensor`` / ``outputTensor``: ``tf.Tensor`` objects or their names; the input
      defaults to sparkdl's ``imageInputPlaceholder()`` ('sparkdl_image_input:0').
    - Images are fed as the input's dtype (float32: pixel values 0..255) in ``channelOrder``
      (default RGB), each at its own size when the input takes any size.
    - ``outputMode``: 'vector' (default, as sparkdl: the flattened output as a Spark ML
      DenseVector), 'array', or 'image' (an image struct; float outputs give float32 images).
    - Every other Param is `ImageTransformer`'s. Saved stages hold the converted ONNX model.
    """

    _default_output = "vector"

    @keyword_only
    def __init__(
        self,
        *,
        graph: Any = None,
        inputCol: str | None = None,
        outputCol: str | None = None,
        model: ModelLike | None = None,
        modelFile: str | None = None,
        inputTensor: Any = None,
        outputTensor: Any = None,
        outputMode: str = "vector",
        channelOrder: str | None = None,
        layout: str | None = None,
        inputSize: list[int] | None = None,
        scale: float | None = None,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        resample: str | None = None,
        handleInvalid: str = "keep",
        errorCol: str | None = None,
        maxPixels: int | None = None,
        rowIdCol: str | None = None,
        batchSize: int = 64,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "vector",
        precision: str = "fp32",
        calibrationPath: str | None = None,
        calibrationRows: int = 128,
        calibrationSeed: int = 0,
        precisionTolerance: dict[str, float] | None = None,
    ) -> None:
        """As `ImageTransformer`, plus ``graph`` (a frozen tf.Graph or GraphDef)."""
        kwargs = dict(self._input_kwargs)  # type: ignore[attr-defined]
        graph = kwargs.pop("graph", None)
        if graph is not None and (kwargs.get("model") is not None or kwargs.get("modelFile")):
            raise ValueError("give TFImageTransformer either graph= (TF) or model= / modelFile=")
        super().__init__(**kwargs)
        self._graph: Any = None
        self._converted: tuple[str, str] | None = None
        if graph is not None:
            self.setGraph(graph)

    def setGraph(self, value: Any) -> TFImageTransformer:
        """Use this TF graph (converted to ONNX at the next transform)."""
        _graph_def(value)
        self._graph = value
        self._model = None
        self._converted = None
        return self

    def getGraph(self) -> Any:
        """The TF graph given (None when the stage was built from, or loaded with, ONNX)."""
        return self._graph

    def _tensor_names(self) -> tuple[str, str]:
        out = self.getOutputTensor()
        if out is None:
            raise ValueError(
                "TFImageTransformer with a graph needs outputTensor=<the tf.Tensor or name of "
                "the graph's output>"
            )
        return self.getInputTensor() or IMAGE_INPUT_TENSOR_NAME, out

    def getModel(self) -> OnnxModel:
        """The ONNX model: `graph` converted between the tensors (once per pair), or the one
        given / loaded."""
        if self._graph is not None:
            names = self._tensor_names()
            if self._model is None or self._converted != names:
                from sparkonnx.converters import from_graph_def

                result = from_graph_def(
                    _graph_def(self._graph), input_names=[names[0]], output_names=[names[1]]
                )
                if result.parity is not None:
                    logger.info("TFImageTransformer graph: %s", result.parity.summary())
                self._model, self._converted = result.model, names
        return super().getModel()

    def getInputTensor(self) -> str | None:
        """The image input's name; with a graph, sparkdl's placeholder unless set."""
        name = super().getInputTensor()
        return name if name is not None or self._graph is None else IMAGE_INPUT_TENSOR_NAME
