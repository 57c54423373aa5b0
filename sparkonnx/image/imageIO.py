"""sparkdl's ``sparkdl.image.imageIO`` names, re-exported from :mod:`sparkonnx.compat.image_io`.

``readImagesWithCustomFn(path, decode_f=PIL_decode)`` reads image files with your decoder;
``PIL_decode``, ``PIL_decode_and_resize``, ``PIL_to_imageStruct``, the struct helpers and the
image-type lookups are sparkdl's. Names sparkdl had that have no counterpart raise an
AttributeError saying what replaced them.
"""

from sparkonnx.compat import image_io as _image_io
from sparkonnx.compat.image_io import *  # noqa: F403  (the names in its __all__)
from sparkonnx.compat.image_io import __getattr__  # noqa: F401  (names with no counterpart)

__all__ = _image_io.__all__
