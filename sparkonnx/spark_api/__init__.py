"""Spark ML Transformers / Estimators, image reading, SQL functions, model shipping and
persistence. Only DataFrame-level Spark APIs (works on Spark Connect).

Rooms: `runtime` (what executors run), `transformers` (the stages), `images`, `training`;
the modules at this level are shared by them (Params, persistence, sessions, types,
precision, SQL functions, shipping).

Saved stages record their class path. Stages saved before the rooms existed name the old flat
modules (``sparkonnx.spark_api.onnx_transformer``...); `LEGACY_MODULES` maps each to its new
home, and a finder limited to those names makes them importable, so such saves still load.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

#: Module paths of stage classes before the reshaping into rooms -> where they live now.
LEGACY_MODULES: dict[str, str] = {
    f"sparkonnx.spark_api.{old}": f"sparkonnx.spark_api.{new}"
    for old, new in {
        "onnx_transformer": "transformers.onnx_transformer",
        "keras_transformer": "transformers.keras_transformer",
        "tf_transformer": "transformers.tf_transformer",
        "image_transformer": "transformers.image_transformer",
        "keras_image_transformer": "transformers.keras_image_transformer",
        "zoo_transformers": "transformers.zoo_transformers",
        "keras_estimator": "training.keras_estimator",
        "keras_image_estimator": "training.keras_image_estimator",
    }.items()
}


def current_class_path(class_path: str) -> str:
    """A saved stage's class path with a pre-reshaping module replaced by its new home."""
    module, _, name = class_path.rpartition(".")
    return f"{LEGACY_MODULES.get(module, module)}.{name}"


class _LegacyModuleAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module path as the module that now holds its classes (nothing else)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in LEGACY_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(LEGACY_MODULES[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        return None


if not any(isinstance(finder, _LegacyModuleAlias) for finder in sys.meta_path):
    sys.meta_path.append(_LegacyModuleAlias())
