"""Writing ONNX files, with external data for models over protobuf's 2 GB limit."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import onnx

logger = logging.getLogger(__name__)

_LIMIT = 2**31 - 1


def _data_size(proto: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in proto.graph.initializer)


def needs_external_data(proto: onnx.ModelProto) -> bool:
    """True when the weights leave too little room under 2 GB for the graph itself."""
    return _data_size(proto) > _LIMIT - 64 * 2**20


def save_model(
    proto: onnx.ModelProto, path: str | os.PathLike[str], external: bool | None = None
) -> Path:
    """Save `proto` to `path`; weights go to `<name>.data` beside it when large (or `external`)."""
    target = Path(path)
    if target.suffix != ".onnx":
        logger.warning("writing an ONNX model to %s, which does not end in .onnx", target)
    target.parent.mkdir(parents=True, exist_ok=True)
    use_external = needs_external_data(proto) if external is None else external
    if use_external:
        location = f"{target.name}.data"
        data_file = target.parent / location
        if data_file.exists():
            data_file.unlink()  # onnx appends to an existing data file
        copy = onnx.ModelProto()
        copy.CopyFrom(proto)
        onnx.save_model(
            copy,
            str(target),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=location,
            size_threshold=1024,
        )
        logger.info("saved %s with its weights in %s", target, data_file)
    else:
        target.write_bytes(proto.SerializeToString())
    return target
