"""sparkdl's quick user guide, blocks 12 to 15: a TensorFlow graph on tensor columns with
TFInputGraph and TFTransformer (converted to ONNX once, on the driver).

    python examples/sparkdl_guide/block12_tf_transformer.py
"""

# Diff from the guide (GUIDE.md); the only edits (TF1 calls through tf.compat.v1):
# -   X = tf.placeholder(tf.float32, shape=[None, 2], name="input_tensor")
# +   X = tf.compat.v1.placeholder(tf.float32, shape=[None, 2], name="input_tensor")
# - with tf.Session() as sess:
# + with tf.compat.v1.Session() as sess:
# - from sparkdl import TFTransformer
# - from sparkdl.graph.input import TFInputGraph
# - import sparkdl.graph.utils as tfx
# + from sparkonnx import TFTransformer
# + from sparkonnx.graph.input import TFInputGraph
# + import sparkonnx.graph.utils as tfx
# - with tf.Session(graph=graph) as session, graph.as_default():
# + with tf.compat.v1.Session(graph=graph) as session, graph.as_default():
import guide_setup

spark = guide_setup.spark_session()

# fmt: off
# ---- guide block 12
import numpy as np
from pyspark.sql.types import Row

n_sample = 1000
center_0 = [-1.5, 1.5]
center_1 = [1.5, -1.5]

def to_row(args):
  xy, l = args
  return Row(inputCol = xy, label = l)

samples_0 = [np.random.randn(2) + center_0 for _ in range(n_sample//2)]
labels_0 = [0 for _ in range(n_sample//2)]
samples_1 = [np.random.randn(2) + center_1 for _ in range(n_sample//2)]
labels_1 = [1 for _ in range(n_sample//2)]

rows = map(to_row, zip(map(lambda x: x.tolist(), samples_0 + samples_1), labels_0 + labels_1))
sdf = spark.createDataFrame(rows)

# ---- guide block 13
import tensorflow as tf

def build_graph(sess, w0):
  X = tf.compat.v1.placeholder(tf.float32, shape=[None, 2], name="input_tensor")
  model = tf.sigmoid(tf.matmul(X, w0), name="output_tensor")
  return model, X

# ---- guide block 14
w0 = np.array([[1], [-1]]).astype(np.float32)
with tf.compat.v1.Session() as sess:
  model, X = build_graph(sess, w0)
  output = sess.run(model, feed_dict = {
    X : samples_0 + samples_1
  })
# ---- guide block 15
from sparkonnx import TFTransformer
from sparkonnx.graph.input import TFInputGraph
import sparkonnx.graph.utils as tfx

graph = tf.Graph()
with tf.compat.v1.Session(graph=graph) as session, graph.as_default():
    _, _ = build_graph(session, w0)
    gin = TFInputGraph.fromGraph(session.graph, session,
                                 ["input_tensor"], ["output_tensor"])

transformer = TFTransformer(
    tfInputGraph=gin,
    inputMapping={'inputCol': tfx.tensor_name("input_tensor")},
    outputMapping={tfx.tensor_name("output_tensor"): 'outputCol'})

odf = transformer.transform(sdf)
# fmt: on
