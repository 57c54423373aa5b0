"""Calibration sets: sample inputs for int8 calibration and for the accuracy gate.

A calibration set holds one array per model input, all with the same number of rows. It is
read from arrays, a `.npy` / `.npz` file, a `.parquet` file or folder (one column per input),
or a folder of images (decoded and preprocessed as ImageTransformer does). Its
`identity` (a sha256 of the contents) keys the cache of quantized models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sparkonnx.engine.image_preprocess import ImagePreprocessing
from sparkonnx.engine.model import OnnxModel, TensorSpec
from sparkonnx.errors import SparkOnnxError

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_FORMATS = (
    "a folder of images, a .npy file (single-input models), a .npz file or a .parquet "
    "file/folder with one array column per model input, a numpy array, a list of arrays (one "
    "per input) or a dict {input name: array}"
)


class CalibrationError(SparkOnnxError, ValueError):
    """Calibration data that cannot feed the model (format, names, shapes or row count)."""


@dataclass(frozen=True)
class CalibrationSet:
    """Sample inputs: one array per model input (batch axis first), plus where they came from."""

    arrays: Mapping[str, np.ndarray] = field(repr=False)
    source: str = "<arrays>"

    def __post_init__(self) -> None:
        if not self.arrays:
            raise CalibrationError("a calibration set needs at least one input array")
        rows = {name: int(a.shape[0]) if a.ndim else -1 for name, a in self.arrays.items()}
        if len(set(rows.values())) != 1 or min(rows.values()) < 1:
            raise CalibrationError(
                f"calibration arrays from {self.source} must all have the same, non-zero number "
                f"of rows (batch axis first); got rows {rows}"
            )

    @property
    def rows(self) -> int:
        return int(next(iter(self.arrays.values())).shape[0])

    @cached_property
    def identity(self) -> str:
        """sha256 of the input names, dtypes, shapes and bytes: the set's cache identity."""
        digest = hashlib.sha256()
        for name in sorted(self.arrays):
            a = np.ascontiguousarray(self.arrays[name])
            digest.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode())
            digest.update(a.tobytes())
        return digest.hexdigest()

    def take(self, index: np.ndarray | slice, source: str | None = None) -> CalibrationSet:
        """The rows at `index` as a new set."""
        picked = {k: np.ascontiguousarray(v[index]) for k, v in self.arrays.items()}
        return CalibrationSet(picked, source or self.source)

    def split(self, holdout: int | float, seed: int = 0) -> tuple[CalibrationSet, CalibrationSet]:
        """(calibration rows, held-out gate rows), shuffled with `seed`.

        `holdout` is a count of rows, or a fraction of them when below 1.
        """
        n = self.rows
        count = round(holdout * n) if isinstance(holdout, float) and holdout < 1 else int(holdout)
        if n < 2 or not 1 <= count < n:
            raise CalibrationError(
                f"calibration set {self.source} has {n} row(s), which cannot be split into "
                f"calibration rows and {count} held-out gate row(s); give at least 2 rows "
                "(16 or more recommended) or change holdout"
            )
        order = np.random.default_rng(seed).permutation(n)
        return (
            self.take(np.sort(order[count:]), f"{self.source} (calibration rows)"),
            self.take(np.sort(order[:count]), f"{self.source} (held-out rows)"),
        )

    def require_finite(self, name: str) -> None:
        """CalibrationError naming the input and rows when a float input holds NaN or inf."""
        for key, array in self.arrays.items():
            if array.dtype.kind != "f" or not array.size:
                continue
            bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
            if bad.size:
                shown = ", ".join(map(str, bad[:5])) + (", ..." if bad.size > 5 else "")
                raise CalibrationError(
                    f"{name}: the sample inputs {self.source} hold NaN or infinite values in "
                    f"input {key!r} on {bad.size} of {len(array)} rows (rows {shown}); int8 "
                    "ranges calibrated on them, and a gate judged on them, would be "
                    "meaningless. Clean or drop those rows"
                )

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of at most `size` rows each, in order."""
        for start in range(0, self.rows, size):
            yield {k: v[start : start + size] for k, v in self.arrays.items()}

    def describe(self) -> str:
        shapes = ", ".join(f"{k}: {v.dtype}{list(v.shape)}" for k, v in self.arrays.items())
        return f"{self.rows} rows from {self.source} ({shapes})"


Arrays = np.ndarray | Mapping[str, np.ndarray] | Sequence[np.ndarray]
CalibrationLike = CalibrationSet | str | os.PathLike | Arrays


def load_calibration(
    source: CalibrationLike,
    model: OnnxModel,
    *,
    limit: int | None = None,
    seed: int = 0,
    image_preprocessing: ImagePreprocessing | None = None,
) -> CalibrationSet:
    """Read `source` into a CalibrationSet checked against `model`'s inputs.

    `limit` keeps a seeded random subset of at most that many rows. A folder of images is
    preprocessed with `image_preprocessing` (default: the model's stored spec and input shape).
    """
    if isinstance(source, CalibrationSet):
        raw, where = dict(source.arrays), source.source
    elif isinstance(source, str | os.PathLike):
        raw, where = _read_path(Path(source), model, image_preprocessing, limit), str(source)
    elif isinstance(source, np.ndarray):
        raw, where = _by_position([source], model, "<array>"), "<array>"
    elif isinstance(source, Mapping):
        raw, where = dict(source), "<dict of arrays>"
    elif isinstance(source, Sequence) and all(isinstance(a, np.ndarray) for a in source):
        arrays = [np.asarray(a) for a in source]
        raw, where = _by_position(arrays, model, "<list of arrays>"), "<list of arrays>"
    else:
        raise CalibrationError(
            f"calibration data of type {type(source).__name__} is not supported; give {_FORMATS}"
        )
    result = CalibrationSet(_check(raw, model, where), where)
    if limit is not None and result.rows > limit:
        keep = np.sort(np.random.default_rng(seed).permutation(result.rows)[:limit])
        result = result.take(keep, f"{where} ({limit} of {result.rows} rows)")
    logger.info("calibration set: %s", result.describe())
    return result


def _by_position(arrays: list[np.ndarray], model: OnnxModel, where: str) -> dict[str, np.ndarray]:
    names = [s.name for s in model.inputs]
    if len(arrays) != len(names):
        raise CalibrationError(
            f"{where} gives {len(arrays)} array(s) but the model has {len(names)} input(s) "
            f"{names}; give one array per input (or a dict {{input name: array}})"
        )
    return dict(zip(names, arrays))


def _check(raw: Mapping[str, Any], model: OnnxModel, where: str) -> dict[str, np.ndarray]:
    specs = {s.name: s for s in model.inputs}
    missing = [n for n in specs if n not in raw]
    extra = [k for k in raw if k not in specs]
    if missing or extra:
        raise CalibrationError(
            f"calibration data from {where} has arrays {list(raw)}, but the model's inputs are "
            f"{list(specs)}; give exactly one array per input, named after it"
        )
    arrays: dict[str, np.ndarray] = {}
    for name, spec in specs.items():
        a = np.asarray(raw[name])
        if a.dtype.kind not in "fiub":
            raise CalibrationError(
                f"calibration array {name!r} from {where} has dtype {a.dtype}; expected numbers "
                f"castable to {spec.dtype} for input {spec.describe()}"
            )
        _check_shape(a.shape, spec, where)
        arrays[name] = np.ascontiguousarray(a, dtype=spec.dtype)
    return arrays


def _check_shape(shape: tuple[int, ...], spec: TensorSpec, where: str) -> None:
    if spec.shape is None:
        return
    ok = len(shape) == len(spec.shape) and all(
        not isinstance(d, int) or d == s for d, s in zip(spec.shape[1:], shape[1:])
    )
    if not ok:
        raise CalibrationError(
            f"calibration array {spec.name!r} from {where} has shape {list(shape)}, but model "
            f"input is {spec.describe()}; give arrays with the batch axis first and the "
            "input's other dims"
        )


# ---------------------------------------------------------------- files


def _read_path(
    path: Path,
    model: OnnxModel,
    image_preprocessing: ImagePreprocessing | None,
    limit: int | None = None,
) -> dict[str, np.ndarray]:
    if not path.exists():
        raise FileNotFoundError(f"calibration data not found: {path}; give {_FORMATS}")
    if path.suffix == ".npy":
        return _by_position([np.load(path, allow_pickle=False)], model, str(path))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if len(arrays) == 1 and len(model.inputs) == 1:
            return {model.inputs[0].name: next(iter(arrays.values()))}
        return arrays
    if path.suffix == ".parquet" or (path.is_dir() and any(path.glob("*.parquet"))):
        return _read_parquet(path, model)
    if path.is_dir():
        return _read_images(path, model, image_preprocessing, limit)
    raise CalibrationError(f"calibration data {path}: unsupported file type; give {_FORMATS}")


def _read_parquet(path: Path, model: OnnxModel) -> dict[str, np.ndarray]:
    import pyarrow.parquet as pq

    from sparkonnx.engine.tensors import column_to_tensor

    table = pq.read_table(path)
    names = table.column_names
    specs = list(model.inputs)
    if len(specs) == 1 and specs[0].name not in names:
        if len(names) != 1:
            raise CalibrationError(
                f"{path} has columns {names}; the model has one input {specs[0].name!r}: name a "
                "column after it or keep a single column"
            )
        columns = {specs[0].name: names[0]}
    else:
        columns = {s.name: s.name for s in specs if s.name in names}
        if len(columns) != len(specs):
            raise CalibrationError(
                f"{path} has columns {names}, but the model's inputs are "
                f"{[s.name for s in specs]}; give one column per input, named after it"
            )
    return {
        spec.name: column_to_tensor(table.column(columns[spec.name]), columns[spec.name], spec)
        for spec in specs
    }


#: Images decoded (then preprocessed to the model's size) at a time from a calibration folder.
_IMAGE_CHUNK = 32


def image_files(folder: Path, limit: int | None = None) -> list[Path]:
    """The image files under `folder`, sorted by path; with `limit`, that many spread evenly
    over the sorted list (every subfolder / class gets its share), not the first ones."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {folder}; give {_FORMATS}"
        )
    if limit is not None and len(files) > limit:
        picks = np.unique(np.linspace(0, len(files) - 1, limit).round().astype(int))
        logger.info("calibration: %d of the %d images under %s", len(picks), len(files), folder)
        files = [files[i] for i in picks]
    return files


