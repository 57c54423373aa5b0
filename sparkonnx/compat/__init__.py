"""The small glue behind sparkdl's module paths (sparkdl code runs with only the import renamed).

sparkdl's paths are thin packages that hold no logic: ``sparkonnx.image.imageIO``,
``sparkonnx.graph.input``, ``sparkonnx.graph.utils``, ``sparkonnx.transformers.utils``,
``sparkonnx.udf.keras_image_model`` and ``sparkonnx.estimators.keras_image_file_estimator``.
Each re-exports the one real implementation; where sparkdl had a helper sparkonnx does not
need elsewhere, it lives here:

- :mod:`sparkonnx.compat.tf_graph`: TF1 graph helpers (``tensor_name``, ``op_name``,
  ``strip_and_freeze_until``, ``imageInputPlaceholder``, ...), TensorFlow imported lazily;
- :mod:`sparkonnx.compat.image_io`: sparkdl's ``imageIO`` decoders and image-type lookups over
  :mod:`sparkonnx.engine.images`.
"""
