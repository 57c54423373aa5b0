import numpy as np
import onnx
import pytest

from sparkonnx import testing
from sparkonnx.engine.model import InvalidModelError, OnnxModel, UnknownTensorError


def test_signature_hash_and_metadata(tmp_path):
    proto = testing.mlp((4, 8, 3))
    onnx.helper.set_model_props(proto, {"source": "unit-test", "labels": "a,b,c"})
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    from_file = OnnxModel.from_path(path)
    from_bytes = OnnxModel.from_bytes(path.read_bytes())
    assert from_file.sha256 == from_bytes.sha256
    assert len(from_file.sha256) == 64
    (x,) = from_file.inputs
    assert (x.name, x.dtype, x.shape) == ("x", np.dtype("float32"), ("N", 4))
    assert x.static_inner_shape == (4,)
    assert from_file.outputs[0].shape == ("N", 3)
    assert from_file.metadata == {"source": "unit-test", "labels": "a,b,c"}
    assert from_file.opset == testing.OPSET
    assert "x: float32[N, 4]" in from_file.describe()


def test_initializers_are_not_inputs():
    proto = testing.mlp((4, 3))
    # old exporters list weights as graph inputs too; they must not count as model inputs
    proto.graph.input.extend(
        [onnx.helper.make_tensor_value_info("w0", onnx.TensorProto.FLOAT, [4, 3])]
    )
    assert [s.name for s in OnnxModel.load(proto).inputs] == ["x"]


def test_truncated_file_is_a_clear_error(tmp_path):
    data = testing.mlp().SerializeToString()
    path = tmp_path / "broken.onnx"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(InvalidModelError, match=r"broken\.onnx.*(truncated|invalid)"):
        OnnxModel.from_path(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"", "empty file"), (b"this is not onnx at all" * 10, "not")],
)
def test_not_onnx_bytes(payload, message):
    with pytest.raises(InvalidModelError, match=message):
        OnnxModel.from_bytes(payload)


def test_checker_failure_names_the_problem():
    proto = testing.mlp((4, 3))
    proto.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(InvalidModelError, match="invalid ONNX model"):
        OnnxModel.load(proto)


def test_missing_file_and_wrong_type(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx"):
        OnnxModel.load(tmp_path / "nope.onnx")
    with pytest.raises(TypeError, match="got int"):
        OnnxModel.load(42)  # type: ignore[arg-type]


def test_unknown_tensor_lists_real_names():
    model = OnnxModel.load(testing.two_in_two_out())
    assert model.input("a:0").name == "a"
    with pytest.raises(UnknownTensorError, match=r"no input named 'c'.*'a', 'b'"):
        model.input("c")
    with pytest.raises(UnknownTensorError, match=r"'sum', 'prod'"):
        model.output("total")


def test_external_data_is_inlined(tmp_path):
    proto = testing.mlp((64, 64, 2))
    path = tmp_path / "ext.onnx"
    onnx.save_model(proto, path, save_as_external_data=True, size_threshold=0, location="w.bin")
    model = OnnxModel.from_path(path)
    assert model.size_bytes > 64 * 64 * 4
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.proto.graph.initializer)
    import onnxruntime as ort

    x = np.ones((2, 64), np.float32)
    inline = ort.InferenceSession(model.model_bytes, providers=["CPUExecutionProvider"])
    fresh = testing.mlp((64, 64, 2)).SerializeToString()
    reference = ort.InferenceSession(fresh, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(inline.run(None, {"x": x})[0], reference.run(None, {"x": x})[0])
