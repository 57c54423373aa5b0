"""The Keras estimators' training Params: optimizer, loss, fit arguments, data size limit.

Values are JSON-able (Keras names or serialized configs) so that estimators and
CrossValidator grids save and load.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.ml.param import Param, Params
from typing_extensions import Self

from sparkonnx.errors import InvalidParamError
from sparkonnx.spark_api.params import int_at_least

#: Keys of kerasFitParams that the estimator supplies itself.
_RESERVED_FIT_KEYS = ("x", "y", "validation_data", "sample_weight", "callbacks")


def _json_able(value: Any, what: str) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{what} must be JSON-serializable so that the stage and CrossValidator grids can be "
            f"saved; got {value!r} ({exc})"
        ) from exc


def _to_keras_identifier(value: Any) -> str | dict[str, Any]:
    """An optimizer / loss: a Keras name ('adam') or a serialized config dict."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict) and "class_name" in value:
        _json_able(value, "a Keras optimizer / loss config")
        return dict(value)
    raise TypeError(
        f"expected a Keras name such as 'adam' / 'categorical_crossentropy', or a config dict "
        f"{{'class_name': 'Adam', 'config': {{'learning_rate': 0.01}}}}; got {value!r}"
    )


def _to_fit_params(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise TypeError(
            f"kerasFitParams must be a dict of keras Model.fit keyword arguments, e.g. "
            f"{{'epochs': 2, 'batch_size': 32}}; got {value!r}"
        )
    reserved = [k for k in value if k in _RESERVED_FIT_KEYS]
    if reserved:
        raise InvalidParamError(
            f"kerasFitParams may not set {reserved}: the estimator passes the training data "
            f"itself; use e.g. validation_split instead of validation_data"
        )
    _json_able(value, "kerasFitParams")
    return dict(value)


_to_max_bytes = int_at_least(
    "maxTrainingDataBytes", 0, fix="Give a number of bytes, or 0 to derive it from worker memory"
)


class HasKerasTraining(Params):
    """kerasOptimizer, kerasLoss, kerasFitParams, maxTrainingDataBytes: how a Keras model is
    compiled and fit, and how much training data may be gathered."""

    kerasOptimizer: Param[Any] = Param(
        Params._dummy(),
        "kerasOptimizer",
        "Keras optimizer: a name ('adam') or a config dict {'class_name': ..., 'config': ...}",
        _to_keras_identifier,
    )
    kerasLoss: Param[Any] = Param(
        Params._dummy(),
        "kerasLoss",
        "Keras loss: a name ('categorical_crossentropy') or a config dict",
        _to_keras_identifier,
    )
    kerasFitParams: Param[dict[str, Any]] = Param(
        Params._dummy(),
        "kerasFitParams",
        "keyword arguments of keras Model.fit (epochs, batch_size, verbose, shuffle, ...)",
        _to_fit_params,
    )
    maxTrainingDataBytes: Param[int] = Param(
        Params._dummy(),
        "maxTrainingDataBytes",
        "largest gathered training data allowed, in bytes; 0: half of one worker's memory "
        "(spark.executor.pyspark.memory, else spark.executor.memory)",
        _to_max_bytes,
    )

    def getKerasOptimizer(self) -> str | dict[str, Any]:
        return self.getOrDefault(self.kerasOptimizer)

    def setKerasOptimizer(self, value: str | dict[str, Any]) -> Self:
        return self._set(kerasOptimizer=value)

    def getKerasLoss(self) -> str | dict[str, Any]:
        return self.getOrDefault(self.kerasLoss)

    def setKerasLoss(self, value: str | dict[str, Any]) -> Self:
        return self._set(kerasLoss=value)

    def getKerasFitParams(self) -> dict[str, Any]:
        return self.getOrDefault(self.kerasFitParams)

    def setKerasFitParams(self, value: dict[str, Any]) -> Self:
        return self._set(kerasFitParams=value)

    def getMaxTrainingDataBytes(self) -> int:
        return self.getOrDefault(self.maxTrainingDataBytes)

    def setMaxTrainingDataBytes(self, value: int) -> Self:
        return self._set(maxTrainingDataBytes=value)
