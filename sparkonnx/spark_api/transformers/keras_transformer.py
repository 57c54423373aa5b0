"""KerasTransformer: a Keras model file (.keras / .h5), converted once to ONNX, on an array."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pyspark import keyword_only
from pyspark.ml.param import Param, Params, TypeConverters

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.transformers.onnx_transformer import ONNXTransformer

logger = logging.getLogger(__name__)


class KerasTransformer(ONNXTransformer):
    """sparkdl's KerasTransformer on ONNX Runtime: `modelFile` applied to `inputCol`.

    The Keras file is converted to ONNX on the driver at the first transform (or `getModel()`),
    with the converters' parity check; executors need no TensorFlow or Keras. Inputs of any
    rank (flat arrays are reshaped to the model's static input dims). `allowCast` defaults to
    True (double columns feed float models, as in Keras). Saved in a Pipeline with the ONNX
    model inside, so loading needs neither the Keras file nor TensorFlow.
    """

    modelFile: Param[str] = Param(
        Params._dummy(),
        "modelFile",
        "Keras model file the driver can read, as model.save() wrote it: .keras, legacy .h5, or "
        "an unzipped .keras directory",
        TypeConverters.toString,
    )

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
    ) -> None:
        kwargs = dict(self._input_kwargs)
        super().__init__()
        self._setDefault(allowCast=True)
        self._set(**{k: v for k, v in kwargs.items() if v is not None})

    def getModel(self) -> OnnxModel:
        """The ONNX model: converted from `modelFile` on first use, or the one loaded/set."""
        if self._model is None:
            if not self.isDefined(self.modelFile):
                raise ValueError(
                    "KerasTransformer has no model: pass modelFile='path/to/model.keras' "
                    "(or a legacy .h5 file)"
                )
            self._model = keras_file_to_onnx(self.getModelFile())
        return self._model


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
