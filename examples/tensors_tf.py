"""The seed README's TensorFlow example on TF2: a graph applied to a DataFrame of 2-D points.

sparkdl built `sigmoid(X @ w0)` with `tf.placeholder` in a `tf.Session`; in TF2 the natural
graph is a `tf.function`. It is converted once to ONNX on the driver (TFInputGraph), then
TFTransformer runs it on the executors with ONNX Runtime; the result is compared with
TensorFlow's own output. The sparkdl-style graph + Session form is shown too.

    .venv/bin/python examples/tensors_tf.py
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from pyspark.sql import Row, SparkSession


def main() -> None:
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("sparkonnx-tensors-tf")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    # First we generate a sample dataset of 2-dimensional points, Gaussian distributed around
    # two different centers.
    n_sample = 1000
    center_0 = [-1.5, 1.5]
    center_1 = [1.5, -1.5]

    def to_row(args):
        xy, label = args
        return Row(inputCol=xy, label=label)

    samples_0 = [np.random.randn(2) + center_0 for _ in range(n_sample // 2)]
    labels_0 = [0 for _ in range(n_sample // 2)]
    samples_1 = [np.random.randn(2) + center_1 for _ in range(n_sample // 2)]
    labels_1 = [1 for _ in range(n_sample // 2)]
    rows = map(to_row, zip(map(lambda x: x.tolist(), samples_0 + samples_1), labels_0 + labels_1))
    sdf = spark.createDataFrame(rows)

    # The model: a TF2 function with a named input; the returned dict names the output.
    import tensorflow as tf

    w0 = np.array([[1], [-1]]).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 2], tf.float32, name="input_tensor")])
    def model(x):
        return {"output_tensor": tf.sigmoid(tf.matmul(x, w0))}

    # Predicting on a single node with TensorFlow.
    points = np.array(samples_0 + samples_1, dtype=np.float32)
    output = model(points)["output_tensor"].numpy()

    # The same in Spark, distributed, on ONNX Runtime.
    from sparkonnx import TFInputGraph, TFTransformer

    gin = TFInputGraph.fromFunction(model)
    transformer = TFTransformer(
        tfInputGraph=gin,
        inputMapping={"inputCol": "input_tensor:0"},
        outputMapping={"output_tensor:0": "outputCol"},
    )
    odf = transformer.transform(sdf)
    odf.show(5, truncate=False)
    got = np.array([r.outputCol for r in odf.select("outputCol").collect()], dtype=np.float32)
    diff = float(np.abs(got - output).max())
    print(f"TFTransformer vs TensorFlow on {len(got)} rows: max |diff| = {diff:.2e}")
    assert diff <= 1e-6, diff

    # sparkdl's own form still works: a graph built in a Session, passed to fromGraph.
    graph = tf.Graph()
    with tf.compat.v1.Session(graph=graph) as session, graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=[None, 2], name="input_tensor")
        tf.sigmoid(tf.matmul(x, w0), name="output_tensor")
        gin = TFInputGraph.fromGraph(session.graph, session, ["input_tensor"], ["output_tensor"])
    accuracy = (
        TFTransformer(
            tfInputGraph=gin,
            inputMapping={"inputCol": "input_tensor"},
            outputMapping={"output_tensor": "outputCol"},
        )
        .transform(sdf)
        .selectExpr("avg(cast((outputCol[0] >= 0.5) = (label = 1) AS int)) AS accuracy")
        .first()
        .accuracy
    )
    print(f"fromGraph + Session: accuracy of sigmoid(X @ w0) as a classifier: {accuracy:.3f}")
    spark.stop()


if __name__ == "__main__":
    main()
