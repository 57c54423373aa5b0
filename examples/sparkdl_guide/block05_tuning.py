"""sparkdl's quick user guide, blocks 5 to 7: hyperparameter tuning of a Keras model on image
files with KerasImageFileEstimator and CrossValidator (each param map trains in a Spark task).

    python examples/sparkdl_guide/block05_tuning.py
"""

# Diff from the guide (GUIDE.md); the only edits. A smaller stand-in for InceptionV3 with no
# pretrained weights; the guide's /tmp is this run's folder, and the model is saved under the
# name the estimator reads (the guide saves model-full.h5 but reads model-full-tmp.h5).
# - from keras.applications import InceptionV3
# + from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out
# - model = InceptionV3(weights="imagenet")
# - model.save('/tmp/model-full.h5')
# + model = SmallImageNet(weights=None)
# + model.save(f'{tmp}/model-full-tmp.h5')
# - from sparkdl.estimators.keras_image_file_estimator import KerasImageFileEstimator
# + from sparkonnx.estimators.keras_image_file_estimator import KerasImageFileEstimator
# -   img = (PIL.Image.open(local_uri).convert('RGB').resize((299, 299), PIL.Image.ANTIALIAS))
# +   img = (PIL.Image.open(local_uri).convert('RGB').resize((299, 299), PIL.Image.LANCZOS))
# -                                      modelFile='/tmp/model-full-tmp.h5' # local file path for model
# +                                      modelFile=f'{tmp}/model-full-tmp.h5' # local file path for model
import guide_setup

spark = guide_setup.spark_session()
tmp = guide_setup.tmp_dir()  # the guide's /tmp
train_df = guide_setup.train_df(spark)  # uri, label (0 cat, 1 space), one_hot_label

# fmt: off
# ---- guide block 5
from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out

model = SmallImageNet(weights=None)
model.save(f'{tmp}/model-full-tmp.h5')
# ---- guide block 6
import PIL.Image
import numpy as np
from keras.applications.imagenet_utils import preprocess_input
from sparkonnx.estimators.keras_image_file_estimator import KerasImageFileEstimator

def load_image_from_uri(local_uri):
  img = (PIL.Image.open(local_uri).convert('RGB').resize((299, 299), PIL.Image.LANCZOS))
  img_arr = np.array(img).astype(np.float32)
  img_tnsr = preprocess_input(img_arr[np.newaxis, :])
  return img_tnsr

estimator = KerasImageFileEstimator( inputCol="uri",
                                     outputCol="prediction",
                                     labelCol="one_hot_label",
                                     imageLoader=load_image_from_uri,
                                     kerasOptimizer='adam',
                                     kerasLoss='categorical_crossentropy',
                                     modelFile=f'{tmp}/model-full-tmp.h5' # local file path for model
                                   )
# ---- guide block 7
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder

paramGrid = (
  ParamGridBuilder()
  .addGrid(estimator.kerasFitParams, [{"batch_size": 32, "verbose": 0},
                                      {"batch_size": 64, "verbose": 0}])
  .build()
)
bc = BinaryClassificationEvaluator(rawPredictionCol="prediction", labelCol="label" )
cv = CrossValidator(estimator=estimator, estimatorParamMaps=paramGrid, evaluator=bc, numFolds=2)

cvModel = cv.fit(train_df)
# fmt: on
