"""TFTransformer and TFInputGraph: the seed README's TF example on TF2, every constructor, rank 3,
name errors, persistence. Parity: ONNX Runtime in Spark vs TensorFlow, |diff| <= 1e-6 (sigmoid of
a 2-term dot product in float32; seen: 0 to 6e-8) and 1e-5 for the rank-3 graph."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import Row

from sparkonnx import TFInputGraph, TFTransformer
from sparkonnx.engine.model import UnknownTensorError

tf = pytest.importorskip("tensorflow")

W0 = np.array([[1], [-1]]).astype(np.float32)
ATOL = 1e-6


def seed_points(n_sample: int = 1000, seed: int = 0) -> tuple[list, np.ndarray]:
    """The README's data: 2-D points, Gaussian around two centers, as Python floats."""
    rng = np.random.default_rng(seed)
    samples_0 = [rng.standard_normal(2) + np.array([-1.5, 1.5]) for _ in range(n_sample // 2)]
    samples_1 = [rng.standard_normal(2) + np.array([1.5, -1.5]) for _ in range(n_sample // 2)]
    labels = [0] * (n_sample // 2) + [1] * (n_sample // 2)
    rows = [
        Row(id=i, inputCol=xy.tolist(), label=label)
        for i, (xy, label) in enumerate(zip(samples_0 + samples_1, labels, strict=True))
    ]
    return rows, np.array(samples_0 + samples_1, dtype=np.float32)


@tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="input_tensor")])
def seed_model(x):
    """The README's graph, sigmoid(X @ w0), as a TF2 function."""
    return {"output_tensor": tf.sigmoid(tf.matmul(x, W0))}


def build_graph(graph, with_variable: bool):
    """The README's build_graph in tf.compat.v1 graph mode; returns (output, input)."""
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=[None, 2], name="input_tensor")
        w = tf.compat.v1.Variable(W0, name="w0") if with_variable else W0
        model = tf.sigmoid(tf.matmul(x, w), name="output_tensor")
    return model, x


def outputs_by_id(df, column="outputCol"):
    rows = sorted(df.collect(), key=lambda r: r.id)
    return np.array([r[column] for r in rows], dtype=np.float32)


def ort_run(graph: TFInputGraph, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(graph.model.model_bytes, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


# -- the README example, TF2 --------------------------------------------------------------------
def test_readme_example_tf_function(any_spark):
    rows, points = seed_points()
    sdf = any_spark.createDataFrame(rows)
    expected = seed_model(points)["output_tensor"].numpy()
    gin = TFInputGraph.fromFunction(seed_model)
    transformer = TFTransformer(
        tfInputGraph=gin,
        inputMapping={"inputCol": "input_tensor:0"},
        outputMapping={"output_tensor:0": "outputCol"},
    )
    odf = transformer.transform(sdf)
    assert odf.schema["outputCol"].dataType.simpleString() == "array<float>"
    np.testing.assert_allclose(outputs_by_id(odf), expected, atol=ATOL, rtol=0)
    assert set(odf.columns) == {"id", "inputCol", "label", "outputCol"}


def test_readme_example_graph_and_session(spark):
    """sparkdl's own code path: a graph built in a Session, fromGraph, names without ':0'."""
    rows, points = seed_points(200, seed=1)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        model, x = build_graph(graph, with_variable=True)
        session.run(tf.compat.v1.variables_initializer(graph.get_collection("variables")))
        expected = session.run(model, feed_dict={x: points})
        gin = TFInputGraph.fromGraph(session.graph, session, ["input_tensor"], ["output_tensor"])
    transformer = TFTransformer(
        tfInputGraph=gin,
        inputMapping={"inputCol": "input_tensor"},
        outputMapping={"output_tensor": "outputCol"},
        batchSize=64,
    )
    got = outputs_by_id(transformer.transform(spark.createDataFrame(rows)))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


# -- every TFInputGraph constructor -------------------------------------------------------------
@pytest.fixture(scope="module")
def tf_sources(tmp_path_factory):
    """A checkpoint (with a SignatureDef in its meta graph), a TF1 SavedModel, a TF2 SavedModel
    and a frozen GraphDef of the README graph, with TF's own outputs on a sample."""
    root = tmp_path_factory.mktemp("tf-sources")
    _, points = seed_points(64, seed=2)
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session:
        model, x = build_graph(graph, with_variable=True)
        session.run(tf.compat.v1.variables_initializer(graph.get_collection("variables")))
        expected = session.run(model, feed_dict={x: points})
        saver = tf.compat.v1.train.Saver()
        saver.save(session, str(root / "ckpt" / "model"))
        signature = tf.compat.v1.saved_model.signature_def_utils.predict_signature_def(
            inputs={"features": x}, outputs={"probability": model}
        )
        meta = saver.export_meta_graph()
        meta.signature_def["predict"].CopyFrom(signature)
        (root / "ckpt" / "model.meta").write_bytes(meta.SerializeToString())
        builder = tf.compat.v1.saved_model.Builder(str(root / "tf1_saved_model"))
        builder.add_meta_graph_and_variables(
            session, ["serve"], signature_def_map={"predict": signature}
        )
        builder.save()
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            session, graph.as_graph_def(), ["output_tensor"]
        )

    class Module(tf.Module):
        def __init__(self):
            self.w = tf.Variable(W0)

        @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
        def __call__(self, x):
            return {"probability": tf.sigmoid(tf.matmul(x, self.w))}

    module = Module()
    tf.saved_model.save(module, str(root / "tf2_saved_model"), signatures=module.__call__)
    return {"root": root, "points": points, "expected": expected, "frozen": frozen}


def _constructors(s):
    root = s["root"]
    return {
        "fromGraphDef": lambda: TFInputGraph.fromGraphDef(
            s["frozen"], ["input_tensor:0"], ["output_tensor:0"]
        ),
        "fromCheckpoint": lambda: TFInputGraph.fromCheckpoint(
            root / "ckpt", ["input_tensor"], ["output_tensor"]
        ),
        "fromCheckpointWithSignature": lambda: TFInputGraph.fromCheckpointWithSignature(
            root / "ckpt", "predict"
        ),
        "fromSavedModel": lambda: TFInputGraph.fromSavedModel(
            root / "tf1_saved_model", "serve", ["input_tensor:0"], ["output_tensor:0"]
        ),
        "fromSavedModelWithSignature": lambda: TFInputGraph.fromSavedModelWithSignature(
            root / "tf1_saved_model", "serve", "predict"
        ),
        "fromSavedModel-TF2": lambda: TFInputGraph.fromSavedModel(
            root / "tf2_saved_model",
            ["serve"],
            ["serving_default_x:0"],
            ["StatefulPartitionedCall:0"],
        ),
        "fromSavedModelWithSignature-TF2": lambda: TFInputGraph.fromSavedModelWithSignature(
            root / "tf2_saved_model", "serve", "serving_default"
        ),
    }


NAMES = {  # constructor -> (input name, output name) users write in the mappings
    "fromGraphDef": ("input_tensor:0", "output_tensor:0"),
    "fromCheckpoint": ("input_tensor:0", "output_tensor:0"),
    "fromCheckpointWithSignature": ("features", "probability"),
    "fromSavedModel": ("input_tensor:0", "output_tensor:0"),
    "fromSavedModelWithSignature": ("features", "probability"),
    "fromSavedModel-TF2": ("serving_default_x:0", "StatefulPartitionedCall:0"),
    "fromSavedModelWithSignature-TF2": ("x", "probability"),
}


@pytest.mark.parametrize("constructor", list(NAMES))
def test_every_constructor_matches_tensorflow(tf_sources, constructor):
    gin = _constructors(tf_sources)[constructor]()
    input_name, output_name = NAMES[constructor]
    assert gin.input_names == [input_name] and gin.output_names == [output_name]
    assert gin.input(input_name).dtype == np.float32
    assert gin.conversion is not None and gin.conversion.parity.passed
    got = ort_run(gin, tf_sources["points"])
    np.testing.assert_allclose(got, tf_sources["expected"], atol=ATOL, rtol=0)


def test_signature_graph_in_spark_by_signature_keys(spark, tf_sources):
    gin = _constructors(tf_sources)["fromCheckpointWithSignature"]()
    points = tf_sources["points"]
    df = spark.createDataFrame(
        [(i, p.tolist()) for i, p in enumerate(points)], "id int, f array<float>"
    )
    transformer = TFTransformer(
        tfInputGraph=gin, inputMapping={"f": "features"}, outputMapping={"probability": "p"}
    )
    got = outputs_by_id(transformer.transform(df), "p")
    np.testing.assert_allclose(got, tf_sources["expected"], atol=ATOL, rtol=0)


def test_constructor_errors_name_what_exists(tf_sources):
    root = tf_sources["root"]
    with pytest.raises(KeyError, match=r"no signature 'nope'.*\['predict'\]"):
        TFInputGraph.fromCheckpointWithSignature(root / "ckpt", "nope")
    with pytest.raises(KeyError, match=r"TF2 SavedModel.*serving_default_x:0"):
        TFInputGraph.fromSavedModel(root / "tf2_saved_model", "serve", ["x:0"], ["y:0"])
    with pytest.raises(ValueError, match=r"no meta graph with tags \['train'\]"):
        TFInputGraph.fromSavedModel(root / "tf1_saved_model", "train", ["input_tensor"], ["o"])
    with pytest.raises(TypeError, match="must be a TFInputGraph"):
        TFTransformer(tfInputGraph="graph.pb")
    with pytest.raises(ValueError, match="TFTransformer has no graph"):
        TFTransformer(inputMapping={"a": "b"}).getModel()


# -- tensors of rank 3 ---------------------------------------------------------------------------
RANK3_W = np.arange(2 * 3, dtype=np.float32).reshape(2, 3) / 10


@tf.function(input_signature=[tf.TensorSpec([None, 4, 3, 2], tf.float32, name="cube")])
def rank3_model(x):
    """[N, 4, 3, 2] -> {'mixed': [N, 4, 3, 3] (rank 4), 'total': [N, 3, 3] (rank 3)}."""
    mixed = tf.tanh(tf.einsum("nhwc,cd->nhwd", x, RANK3_W))
    return {"mixed": mixed, "total": tf.reduce_sum(mixed, axis=1)}


def test_rank3_input_flat_or_nested_and_rank3_output(spark):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 4, 3, 2)).astype(np.float32)
    expected = rank3_model(x)
    df = spark.createDataFrame(
        [(i, x[i].reshape(-1).tolist(), x[i].tolist()) for i in range(len(x))],
        "id int, flat array<float>, nested array<array<array<float>>>",
    )
    gin = TFInputGraph.fromFunction(rank3_model)
    for column in ("flat", "nested"):
        transformer = TFTransformer(
            tfInputGraph=gin,
            inputMapping={column: "cube"},
            outputMapping={"total:0": "total", "mixed": "mixed"},
            batchSize=7,
        )
        out = transformer.transform(df)
        assert out.schema["total"].dataType.simpleString() == "array<array<float>>"
        np.testing.assert_allclose(
            outputs_by_id(out, "total"), expected["total"].numpy(), atol=1e-5, rtol=0
        )
        np.testing.assert_allclose(
            outputs_by_id(out, "mixed"), expected["mixed"].numpy(), atol=1e-5, rtol=0
        )


