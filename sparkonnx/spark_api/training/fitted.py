"""What a Keras fit returns: the trained network converted to ONNX, and how it was trained."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sparkonnx.engine.model import OnnxModel
from sparkonnx.spark_api.training import job as training

logger = logging.getLogger(__name__)

#: Rows of training data used as the parity sample when converting a trained model.
PARITY_SAMPLE_ROWS = 16


@dataclass(frozen=True)
class TrainingSummary:
    """How a fitted model was trained: its settings, loss curves, time, and ONNX parity."""

    settings: training.TrainingSettings
    history: dict[str, list[float]]
    seconds: float
    host: str
    where: str  # "driver" or "executor"
    parity_max_abs_error: float | None
    parity: Any = field(default=None, repr=False)  # converters' ParityReport
    keras_bytes: bytes = field(default=b"", repr=False)  # the trained model as a .keras file

    def keras_model(self) -> Any:
        """The trained Keras model (a fresh copy loaded from `keras_bytes`; needs TensorFlow)."""
        return training.load_keras_bytes(self.keras_bytes, ".keras")


class HasTrainingSummary:
    """Mixin of the fitted models: `trainingSummary`, which copies keep (pyspark's copy is
    shallow) and a loaded model has not."""

    _summary: TrainingSummary | None = None

    @property
    def trainingSummary(self) -> TrainingSummary | None:
        """How this model was trained (None after loading from disk)."""
        return self._summary


def convert_trained(
    trained: training.TrainedKeras,
    sample: np.ndarray,
    settings: training.TrainingSettings,
    where: str,
) -> tuple[OnnxModel, TrainingSummary]:
    """A trained Keras model as ONNX (parity-checked on `sample` training rows) and its summary."""
    from sparkonnx.converters.api import from_keras

    keras_model = training.load_keras_bytes(trained.keras_bytes, ".keras")
    result = from_keras(keras_model, sample_input=sample[:PARITY_SAMPLE_ROWS])
    parity = result.parity
    summary = TrainingSummary(
        settings=settings,
        history=trained.history,
        seconds=trained.seconds,
        host=trained.host,
        where=where,
        parity_max_abs_error=parity.max_abs_error if parity else None,
        parity=parity,
        keras_bytes=trained.keras_bytes,
    )
    logger.info(
        "trained model %d converted to ONNX: %s",
        trained.index,
        parity.summary() if parity else "parity not checked",
    )
    return result.model, summary
