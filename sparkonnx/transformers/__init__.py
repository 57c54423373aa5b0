"""sparkdl's ``sparkdl.transformers`` path, for ``from sparkonnx.transformers import utils``.

Holds no logic and no stages: the stages are importable from ``sparkonnx`` itself (they live in
`sparkonnx.spark_api.transformers`); :mod:`sparkonnx.transformers.utils` re-exports
:mod:`sparkonnx.compat.tf_graph`'s ``imageInputPlaceholder``.
"""
