"""sparkdl's ``sparkdl.image`` path: ``from sparkonnx.image import imageIO`` works as it did.

Holds no logic: :mod:`sparkonnx.image.imageIO` re-exports :mod:`sparkonnx.compat.image_io`.
"""
