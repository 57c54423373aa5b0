"""sparkdl's quick user guide, block 8: ImageNet predictions with DeepImagePredictor.

python examples/sparkdl_guide/block08_deep_image_predictor.py
"""

# Diff from the guide (GUIDE.md); the only edits (a smaller stand-in model, random weights: the
# top 10 classes are the API's shape, not real predictions):
# - from pyspark.ml.image import ImageSchema
# - from sparkdl import DeepImagePredictor
# + from sparkonnx import ImageSchema
# + from sparkonnx import DeepImagePredictor
# - predictor = DeepImagePredictor(inputCol="image", outputCol="predicted_labels", modelName="InceptionV3", decodePredictions=True, topK=10)
# + predictor = DeepImagePredictor(inputCol="image", outputCol="predicted_labels", modelName="MobileNetV3Small", weights=None, decodePredictions=True, topK=10)
import guide_setup

spark = guide_setup.spark_session()
sample_img_dir = guide_setup.sample_img_dir()

# fmt: off
# ---- guide block 8
from sparkonnx import ImageSchema
from sparkonnx import DeepImagePredictor

image_df = ImageSchema.readImages(sample_img_dir)

predictor = DeepImagePredictor(inputCol="image", outputCol="predicted_labels", modelName="MobileNetV3Small", weights=None, decodePredictions=True, topK=10)
predictions_df = predictor.transform(image_df)
# fmt: on
