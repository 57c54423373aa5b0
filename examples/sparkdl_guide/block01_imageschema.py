"""sparkdl's quick user guide, blocks 1 and 3: images into a DataFrame with ImageSchema.

python examples/sparkdl_guide/block01_imageschema.py
"""

# Diff from the guide (GUIDE.md); the only edits:
# - from pyspark.ml.image import ImageSchema
# + from sparkonnx import ImageSchema
# - image_df = ImageSchema.readImages("/data/myimages")
# + image_df = ImageSchema.readImages(sample_img_dir)
import guide_setup

spark = guide_setup.spark_session()
sample_img_dir = guide_setup.sample_img_dir()  # the guide's /data/myimages

# fmt: off
# ---- guide block 1
from sparkonnx import ImageSchema
image_df = ImageSchema.readImages(sample_img_dir)
# ---- guide block 3
image_df.show()
# fmt: on
