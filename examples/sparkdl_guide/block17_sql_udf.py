"""sparkdl's quick user guide, blocks 17 to 21: Keras image models as SQL functions with
registerKerasImageUDF, then a SQL query over an image table.

    python examples/sparkdl_guide/block17_sql_udf.py
"""

# Diff from the guide (GUIDE.md); the only edits. A smaller stand-in for InceptionV3 with no
# pretrained weights; the guide's /tmp is this run's folder (block 18 reads the model file that
# blocks 5 and 10 save: guide_setup saves it here too); block 21 is the guide's SQL, run with
# spark.sql.
# - from keras.applications import InceptionV3
# - from sparkdl.udf.keras_image_model import registerKerasImageUDF
# + from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out
# + from sparkonnx.udf.keras_image_model import registerKerasImageUDF
# - registerKerasImageUDF("inceptionV3_udf", InceptionV3(weights="imagenet"))
# + registerKerasImageUDF("inceptionV3_udf", SmallImageNet(weights=None))
# - registerKerasImageUDF("my_custom_keras_model_udf", "/tmp/model-full-tmp.h5")
# + registerKerasImageUDF("my_custom_keras_model_udf", f"{tmp}/model-full-tmp.h5")
# - from keras.applications import InceptionV3
# - from sparkdl.udf.keras_image_model import registerKerasImageUDF
# + from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out
# + from sparkonnx.udf.keras_image_model import registerKerasImageUDF
# - registerKerasImageUDF("inceptionV3_udf_with_preprocessing", InceptionV3(weights="imagenet"), keras_load_img)
# + registerKerasImageUDF("inceptionV3_udf_with_preprocessing", SmallImageNet(weights=None), keras_load_img)
# - from pyspark.ml.image import ImageSchema
# + from sparkonnx import ImageSchema
# - SELECT my_custom_keras_model_udf(image) as predictions from sample_images
# + predictions = spark.sql("SELECT my_custom_keras_model_udf(image) as predictions from sample_images")
import guide_setup

spark = guide_setup.spark_session()
tmp = guide_setup.tmp_dir()  # the guide's /tmp
sample_img_dir = guide_setup.sample_img_dir()
guide_setup.SmallImageNet(weights=None).save(f"{tmp}/model-full-tmp.h5")  # as blocks 5 and 10

# fmt: off
# ---- guide block 17
from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out
from sparkonnx.udf.keras_image_model import registerKerasImageUDF

registerKerasImageUDF("inceptionV3_udf", SmallImageNet(weights=None))
# ---- guide block 18
registerKerasImageUDF("my_custom_keras_model_udf", f"{tmp}/model-full-tmp.h5")
# ---- guide block 19
from guide_setup import SmallImageNet  # a small stand-in for InceptionV3, 299x299 in, 1000 out
from sparkonnx.udf.keras_image_model import registerKerasImageUDF

def keras_load_img(fpath):
    from keras.preprocessing.image import load_img, img_to_array
    import numpy as np
    img = load_img(fpath, target_size=(299, 299))
    return img_to_array(img).astype(np.uint8)

registerKerasImageUDF("inceptionV3_udf_with_preprocessing", SmallImageNet(weights=None), keras_load_img)
# ---- guide block 20
from sparkonnx import ImageSchema

image_df = ImageSchema.readImages(sample_img_dir)
image_df.registerTempTable("sample_images")
# ---- guide block 21
predictions = spark.sql("SELECT my_custom_keras_model_udf(image) as predictions from sample_images")
# fmt: on
