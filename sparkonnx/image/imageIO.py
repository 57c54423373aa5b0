"""sparkdl's ``sparkdl.image.imageIO`` names, re-exported from :mod:`sparkonnx.compat.image_io`.

``readImagesWithCustomFn(path, decode_f=PIL_decode)`` reads image files with your decoder;
``PIL_decode``, ``PIL_decode_and_resize``, ``PIL_to_imageStruct``, the struct helpers and the
image-type lookups are sparkdl's. Names sparkdl had that have no counterpart raise an
AttributeError saying what replaced them.
"""

from sparkonnx.compat.image_io import (
    OcvType,
    PIL_decode,
    PIL_decode_and_resize,
    PIL_to_imageStruct,
    __getattr__,  # noqa: F401  (sparkdl names that have no counterpart: say what replaced them)
    imageArrayToStruct,
    imageStructToArray,
    imageStructToPIL,
    imageTypeByName,
    imageTypeByOrdinal,
    readImagesWithCustomFn,
)

__all__ = [
    "OcvType",
    "PIL_decode",
    "PIL_decode_and_resize",
    "PIL_to_imageStruct",
    "imageArrayToStruct",
    "imageStructToArray",
    "imageStructToPIL",
    "imageTypeByName",
    "imageTypeByOrdinal",
    "readImagesWithCustomFn",
]
