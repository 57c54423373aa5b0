"""sparkdl's quick user guide, block 4: transfer learning with DeepImageFeaturizer.

python examples/sparkdl_guide/block04_transfer_learning.py
"""

# Diff from the guide (GUIDE.md); the only edits. A smaller stand-in model with random weights
# (no download), and the guide's own bug fixed: its first select drops "prediction", which the
# next line selects, so the block fails as written on any Spark version.
# - from sparkdl import DeepImageFeaturizer
# + from sparkonnx import DeepImageFeaturizer
# - featurizer = DeepImageFeaturizer(inputCol="image", outputCol="features", modelName="InceptionV3")
# + featurizer = DeepImageFeaturizer(inputCol="image", outputCol="features", modelName="MobileNetV3Small", weights=None)
# - df = model.transform(train_images_df.limit(10)).select("image", "probability",  "uri", "label")
# + df = model.transform(train_images_df.limit(10)).select("image", "probability", "prediction", "uri", "label")
import guide_setup

spark = guide_setup.spark_session()
train_images_df = guide_setup.train_images_df(spark)  # cat and space photos, labels 0 / 1

# fmt: off
# ---- guide block 4
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.evaluation import MulticlassClassificationEvaluator
from pyspark.ml import Pipeline
from sparkonnx import DeepImageFeaturizer

featurizer = DeepImageFeaturizer(inputCol="image", outputCol="features", modelName="MobileNetV3Small", weights=None)
lr = LogisticRegression(maxIter=20, regParam=0.05, elasticNetParam=0.3, labelCol="label")
p = Pipeline(stages=[featurizer, lr])

model = p.fit(train_images_df)    # train_images_df is a dataset of images and labels

# Inspect training error
df = model.transform(train_images_df.limit(10)).select("image", "probability", "prediction", "uri", "label")
predictionAndLabels = df.select("prediction", "label")
evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
print("Training set accuracy = " + str(evaluator.evaluate(predictionAndLabels)))
# fmt: on