def read_image_folder(folder: Path, files: Sequence[Path] | None = None) -> pa.Array:
    """The image files under `folder` (or `files`) as Spark image structs, decoded as
    `read_images` decodes them (50 M pixels at most); unreadable files are logged and become
    null rows."""
    from sparkonnx.engine.image_decode import (
        DECODED_BATCH_SCHEMA,
        DEFAULT_MAX_PIXELS,
        decode_file_batches,
    )

    files = list(files) if files is not None else image_files(folder)
    table = pa.table({"path": [str(f) for f in files], "content": [f.read_bytes() for f in files]})
    batches = decode_file_batches(table.to_batches(), max_pixels=DEFAULT_MAX_PIXELS)
    decoded = pa.Table.from_batches(list(batches), schema=DECODED_BATCH_SCHEMA)
    for path, error in zip(decoded.column("path").to_pylist(), decoded.column("error").to_pylist()):
        if error is not None:
            logger.warning("calibration: skipping %s (%s)", path, error)
    return decoded.column("image").combine_chunks()


def _read_images(
    folder: Path, model: OnnxModel, preprocessing: ImagePreprocessing | None, limit: int | None
) -> dict[str, np.ndarray]:
    """A folder of images -> the model's image input, preprocessed as ImageTransformer does
    (with `preprocessing`, else the model's stored spec and input shape). Only `limit` files
    are read (spread evenly over the folder), `_IMAGE_CHUNK` at a time, so full-size photos
    never pile up on the driver."""
    from sparkonnx.converters.metadata import preprocessing_of
    from sparkonnx.engine.image_preprocess import resolve_preprocessing

    if len(model.inputs) != 1:
        raise CalibrationError(
            f"a folder of images can feed a single-input model; this one has inputs "
            f"{[s.name for s in model.inputs]}; give a .npz or .parquet with one array per input"
        )
    spec = model.inputs[0]
    files = image_files(folder, limit)  # its CalibrationError already says what to give
    parts = []
    try:
        pre = preprocessing or resolve_preprocessing(spec, preprocessing_of(model))
        for start in range(0, len(files), _IMAGE_CHUNK):
            chunk = read_image_folder(folder, files[start : start + _IMAGE_CHUNK])
            parts.append(pre.structs_to_tensor(chunk)[0])
        tensor = np.concatenate(parts)
    except ValueError as exc:
        raise CalibrationError(
            f"images under {folder} cannot feed the model's input {spec.describe()}: {exc}; "
            "give a .npy of input tensors instead"
        ) from exc
    if not len(tensor):
        raise CalibrationError(f"none of the image files under {folder} could be read")
    logger.info("calibration: %d images from %s as %s", len(tensor), folder, pre)
    return {spec.name: tensor}
