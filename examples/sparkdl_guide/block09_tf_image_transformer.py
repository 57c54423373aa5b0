"""sparkdl's quick user guide, block 9: a TensorFlow graph on images with TFImageTransformer
(the graph is converted to ONNX once, on the driver; executors run ONNX Runtime).

    python examples/sparkdl_guide/block09_tf_image_transformer.py
"""

# Diff from the guide (GUIDE.md); the only edits (TF1 calls through tf.compat.v1):
# - from pyspark.ml.image import ImageSchema
# - from sparkdl import TFImageTransformer
# - import sparkdl.graph.utils as tfx  # strip_and_freeze_until was moved from sparkdl.transformers to sparkdl.graph.utils in 0.2.0
# - from sparkdl.transformers import utils
# + from sparkonnx import ImageSchema
# + from sparkonnx import TFImageTransformer
# + import sparkonnx.graph.utils as tfx  # strip_and_freeze_until was moved from sparkdl.transformers to sparkdl.graph.utils in 0.2.0
# + from sparkonnx.transformers import utils
# - with tf.Session(graph=graph) as sess:
# + with tf.compat.v1.Session(graph=graph) as sess:
# -     resized_images = tf.image.resize_images(image_arr, (299, 299))
# +     resized_images = tf.compat.v1.image.resize_images(image_arr, (299, 299))
import guide_setup

spark = guide_setup.spark_session()
sample_img_dir = guide_setup.sample_img_dir()

# fmt: off
# ---- guide block 9
from sparkonnx import ImageSchema
from sparkonnx import TFImageTransformer
import sparkonnx.graph.utils as tfx  # strip_and_freeze_until was moved from sparkdl.transformers to sparkdl.graph.utils in 0.2.0
from sparkonnx.transformers import utils
import tensorflow as tf

graph = tf.Graph()
with tf.compat.v1.Session(graph=graph) as sess:
    image_arr = utils.imageInputPlaceholder()
    resized_images = tf.compat.v1.image.resize_images(image_arr, (299, 299))
    # the following step is not necessary for this graph, but can be for graphs with variables, etc
    frozen_graph = tfx.strip_and_freeze_until([resized_images], graph, sess, return_graph=True)

transformer = TFImageTransformer(inputCol="image", outputCol="predictions", graph=frozen_graph,
                                 inputTensor=image_arr, outputTensor=resized_images,
                                 outputMode="image")

image_df = ImageSchema.readImages(sample_img_dir)
processed_image_df = transformer.transform(image_df)
# fmt: on
