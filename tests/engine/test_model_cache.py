"""The executors' disk cache of on-disk models: fill once, reuse across processes, replace a
corrupt entry, refuse a bad copy, two writers at once, where it lives."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from sparkonnx import testing
from sparkonnx.engine import model_cache
from sparkonnx.engine.model import OnnxModel
from sparkonnx.engine.model_cache import ModelCacheError, cache_dir, cached_model
from tests.engine.cache_writer import fill_after_barrier


@pytest.fixture()
def shipped(tmp_path: Path) -> OnnxModel:
    """A small model kept on disk, as the executor's Spark files would hold it."""
    folder = tmp_path / "shipped"
    folder.mkdir()
    path = testing.save_with_external_data(testing.mlp((16, 32, 4), seed=2), folder / "m.onnx")
    return OnnxModel.from_path(path, keep_on_disk=True)


def sources(model: OnnxModel) -> dict[str, str]:
    assert model.files is not None
    return {name: str(path) for name, path in model.files.members()}


def fetch(model: OnnxModel, cache: Path, source=None) -> Path:
    assert model.files is not None
    given = sources(model)
    return cached_model(
        model.sha256, "m.onnx", model.files.data, source or given.__getitem__, cache
    )


def as_new_process() -> None:
    """Forget what this process verified, as a new worker or application would."""
    model_cache._verified.clear()


def refuse(name: str) -> str:
    raise AssertionError(f"the cache copied {name!r} again")


def test_first_use_copies_and_later_processes_reuse_the_entry(shipped, tmp_path):
    cache = tmp_path / "cache"
    graph = fetch(shipped, cache)
    assert graph == cache / shipped.sha256 / "m.onnx"
    assert (graph.parent / "weights.bin").read_bytes() == (
        shipped.files.folder / "weights.bin"
    ).read_bytes()
    x = np.ones((2, 16), np.float32)
    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    expected = ort.InferenceSession(testing.mlp((16, 32, 4), seed=2).SerializeToString())
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected.run(None, {"x": x})[0])
    inode = os.stat(graph.parent / "weights.bin").st_ino
    assert fetch(shipped, cache, refuse) == graph  # same process
    as_new_process()
    assert fetch(shipped, cache, refuse) == graph  # hashed again, not copied
    assert os.stat(graph.parent / "weights.bin").st_ino == inode
    assert sorted(p.name for p in cache.iterdir()) == [shipped.sha256]  # no temporary left


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
def test_a_corrupt_cached_file_is_replaced(shipped, tmp_path, damage):
    cache = tmp_path / "cache"
    cached = fetch(shipped, cache).parent / "weights.bin"
    good = cached.read_bytes()
    if damage == "flip a byte":
        cached.write_bytes(bytes([good[0] ^ 1]) + good[1:])
    elif damage == "truncate":
        cached.write_bytes(good[:-4])
    else:
        cached.unlink()
    as_new_process()
    copied: list[str] = []
    given = sources(shipped)
    fetch(shipped, cache, lambda name: copied.append(name) or given[name])
    assert copied == ["", "weights.bin"]
    assert cached.read_bytes() == good
    assert sorted(p.name for p in cache.iterdir()) == [shipped.sha256]


def test_a_shipped_copy_with_another_hash_is_refused_and_not_cached(shipped, tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" + (shipped.files.folder / "weights.bin").read_bytes()[1:])
    given = {**sources(shipped), "weights.bin": str(bad)}
    cache = tmp_path / "cache"
    with pytest.raises(ModelCacheError, match=rf"files of model {shipped.sha256[:12]}.* hash to"):
        fetch(shipped, cache, given.__getitem__)
    assert list(cache.iterdir()) == []


def test_two_processes_filling_the_cache_at_once_agree(shipped, tmp_path):
    """Both copy at the same time; one rename wins, the other keeps the winner's entry."""
    cache = tmp_path / "cache"
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    args = (str(cache), shipped.sha256, list(shipped.files.data), sources(shipped))
    workers = [
        context.Process(target=fill_after_barrier, args=(*args, barrier, results)) for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert {graph for graph, _ in outcomes} == {str(cache / shipped.sha256 / "m.onnx")}
    short = shipped.sha256[:12]
    messages = sorted(m for _, log in outcomes for m in log)
    assert messages == [
        f"model {short} cached in {cache / shipped.sha256}",
        f"model {short}: another process cached it first",
    ]
    assert sorted(p.name for p in cache.iterdir()) == [shipped.sha256]
    as_new_process()
    assert fetch(shipped, cache, refuse).is_file()  # the entry hashes right


def test_where_the_cache_lives(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARKONNX_MODEL_CACHE", raising=False)
    monkeypatch.delenv("SPARKONNX_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "sparkonnx" / "models"
    monkeypatch.setenv("SPARKONNX_CACHE", str(tmp_path / "all"))
    assert cache_dir() == tmp_path / "all" / "models"
    monkeypatch.setenv("SPARKONNX_MODEL_CACHE", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(str(tmp_path / "conf")) == tmp_path / "conf"  # the Spark conf wins
