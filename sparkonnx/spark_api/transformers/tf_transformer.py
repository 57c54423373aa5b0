"""TFTransformer: a TFInputGraph (converted to ONNX on the driver) applied to tensor columns."""

from __future__ import annotations

import logging
from typing import Any

from pyspark import keyword_only
from typing_extensions import Self

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.params import HasTensorMappings, warn_ignored
from sparkonnx.spark_api.persistence import ModelLike
from sparkonnx.spark_api.transformers.onnx_transformer import TensorModelBase, check_inputs_fed
from sparkonnx.spark_api.transformers.tf_input_graph import TFInputGraph

logger = logging.getLogger(__name__)


class TFTransformer(TensorModelBase, HasTensorMappings):
    """sparkdl's TFTransformer on ONNX Runtime: a TF graph applied to array columns.

    `tfInputGraph` is a `TFInputGraph` (already converted to ONNX; executors need no
    TensorFlow). `inputMapping` is {column: tensor name}, `outputMapping` {tensor name: column};
    tensor names are graph tensor names with or without ':0' (or signature keys for the
    `...WithSignature` graphs). Inputs of any rank: a flat array column is reshaped to the
    input's static dims, nested arrays keep their shape. `allowCast` defaults to True, as
    sparkdl fed double columns to float graphs. Saved in a Pipeline with the ONNX model inside.
    sparkdl's ``tfHParms`` is accepted with a DeprecationWarning and ignored.
    """

    @keyword_only
    def __init__(
        self,
        *,
        tfInputGraph: TFInputGraph | None = None,
        inputMapping: dict[str, str] | None = None,
        outputMapping: dict[str, str] | None = None,
        batchSize: int = 1024,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "array",
        allowCast: bool = True,
        tfHParms: Any = None,
        rowIdCol: str | None = None,
    ) -> None:
        kwargs = dict(self._input_kwargs)
        graph = kwargs.pop("tfInputGraph", None)
        if kwargs.pop("tfHParms", None) is not None:
            warn_ignored(
                "TFTransformer",
                "tfHParms",
                "the graph is converted to ONNX once, on the driver, so TensorFlow "
                "hyper-parameters are fixed when the graph is built; set them in the graph "
                "given to TFInputGraph.fromGraph / fromGraphDef / fromSavedModel",
            )
        super().__init__()
        self._graph: TFInputGraph | None = None
        self._setDefault(allowCast=True)
        self._set_init_kwargs(kwargs)
        if graph is not None:
            self.setTFInputGraph(graph)

    def setTFInputGraph(self, value: TFInputGraph) -> Self:
        """Use this graph (its converted ONNX model)."""
        if not isinstance(value, TFInputGraph):
            raise TypeError(
                f"tfInputGraph must be a TFInputGraph, got {type(value).__name__}; build one with "
                "TFInputGraph.fromFunction / fromGraph / fromGraphDef / fromCheckpoint / "
                "fromSavedModel (or their ...WithSignature forms)"
            )
        self._hold(value.model)
        self._graph = value
        return self

    def getTFInputGraph(self) -> TFInputGraph:
        """The graph; after loading a saved stage, one rebuilt from the stored ONNX model."""
        if self._graph is None:
            self._graph = TFInputGraph(self.getModel())
        return self._graph

    def setModel(self, model: ModelLike) -> Self:
        """Use an ONNX model (converted earlier) as the graph."""
        return self.setTFInputGraph(TFInputGraph.fromOnnx(model))

    def _no_model_message(self) -> str:
        return (
            "TFTransformer has no graph: pass tfInputGraph=TFInputGraph.fromFunction(...) "
            "(or another TFInputGraph constructor)"
        )

    def _set_loaded_model(self, model: OnnxModel) -> None:
        self._graph = None
        self._hold(model)

    def _mappings(self, model: OnnxModel) -> tuple[dict[str, str], dict[str, str]]:
        graph = self.getTFInputGraph()
        examples = {"inputMapping": "{'features': 'x'}", "outputMapping": "{'y': 'prediction'}"}
        for param in (self.inputMapping, self.outputMapping):
            if not self.isDefined(param):
                raise ValueError(
                    f"TFTransformer needs {param.name} ({param.doc}), e.g. "
                    f"{param.name}={examples[param.name]}"
                )
        for name in self.getInputMapping().values():  # TF-flavoured errors listing the tensors
            graph.input(name)
        for name in self.getOutputMapping():
            graph.output(name)
        inputs = self.getInputMapping()
        check_inputs_fed(model, inputs)
        return inputs, self.getOutputMapping()
