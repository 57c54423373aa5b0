import threading

import numpy as np
import onnxruntime as ort
import pytest

from sparkonnx import testing
from sparkonnx.engine.providers import plan_providers
from sparkonnx.engine.sessions import SessionCache, SessionOptions, run_batched

CPU_PLAN = plan_providers("cpu")


def _loader(proto, calls):
    def load():
        calls.append(1)
        return proto.SerializeToString()

    return load


def test_one_session_per_key_across_threads():
    cache = SessionCache(max_sessions=2)
    calls: list[int] = []
    loader = _loader(testing.mlp((4, 8, 2)), calls)
    got = []
    threads = [
        threading.Thread(target=lambda: got.append(cache.get("abc", loader, CPU_PLAN)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert cache.created == 1 and len(calls) == 1
    assert all(s is got[0] for s in got)
    assert cache.hits == 7
    assert got[0].device == "cpu" and got[0].input_names == ("x",)


def test_options_are_part_of_the_key_and_cache_is_bounded():
    cache = SessionCache(max_sessions=2)
    proto = testing.mlp((4, 2))
    calls: list[int] = []
    one = cache.get("m", _loader(proto, calls), CPU_PLAN, SessionOptions(intra_op_threads=1))
    two = cache.get("m", _loader(proto, calls), CPU_PLAN, SessionOptions(intra_op_threads=2))
    assert one is not two and cache.created == 2
    cache.get("other", _loader(testing.mlp((4, 3)), calls), CPU_PLAN)
    assert len(cache) == 2  # the least recently used one was evicted
    cache.get("m", _loader(proto, calls), CPU_PLAN, SessionOptions(intra_op_threads=1))
    assert cache.created == 4


def test_batched_run_equals_one_run():
    proto = testing.mlp((16, 32, 5))
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((103, 16)).astype(np.float32)
    (expected,) = session.run(["y"], {"x": x})
    for batch_size in (1, 10, 103, 1000, None):
        out = run_batched(session, {"x": x}, batch_size, ["y"])
        np.testing.assert_allclose(out["y"], expected, rtol=1e-6, atol=1e-6)


def test_batched_run_multi_io():
    session = ort.InferenceSession(
        testing.two_in_two_out(3).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    a = np.arange(21, dtype=np.float32).reshape(7, 3)
    b = np.ones((7, 3), dtype=np.float32) * 2
    out = run_batched(session, {"a": a, "b": b}, 3, ["prod", "sum"])
    np.testing.assert_array_equal(out["sum"], a + b)
    np.testing.assert_array_equal(out["prod"], a * b)


def test_batched_run_errors():
    session = ort.InferenceSession(
        testing.two_in_two_out(3).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    a = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="different numbers of rows"):
        run_batched(session, {"a": a, "b": a[:2]}, 2, ["sum"])
    with pytest.raises(ValueError, match="batchSize must be a positive integer"):
        run_batched(session, {"a": a, "b": a}, 0, ["sum"])
