"""KerasTransformer: a Keras model file (.keras / .h5), converted once to ONNX, on an array."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pyspark import keyword_only

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.params import HasInputCol, HasModelFile, HasOutputCol
from sparkonnx.spark_api.transformers.onnx_transformer import (
    TensorModelBase,
    column_inputs,
    column_outputs,
)

logger = logging.getLogger(__name__)


class KerasTransformer(TensorModelBase, HasInputCol, HasOutputCol, HasModelFile):
    """sparkdl's KerasTransformer on ONNX Runtime: `modelFile` applied to `inputCol`.

    The Keras file (.keras, legacy .h5) is converted to ONNX on the driver at the first
    transform (or `getModel()`), with the converters' parity check; executors need no
    TensorFlow or Keras. One-input, one-output models; inputs of any rank (flat arrays are
    reshaped to the model's static input dims). `allowCast` defaults to True (double columns
    feed float models, as in Keras). Saved in a Pipeline with the ONNX model inside, so loading
    needs neither the Keras file nor TensorFlow. For several inputs or outputs, or
    `precision='int8'`, convert with `sparkonnx.from_keras` and use ONNXTransformer.
    """

    @keyword_only
    def __init__(
        self,
        *,
        inputCol: str | None = None,
        outputCol: str | None = None,
        modelFile: str | None = None,
        batchSize: int = 1024,
        device: str = "auto",
        deviceId: int | None = None,
        outputFormat: str = "array",
        allowCast: bool = True,
        rowIdCol: str | None = None,
    ) -> None:
        super().__init__()
        self._setDefault(allowCast=True)
        self._set_init_kwargs(self._input_kwargs)

    def _load_model_file(self, path: str) -> OnnxModel:
        return keras_file_to_onnx(path)

    def _no_model_message(self) -> str:
        return (
            "KerasTransformer has no model: pass modelFile='path/to/model.keras' "
            "(or a legacy .h5 file)"
        )

    def _mappings(self, model: OnnxModel) -> tuple[dict[str, str], dict[str, str]]:
        if not self.isSet(self.inputCol):
            raise ValueError("KerasTransformer needs inputCol: the array column to feed the model")
        fix = (
            "KerasTransformer takes one-input, one-output models: convert it with "
            "sparkonnx.from_keras and use ONNXTransformer with inputMapping / outputMapping"
        )
        inputs = column_inputs(model, self.getInputCol(), fix)
        return inputs, column_outputs(model, self.getOutputCol(), fix)


def keras_file_to_onnx(path: str | os.PathLike[str], **options: Any) -> OnnxModel:
    """Convert what `model.save(path)` wrote (.keras, .h5, an unzipped .keras directory) to an
    OnnxModel (driver only; imports TensorFlow)."""
    from sparkonnx.converters.keras_source import KERAS_SUFFIXES, keras_file_kind

    p = Path(path)
    if keras_file_kind(p) is None:
        if not p.exists() and p.suffix.lower() in (*KERAS_SUFFIXES, ""):
            raise FileNotFoundError(f"Keras model file not found: {p}")
        raise ValueError(
            f"modelFile {str(p)!r} is not a Keras model file; KerasTransformer takes what "
            "model.save(path) writes: .keras, .h5 (or .hdf5) files, or an unzipped .keras "
            "directory. For an ONNX file use ONNXTransformer, for a SavedModel TFTransformer "
            "with TFInputGraph.fromSavedModelWithSignature"
        )
    from sparkonnx.converters import from_keras

    result = from_keras(p, **options)
    if result.parity is not None:
        logger.info("KerasTransformer %s: %s", p.name, result.parity.summary())
    return result.model
