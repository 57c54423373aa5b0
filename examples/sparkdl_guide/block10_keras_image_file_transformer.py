"""sparkdl's quick user guide, blocks 10 and 11: a Keras model on image files with
KerasImageFileTransformer (the user's loader runs on the executors; the model on ONNX Runtime).

    python examples/sparkdl_guide/block10_keras_image_file_transformer.py
"""

# Diff from the guide (GUIDE.md); the only edits. A smaller stand-in for InceptionV3 with no
# pretrained weights; the guide's /tmp and /data/myimages are this run's folders (`dirpath`,
# which the guide uses without defining, is the photo folder), and the model is saved under
# the name the transformer reads (the guide saves model-full.h5 but reads model-full-tmp.h5).
# - from keras.applications import InceptionV3
# + from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out
# - model = InceptionV3(weights="imagenet")
# - model.save('/tmp/model-full.h5')
# + model = SmallImageNet(weights=None)
# + model.save(f'{tmp}/model-full-tmp.h5')
# - from sparkdl import KerasImageFileTransformer
# + from sparkonnx import KerasImageFileTransformer
# -                                         modelFile='/tmp/model-full-tmp.h5',  # local file path for model
# +                                         modelFile=f'{tmp}/model-full-tmp.h5',  # local file path for model
# - files = [os.path.abspath(os.path.join(dirpath, f)) for f in os.listdir("/data/myimages") if f.endswith('.jpg')]
# + files = [os.path.abspath(os.path.join(dirpath, f)) for f in os.listdir(sample_img_dir) if f.endswith('.jpg')]
import guide_setup

spark = guide_setup.spark_session()
sqlContext = guide_setup.sql_context(spark)
tmp = guide_setup.tmp_dir()  # the guide's /tmp
sample_img_dir = dirpath = guide_setup.sample_img_dir()  # the guide's /data/myimages

# fmt: off
# ---- guide block 10
from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out

model = SmallImageNet(weights=None)
model.save(f'{tmp}/model-full-tmp.h5')
# ---- guide block 11
from keras.applications.inception_v3 import preprocess_input
from keras.preprocessing.image import img_to_array, load_img
import numpy as np
import os
from pyspark.sql.types import StringType
from sparkonnx import KerasImageFileTransformer

def loadAndPreprocessKerasInceptionV3(uri):
  # this is a typical way to load and prep images in keras
  image = img_to_array(load_img(uri, target_size=(299, 299)))  # image dimensions for InceptionV3
  image = np.expand_dims(image, axis=0)
  return preprocess_input(image)

transformer = KerasImageFileTransformer(inputCol="uri", outputCol="predictions",
                                        modelFile=f'{tmp}/model-full-tmp.h5',  # local file path for model
                                        imageLoader=loadAndPreprocessKerasInceptionV3,
                                        outputMode="vector")

files = [os.path.abspath(os.path.join(dirpath, f)) for f in os.listdir(sample_img_dir) if f.endswith('.jpg')]
uri_df = sqlContext.createDataFrame(files, StringType()).toDF("uri")

keras_pred_df = transformer.transform(uri_df)
# fmt: on