# -- wrong tensor names --------------------------------------------------------------------------
def test_wrong_tensor_name_lists_the_graphs_inputs_and_outputs(spark):
    rows, _ = seed_points(10)
    sdf = spark.createDataFrame(rows)
    graph = tf.Graph()
    build_graph(graph, with_variable=False)
    gin = TFInputGraph.fromGraph(graph, None, ["input_tensor"], ["output_tensor"])
    bad_input = TFTransformer(
        tfInputGraph=gin,
        inputMapping={"inputCol": "input:0"},
        outputMapping={"output_tensor:0": "outputCol"},
    )
    with pytest.raises(UnknownTensorError) as err:
        bad_input.transform(sdf)
    message = str(err.value)
    assert "no input tensor 'input:0'" in message
    assert "'input_tensor:0' float32[?, 2]" in message and "'output_tensor:0'" in message
    bad_output = TFTransformer(
        tfInputGraph=gin,
        inputMapping={"inputCol": "input_tensor"},
        outputMapping={"sigmoid:0": "outputCol"},
    )
    with pytest.raises(UnknownTensorError, match=r"no output tensor 'sigmoid:0'.*output_tensor:0"):
        bad_output.transform(sdf)


# -- persistence --------------------------------------------------------------------------------
def test_pipeline_save_load_keeps_the_onnx_model(spark, workdir):
    rows, points = seed_points(100, seed=4)
    sdf = spark.createDataFrame(rows)
    gin = TFInputGraph.fromFunction(seed_model, feed_names=["X"], fetch_names=["Y"])
    stage = TFTransformer(
        tfInputGraph=gin, inputMapping={"inputCol": "X"}, outputMapping={"Y": "out"}, batchSize=9
    )
    path = str(workdir / "pipeline")
    Pipeline(stages=[stage]).fit(sdf).save(path)
    loaded = PipelineModel.load(path)
    (reloaded,) = loaded.stages
    assert isinstance(reloaded, TFTransformer) and reloaded.getBatchSize() == 9
    assert reloaded.getModel().sha256 == gin.model.sha256
    assert reloaded.getTFInputGraph().input_names == ["X"]
    expected = seed_model(points)["output_tensor"].numpy()
    got = outputs_by_id(loaded.transform(sdf), "out")
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)
    copied = stage.copy()
    assert copied.getTFInputGraph() is gin
