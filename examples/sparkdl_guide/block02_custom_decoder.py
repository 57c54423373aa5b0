"""sparkdl's quick user guide, blocks 2 and 3: images read with a custom decoder (imageIO).

python examples/sparkdl_guide/block02_custom_decoder.py
"""

# Diff from the guide (GUIDE.md); the only edits (the guide leaves decode_f to fill in):
# - from sparkdl.image import imageIO as imageIO
# - image_df = imageIO.readImagesWithCustomFn("/data/myimages",decode_f=<your image library, see imageIO.PIL_decode>)
# + from sparkonnx.image import imageIO as imageIO
# + image_df = imageIO.readImagesWithCustomFn(sample_img_dir,decode_f=imageIO.PIL_decode)
import guide_setup

spark = guide_setup.spark_session()
sample_img_dir = guide_setup.sample_img_dir()  # the guide's /data/myimages

# fmt: off
# ---- guide block 2
from sparkonnx.image import imageIO as imageIO
image_df = imageIO.readImagesWithCustomFn(sample_img_dir,decode_f=imageIO.PIL_decode)
# ---- guide block 3
image_df.show()
# fmt: on
