"""What executors unpickle and run: inference plans, Arrow UDF bodies, shipped-model lookup.

Nothing here imports `sparkonnx.converters`, `pyspark.ml`, TensorFlow or Keras at module level
(a test checks it in a fresh interpreter), so executors with only the base install can run it.
Code in here is unit-testable with pyarrow and numpy, without a SparkSession.
"""
