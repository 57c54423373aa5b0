"""Models kept on disk (graph + external data): identity, checks, what refuses them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from sparkonnx import testing
from sparkonnx.engine import model as model_module
from sparkonnx.engine.model import InvalidModelError, ModelOnDiskError, OnnxModel
from sparkonnx.engine.model_files import FORMAT, hash_members
from sparkonnx.engine.runnable import ModelNotRunnableError, check_operators, check_runnable
from tests.security.models import evil_on_disk


def on_disk(folder: Path, widths=(16, 32, 4), location="weights.bin") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return testing.save_with_external_data(testing.mlp(widths), folder / "m.onnx", location)


def test_a_model_over_the_limit_stays_on_disk_with_its_signature(tmp_path, monkeypatch):
    path = on_disk(tmp_path)
    monkeypatch.setattr(model_module, "ON_DISK_BYTES", 100)
    model = OnnxModel.from_path(path)
    assert model.on_disk and model.files is not None
    assert model.files.data == ("weights.bin",)
    weights = (tmp_path / "weights.bin").stat().st_size
    assert model.size_bytes == path.stat().st_size + weights > 16 * 32 * 4
    assert model.describe() == "inputs [x: float32[N, 16]], outputs [y: float32[N, 4]]"
    with pytest.raises(ModelOnDiskError, match=r"m\.onnx is kept on disk .* use its path"):
        model.model_bytes  # noqa: B018
    x = np.ones((3, 16), np.float32)
    session = ort.InferenceSession(model.ort_model(), providers=["CPUExecutionProvider"])
    inline = ort.InferenceSession(testing.mlp((16, 32, 4)).SerializeToString())
    np.testing.assert_allclose(session.run(None, {"x": x})[0], inline.run(None, {"x": x})[0])


def test_below_the_limit_external_data_is_inlined_as_before(tmp_path):
    model = OnnxModel.from_path(on_disk(tmp_path))
    assert not model.on_disk and model.files is None
    assert model.sha256 == hashlib.sha256(model.model_bytes).hexdigest()


def test_the_identity_is_the_streamed_hash_of_the_graph_and_its_data(tmp_path):
    path = on_disk(tmp_path)
    model = OnnxModel.from_path(path, keep_on_disk=True)
    graph, data = path.read_bytes(), (tmp_path / "weights.bin").read_bytes()
    expected = hashlib.sha256(
        FORMAT + b"\0%d\0" % len(graph) + graph + b"weights.bin\0%d\0" % len(data) + data
    ).hexdigest()
    assert model.sha256 == expected
    assert hash_members([("", path), ("weights.bin", tmp_path / "weights.bin")])[0] == expected
    # the same files in another folder are the same model; one changed byte is another
    other = on_disk(tmp_path / "copy")
    assert OnnxModel.from_path(other, keep_on_disk=True).sha256 == expected
    with open(tmp_path / "copy" / "weights.bin", "r+b") as handle:
        handle.write(b"\x01")
    assert OnnxModel.from_path(other, keep_on_disk=True).sha256 != expected


def test_the_data_file_is_never_read_into_memory_by_the_checks(tmp_path):
    """A 256 MiB sparse data file: loading, checking and hashing keep RSS far below it."""
    import resource

    path = testing.write_big_matmul(tmp_path, k=8192, n=8192)  # 256 MiB of weights
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = OnnxModel.from_path(path, keep_on_disk=True)
    check_operators(model)
    assert model.size_bytes > 2**28 and model.inputs[0].shape == ("N", 8192)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 64, f"peak RSS grew by {grown_mib:.0f} MiB"


@pytest.mark.parametrize(
    ("location", "refused"),
    [
        ("../secret.bin", r"'\.\./secret\.bin' points outside the directory"),
        ("/etc/hostname", r"should be a relative path, but it is an absolute path"),
        ("link.bin", r"'link\.bin' is a symbolic link"),
        ("missing.bin", r"'missing\.bin' cannot be read \(No such file"),
        ("sub", r"'sub' is not a regular file"),
    ],
)
def test_data_outside_the_folder_is_refused_on_disk_too(tmp_path, location, refused):
    (tmp_path / "secret.bin").write_bytes(bytes(64))
    models = tmp_path / "models"
    models.mkdir()
    (models / "link.bin").symlink_to(tmp_path / "secret.bin")
    (models / "sub").mkdir()
    path = models / "leak.onnx"
    path.write_bytes(_external(location).SerializeToString())
    with pytest.raises(InvalidModelError, match=rf"leak\.onnx: its external data .*{refused}"):
        OnnxModel.from_path(path, keep_on_disk=True)


def test_a_truncated_data_file_names_the_tensor_and_its_bytes(tmp_path):
    path = tmp_path / "short.onnx"
    path.write_bytes(_external("w.bin", length=9).SerializeToString())
    (tmp_path / "w.bin").write_bytes(bytes(5))
    with pytest.raises(InvalidModelError, match=r"tensor 'w' needs bytes 0\.\.9 of 'w\.bin', wh"):
        OnnxModel.from_path(path, keep_on_disk=True)


def test_operators_are_checked_without_a_session(tmp_path):
    model = OnnxModel.from_path(evil_on_disk(tmp_path), keep_on_disk=True)
    assert model.on_disk
    with pytest.raises(ModelNotRunnableError, match=r"'n_evil'.*com\.evil:EvilOp.*it\. \(hint\)"):
        check_operators(model, ". (hint)")
    with pytest.raises(ModelNotRunnableError, match=r"operator 'EvilOp' of domain 'com\.evil'"):
        check_runnable(model)  # a session built from the path


def _external(location: str, length: int = 9) -> onnx.ModelProto:
    from tests.security.models import external_data

    return external_data(location, length)
